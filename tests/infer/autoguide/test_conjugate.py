"""Every autoguide on a conjugate Normal-Normal model recovers the exact posterior."""

import pytest
import torch

import pyrolite as pyro
import pyrolite.distributions as dist
from pyrolite.infer import SVI, Trace_ELBO
from pyrolite.infer.autoguide import (
    AutoDelta,
    AutoDiagonalNormal,
    AutoLaplaceApproximation,
    AutoLowRankMultivariateNormal,
    AutoMultivariateNormal,
    AutoNormal,
)
from pyrolite.optim import ClippedAdam

N, D, PRIOR_SD = 10, 2, 3.0
STEPS = 300


def _data():
    g = torch.Generator().manual_seed(1)
    return torch.randn(N, D, generator=g) + torch.tensor([1.0, -2.0])


def model(x):
    mu = pyro.sample("mu", dist.Normal(torch.zeros(D), PRIOR_SD).to_event(1))
    with pyro.plate("data", N):
        pyro.sample("x", dist.Normal(mu, 1.0).to_event(1), obs=x)


def _posterior(x):
    precision = 1 / PRIOR_SD**2 + N
    return x.sum(0) / precision, precision**-0.5


def _fit(guide, x):
    # lr 0.1 decaying to 0.001: the last iterates barely move, so what is left is the
    # gradient noise of 16 particles averaged by Adam's momentum.
    optim = ClippedAdam({"lr": 0.1, "lrd": 0.01 ** (1 / STEPS)})
    elbo = Trace_ELBO(num_particles=16, vectorize_particles=True, max_plate_nesting=1)
    svi = SVI(model, guide, optim, elbo)
    for _ in range(STEPS):
        svi.step(x)


@pytest.mark.parametrize(
    "guide_class",
    [AutoNormal, AutoDiagonalNormal, AutoMultivariateNormal, AutoLowRankMultivariateNormal],
)
def test_normal_guides_recover_posterior_mean_and_sd(guide_class):
    x = _data()
    mean, sd = _posterior(x)  # sd = 0.3145
    guide = guide_class(model)
    _fit(guide, x)
    q = guide.quantiles([0.158655, 0.5, 0.841345], x)["mu"]
    # Over seeds 0-4 the largest errors were 0.017 (mean, ~0.05 sd) and 3.3% (sd);
    # the tolerances are about three times that.
    assert torch.allclose(q[1], mean, atol=0.06)
    assert torch.allclose((q[2] - q[0]) / 2, torch.full((D,), sd), rtol=0.1)
    # median is the 0.5 quantile; sample_posterior agrees with both.
    assert torch.allclose(guide.median(x)["mu"], q[1], atol=1e-5)
    draws = guide.sample_posterior(x, sample_shape=(4000,))["mu"]
    assert draws.shape == (4000, D)
    # 4000 draws: the sample mean's sd is sd/63 = 0.005, the sample sd's is 1.1% of sd.
    assert torch.allclose(draws.mean(0), q[1], atol=0.025)
    assert torch.allclose(draws.std(0), (q[2] - q[0]) / 2, rtol=0.06)


@pytest.mark.parametrize("guide_class", [AutoDelta, AutoLaplaceApproximation])
def test_point_guides_find_the_posterior_mode(guide_class):
    x = _data()
    mean, _ = _posterior(x)  # a Gaussian posterior's mode is its mean
    guide = guide_class(model)
    _fit(guide, x)
    # A point mass has no sampling noise; only the optimizer's last steps (lr 0.001).
    assert torch.allclose(guide.median(x)["mu"], mean, atol=0.01)
