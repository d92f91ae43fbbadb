"""Where Pyro is installed, pyrolite's densities equal Pyro's on the same values."""

import pytest
import torch

import pyrolite.distributions as dist

pyro_dist = pytest.importorskip("pyro.distributions")


def _pair(build):
    return build(dist), build(pyro_dist)


CASES = {
    "Normal": (lambda m: m.Normal(torch.tensor([0.0, 1.0]), 2.0), torch.tensor([0.3, -2.0])),
    "Beta": (lambda m: m.Beta(2.0, 3.0), torch.tensor([0.2, 0.9])),
    "Independent": (
        lambda m: m.Normal(torch.zeros(2, 3), 1.0).to_event(1),
        torch.arange(6.0).reshape(2, 3),
    ),
    "Delta": (
        lambda m: m.Delta(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([0.5, 1.0]), 1),
        torch.tensor([[1.0, 2.0], [3.0, 0.0]]),
    ),
    "Masked": (
        lambda m: m.Normal(torch.zeros(3), 1.0).mask(torch.tensor([True, False, True])),
        torch.tensor([0.5, 9.0, -1.0]),
    ),
    "Unit": (lambda m: m.Unit(torch.tensor([1.0, -3.0])), torch.empty(2, 0)),
    "Empirical": (
        lambda m: m.Empirical(torch.tensor([0.0, 1.0, 1.0]), torch.tensor([0.2, 0.3, 0.5]).log()),
        torch.tensor(1.0),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_log_prob_matches_pyro(name):
    build, value = CASES[name]
    ours, theirs = _pair(build)
    assert (ours.batch_shape, ours.event_shape) == (theirs.batch_shape, theirs.event_shape)
    assert torch.allclose(ours.log_prob(value), theirs.log_prob(value))


def test_score_parts_and_kl_match_pyro():
    x = torch.tensor([0.3, -0.7])
    ours = dist.Normal(torch.zeros(2), 1.0).mask(torch.tensor([True, False])).score_parts(x)
    theirs = pyro_dist.Normal(torch.zeros(2), 1.0).mask(torch.tensor([True, False])).score_parts(x)
    assert torch.allclose(ours.log_prob, theirs.log_prob)
    assert torch.allclose(ours.entropy_term, theirs.entropy_term)
    kl_ours = dist.kl_divergence(
        dist.Delta(x).to_event(1), dist.Normal(1.0, 2.0).expand([2]).to_event(1)
    )
    kl_theirs = torch.distributions.kl_divergence(
        pyro_dist.Delta(x).to_event(1), pyro_dist.Normal(1.0, 2.0).expand([2]).to_event(1)
    )
    assert torch.allclose(kl_ours, kl_theirs)
