"""RenyiELBO: a bound on the log evidence that tightens with particles; IWAE at alpha = 0."""

import math

import pytest
import torch

import pyrolite as pyro
import pyrolite.distributions as dist
from pyrolite.infer import RenyiELBO, Trace_ELBO

X_OBS = 2.0
M, S = 0.0, 0.8  # a guide off the posterior N(1, 1/2): the bounds differ clearly


def model():
    z = pyro.sample("z", dist.Normal(0.0, 1.0))
    pyro.sample("x", dist.Normal(z, 1.0), obs=torch.tensor(X_OBS))


def guide():
    loc = pyro.param("loc", torch.tensor(M))
    pyro.sample("z", dist.Normal(loc, S))


LOG_EVIDENCE = torch.distributions.Normal(0.0, math.sqrt(2.0)).log_prob(torch.tensor(X_OBS))


def mean_bound(num_particles, alpha=0.0, calls=1000):
    elbo = RenyiELBO(
        alpha=alpha, num_particles=num_particles, vectorize_particles=True, max_plate_nesting=0
    )
    values = torch.tensor([-elbo.loss(model, guide) for _ in range(calls)], dtype=torch.float64)
    return values.mean().item(), values.std().item() / math.sqrt(calls)


@pytest.mark.parametrize("alpha, particles", [(0.0, (2, 8, 64)), (0.5, (2, 64))])
def test_bound_is_below_the_log_evidence_and_tightens_with_particles(alpha, particles):
    # Measured here (1000 calls each): alpha=0: -2.83, -2.40, -2.29 (SE 0.036, 0.018, 0.007)
    # against log Z = -2.27; alpha=0.5: -2.99 and -2.72.
    pyro.set_rng_seed(0)
    bounds = [mean_bound(k, alpha) for k in particles]
    for mean, se in bounds:
        assert mean < LOG_EVIDENCE.item() + 4 * se
    for (lower, se_lower), (higher, se_higher) in zip(bounds, bounds[1:]):
        assert higher - lower > 4 * math.hypot(se_lower, se_higher)
    if alpha == 0.0:
        assert LOG_EVIDENCE.item() - bounds[-1][0] < 0.1  # 64 particles: nearly tight


def test_alpha_zero_equals_an_iwae_bound_computed_here_with_its_gradient():
    k = 5
    pyro.clear_param_store()
    pyro.set_rng_seed(3)
    loss = RenyiELBO(
        alpha=0.0, num_particles=k, vectorize_particles=True, max_plate_nesting=0
    ).loss_and_grads(model, guide)
    grad = pyro.param("loc").unconstrained().grad.item()

    # The same draws (pyrolite's Normal draws from torch's stream), by hand.
    pyro.set_rng_seed(3)
    loc = torch.tensor(M, requires_grad=True)
    normal = torch.distributions.Normal
    z = normal(loc, S).rsample((k,))
    log_w = normal(0.0, 1.0).log_prob(z) + normal(z, 1.0).log_prob(torch.tensor(X_OBS))
    log_w = log_w - normal(loc, S).log_prob(z)
    iwae = torch.logsumexp(log_w, 0) - math.log(k)
    (-iwae).backward()
    assert loss == pytest.approx(-iwae.item(), rel=1e-6)
    assert grad == pytest.approx(loc.grad.item(), rel=1e-5)


def test_sequential_and_vectorized_particles_agree_on_the_same_draws():
    pyro.set_rng_seed(4)
    sequential = RenyiELBO(num_particles=4).loss(model, guide)
    pyro.set_rng_seed(4)
    vectorized = RenyiELBO(num_particles=4, vectorize_particles=True, max_plate_nesting=0)
    assert vectorized.loss(model, guide) == pytest.approx(sequential, rel=1e-6)


def test_score_function_gradient_is_unbiased_by_enumeration():
    # A discrete latent (no reparameterization): the mean estimated gradient must equal
    # the gradient of the exact bound E[log mean_k w_k], enumerated over all particle
    # draws. Each of R replicates (a plate every site shares) gets its own bound, so one
    # call averages R independent estimates.
    k, replicates, prior, theta0, obs = 2, 4000, 0.3, -1.0, 3.0

    def plated_model():
        with pyro.plate("rep", replicates):
            z = pyro.sample("z", dist.Bernoulli(prior))
            pyro.sample("x", dist.Normal(2.0 * z, 1.0), obs=torch.tensor(obs))

    def plated_guide():
        theta = pyro.param("theta", torch.tensor(theta0))
        with pyro.plate("rep", replicates):
            pyro.sample("z", dist.Bernoulli(logits=theta))

    def exact_bound(theta):
        q1 = torch.sigmoid(theta)
        bound = 0.0
        for draws in torch.cartesian_prod(*[torch.tensor([0.0, 1.0])] * k):
            q = torch.where(draws == 1, q1, 1 - q1)
            p = torch.where(draws == 1, torch.tensor(prior), torch.tensor(1 - prior))
            lik = torch.distributions.Normal(2.0 * draws, 1.0).log_prob(torch.tensor(obs))
            log_w = p.log() + lik - q.log()
            bound = bound + q.prod() * (torch.logsumexp(log_w, 0) - math.log(k))
        return bound

    theta = torch.tensor(theta0, requires_grad=True)
    exact = torch.autograd.grad(exact_bound(theta), theta)[0].item()

    estimates = []
    pyro.set_rng_seed(5)
    for _ in range(8):
        pyro.clear_param_store()
        elbo = RenyiELBO(num_particles=k, vectorize_particles=True, max_plate_nesting=1)
        elbo.loss_and_grads(plated_model, plated_guide)
        estimates.append(-pyro.param("theta").grad.item() / replicates)
    estimates = torch.tensor(estimates)
    se = estimates.std().item() / math.sqrt(len(estimates))
    assert abs(estimates.mean().item() - exact) < 4 * se + 1e-4
    assert abs(exact) > 10 * se  # the check has power: the gradient is far from zero


def test_alpha_one_is_refused_with_a_pointer_to_trace_elbo():
    with pytest.raises(ValueError, match="Trace_ELBO"):
        RenyiELBO(alpha=1.0)


def test_one_particle_warns_and_equals_trace_elbo():
    with pytest.warns(UserWarning, match="num_particles=1 is Trace_ELBO"):
        elbo = RenyiELBO(num_particles=1)
    pyro.set_rng_seed(6)
    renyi = elbo.loss(model, guide)
    pyro.set_rng_seed(6)
    assert renyi == pytest.approx(Trace_ELBO().loss(model, guide), rel=1e-6)
