"""``pyrolite.distributions.testing``: the rejection and naive samplers draw from their
target, and their score terms make gradient estimates unbiased; densities as Pyro's."""

import pytest
import torch

from pyrolite.distributions.testing import fakes
from pyrolite.distributions.testing.naive_dirichlet import NaiveBeta, NaiveDirichlet
from pyrolite.distributions.testing.rejection_exponential import RejectionExponential
from pyrolite.distributions.testing.rejection_gamma import (
    RejectionGamma,
    RejectionStandardGamma,
    ShapeAugmentedBeta,
    ShapeAugmentedDirichlet,
    ShapeAugmentedGamma,
)

N = 20000


def _within(samples, mean, var, k=5.0):
    se = (var / samples.shape[0]) ** 0.5
    return (samples.mean(0) - mean).abs() <= k * se


@pytest.mark.parametrize(
    "make, mean, var",
    [
        (lambda: RejectionGamma(torch.tensor(2.0), torch.tensor(3.0)), 2 / 3, 2 / 9),
        (lambda: ShapeAugmentedGamma(torch.tensor(0.5), torch.tensor(2.0)), 0.25, 0.125),
        (lambda: RejectionExponential(torch.tensor(2.0), torch.tensor(0.5)), 0.5, 0.25),
        (lambda: NaiveBeta(torch.tensor(2.0), torch.tensor(3.0)), 0.4, 0.04),
        (lambda: ShapeAugmentedBeta(torch.tensor(2.0), torch.tensor(3.0)), 0.4, 0.04),
    ],
)
def test_samplers_draw_their_target(make, mean, var):
    x = make().rsample((N,))
    assert bool(_within(x, mean, var))


def test_dirichlet_samplers_draw_their_target():
    alpha = torch.tensor([1.0, 2.0, 3.0])
    mean = alpha / alpha.sum()
    var = mean * (1 - mean) / (alpha.sum() + 1)
    for d in (NaiveDirichlet(alpha), ShapeAugmentedDirichlet(alpha)):
        assert bool(_within(d.rsample((N,)), mean, var).all())


@pytest.mark.parametrize("boosted", [False, True])
def test_score_term_makes_the_mean_gradient_unbiased(boosted):
    # d/d alpha E[x] = 1 / rate for Gamma(alpha, rate): the pathwise gradient through an
    # accepted proposal plus the acceptance's score function, averaged.
    alpha = torch.tensor(2.5 if not boosted else 0.7, requires_grad=True)
    rate = torch.tensor(2.0)
    d = (ShapeAugmentedGamma if boosted else RejectionGamma)(alpha.expand(N), rate)
    x = d.rsample()
    score = d.score_parts(x).score_function
    surrogate = x + x.detach() * (score - score.detach())
    (grads,) = torch.autograd.grad(surrogate.sum(), [alpha])
    per_sample = grads / N
    # The per-sample variance is O(1); 5 SE with a generous bound on it.
    assert abs(float(per_sample) - 1 / 2.0) < 5 * (2.0 / N) ** 0.5


def test_shape_augmented_score_parts_needs_its_own_draw():
    d = ShapeAugmentedGamma(torch.tensor(0.5), torch.tensor(1.0))
    d.rsample()
    with pytest.raises(ValueError, match="latest rsample"):
        d.score_parts(torch.tensor(0.3))


def test_expand_keeps_the_family():
    for d in (
        RejectionStandardGamma(torch.tensor(2.0)),
        RejectionGamma(torch.tensor(2.0), torch.tensor(1.0)),
        ShapeAugmentedGamma(torch.tensor(0.5), torch.tensor(1.0)),
        RejectionExponential(torch.tensor(1.0), torch.tensor(0.5)),
        NaiveBeta(torch.tensor(2.0), torch.tensor(1.0)),
    ):
        e = d.expand([3])
        assert type(e) is type(d) and e.batch_shape == (3,) and e.rsample().shape == (3,)


def test_rejection_exponential_needs_factor_at_most_one():
    with pytest.raises(ValueError, match="factor"):
        RejectionExponential(torch.tensor(1.0), torch.tensor(1.5))


def test_fakes_are_not_reparameterized():
    for cls in (fakes.NonreparameterizedNormal, fakes.NonreparameterizedGamma):
        assert cls(torch.tensor(1.0), torch.tensor(1.0)).has_rsample is False


def test_log_probs_and_score_functions_match_pyro():
    pytest.importorskip("pyro")
    import pyro.distributions.testing.rejection_exponential as pe
    import pyro.distributions.testing.rejection_gamma as pg

    x = torch.tensor([0.5, 1.0, 2.5])
    alpha, rate = torch.tensor([2.0, 3.0, 1.5]), torch.tensor([1.0, 3.0, 0.5])
    pairs = [
        (RejectionStandardGamma(alpha), pg.RejectionStandardGamma(alpha)),
        (RejectionGamma(alpha, rate), pg.RejectionGamma(alpha, rate)),
        (
            RejectionExponential(rate, torch.full((3,), 0.5)),
            pe.RejectionExponential(rate, torch.full((3,), 0.5)),
        ),
    ]
    for ours, theirs in pairs:
        assert torch.allclose(ours.log_prob(x), theirs.log_prob(x), atol=1e-5)
        s_ours, s_theirs = ours.score_parts(x), theirs.score_parts(x)
        assert torch.allclose(s_ours.score_function, s_theirs.score_function, atol=1e-5)
        assert torch.allclose(s_ours.entropy_term, s_theirs.entropy_term, atol=1e-5)
    ours, theirs = RejectionStandardGamma(alpha), pg.RejectionStandardGamma(alpha)
    assert torch.allclose(ours.propose_log_prob(x), theirs.propose_log_prob(x), atol=1e-5)
    assert torch.allclose(ours.log_prob_accept(x), theirs.log_prob_accept(x), atol=1e-5)
