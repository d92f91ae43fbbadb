"""TraceTailAdaptive_ELBO: the tail-adaptive gradient at fixed draws, its expectation
against Gauss-Hermite quadrature on a conjugate Gaussian model, Pyro's constraints."""

import math

import numpy as np
import pytest
import torch

import pyrolite
import pyrolite.distributions as dist
from pyrolite.infer.trace_tail_adaptive_elbo import TraceTailAdaptive_ELBO, tail_adaptive_weights

X = torch.tensor(1.5)
LOC, SCALE = 0.3, 1.0


def model():
    z = pyrolite.sample("z", dist.Normal(0.0, 1.0))
    pyrolite.sample("x", dist.Normal(z, 1.0), obs=X)


def guide():
    loc = pyrolite.param("loc", torch.tensor(LOC))
    scale = pyrolite.param("scale", torch.tensor(SCALE), constraint=dist.constraints.positive)
    pyrolite.sample("z", dist.Normal(loc, scale))


def _log_w(loc, log_scale, eps):
    z = loc + log_scale.exp() * eps
    log_q = dist.Normal(loc, log_scale.exp()).log_prob(z)
    return dist.Normal(0.0, 1.0).log_prob(z) + dist.Normal(z, 1.0).log_prob(X) - log_q


def _grads(loss):
    store = pyrolite.get_param_store()
    params = [store.unconstrained("loc"), store.unconstrained("scale")]
    return torch.stack(torch.autograd.grad(loss, params))


def test_weights_follow_the_empirical_tail_probability():
    log_w = torch.tensor([0.5, -1.0, 3.0, 0.5])
    # #{j: w_j >= w_k} = 3, 4, 1, 3 (ties count each other)
    expected = torch.tensor([3.0, 4.0, 1.0, 3.0]).div(4).pow(-0.5)
    assert torch.allclose(tail_adaptive_weights(log_w, -0.5), expected / expected.sum())


def test_gradient_at_fixed_draws_is_the_weighted_pathwise_gradient():
    n = 5
    pyrolite.set_rng_seed(3)
    elbo = TraceTailAdaptive_ELBO(num_particles=n, vectorize_particles=True, max_plate_nesting=0)
    loss = elbo.differentiable_loss(model, guide)
    got = _grads(loss)
    pyrolite.set_rng_seed(3)
    eps = torch.randn(n)  # the guide's vectorized rsample: loc + scale * randn(n)
    loc = torch.tensor(LOC, requires_grad=True)
    log_scale = torch.tensor(math.log(SCALE), requires_grad=True)
    log_w = _log_w(loc, log_scale, eps)
    ranks = (log_w.detach()[None, :] >= log_w.detach()[:, None]).sum(1).double()
    gamma = (ranks / n) ** -1.0
    gamma = (gamma / gamma.sum()).float()
    want = torch.stack(torch.autograd.grad(-(gamma * log_w).sum(), [loc, log_scale]))
    assert torch.allclose(got, want, atol=1e-5)
    assert float(loss) == pytest.approx(-float(log_w.mean()), abs=1e-5)  # the ELBO estimate


def quadrature_gradient(n_nodes=120):
    """E[grad] for two particles (γ = 2/3 for the heavier weight, 1/3 for the other) by
    Gauss-Hermite quadrature over (ε1, ε2)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(n_nodes)
    nodes = torch.tensor(nodes, dtype=torch.float64)
    weights = torch.tensor(weights / math.sqrt(2 * math.pi), dtype=torch.float64)
    e1, e2 = torch.meshgrid(nodes, nodes, indexing="ij")
    w = weights[:, None] * weights[None, :]
    loc = torch.tensor(LOC, dtype=torch.float64, requires_grad=True)
    log_scale = torch.tensor(math.log(SCALE), dtype=torch.float64, requires_grad=True)
    lw1, lw2 = _log_w(loc, log_scale, e1), _log_w(loc, log_scale, e2)
    heavier = (lw1 >= lw2).double()
    g1 = heavier * (2 / 3) + (1 - heavier) * (1 / 3)
    surrogate = -(w * (g1 * lw1 + (1 - g1) * lw2)).sum()
    return torch.stack(torch.autograd.grad(surrogate, [loc, log_scale])).float()


def _mean_gradient(draws):
    elbo = TraceTailAdaptive_ELBO(num_particles=2, vectorize_particles=True, max_plate_nesting=0)
    grads = []
    for seed in range(draws):
        pyrolite.clear_param_store()
        pyrolite.set_rng_seed(seed)
        grads.append(_grads(elbo.differentiable_loss(model, guide)))
    grads = torch.stack(grads)
    return grads.mean(0), grads.std(0) / math.sqrt(draws)


def test_expected_gradient_matches_quadrature():
    exact = quadrature_gradient()
    mean, se = _mean_gradient(300)
    assert (mean - exact).abs().le(5 * se + 0.01).all(), (mean, exact, se)
    # and it is not the plain ELBO gradient (γ = 1/2 each), which quadrature also gives
    assert exact.abs().min() > 0.1


def test_pyro_estimator_has_the_same_mean():
    pyro = pytest.importorskip("pyro")
    import pyro.distributions as pdist
    from pyro.infer import TraceTailAdaptive_ELBO as PyroTailAdaptive

    def pyro_model():
        z = pyro.sample("z", pdist.Normal(0.0, 1.0))
        pyro.sample("x", pdist.Normal(z, 1.0), obs=X)

    def pyro_guide():
        loc = pyro.param("loc", torch.tensor(LOC))
        scale = pyro.param("scale", torch.tensor(SCALE), constraint=pdist.constraints.positive)
        pyro.sample("z", pdist.Normal(loc, scale))

    elbo = PyroTailAdaptive(num_particles=2, vectorize_particles=True, max_plate_nesting=0)
    grads = []
    for seed in range(300):
        pyro.clear_param_store()
        pyro.set_rng_seed(seed)
        loss = elbo.differentiable_loss(pyro_model, pyro_guide)
        params = [pyro.param("loc").unconstrained(), pyro.param("scale").unconstrained()]
        grads.append(torch.stack(torch.autograd.grad(loss, params)))
    grads = torch.stack(grads)
    pyro_mean, pyro_se = grads.mean(0), grads.std(0) / math.sqrt(300)
    assert (pyro_mean - quadrature_gradient()).abs().le(5 * pyro_se + 0.01).all()


def test_constraints_as_pyro():
    elbo = TraceTailAdaptive_ELBO(num_particles=3, vectorize_particles=False)
    with pytest.raises(NotImplementedError, match="vectorize_particles==True"):
        elbo.differentiable_loss(model, guide)
    with pytest.warns(UserWarning, match="num_particles==1"):
        TraceTailAdaptive_ELBO(num_particles=1).differentiable_loss(model, guide)
    vectorized = TraceTailAdaptive_ELBO(num_particles=3, vectorize_particles=True)
    with pytest.raises(NotImplementedError, match="not implemented"):
        vectorized.loss(model, guide)

    def discrete_guide():
        pyrolite.sample("z", dist.Bernoulli(0.5))

    with pytest.raises(NotImplementedError, match="fully reparameterized"):
        vectorized.differentiable_loss(model, discrete_guide)
    with pytest.raises(ValueError, match="tail_adaptive_beta"):
        TraceTailAdaptive_ELBO(num_particles=3, vectorize_particles=True, tail_adaptive_beta=0.5)
