"""The structured families against Pyro 1.9 as an oracle: log_prob on the same values,
shapes, supports, enumerate_support order, modes, sample moments and rsample gradients."""

import math

import pytest
import torch

from pyrolite.distributions import Categorical, Exponential, Normal, Poisson
from pyrolite.distributions.coalescent import (
    CoalescentRateLikelihood,
    CoalescentTimes,
    CoalescentTimesWithRate,
)
from pyrolite.distributions.diag_normal_mixture import (
    MixtureOfDiagNormals,
    MixtureOfDiagNormalsSharedCovariance,
)
from pyrolite.distributions.expanded import ExpandedDistribution
from pyrolite.distributions.gaussian_scale_mixture import GaussianScaleMixture
from pyrolite.distributions.masked_mixture import MaskedMixture
from pyrolite.distributions.one_one_matching import OneOneMatching
from pyrolite.distributions.one_two_matching import OneTwoMatching
from pyrolite.distributions.rejector import Rejector
from pyrolite.distributions.spanning_tree import SpanningTree

pyro_dist = pytest.importorskip("pyro.distributions")


def test_masked_mixture_matches_pyro():
    mask = torch.tensor([[True, False, True], [False, False, True]])
    ours = MaskedMixture(mask, Normal(0.0, 1.0), Exponential(torch.ones(3)))
    theirs = pyro_dist.MaskedMixture(
        mask, pyro_dist.Normal(0.0, 1.0), pyro_dist.Exponential(torch.ones(3))
    )
    x = torch.tensor([[1.0, -1.0, 2.0], [0.5, 3.0, 0.1]])
    assert ours.batch_shape == theirs.batch_shape and ours.event_shape == theirs.event_shape
    assert torch.allclose(ours.log_prob(x), theirs.log_prob(x))
    assert torch.allclose(ours.mean, theirs.mean) and torch.allclose(ours.variance, theirs.variance)
    assert torch.equal(ours.support.check(-x), theirs.support.check(-x))
    assert ours.has_rsample == theirs.has_rsample
    assert ours.sample((4,)).shape == theirs.sample((4,)).shape
    assert ours.expand([5, 2, 3]).log_prob(x).shape == theirs.expand([5, 2, 3]).log_prob(x).shape


@pytest.mark.parametrize("batch", [(), (4,)])
def test_diag_normal_mixtures_log_prob_match_pyro(batch):
    locs, scales = torch.randn(batch + (3, 2)), torch.rand(batch + (3, 2)) + 0.5
    logits = torch.randn(batch + (3,))
    x = torch.randn((5,) + batch + (2,))
    ours, theirs = (
        MixtureOfDiagNormals(locs, scales, logits),
        pyro_dist.MixtureOfDiagNormals(locs, scales, logits),
    )
    assert ours.batch_shape == theirs.batch_shape and ours.event_shape == theirs.event_shape
    assert torch.allclose(ours.log_prob(x), theirs.log_prob(x), atol=1e-5)
    # Pyro's batched rsample fails with a sample_shape; compare unbatched draws' shapes.
    assert ours.rsample().shape == theirs.rsample().shape
    assert ours.rsample((6,)).shape == (6,) + batch + (2,)
    assert ours.expand((7,) + batch).rsample().shape == theirs.expand((7,) + batch).rsample().shape
    shared = MixtureOfDiagNormalsSharedCovariance(locs, scales[..., 0, :], logits)
    pyro_shared = pyro_dist.MixtureOfDiagNormalsSharedCovariance(locs, scales[..., 0, :], logits)
    assert torch.allclose(shared.log_prob(x), pyro_shared.log_prob(x), atol=1e-5)
    assert shared.rsample().shape == pyro_shared.rsample().shape


def test_gaussian_scale_mixture_log_prob_matches_pyro():
    args = (torch.rand(3) + 0.5, torch.randn(4), torch.rand(4) + 0.5)
    ours, theirs = GaussianScaleMixture(*args), pyro_dist.GaussianScaleMixture(*args)
    for _ in range(3):
        x = torch.randn(3)  # Pyro's log_prob takes one unbatched value
        assert ours.log_prob(x).item() == pytest.approx(theirs.log_prob(x).item(), abs=1e-5)
    assert ours.rsample((5,)).shape == theirs.rsample((5,)).shape
    assert ours.event_shape == theirs.event_shape


def _mean_gradient(make, params, reps=8, num_samples=4000):
    coeffs = torch.tensor([1.0, 2.0, 0.5])
    grads = []
    for _ in range(reps):
        x = make(*params).rsample((num_samples,))
        f = (coeffs * x * x + x).sum(-1).mean()
        grads.append(torch.cat([g.flatten() for g in torch.autograd.grad(f, params)]))
    grads = torch.stack(grads)
    return grads.mean(0), grads.var(0) / reps


def test_mixture_rsample_gradients_agree_with_pyro():
    # Pyro's and our estimators differ but both are unbiased for locs and scales, so their
    # means agree within the combined standard error. (Pyro's logits gradient is biased
    # for this integrand; test_structured checks ours against the analytic one.)
    params = [
        torch.randn(3, 3).requires_grad_(),
        (torch.rand(3, 3) + 0.5).requires_grad_(),
        torch.randn(3).requires_grad_(),
    ]
    ours, our_var = _mean_gradient(MixtureOfDiagNormals, params)
    theirs, their_var = _mean_gradient(pyro_dist.MixtureOfDiagNormals, params)
    locs_and_scales = slice(0, 18)
    z = (ours - theirs)[locs_and_scales] / (our_var + their_var)[locs_and_scales].sqrt()
    assert bool((z.abs() < 5).all())
    params = [
        (torch.rand(3) + 0.5).requires_grad_(),
        torch.randn(2).requires_grad_(),
        (torch.rand(2) + 0.5).requires_grad_(),
    ]
    ours, our_var = _mean_gradient(GaussianScaleMixture, params)
    theirs, their_var = _mean_gradient(pyro_dist.GaussianScaleMixture, params)
    assert bool(((ours - theirs).abs() < 5 * (our_var + their_var).sqrt()).all())


def test_rejector_matches_pyro():
    def accept(x):
        return torch.nn.functional.logsigmoid(3 * x)

    proposal = Normal(torch.zeros(3), 1.0)
    ours = Rejector(proposal, accept, torch.tensor(0.5).log())
    theirs = pyro_dist.Rejector(
        pyro_dist.Normal(torch.zeros(3), 1.0), accept, torch.tensor(0.5).log()
    )
    x = torch.tensor([0.5, -0.2, 1.0])
    assert torch.allclose(ours.log_prob(x), theirs.log_prob(x))
    for a, b in zip(ours.score_parts(x), theirs.score_parts(x)):
        assert torch.allclose(torch.as_tensor(a), torch.as_tensor(b))
    assert ours.batch_shape == theirs.batch_shape and ours.has_rsample == theirs.has_rsample
    assert ours.rsample((4,)).shape == theirs.rsample((4,)).shape
    assert ours.expand([2, 3]).rsample().shape == theirs.expand([2, 3]).rsample().shape
    ours_mean = ours.rsample((20000,)).mean()
    theirs_mean = theirs.rsample((20000,)).mean()
    assert (ours_mean - theirs_mean).abs() < 5 * math.sqrt(2 / 60000)  # sd < 1 per draw


@pytest.mark.parametrize("num_vertices", [2, 3, 4, 5, 6])
def test_spanning_tree_support_and_log_prob_match_pyro(num_vertices):
    logits = torch.randn(num_vertices * (num_vertices - 1) // 2)
    ours, theirs = SpanningTree(logits), pyro_dist.SpanningTree(logits)
    trees = ours.enumerate_support()
    assert torch.equal(trees, theirs.enumerate_support())
    assert torch.allclose(ours.log_prob(trees), theirs.log_prob(trees), atol=1e-5)
    assert torch.equal(ours.mode, theirs.mode)
    assert torch.allclose(ours.edge_mean, theirs.edge_mean, atol=1e-5)
    assert tuple(ours.event_shape) == tuple(theirs.event_shape)


def test_spanning_tree_realistic_size_matches_pyro():
    logits = torch.randn(45)
    ours, theirs = SpanningTree(logits), pyro_dist.SpanningTree(logits)
    assert ours.log_partition_function.item() == pytest.approx(
        theirs.log_partition_function.item(), rel=1e-5
    )
    values = ours.sample((50,))
    assert torch.allclose(ours.log_prob(values), torch.stack([theirs.log_prob(v) for v in values]))
    assert torch.equal(ours.mode, theirs.mode)
    theirs.validate_edges(values[0])  # Pyro accepts our draws as canonical trees
    # Edge frequencies of our exact draws against Pyro's edge marginals.
    draws = ours.sample((4000,))
    counts = torch.zeros(10, 10)
    counts.index_put_(
        (draws[..., 0].flatten(), draws[..., 1].flatten()), torch.ones(4000 * 9), True
    )
    freq = (counts + counts.t()) / 4000
    p = theirs.edge_mean
    assert bool(((freq - p).abs() <= 5 * (p * (1 - p) / 4000).sqrt() + 1e-6).all())


@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_one_one_matching_matches_pyro(size):
    logits = torch.randn(size, size)
    ours, theirs = OneOneMatching(logits), pyro_dist.OneOneMatching(logits)
    values = ours.enumerate_support()
    assert torch.equal(values, theirs.enumerate_support())
    assert torch.allclose(ours.log_prob(values), theirs.log_prob(values), atol=1e-5)
    assert torch.equal(ours.mode(), theirs.mode())
    # Pyro's check reduces over the whole batch; ours keeps one answer per value.
    assert bool(ours.support.check(values).all()) and bool(theirs.support.check(values).all())


@pytest.mark.parametrize("size", [1, 2, 3])
def test_one_two_matching_matches_pyro(size):
    logits = torch.randn(2 * size, size)
    ours, theirs = OneTwoMatching(logits), pyro_dist.OneTwoMatching(logits)
    values = ours.enumerate_support()
    assert torch.equal(values, theirs.enumerate_support())
    assert torch.allclose(ours.log_prob(values), theirs.log_prob(values), atol=1e-5)
    assert torch.equal(ours.mode(), theirs.mode())


@pytest.mark.parametrize("cls, shape", [("OneOneMatching", (4, 4)), ("OneTwoMatching", (6, 3))])
def test_matching_bethe_matches_pyro_for_uniform_logits(cls, shape):
    # Uniform logits: Pyro's bp_iters approximation and ours reach the same Bethe value.
    ours = globals()[cls](torch.zeros(shape), bp_iters=30)
    theirs = getattr(pyro_dist, cls)(torch.zeros(shape), bp_iters=30)
    assert ours.log_partition_function.item() == pytest.approx(
        theirs.log_partition_function.item(), abs=1e-5
    )


def test_matching_sample_frequencies_match_pyro_probs():
    logits = torch.randn(3, 3)
    theirs = pyro_dist.OneOneMatching(logits)
    values = theirs.enumerate_support()
    probs = theirs.log_prob(values).exp()
    draws = OneOneMatching(logits).sample((10000,))
    freq = (draws.unsqueeze(1) == values).all(-1).float().mean(0)
    assert bool(((freq - probs).abs() < 5 * (probs * (1 - probs) / 10000).sqrt()).all())


def test_coalescent_times_match_pyro():
    leaves = torch.tensor([[0.0, 1.0, 1.5, 0.2], [0.3, 0.3, 2.0, -1.0]])
    rate = torch.tensor([[1.0], [2.5]])
    ours = CoalescentTimes(leaves, rate)
    theirs = pyro_dist.CoalescentTimes(leaves, rate)
    values = ours.sample((5,))
    assert values.shape == theirs.sample((5,)).shape == (5, 2, 2, 3)
    assert torch.allclose(ours.log_prob(values), theirs.log_prob(values), atol=1e-5)
    assert bool(theirs.support.check(values).all())
    assert ours.batch_shape == theirs.batch_shape


def test_coalescent_sample_moments_match_pyro_at_unit_rate():
    # Pyro's sampler ignores ``rate`` (its log_prob does not), so compare at rate 1.
    leaves = torch.tensor([0.0, 1.0, 1.5])
    ours = CoalescentTimes(leaves).sample((20000,))
    theirs = pyro_dist.CoalescentTimes(leaves).sample((20000,))
    se = (ours.var(0) / 20000 + theirs.var(0) / 20000).sqrt()
    assert bool(((ours.mean(0) - theirs.mean(0)).abs() < 5 * se).all())


def test_coalescent_with_rate_and_rate_likelihood_match_pyro():
    leaves = torch.tensor([0.0, 1.0, 1.5, 0.2, 3.3])
    rate_grid = torch.tensor([[1.0, 2.0, 0.5, 3.0], [0.2, 0.4, 1.5, 1.0]])
    coal = CoalescentTimes(leaves).sample((3, 1))
    ours = CoalescentTimesWithRate(leaves, rate_grid)
    theirs = pyro_dist.CoalescentTimesWithRate(leaves, rate_grid)
    assert torch.allclose(ours.log_prob(coal), theirs.log_prob(coal), atol=1e-5)
    assert ours.duration == theirs.duration
    likelihood = CoalescentRateLikelihood(leaves, coal, 4)
    pyro_likelihood = pyro_dist.CoalescentRateLikelihood(leaves, coal, 4)
    assert torch.allclose(likelihood(rate_grid), pyro_likelihood(rate_grid), atol=1e-5)
    assert torch.allclose(likelihood(rate_grid[..., 2], 2), pyro_likelihood(rate_grid[..., 2], 2))


def test_expanded_distribution_matches_pyro():
    base = Categorical(torch.tensor([[[0.2, 0.3, 0.5]], [[0.6, 0.3, 0.1]]]))
    pyro_base = pyro_dist.Categorical(base.probs)
    ours = ExpandedDistribution(base, [2, 4])
    theirs = pyro_dist.ExpandedDistribution(pyro_base, torch.Size([2, 4]))
    assert tuple(ours.batch_shape) == tuple(theirs.batch_shape)
    for expand in (True, False):
        assert torch.equal(ours.enumerate_support(expand), theirs.enumerate_support(expand))
    value = torch.tensor([0, 2, 1, 1])
    assert torch.allclose(ours.log_prob(value), theirs.log_prob(value))
    assert ours.sample((3,)).shape == theirs.sample((3,)).shape
    assert ours.has_enumerate_support == theirs.has_enumerate_support
    assert ours.expand([5, 2, 4]).batch_shape == (5, 2, 4)
    rate = torch.tensor([[1.0], [3.0]])
    ours = ExpandedDistribution(Poisson(rate), [3, 2, 4])
    theirs = pyro_dist.ExpandedDistribution(pyro_dist.Poisson(rate), torch.Size([3, 2, 4]))
    assert torch.allclose(ours.mean, theirs.mean) and torch.allclose(ours.variance, theirs.variance)
    assert ours.support == theirs.support
    draws = ours.sample((20000,))
    mean = theirs.mean
    sd = theirs.variance.sqrt()
    assert bool(((draws.mean(0) - mean).abs() < 5 * sd / math.sqrt(20000)).all())
