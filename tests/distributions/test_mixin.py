"""Pyro's mixin methods: shapes, to_event, mask, has_rsample_, score_parts."""

import math

import pytest
import torch

import pyrolite.distributions as dist
from pyrolite.distributions import ScoreParts
from pyrolite.distributions.testing.fakes import (
    NonreparameterizedBeta,
    NonreparameterizedDirichlet,
    NonreparameterizedGamma,
    NonreparameterizedNormal,
)


def test_shape_expand_by_and_event_dim():
    d = dist.Normal(torch.zeros(3), 1.0)
    assert d.shape() == (3,)
    assert d.shape((4, 2)) == (4, 2, 3)
    assert d((4, 2)).shape == (4, 2, 3)
    expanded = d.expand_by([5, 4])
    assert expanded.batch_shape == (5, 4, 3) and expanded.event_dim == 0
    assert dist.Dirichlet(torch.ones(4)).event_dim == 1


def test_to_event_reinterprets_and_merges():
    base = dist.Normal(torch.zeros(2, 3, 4), 1.0)
    assert base.to_event(0) is base
    d = base.to_event(1)
    assert isinstance(d, dist.Independent)
    assert (d.batch_shape, d.event_shape) == ((2, 3), (4,))
    merged = d.to_event(1)
    assert merged.base_dist is base and merged.reinterpreted_batch_ndims == 2
    everything = base.to_event()
    assert (everything.batch_shape, everything.event_shape) == ((), (2, 3, 4))
    assert merged.to_event(-2) is base
    assert merged.to_event(-1).reinterpreted_batch_ndims == 1
    x = torch.randn(2, 3, 4)
    assert torch.allclose(everything.log_prob(x), base.log_prob(x).sum())
    with pytest.raises(ValueError):
        base.to_event(-1)


def test_mask_zeroes_log_prob_where_false_even_at_minus_inf():
    d = dist.Uniform(torch.zeros(3), torch.tensor([1.0, 1.0, 4.0]), validate_args=False)
    value = torch.tensor([2.0, 2.0, 2.0])
    assert torch.isinf(d.log_prob(value)[:2]).all()
    masked = d.mask(torch.tensor([False, True, True]))
    lp = masked.log_prob(value)
    assert lp[0].item() == 0.0 and lp[1].item() == -math.inf
    assert lp[2].item() == pytest.approx(math.log(0.25))
    assert torch.equal(d.mask(False).log_prob(value), torch.zeros(3))
    assert torch.equal(d.mask(True).log_prob(value), d.log_prob(value))


def test_mask_broadcasts_batch_shape_and_delegates():
    d = dist.Normal(torch.zeros(3), 1.0).mask(torch.tensor([[True], [False]]))
    assert d.batch_shape == (2, 3)
    lp = d.log_prob(torch.zeros(2, 3))
    expected = torch.tensor([[-0.5 * math.log(2 * math.pi)] * 3, [0.0] * 3])
    assert torch.allclose(lp, expected)
    assert d.has_rsample and torch.equal(d.mean, torch.zeros(2, 3))
    assert type(d.expand([4, 2, 3])) is dist.MaskedDistribution
    bern = dist.Bernoulli(torch.full((2,), 0.5)).mask(torch.tensor([True, False]))
    assert bern.has_enumerate_support
    assert torch.equal(bern.enumerate_support(), torch.tensor([[0.0, 0.0], [1.0, 1.0]]))


def test_score_parts_reparameterized_vs_not():
    x = torch.tensor([0.3, 1.2])
    reparam = dist.Normal(0.0, 1.0).score_parts(x)
    lp = dist.Normal(0.0, 1.0).log_prob(x)
    assert isinstance(reparam, ScoreParts)
    assert torch.equal(reparam.log_prob, lp) and torch.equal(reparam.entropy_term, lp)
    assert reparam.score_function == 0
    fake = NonreparameterizedNormal(0.0, 1.0).score_parts(x)
    assert torch.equal(fake.log_prob, lp) and torch.equal(fake.score_function, lp)
    assert fake.entropy_term == 0


def test_score_parts_scale_and_mask_leaves_score_function_alone():
    lp = torch.tensor([1.0, float("-inf")])
    parts = ScoreParts(lp, lp, 0).scale_and_mask(2.0, torch.tensor([True, False]))
    assert torch.equal(parts.log_prob, torch.tensor([2.0, 0.0]))
    assert parts.score_function is lp and parts.entropy_term == 0


def test_masked_score_parts_mask_log_prob_only():
    d = NonreparameterizedNormal(torch.zeros(2), 1.0).mask(torch.tensor([True, False]))
    parts = d.score_parts(torch.zeros(2))
    full = -0.5 * math.log(2 * math.pi)
    assert torch.allclose(parts.log_prob, torch.tensor([full, 0.0]))
    assert torch.allclose(parts.score_function, torch.tensor([full, full]))


def test_has_rsample_false_gives_detached_samples_in_place():
    loc = torch.tensor([0.0, 1.0], requires_grad=True)
    d = dist.Normal(loc, 1.0)
    assert d().requires_grad
    assert d.has_rsample_(False) is d and not d.has_rsample
    assert not d().requires_grad
    assert not d.expand([3, 2]).has_rsample
    assert d.score_parts(torch.zeros(2)).entropy_term == 0
    assert d.has_rsample_(True)().requires_grad


def test_has_rsample_can_be_forced_on_property_based_classes():
    loc = torch.tensor(0.0, requires_grad=True)
    for d in (dist.LogNormal(loc, 1.0), dist.Normal(loc.expand(2), 1.0).to_event(1)):
        assert d.has_rsample
        d.has_rsample_(False)
        assert not d.has_rsample and not d().requires_grad


@pytest.mark.parametrize("d", [dist.Bernoulli(0.5), NonreparameterizedNormal(0.0, 1.0)])
def test_forcing_rsample_on_non_reparameterized_raises(d):
    with pytest.raises(ValueError, match="reparameterized"):
        d.has_rsample_(True)
    with pytest.raises(ValueError):
        dist.Normal(0.0, 1.0).has_rsample_(1)


def test_fakes_are_non_reparameterized_but_differentiable():
    loc = torch.tensor(0.5, requires_grad=True)
    d = NonreparameterizedNormal(loc, 2.0)
    assert not d.has_rsample and not d().requires_grad
    d.log_prob(torch.tensor(1.5)).backward()
    assert loc.grad.item() == pytest.approx((1.5 - 0.5) / 4.0)
    conc = torch.tensor(2.0, requires_grad=True)
    NonreparameterizedGamma(conc, 1.0).log_prob(torch.tensor(1.0)).backward()
    # d/da [a log b - lgamma(a) + (a-1) log x - b x] at b=1, x=1 is -digamma(a)
    assert conc.grad.item() == pytest.approx(-torch.digamma(torch.tensor(2.0)).item())
    for fake in (
        NonreparameterizedBeta(2.0, 2.0),
        NonreparameterizedDirichlet(torch.ones(3)),
        NonreparameterizedGamma(1.0, 1.0),
    ):
        assert not fake.has_rsample
    assert type(NonreparameterizedNormal(0.0, 1.0).expand([2])) is NonreparameterizedNormal


def test_enumerate_support():
    d = dist.Categorical(torch.ones(2, 3))
    assert d.has_enumerate_support
    assert d.enumerate_support().shape == (3, 2)
    assert d.enumerate_support(expand=False).shape == (3, 1)
    assert not dist.Bernoulli(torch.full((2,), 0.5)).to_event(1).has_enumerate_support
