"""AutoGaussian (dense) on a conjugate Gaussian model: its factor-graph Gaussian holds the
exact posterior, so SVI recovers the exact posterior moments."""

import pytest
import torch

import pyrolite as pyro
import pyrolite.distributions as dist
from pyrolite.infer import SVI, Trace_ELBO
from pyrolite.infer.autoguide.gaussian import AutoGaussian, AutoGaussianDense
from pyrolite.optim import ClippedAdam

Y = torch.tensor([1.2, 0.4, 1.9, 1.0])


def model(y):
    a = pyro.sample("a", dist.Normal(0.0, 1.0))
    b = pyro.sample("b", dist.Normal(a, 1.0))
    with pyro.plate("data", len(y)):
        pyro.sample("y", dist.Normal(a + b, 1.0), obs=y)


def exact_posterior():
    prior_precision = torch.linalg.inv(torch.tensor([[1.0, 1.0], [1.0, 2.0]]))
    h = torch.ones(2)
    cov = torch.linalg.inv(prior_precision + len(Y) * torch.outer(h, h))
    return cov @ h * Y.sum(), cov


def test_dense_gaussian_recovers_the_exact_correlated_posterior():
    pyro.set_rng_seed(0)
    guide = AutoGaussian(model)
    assert isinstance(guide, AutoGaussianDense)
    steps = 500
    optim = ClippedAdam({"lr": 0.1, "lrd": 0.01 ** (1 / steps)})
    svi = SVI(model, guide, optim, Trace_ELBO(num_particles=8, vectorize_particles=True))
    for _ in range(steps):
        svi.step(Y)
    store = pyro.get_param_store()
    # z = loc + scale * x with x ~ the factor graph's Gaussian.
    loc = torch.stack([store["AutoGaussianDense.locs.a"], store["AutoGaussianDense.locs.b"]])
    scale = torch.stack([store["AutoGaussianDense.scales.a"], store["AutoGaussianDense.scales.b"]])
    with torch.no_grad():
        whitened = guide.get_posterior()
        mean_q = loc + scale * whitened.mean
        cov_q = scale[:, None] * whitened.covariance_matrix * scale[None, :]
    mean, cov = exact_posterior()
    # Posterior sds are ~0.7 and ~0.4; the decayed-lr SVI optimum lands within ~0.02 of
    # the exact moments, so 0.05 on means and on covariances.
    assert torch.allclose(mean_q, mean, atol=0.05)
    assert torch.allclose(cov_q, cov, atol=0.05)
    median = guide.median(Y)
    assert torch.allclose(torch.stack([median["a"], median["b"]]), mean, atol=0.05)


def test_factor_shapes_follow_the_models_plates_and_dependencies():
    def plated(y):
        a = pyro.sample("a", dist.Normal(0.0, 1.0))
        with pyro.plate("p", 3):
            b = pyro.sample("b", dist.Normal(a, 1.0))
        pyro.sample("e", dist.Normal(torch.zeros(2) + b.sum(), 1.0).to_event(1))

    AutoGaussian(plated)(Y)
    shapes = {k: tuple(v.shape) for k, v in pyro.get_param_store().items()}
    assert shapes["AutoGaussianDense.prec_sqrts.a"] == (1, 1)
    assert shapes["AutoGaussianDense.prec_sqrts.b"] == (3, 2, 1)  # (b_i, a) per plate element
    assert shapes["AutoGaussianDense.prec_sqrts.e"] == (5, 2)  # (e, b_0, b_1, b_2)
    assert shapes["AutoGaussianDense.white_vecs.b"] == (3, 1)


def test_funsor_backend_names_the_dense_one():
    with pytest.raises(NotImplementedError, match='backend="dense"'):
        AutoGaussian(model, backend="funsor")
