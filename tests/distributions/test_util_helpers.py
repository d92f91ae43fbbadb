"""``pyrolite.distributions.util``'s Pyro helpers: values and shapes as Pyro's."""

import pytest
import torch

from pyrolite.distributions import util

CASES = {
    "sum_leftmost": [
        ((torch.arange(24.0).reshape(2, 3, 4), 2), {}),
        ((torch.arange(24.0).reshape(2, 3, 4), -1), {}),
        ((torch.arange(24.0).reshape(2, 3, 4), 0), {}),
    ],
    "eye_like": [((torch.zeros((), dtype=torch.float64), 2, 3), {}), ((torch.zeros(2), 3), {})],
    "scalar_like": [((torch.zeros(3, dtype=torch.float64), 2.5), {})],
    "gather": [
        ((torch.arange(6.0).reshape(3, 2), torch.tensor([[2, 0]]), -2), {}),
        ((torch.arange(6.0).reshape(3, 2), torch.tensor([[1]]), -1), {}),
        ((torch.arange(3.0), torch.tensor([[2], [1]]), -1), {}),
        ((torch.arange(6.0).reshape(3, 2), torch.tensor([[[1]]]), -1), {}),
    ],
    "logsumexp": [((torch.tensor([[0.0, 1.0], [2.0, -1.0]]), -1), {})],
    "log_sum_exp": [((torch.tensor([[0.0, 1.0], [2.0, -1.0]]), 0), {"keepdim": True})],
}


def test_helpers_compute_their_documented_values():
    x = torch.arange(24.0).reshape(2, 3, 4)
    assert torch.equal(util.sum_leftmost(x, 2), x.sum((0, 1)))
    assert torch.equal(util.sum_leftmost(x, -1), x.sum((0, 1)))
    assert torch.equal(util.gather(torch.arange(6.0).reshape(3, 2), torch.tensor([[1]]), -1),
                       torch.tensor([[1.0], [3.0], [5.0]]))  # fmt: skip
    nested = {"a": [torch.ones(2, requires_grad=True)], "b": (torch.zeros(1),)}
    detached = util.detach(nested)
    assert not detached["a"][0].requires_grad and detached["a"][0] is not nested["a"][0]
    moved = util.deep_to(nested, torch.float64)
    assert moved["b"][0].dtype == torch.float64 and nested["b"][0].dtype == torch.float32


def test_validation_switch_governs_torch_checks():
    with util.validation_enabled(False):
        assert not util.is_validation_enabled()
        torch.distributions.Normal(0.0, -1.0)  # no check
    assert util.is_validation_enabled()
    with pytest.raises(ValueError, match="scale"):
        torch.distributions.Normal(0.0, -1.0)


def test_script_if_tracing_keeps_eager_calls_plain():
    def twice(x: torch.Tensor) -> torch.Tensor:
        return x * 2

    wrapped = util.torch_jit_script_if_tracing(twice)
    assert torch.equal(wrapped(torch.ones(2)), torch.full((2,), 2.0))
    traced = torch.jit.trace(lambda x: wrapped(x) + 1, torch.ones(2))
    assert torch.equal(traced(torch.zeros(2)), torch.ones(2))


@pytest.mark.parametrize("name", list(CASES))
def test_helpers_match_pyro(name):
    pyro_util = pytest.importorskip("pyro.distributions.util")
    for args, kwargs in CASES[name]:
        ours = getattr(util, name)(*args, **kwargs)
        theirs = getattr(pyro_util, name)(*args, **kwargs)
        assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
        assert torch.equal(ours, theirs)
