"""Trace_ELBO against closed forms: loss values, pathwise and score-function gradients,
Rao-Blackwellization by plates, and vectorized vs sequential particles."""

import math

import pytest
import torch

import pyrolite as pyro
import pyrolite.distributions as dist
from pyrolite.distributions import constraints
from pyrolite.distributions.testing.fakes import NonreparameterizedBeta, NonreparameterizedNormal
from pyrolite.infer import Trace_ELBO

# Normal-Normal: z ~ N(0, 1), x_i ~ N(z, 1), guide z ~ N(m, s).
X = torch.tensor([0.3, 1.2, -0.4, 2.0, 0.9])


def nn_model(x):
    z = pyro.sample("z", dist.Normal(0.0, 1.0))
    with pyro.plate("data", len(x)):
        pyro.sample("x", dist.Normal(z, 1.0), obs=x)


def make_nn_guide(normal_cls):
    def guide(x):
        m = pyro.param("m", torch.tensor(0.4))
        s = pyro.param("s", torch.tensor(0.7), constraint=constraints.positive)
        pyro.sample("z", normal_cls(m, s))

    return guide


def analytic_nn_elbo(m, s, x):
    """E_q[log p(z) + sum log p(x_i|z) - log q(z)] in closed form."""
    n = len(x)
    log_2pi = math.log(2 * math.pi)
    e_log_prior = -0.5 * log_2pi - 0.5 * (m**2 + s**2)
    e_log_lik = -0.5 * n * log_2pi - 0.5 * (((x - m) ** 2).sum() + n * s**2)
    entropy = 0.5 * log_2pi + 0.5 + torch.log(s)
    return e_log_prior + e_log_lik + entropy


def analytic_grads(elbo_fn, *params):
    params = [torch.tensor(float(p), requires_grad=True) for p in params]
    (-elbo_fn(*params)).backward()
    return [p.grad.item() for p in params]


def estimate_grads(elbo, model, guide, *args, repeats=20):
    """Mean and standard error of the estimator's gradient over independent repeats."""
    grads = []
    for _ in range(repeats):
        elbo.loss_and_grads(model, guide, *args)
        leaves = [pyro.get_param_store().unconstrained(n) for n in ("m", "s")]
        grads.append(torch.stack([leaf.grad.clone() for leaf in leaves]))
        for leaf in leaves:
            leaf.grad = None
    grads = torch.stack(grads)
    return grads.mean(0), grads.std(0) / math.sqrt(repeats)


def to_unconstrained_grads(dm, ds, s):
    # s = exp(u): d/du = s * d/ds.
    return torch.tensor([dm, ds * s])


def test_loss_matches_analytic_elbo():
    guide = make_nn_guide(dist.Normal)
    elbo = Trace_ELBO(num_particles=20000, vectorize_particles=True)
    loss = elbo.loss(nn_model, guide, X)
    expected = -analytic_nn_elbo(torch.tensor(0.4), torch.tensor(0.7), X).item()
    # Per-particle -ELBO has sd ~ 4 here; 20000 particles -> standard error ~0.03.
    assert loss == pytest.approx(expected, abs=0.15)


@pytest.mark.parametrize("normal_cls", [dist.Normal, NonreparameterizedNormal])
def test_gradient_matches_analytic(normal_cls):
    guide = make_nn_guide(normal_cls)
    elbo = Trace_ELBO(num_particles=2000, vectorize_particles=True)
    pyro.param("m", torch.tensor(0.4))
    pyro.param("s", torch.tensor(0.7), constraint=constraints.positive)
    mean, stderr = estimate_grads(elbo, nn_model, guide, X)
    dm, ds = analytic_grads(lambda m, s: analytic_nn_elbo(m, s, X), 0.4, 0.7)
    expected = to_unconstrained_grads(dm, ds, 0.7)
    # Five standard errors (measured from the repeats) plus float slack.
    assert torch.all((mean - expected).abs() <= 5 * stderr + 1e-4), (mean, expected, stderr)


def beta_bernoulli_elbo(a, b, a0=10.0, b0=10.0, heads=6, tails=4):
    """Closed-form ELBO of the seed-004 coin with a Beta(a, b) guide."""
    e_log_f = torch.digamma(a) - torch.digamma(a + b)
    e_log_1mf = torch.digamma(b) - torch.digamma(a + b)

    def log_beta(p, q):
        return torch.lgamma(p) + torch.lgamma(q) - torch.lgamma(p + q)

    a0, b0 = torch.tensor(a0), torch.tensor(b0)
    return (
        (a0 + heads - a) * e_log_f
        + (b0 + tails - b) * e_log_1mf
        - log_beta(a0, b0)
        + log_beta(a, b)
    )


COIN_DATA = torch.cat([torch.ones(6), torch.zeros(4)])


def coin_model(data):
    f = pyro.sample("f", dist.Beta(10.0, 10.0))
    with pyro.plate("data", len(data)):
        pyro.sample("obs", dist.Bernoulli(f), obs=data)


def make_coin_guide(beta_cls):
    def guide(data):
        a = pyro.param("m", torch.tensor(15.0), constraint=constraints.positive)
        b = pyro.param("s", torch.tensor(12.0), constraint=constraints.positive)
        pyro.sample("f", beta_cls(a, b))

    return guide


@pytest.mark.parametrize("beta_cls", [dist.Beta, NonreparameterizedBeta])
def test_beta_bernoulli_gradient_matches_analytic(beta_cls):
    guide = make_coin_guide(beta_cls)
    elbo = Trace_ELBO(num_particles=2000, vectorize_particles=True)
    mean, stderr = estimate_grads(elbo, coin_model, guide, COIN_DATA)
    da, db = analytic_grads(beta_bernoulli_elbo, 15.0, 12.0)
    expected = torch.tensor([da * 15.0, db * 12.0])  # both params are exp-constrained
    assert torch.all((mean - expected).abs() <= 5 * stderr + 1e-4), (mean, expected, stderr)


def test_score_function_is_rao_blackwellized_by_plate():
    """A local non-reparameterized latent only sees the costs of its own plate element."""
    x = torch.tensor([1.0, -2.0])

    def model():
        with pyro.plate("items", 2):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(z, 1.0), obs=x)

    def guide():
        m = pyro.param("m", torch.tensor([0.5, -0.5]))
        with pyro.plate("items", 2):
            pyro.sample("z", NonreparameterizedNormal(m, 1.0))

    pyro.set_rng_seed(3)
    Trace_ELBO().loss_and_grads(model, guide)
    grad = pyro.get_param_store().unconstrained("m").grad.clone()

    pyro.set_rng_seed(3)  # the same draw, by hand
    m = torch.tensor([0.5, -0.5])
    z = torch.distributions.Normal(m, 1.0).sample()
    cost = (
        torch.distributions.Normal(0.0, 1.0).log_prob(z)
        + torch.distributions.Normal(z, 1.0).log_prob(x)
        - torch.distributions.Normal(m, 1.0).log_prob(z)
    )
    # d/dm_i log q(z_i) = z_i - m_i; element i's cost only (not the sum over items).
    expected = -(cost * (z - m))
    assert torch.allclose(grad, expected, atol=1e-6)


def test_auxiliary_nonreparam_guide_site_gets_its_entropy_gradient():
    """An auxiliary score-function site's cost includes its own -log q (seed 001's mixture).

    model z ~ N(0, 1); guide u ~ N(m, s) (non-reparameterized, auxiliary), z = Delta(u).
    ELBO(m, s) = -(m^2 + s^2)/2 + log s + const, so d(-ELBO)/ds = s - 1/s = -1.5 at s = 0.5;
    a cost without -log q(u) would give +0.5.
    """

    def model():
        pyro.sample("z", dist.Normal(0.0, 1.0))

    def guide():
        m = pyro.param("m", torch.tensor(0.3))
        s = pyro.param("s", torch.tensor(0.5), constraint=constraints.positive)
        u = pyro.sample("u", NonreparameterizedNormal(m, s), infer={"is_auxiliary": True})
        pyro.sample("z", dist.Delta(u))

    elbo = Trace_ELBO(num_particles=4000, vectorize_particles=True, max_plate_nesting=0)
    mean, stderr = estimate_grads(elbo, model, guide)
    expected = to_unconstrained_grads(0.3, 0.5 - 1 / 0.5, 0.5)
    assert torch.all((mean - expected).abs() <= 5 * stderr + 1e-4), (mean, expected, stderr)


class FixedNoiseNormal(dist.Normal):
    """Normal whose rsample takes its standard-normal noise from a shared queue."""

    noise: list = []

    def rsample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        eps = torch.stack([FixedNoiseNormal.noise.pop(0) for _ in range(shape.numel())])
        return self.loc + self.scale * eps.reshape(shape)


def test_vectorized_and_sequential_particles_give_the_same_loss():
    noise = torch.randn(10)
    guide = make_nn_guide(FixedNoiseNormal)
    FixedNoiseNormal.noise = list(noise)
    sequential = Trace_ELBO(num_particles=10).loss(nn_model, guide, X)
    FixedNoiseNormal.noise = list(noise)
    vectorized = Trace_ELBO(num_particles=10, vectorize_particles=True, max_plate_nesting=1).loss(
        nn_model, guide, X
    )
    assert sequential == pytest.approx(vectorized, rel=1e-6)


def test_loss_loss_and_grads_and_differentiable_loss_agree():
    guide = make_coin_guide(NonreparameterizedBeta)
    values = []
    for method in ("loss", "loss_and_grads", "differentiable_loss"):
        pyro.set_rng_seed(7)
        value = getattr(Trace_ELBO(), method)(coin_model, guide, COIN_DATA)
        values.append(float(torch.as_tensor(value).detach()))
    assert values[0] == pytest.approx(values[1], rel=1e-6)
    assert values[0] == pytest.approx(values[2], rel=1e-6)


def test_subsampled_plate_scales_the_likelihood():
    """With subsample_size=b of N, the data term is multiplied by N/b exactly."""
    x = torch.arange(6.0)

    def model():
        with pyro.plate("data", 6, subsample=torch.tensor([1, 4])) as idx:
            pyro.sample("x", dist.Normal(0.0, 1.0), obs=x[idx])

    def guide():
        pass

    loss = Trace_ELBO().loss(model, guide)
    expected = -3.0 * torch.distributions.Normal(0.0, 1.0).log_prob(x[[1, 4]]).sum().item()
    assert loss == pytest.approx(expected, rel=1e-6)


def test_elbo_module_trains_with_plain_torch_optim():
    guide = make_nn_guide(dist.Normal)
    loss_fn = Trace_ELBO(num_particles=16, vectorize_particles=True)(nn_model, guide)
    loss_fn(X)  # first call creates the params
    params = list(loss_fn.parameters())
    assert len(params) == 2
    optimizer = torch.optim.Adam(params, lr=0.05)
    for _ in range(400):
        optimizer.zero_grad()
        loss_fn(X).backward()
        optimizer.step()
    # Exact posterior: N(sum(x) / (n + 1), 1 / (n + 1)).
    assert pyro.param("m").item() == pytest.approx(X.sum().item() / 6, abs=0.05)
    assert pyro.param("s").item() == pytest.approx(1 / math.sqrt(6), rel=0.1)


def test_plate_without_a_size_takes_its_sites_size():
    """Seed 004 writes ``with pyro.plate("data_plate"):`` around 10 observations."""
    data = torch.cat([torch.ones(6), torch.zeros(4)])

    def model():
        f = pyro.sample("f", dist.Beta(10.0, 10.0))
        with pyro.plate("data_plate"):
            pyro.sample("obs", dist.Bernoulli(f), obs=data)

    def guide():
        pyro.sample("f", dist.Delta(torch.tensor(0.6)))

    loss = Trace_ELBO().loss(model, guide)
    expected = -(
        torch.distributions.Beta(10.0, 10.0).log_prob(torch.tensor(0.6))
        + torch.distributions.Bernoulli(0.6).log_prob(data).sum()
    )
    assert loss == pytest.approx(expected.item(), rel=1e-5)


def test_unclaimed_batch_dim_is_summed_with_one_warning():
    """Seed 003 samples a [P]-shaped latent outside any plate: summed, warned once."""

    def model(y):
        beta = pyro.sample("beta", dist.Normal(torch.zeros(3), 10.0))
        with pyro.plate("data", len(y)):
            pyro.sample("y", dist.Normal(beta.sum(), 1.0), obs=y)

    def guide(y):
        loc = pyro.param("loc", torch.zeros(3))
        pyro.sample("beta", dist.Normal(loc, 1.0))

    y = torch.ones(4)
    elbo = Trace_ELBO()
    with pytest.warns(UserWarning, match=r"'beta'.*to_event\(1\)"):
        elbo.loss(model, guide, y)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        elbo.loss(model, guide, y)
