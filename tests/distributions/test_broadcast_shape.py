"""``broadcast_shape``: torch's broadcasting of shapes, plus Pyro's ``strict`` mode."""

import itertools
import random

import pytest
import torch

from pyrolite.distributions.util import broadcast_shape

# Every shape of rank 0..3 with sizes 1..3, plus a few with a zero size.
SHAPES = [shape for rank in range(4) for shape in itertools.product((1, 2, 3), repeat=rank)] + [
    (0,),
    (1, 0),
    (0, 1),
    (2, 0),
]


def _outcome(fn, shapes, strict):
    try:
        return tuple(fn(*shapes, strict=strict))
    except ValueError:
        return "ValueError"


@pytest.mark.parametrize("strict", [False, True])
def test_matches_pyro_on_every_pair_and_sampled_triples(strict):
    pyro_util = pytest.importorskip("pyro.distributions.util")
    cases = list(itertools.product(SHAPES, repeat=2))
    rng = random.Random(0)
    cases += [tuple(rng.choice(SHAPES) for _ in range(3)) for _ in range(2000)]
    cases += [(), ((2, 3),)]
    mismatches = [
        (shapes, mine, theirs)
        for shapes in cases
        for mine, theirs in [
            (
                _outcome(broadcast_shape, shapes, strict),
                _outcome(pyro_util.broadcast_shape, shapes, strict),
            )
        ]
        if mine != theirs
    ]
    assert mismatches == []
    # The comparison is not vacuous: both outcomes occur.
    outcomes = {_outcome(broadcast_shape, s, strict) == "ValueError" for s in cases}
    assert outcomes == {True, False}


@pytest.mark.parametrize(
    "shapes, expected",
    [
        (((3, 1), (4,)), (3, 4)),
        (((2, 1, 5), (3, 1)), (2, 3, 5)),
        (((0,), (1,)), (0,)),
        (((), (2, 2)), (2, 2)),
        ((), ()),
        ((torch.Size([4, 1]), [1, 6]), (4, 6)),
    ],
)
def test_non_strict_stretches_size_one_dims(shapes, expected):
    result = broadcast_shape(*shapes)
    assert isinstance(result, torch.Size)
    assert result == torch.Size(expected)
    assert result == torch.broadcast_shapes(*shapes)


@pytest.mark.parametrize(
    "shapes, expected",
    [
        (((2, 3), (3,)), (2, 3)),
        (((3,), (4, 2, 3), ()), (4, 2, 3)),
        (((2, 1), (1,)), (2, 1)),
        (((1,), (1,)), (1,)),
    ],
)
def test_strict_only_prepends_dims(shapes, expected):
    assert broadcast_shape(*shapes, strict=True) == torch.Size(expected)


def test_strict_refuses_to_stretch_a_size_one_dim():
    assert broadcast_shape((3,), (1,)) == torch.Size([3])
    with pytest.raises(ValueError) as err:
        broadcast_shape((3,), (1,), strict=True)
    message = str(err.value)
    assert "strict=True" in message
    assert "(3,) and (1,)" in message
    assert "sizes 3 and 1 at dim -1" in message
    assert "strict=False" in message


def test_mismatch_error_names_dim_shapes_and_fix():
    with pytest.raises(ValueError) as err:
        broadcast_shape((1, 1), (2, 7, 1), (4, 1))
    message = str(err.value)
    assert "(2, 7, 1) and (4, 1)" in message
    assert "sizes 7 and 4 at dim -2" in message
    assert "make one of them 1" in message
