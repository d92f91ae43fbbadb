"""pyrolite.ops.einsum.adjoint: backward passes through contractions. Samples from the
torch_sample backend follow the exact posterior of a small factor graph (chi-square
bound), MAP values equal the brute-force argmax, marginals equal brute-force sums."""

import math

import pytest
import torch

from pyrolite.ops.einsum import contract
from pyrolite.ops.einsum.adjoint import (
    SAMPLE_SYMBOL,
    Backward,
    backward,
    backward_result,
    einsum_backward_sample,
    require_backward,
    transpose,
    unflatten,
)

try:
    import pyro.ops.einsum as pyro_einsum
    from pyro.ops.einsum.adjoint import require_backward as pyro_require_backward
except ImportError:
    pyro_einsum = None

needs_pyro = pytest.mark.skipif(pyro_einsum is None, reason="pyro not installed")


def _named(x, dims):
    x._pyro_dims = dims
    return x


def _chain(seed=0):
    """Factors on a chain a-b-c-d of sizes 2, 3, 2, 2."""
    g = torch.Generator().manual_seed(seed)
    x = _named(torch.randn(2, 3, generator=g, dtype=torch.float64), "ab")
    y = _named(torch.randn(3, 2, generator=g, dtype=torch.float64), "bc")
    z = _named(torch.randn(2, 2, generator=g, dtype=torch.float64), "cd")
    return x, y, z


def _joint(x, y, z):
    return x[:, :, None, None] + y[None, :, :, None] + z[None, None]


def _rows(sample):
    return {d: sample[i] for i, d in enumerate(sample._pyro_sample_dims)}


def test_sample_backward_draws_from_exact_posterior():
    x, y, z = _chain()
    n = 20000
    # A batch dim "n" makes one backward pass give n independent posterior draws.
    xn = _named(x.expand(n, 2, 3), "nab")
    for t in (xn, y, z):
        require_backward(t)
    root = contract("nab,bc,cd->n", xn, y, z, backend="pyrolite.ops.einsum.torch_sample")
    backward(root)
    rows = {}
    for t in (xn, y, z):
        sample = backward_result(t)
        assert sample._pyro_dims == SAMPLE_SYMBOL + "n"
        assert set(sample._pyro_sample_dims) == set(t._pyro_dims) - {"n"}
        for d, row in _rows(sample).items():
            if d in rows:  # the operands sharing a variable agree on its value
                assert torch.equal(rows[d], row)
            rows[d] = row
    flat = ((rows["a"] * 3 + rows["b"]) * 2 + rows["c"]) * 2 + rows["d"]
    counts = torch.bincount(flat, minlength=24).double()
    probs = torch.softmax(_joint(x, y, z).reshape(-1), 0)
    chi2 = float(((counts - n * probs) ** 2 / (n * probs)).sum())
    df = 23
    assert chi2 < df + 5 * math.sqrt(2 * df)  # 5 standard deviations of chi2(23)


def test_sample_backward_conditions_on_output_dims():
    x, y, z = _chain(1)
    n = 20000
    xn = _named(x.expand(n, 2, 3), "nab")
    for t in (xn, y, z):
        require_backward(t)
    # "a" stays in the output: b, c, d are drawn given each value of a.
    root = contract("nab,bc,cd->na", xn, y, z, backend="pyrolite.ops.einsum.torch_sample")
    backward(root)
    sample = backward_result(y)
    assert sorted(sample._pyro_dims) == sorted(SAMPLE_SYMBOL + "na")
    b = _rows(sample)["b"]
    if sample._pyro_dims[1:] == "an":
        b = b.T
    for a in range(2):
        counts = torch.bincount(b[:, a], minlength=3).double()
        probs = torch.softmax(_joint(x, y, z)[a].logsumexp((1, 2)), 0)
        chi2 = float(((counts - n * probs) ** 2 / (n * probs)).sum())
        assert chi2 < 2 + 5 * math.sqrt(4)


@pytest.mark.parametrize("seed", range(5))
def test_map_backward_is_brute_force_argmax(seed):
    x, y, z = _chain(seed)
    for t in (x, y, z):
        require_backward(t)
    root = contract("ab,bc,cd->", x, y, z, backend="pyrolite.ops.einsum.torch_map")
    joint = _joint(x, y, z)
    assert float(root) == pytest.approx(float(joint.max()))
    backward(root)
    best = torch.unravel_index(joint.argmax(), joint.shape)
    values = {}
    for t in (x, y, z):
        values.update({d: int(v) for d, v in _rows(backward_result(t)).items()})
    assert [values[d] for d in "abcd"] == [int(i) for i in best]


def test_map_backward_with_kept_dim():
    x, y, z = _chain(3)
    for t in (x, y, z):
        require_backward(t)
    root = contract("ab,bc,cd->a", x, y, z, backend="pyrolite.ops.einsum.torch_map")
    backward(root)
    joint = _joint(x, y, z)
    for a in range(2):
        best = torch.unravel_index(joint[a].argmax(), joint[a].shape)
        got = {d: int(v[a]) for d, v in _rows(backward_result(y)).items()}
        got.update({d: int(v[a]) for d, v in _rows(backward_result(z)).items()})
        assert [got[d] for d in "bcd"] == [int(i) for i in best]


def test_marginal_backward_is_brute_force_marginal():
    x, y, z = _chain(2)
    for t in (x, y, z):
        require_backward(t)
    root = contract("ab,bc,cd->", x, y, z, backend="pyrolite.ops.einsum.torch_marginal")
    backward(root)
    joint = _joint(x, y, z)
    assert torch.allclose(backward_result(x), joint.logsumexp((2, 3)))
    assert torch.allclose(backward_result(y), joint.logsumexp((0, 3)))
    assert torch.allclose(backward_result(z), joint.logsumexp((0, 1)))
    # Normalized, each is the posterior marginal: they all sum to the partition function.
    for t in (x, y, z):
        assert float(backward_result(t).logsumexp((0, 1))) == pytest.approx(float(root))


def test_backward_without_marked_operands_raises():
    x, y, _ = _chain()
    root = contract("ab,bc->", x, y, backend="pyrolite.ops.einsum.torch_sample")
    with pytest.raises(ValueError, match="require_backward"):
        backward(root)


def test_unflatten_and_join_of_samples():
    flat = torch.tensor([[5, 0], [3, 7]])
    sample = unflatten(flat, "ab", "cd", (3, 4))
    assert sample.shape == (2, 2, 2)
    assert sample._pyro_dims == " ab" and sample._pyro_sample_dims == "cd"
    assert torch.equal(sample[0] * 4 + sample[1], flat)

    a = _named(torch.zeros(2, 3), "ab")
    b = _named(torch.zeros(3, 4), "bc")
    c = _named(torch.zeros(4), "c")
    for t in (a, b):
        require_backward(t)
    upstream = unflatten(torch.tensor([1, 0]), "a", "c", (4,))
    here = unflatten(torch.tensor([2, 1]), "a", "b", (3,))
    messages = [m for _, m in einsum_backward_sample([a, b, c], upstream, here)]
    assert len(messages) == 2  # only the marked operands
    assert messages[0]._pyro_sample_dims == "b" and messages[0].tolist() == [[2, 1]]
    assert messages[1]._pyro_sample_dims == "cb"
    assert messages[1].tolist() == [[1, 0], [2, 1]]
    assert [m for _, m in einsum_backward_sample([a], upstream, None)] == [None]


def test_transpose_passes_positional_message_back():
    a = torch.zeros(2, 3)
    require_backward(a)
    t = transpose(a, (1, 0))
    [(step, message)] = t._pyro_backward.process(torch.arange(6.0).reshape(3, 2))
    assert message.shape == (2, 3)
    assert torch.equal(message, torch.arange(6.0).reshape(3, 2).T)


def test_backward_runs_a_deep_chain_without_recursion():
    class Count(Backward):
        def __init__(self, depth):
            self.depth = depth

        def process(self, message):
            count = 0 if message is None else message
            return [] if self.depth == 0 else [(Count(self.depth - 1), count + 1)]

    Count(5000)()  # deeper than the recursion limit


@needs_pyro
@pytest.mark.parametrize("seed", range(3))
def test_map_and_marginal_backward_match_pyro(seed):
    for backend in ("torch_map", "torch_marginal"):
        ours, theirs = _chain(seed), _chain(seed)
        for t in ours:
            require_backward(t)
        for t in theirs:
            pyro_require_backward(t)
        name = "pyro.ops.einsum." + backend
        backward(contract("ab,bc,cd->a", *ours, backend=name))
        pyro_einsum.contract("ab,bc,cd->a", *theirs, backend=name)._pyro_backward()
        for mine, pyros in zip(ours, theirs):
            got, expected = backward_result(mine), pyros._pyro_backward_result
            if backend == "torch_marginal":
                assert torch.allclose(got, expected)
                continue
            # Same values per variable; row and batch order may differ.
            assert set(got._pyro_sample_dims) == set(expected._pyro_sample_dims)
            assert set(got._pyro_dims) == set(expected._pyro_dims)
            for d in got._pyro_sample_dims:
                g = got[got._pyro_sample_dims.index(d)]
                e = expected[expected._pyro_sample_dims.index(d)]
                assert torch.equal(g, e)
