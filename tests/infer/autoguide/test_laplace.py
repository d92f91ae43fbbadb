"""AutoLaplaceApproximation: the Hessian at the MAP gives the exact covariance of a
Gaussian posterior."""

import torch

import pyrolite as pyro
import pyrolite.distributions as dist
from pyrolite.infer import SVI, Trace_ELBO
from pyrolite.infer.autoguide import AutoLaplaceApproximation, AutoMultivariateNormal
from pyrolite.optim import Adam

PRIOR_SD, NOISE_SD = 2.0, 0.5
T = torch.linspace(-1.0, 1.0, 7)
DESIGN = torch.stack([torch.ones_like(T), T], -1)  # y = w0 + w1 * t + noise
Y = torch.tensor([0.3, 0.9, 1.1, 1.6, 2.2, 2.4, 3.1])


def model(y):
    w = pyro.sample("w", dist.Normal(torch.zeros(2), PRIOR_SD).to_event(1))
    with pyro.plate("data", len(y)):
        pyro.sample("y", dist.Normal(DESIGN @ w, NOISE_SD), obs=y)


def _analytic_posterior():
    precision = torch.eye(2) / PRIOR_SD**2 + DESIGN.T @ DESIGN / NOISE_SD**2
    cov = torch.linalg.inv(precision)
    return cov @ DESIGN.T @ Y / NOISE_SD**2, cov


def test_laplace_covariance_is_exact_for_a_gaussian_model():
    mean, cov = _analytic_posterior()
    guide = AutoLaplaceApproximation(model)
    svi = SVI(model, guide, Adam({"lr": 0.1}), Trace_ELBO())
    for _ in range(300):
        svi.step(Y)
    # The MAP is found by a deterministic optimizer (a point mass has no sampling noise).
    assert torch.allclose(guide.median(Y)["w"], mean, atol=2e-3)

    laplace = guide.laplace_approximation(Y)
    assert isinstance(laplace, AutoMultivariateNormal)
    L = laplace.get_posterior().scale_tril.detach()
    # The negative log-joint is quadratic: its Hessian is the posterior precision
    # anywhere, so only float32 rounding separates the two.
    assert torch.allclose(L @ L.T, cov, rtol=1e-3, atol=0)
    assert torch.allclose(laplace.median(Y)["w"], guide.median(Y)["w"])
    posterior = laplace.get_posterior()
    assert torch.allclose(posterior.covariance_matrix.detach(), cov, rtol=1e-3)


def test_laplace_of_a_constrained_site_uses_the_unconstrained_hessian():
    # log s ~ Normal(0.3, 0.4) written as s ~ LogNormal: in the unconstrained space
    # u = log s the log-joint (with the Jacobian) is Normal(0.3, 0.4) exactly.
    def lognormal_model():
        pyro.sample("s", dist.LogNormal(0.3, 0.4))

    guide = AutoLaplaceApproximation(lognormal_model, init_loc_fn=lambda site: torch.tensor(2.0))
    guide()
    laplace = guide.laplace_approximation()
    assert torch.allclose(laplace.get_posterior().scale_tril, torch.tensor([[0.4]]), rtol=1e-4)
