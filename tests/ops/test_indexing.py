"""``pyrolite.ops.indexing``: ``Vindex`` puts broadcast index tensors left of the sliced dims
(checked element by element against Python loops on the HMM patterns), gradients reach the
indexed tensor, errors name the shapes, and results match Pyro's on a grid of keys."""

import itertools

import pytest
import torch

from pyrolite.ops.indexing import Index, Vindex, index, vindex

K = 3


def pick(t, out_index):
    """The element of ``t`` that broadcasting puts at ``out_index``: ``t`` is right-aligned
    against ``out_index`` and its size-1 dims repeat."""
    offset = len(out_index) - t.dim()
    return t[tuple(0 if t.size(d) == 1 else out_index[offset + d] for d in range(t.dim()))]


def cells(shape):
    return itertools.product(*(range(n) for n in shape))


def brute_force_vindex(tensor, key):
    """vindex by its documented rule, one output element at a time."""
    key = key if isinstance(key, tuple) else (key,)
    has_batch = bool(key) and key[0] is Ellipsis
    args = list(key[1:] if has_batch else key)
    n_indexed = sum(a is not None for a in args)
    if not has_batch:
        args += [slice(None)] * (tensor.dim() - n_indexed)
        n_indexed = tensor.dim()
    n_batch = tensor.dim() - n_indexed
    args = [torch.as_tensor(a) if not isinstance(a, slice) and a is not None else a for a in args]
    index_shapes = [a.shape for a in args if isinstance(a, torch.Tensor)]
    batch_shape = torch.broadcast_shapes(tensor.shape[:n_batch], *index_shapes)
    kept = []  # per output event dim: the source positions it walks (None: a new size-1 dim)
    dim = n_batch
    for a in args:
        if a is None:
            kept.append([None])
            continue
        if isinstance(a, slice):
            kept.append(list(range(tensor.size(dim))[a]))
        dim += 1
    out = torch.empty(tuple(batch_shape) + tuple(len(k) for k in kept), dtype=tensor.dtype)
    for b in cells(batch_shape):
        for e in cells(out.shape[len(batch_shape) :]):
            src = [0 if tensor.size(d) == 1 else b[len(b) - n_batch + d] for d in range(n_batch)]
            event_pos = iter(e)
            event_kept = iter(kept)
            for a in args:
                if isinstance(a, torch.Tensor):
                    src.append(int(pick(a, b)))
                    continue
                position = next(event_kept)[next(event_pos)]
                if position is not None:
                    src.append(position)
            out[b + e] = tensor[tuple(src)]
    return out


class RandomIndex:
    """A random index tensor in a key template (materialized inside each test)."""

    def __init__(self, shape, high, dtype=torch.long):
        self.shape, self.high, self.dtype = shape, high, dtype

    def __repr__(self):
        return f"idx{self.shape}<{self.high}"


def materialize(key):
    return tuple(
        torch.randint(a.high, a.shape, dtype=a.dtype) if isinstance(a, RandomIndex) else a
        for a in key
    )


def key_id(key):
    if not isinstance(key, tuple):
        return repr(key)
    return "[" + ",".join(arg_id(a) for a in key) + "]"


def arg_id(a):
    if a is Ellipsis:
        return "..."
    if isinstance(a, slice):
        parts = ("" if v is None else str(v) for v in (a.start, a.stop, a.step))
        return ":".join(parts).rstrip(":") or ":"
    if isinstance(a, torch.Tensor):
        return f"T{tuple(a.shape)}"
    if isinstance(a, tuple):
        return key_id(a)
    return type(a).__name__ if type(a) is object else repr(a)


def case_id(value):
    """pytest ids: a tensor shape as 2x3x4, a key spelled out, an exception by name, and
    pytest's own id for a regex."""
    if isinstance(value, str):
        return None
    if isinstance(value, type):
        return value.__name__
    if isinstance(value, tuple) and all(isinstance(n, int) for n in value) and value:
        return "x".join(map(str, value))
    return key_id(value)


_ = slice(None)

# Keys inside Pyro's documented domain: pyrolite and Pyro agree on all of these.
SHARED_CASES = [
    ((K, K), (RandomIndex((K, 1, 1), K),)),
    ((K, K), (RandomIndex((1, K, 1, 1), K),)),
    ((K, K, 4), (RandomIndex((K, 1, 1), K), RandomIndex((K, 1, 1, 1), K))),
    ((K, K), (RandomIndex((K, 1, 1), K), RandomIndex((1, K, 1, 1), K))),
    ((2, K, 4), (Ellipsis, RandomIndex((K, 1, 1), K), _)),
    ((5, 1, K, 4), (Ellipsis, RandomIndex((K, 1, 1), K), _)),
    ((K, 4, 5), (RandomIndex((K, 1), K), _, RandomIndex((5,), 5))),
    ((2, 3, 4), (_, RandomIndex((5,), 3))),
    ((2, 3, 4), (RandomIndex((5, 1), 2),)),
    ((2, 3, 4), (RandomIndex((5, 1), 2), slice(1, 3))),
    ((2, 3, 4), (RandomIndex((5, 1), 2), slice(None, None, 2), 1)),
    ((2, 3, 4), (0, _, RandomIndex((5,), 4))),
    ((2, 3, 4), (-1, RandomIndex((2, 1), 3), -2)),
    ((2, 3, 4), (RandomIndex((), 2), 1)),
    ((2, 3, 4), (Ellipsis, RandomIndex((1, 3), 4))),
    ((2, 3, 4), (Ellipsis, RandomIndex((4, 1, 1), 4))),
    ((2, 3, 4), (RandomIndex((5, 1), 2), None)),
    ((2, 3, 4), (RandomIndex((5, 1), 2), _, None)),
    ((2, 3, 4), (RandomIndex((5, 1), 2, torch.int32), _, RandomIndex((5,), 4, torch.int32))),
    ((2, 3, 4), ([1, 0, 1],)),
    ((2, 3, 4), (Ellipsis, 0)),
    ((2, 3, 4), (1, _)),
    ((2, 3, 4), ()),
    ((2, 3, 4), (Ellipsis,)),
    ((4,), (RandomIndex((2, 3), 4),)),
]

# Keys where pyrolite follows the documented rule and Pyro 1.9.2 refuses (NotImplementedError
# for a non-``:`` slice before an index tensor; AssertionError or IndexError for a ``None`` it
# counts as a dim of the tensor) or contradicts its own docs (``None`` after a leading
# Ellipsis, where its docs promise ``x[key]``).
EXTENDED_CASES = [
    ((2, 3, 4), (RandomIndex((5, 1), 2), slice(0, 2), RandomIndex((3,), 4))),
    ((2, 3, 4), (slice(1, 3), RandomIndex((5,), 3))),
    ((2, 3, 4), (Ellipsis, slice(1, 2), _, RandomIndex((2, 1, 1), 4))),
    ((2, 3, 4), (Ellipsis, _, None, _)),
    ((2, 3, 4), (Ellipsis, None)),
    ((2, 3, 4), (None, RandomIndex((5, 1), 2))),
    ((2, 3, 4), (_, _, _, None)),
]


@pytest.mark.parametrize("shape,key", SHARED_CASES + EXTENDED_CASES, ids=case_id)
def test_vindex_equals_brute_force_on_key_grid(shape, key):
    tensor = torch.randn(shape)
    key = materialize(key)
    expected = brute_force_vindex(tensor, key)
    actual = Vindex(tensor)[key]
    assert actual.shape == expected.shape
    assert torch.equal(actual, expected)
    assert torch.equal(vindex(tensor, key), expected)


@pytest.mark.parametrize("x_shape", [(K, 1, 1, 1), (K, 1, 1), (1, K, 1, 1), (5,), ()])
def test_vindex_selects_transition_rows_for_enumerated_state(x_shape, device):
    probs = torch.randn(K, K, device=device)
    x = torch.randint(K, x_shape, device=device)
    out = Vindex(probs)[x]
    assert out.shape == x_shape + (K,)
    for a in cells(x_shape):
        for j in range(K):
            assert out[a + (j,)] == probs[x[a], j]


@pytest.mark.parametrize(
    "x_shape,y_shape,batch_shape",
    [
        ((K, 1, 1), (K, 1, 1, 1), (K, K, 1, 1)),
        ((K, 1, 1), (1, K, 1, 1), (1, K, 1, 1)),
        ((K, 1), (4,), (K, 4)),
    ],
)
def test_vindex_two_indices_broadcast_to_the_left(x_shape, y_shape, batch_shape, device):
    probs = torch.randn(K, 4, 2, device=device)
    x = torch.randint(K, x_shape, device=device)
    y = torch.randint(4, y_shape, device=device)
    out = Vindex(probs)[x, y]
    assert out.shape == batch_shape + (2,)
    for b in cells(batch_shape):
        for m in range(2):
            assert out[b + (m,)] == probs[pick(x, b), pick(y, b), m]


@pytest.mark.parametrize(
    "tensor_batch,x_shape,batch_shape",
    [((2,), (K, 1, 1), (K, 1, 2)), ((5, 1), (K, 1, 1), (K, 5, 1)), ((2, 1), (1, K), (2, K))],
)
def test_vindex_leading_ellipsis_broadcasts_tensor_batch_dims(
    tensor_batch, x_shape, batch_shape, device
):
    t = torch.randn(tensor_batch + (K, 4), device=device)
    x = torch.randint(K, x_shape, device=device)
    out = Vindex(t)[..., x, :]
    assert out.shape == batch_shape + (4,)
    for b in cells(batch_shape):
        batch_index = tuple(
            0 if n == 1 else b[len(b) - len(tensor_batch) + d] for d, n in enumerate(tensor_batch)
        )
        for m in range(4):
            assert out[b + (m,)] == t[batch_index + (pick(x, b), m)]


@pytest.mark.parametrize(
    "x_shape,y_shape,batch_shape",
    [((K, 1), (5,), (K, 5)), ((K, 1, 1), (K, 1, 1, 1), (K, K, 1, 1)), ((), (5,), (5,))],
)
def test_vindex_indices_around_a_slice_keep_the_slice_on_the_right(x_shape, y_shape, batch_shape):
    t = torch.randn(K, 4, 5)
    x = torch.randint(K, x_shape)
    y = torch.randint(5, y_shape)
    out = Vindex(t)[x, :, y]
    assert out.shape == batch_shape + (4,)
    for b in cells(batch_shape):
        for m in range(4):
            assert out[b + (m,)] == t[pick(x, b), m, pick(y, b)]


@pytest.mark.parametrize(
    "key",
    [
        (0,),
        (-1, 2),
        (1, _),
        (Ellipsis, 0),
        (Ellipsis, 0, _),
        (_, 1, None),
        (Ellipsis, None),
        (Ellipsis, _, None, _),
        (None,),
        (slice(1, 3),),
        (_, slice(0, 3, 2)),
        (torch.tensor(1),),
        (Ellipsis, torch.tensor(2), 1),
        (),
    ],
    ids=case_id,
)
def test_vindex_without_batched_index_tensors_equals_standard_indexing(key):
    x = torch.randn(2, 3, 4)
    assert torch.equal(Vindex(x)[key], x[key])


def test_vindex_gradient_accumulates_over_repeated_indices():
    probs = torch.randn(K, 4, requires_grad=True)
    x = torch.tensor([2, 0, 2, 2, 1]).reshape(5, 1, 1)
    weights = torch.randn(5, 1, 1, 4)
    (Vindex(probs)[x] * weights).sum().backward()
    expected = torch.zeros(K, 4)
    for a in range(5):
        for j in range(4):
            expected[x[a, 0, 0], j] += weights[a, 0, 0, j]
    assert torch.allclose(probs.grad, expected)


def test_vindex_gradient_through_batch_dims_and_two_indices():
    t = torch.randn(2, K, 4, 5, requires_grad=True)
    x = torch.randint(K, (K, 1, 1))
    y = torch.randint(5, (1, 2))
    out = Vindex(t)[..., x, :, y]  # batch broadcast((2,), (K, 1, 1), (1, 2)) = (K, 1, 2)
    assert out.shape == (K, 1, 2, 4)
    weights = torch.randn(out.shape)
    (out * weights).sum().backward()
    expected = torch.zeros(t.shape)
    for b in cells((K, 1, 2)):
        for m in range(4):
            expected[b[-1], pick(x, b), m, pick(y, b)] += weights[b + (m,)]
    assert torch.allclose(t.grad, expected)


@pytest.mark.parametrize(
    "key,same_as",
    [
        ((Ellipsis, (Ellipsis, None)), (Ellipsis, None)),
        (((0,), (1,)), (0, 1)),
        (((),), ()),
        ((Ellipsis, (Ellipsis, Ellipsis), 0), (Ellipsis, 0)),
        ((slice(0, 1), (None, (2,))), (slice(0, 1), None, 2)),
        (1, 1),
        (None, None),
    ],
    ids=key_id,
)
def test_index_flattens_nested_keys_and_merges_ellipsis(key, same_as):
    x = torch.randn(2, 3, 4)
    assert torch.equal(index(x, key), x[same_as])
    assert torch.equal(Index(x)[key], x[same_as])


@pytest.mark.parametrize(
    "key,match",
    [
        ((0, 0, 0, 0), r"indexes 4 dims but the tensor of shape \(2, 3, 4\) has 3"),
        ((Ellipsis, _, None, _, _, 0), r"indexes 4 dims"),
        ((torch.zeros(5, 1, dtype=torch.long), 1.5), r"arg 1 .* shape \(2, 3, 4\).*float"),
        ((torch.zeros(5, 1),), r"arg 0 .* dtype torch.float32 \(shape \(5, 1\)\)"),
        ((torch.zeros(5, 1, dtype=torch.long), "a"), r"arg 1 .* 'a' of type str"),
        ((Ellipsis, object()), r"arg 1 .* of type object"),
        ((torch.tensor([True, False]),), r"arg 0 .* boolean mask"),
        ((True,), r"boolean mask"),
        (
            (Ellipsis, torch.zeros(5, 1, dtype=torch.long)),
            r"\[\(5, 1\)\] do not broadcast .*\(2, 3\)",
        ),
        (
            (torch.zeros(2, dtype=torch.long), _, torch.zeros(3, dtype=torch.long)),
            r"\[\(2,\), \(3,\)\]",
        ),
        (
            (torch.zeros(5, dtype=torch.long), torch.zeros(4, dtype=torch.long)),
            r"\[\(5,\), \(4,\)\]",
        ),
        ((torch.tensor([5]),), r"out of bounds"),
        ((0, 3, 0), r"out of bounds"),
        ((torch.tensor([-3]),), r"out of bounds"),
    ],
    ids=case_id,
)
def test_vindex_bad_key_raises_index_error_naming_shapes(key, match):
    x = torch.randn(2, 3, 4)
    with pytest.raises(IndexError, match=match):
        Vindex(x)[key]


@pytest.mark.parametrize(
    "key", [(Ellipsis, Ellipsis), (0, Ellipsis), (_, Ellipsis, 0)], ids=case_id
)
def test_vindex_non_leading_ellipsis_is_not_implemented(key):
    with pytest.raises(NotImplementedError, match="Ellipsis at position 1"):
        Vindex(torch.randn(2, 3, 4))[key]


# --- Pyro as the oracle -------------------------------------------------------------------------


@pytest.mark.parametrize("shape,key", SHARED_CASES, ids=case_id)
def test_vindex_matches_pyro(shape, key):
    pyro_indexing = pytest.importorskip("pyro.ops.indexing")
    tensor = torch.randn(shape)
    key = materialize(key)
    expected = pyro_indexing.Vindex(tensor)[key]
    assert Vindex(tensor)[key].shape == expected.shape
    assert torch.equal(Vindex(tensor)[key], expected)
    assert torch.equal(vindex(tensor, key), pyro_indexing.vindex(tensor, key))


@pytest.mark.parametrize(
    "key,error",
    [
        ((Ellipsis, RandomIndex((5, 1), 2)), IndexError),
        ((RandomIndex((2,), 2), _, RandomIndex((3,), 4)), IndexError),
        ((RandomIndex((5, 1), 2), 1.5), IndexError),
        ((torch.zeros(5, 1),), IndexError),
        ((torch.tensor([5]),), IndexError),
        ((2, 0, 0), IndexError),
        ((Ellipsis, Ellipsis), NotImplementedError),
        ((RandomIndex((5, 1), 2), Ellipsis), NotImplementedError),
    ],
    ids=case_id,
)
def test_vindex_error_type_matches_pyro(key, error):
    pyro_indexing = pytest.importorskip("pyro.ops.indexing")
    x = torch.randn(2, 3, 4)
    key = materialize(key)
    with pytest.raises(error):
        pyro_indexing.Vindex(x)[key]
    with pytest.raises(error):
        Vindex(x)[key]


@pytest.mark.parametrize("shape,key", EXTENDED_CASES, ids=case_id)
def test_vindex_extends_pyro_only_where_pyro_refuses_or_contradicts_its_docs(shape, key):
    pyro_indexing = pytest.importorskip("pyro.ops.indexing")
    tensor = torch.randn(shape)
    key = materialize(key)
    try:
        pyro_result = pyro_indexing.Vindex(tensor)[key]
    except (NotImplementedError, IndexError, AssertionError):
        pyro_result = None
    if pyro_result is not None:
        # Pyro answered, though without batched index tensors its docs promise tensor[key].
        assert not any(isinstance(a, torch.Tensor) and a.dim() for a in key)
        assert pyro_result.shape != tensor[key].shape
        assert torch.equal(Vindex(tensor)[key], tensor[key])
    assert torch.equal(Vindex(tensor)[key], brute_force_vindex(tensor, key))


@pytest.mark.parametrize(
    "key",
    [
        (Ellipsis, (Ellipsis, None)),
        ((0,), (1,)),
        ((),),
        (Ellipsis, (Ellipsis, Ellipsis), 0),
        (slice(0, 1), (None,)),
        (torch.tensor([1, 0]), (0,)),
        1,
        (),
    ],
    ids=key_id,
)
def test_index_matches_pyro(key):
    pyro_indexing = pytest.importorskip("pyro.ops.indexing")
    x = torch.randn(2, 3, 4)
    assert torch.equal(index(x, key), pyro_indexing.index(x, key))
    assert torch.equal(Index(x)[key], pyro_indexing.Index(x)[key])
