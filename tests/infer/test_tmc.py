"""TraceTMC_ELBO: exact when every site is enumerated, unbiased for p(x) when sampled,
and the same estimate and gradients as Pyro's on the same draws."""

import math

import pytest
import torch

import pyrolite
import pyrolite.distributions as dist
from pyrolite.infer.enum import enum_layout, factor_tensors, positional
from pyrolite.infer.tracetmc_elbo import TraceTMC_ELBO, _joint_trace
from pyrolite.ops.contract import Contraction

X = torch.tensor([0.3, 2.1, 1.4])
PRIOR = torch.tensor([0.5, 0.3, 0.2])
TRANS = torch.tensor([[0.7, 0.2, 0.1], [0.2, 0.6, 0.2], [0.1, 0.3, 0.6]])
LOCS = torch.tensor([-1.0, 1.0, 2.5])


def chain_model():
    """z1 -> z2 -> x_i (in a plate), all discrete latents enumerated in the model."""
    z1 = pyrolite.sample("z1", dist.Categorical(PRIOR), infer={"enumerate": "parallel"})
    z2 = pyrolite.sample("z2", dist.Categorical(TRANS[z1]), infer={"enumerate": "parallel"})
    with pyrolite.plate("data", 3):
        pyrolite.sample("x", dist.Normal(LOCS[z2], 1.0), obs=X)


def chain_log_evidence():
    total = []
    for a in range(3):
        for b in range(3):
            lp = PRIOR[a].log() + TRANS[a, b].log()
            lp = lp + dist.Normal(LOCS[b], 1.0).log_prob(X).sum()
            total.append(lp)
    return torch.logsumexp(torch.stack(total), 0)


def test_all_enumerated_is_exact_log_evidence():
    loss = TraceTMC_ELBO(max_plate_nesting=1).loss(chain_model, lambda: None)
    assert loss == pytest.approx(-float(chain_log_evidence()), abs=1e-5)


def test_local_discrete_in_plate_is_exact():
    def model():
        with pyrolite.plate("data", 3):
            z = pyrolite.sample("z", dist.Categorical(PRIOR), infer={"enumerate": "parallel"})
            pyrolite.sample("x", dist.Normal(LOCS[z], 1.0), obs=X)

    exact = torch.logsumexp(
        PRIOR.log()[:, None] + dist.Normal(LOCS[:, None], 1.0).log_prob(X), 0
    ).sum()
    loss = TraceTMC_ELBO(max_plate_nesting=1).loss(model, lambda: None)
    assert loss == pytest.approx(-float(exact), abs=1e-5)


def bern_model():
    z = pyrolite.sample("z", dist.Bernoulli(0.3))
    pyrolite.sample("x", dist.Normal(2.0 * z, 1.0), obs=torch.tensor(1.5))


def bern_log_evidence():
    terms = torch.tensor([0.7, 0.3]).log()
    terms = terms + dist.Normal(torch.tensor([0.0, 2.0]), 1.0).log_prob(torch.tensor(1.5))
    return torch.logsumexp(terms, 0)


def test_guide_enumerated_over_support_is_exact():
    def guide():
        p = pyrolite.param("p", torch.tensor(0.6))
        pyrolite.sample("z", dist.Bernoulli(p), infer={"enumerate": "parallel"})

    loss = TraceTMC_ELBO(max_plate_nesting=0).loss(bern_model, guide)
    assert loss == pytest.approx(-float(bern_log_evidence()), abs=1e-6)


def mixed_model():
    """A continuous z (proposed by the guide, k draws), a discrete c summed out in the
    model, and a model-only continuous u drawn from its prior (k draws)."""
    z = pyrolite.sample("z", dist.Normal(0.0, 1.0))
    c = pyrolite.sample("c", dist.Bernoulli(0.4), infer={"enumerate": "parallel"})
    u = pyrolite.sample(
        "u", dist.Normal(0.0, 0.5), infer={"enumerate": "parallel", "num_samples": 3}
    )
    pyrolite.sample("x", dist.Normal(z + 1.5 * c + u, 1.0), obs=torch.tensor(1.2))


def mixed_guide():
    loc = pyrolite.param("loc", torch.tensor(0.4))
    pyrolite.sample("z", dist.Normal(loc, 1.2), infer={"enumerate": "parallel", "num_samples": 4})


def test_sampled_estimate_is_unbiased_for_evidence():
    # x = z + 1.5 c + u + noise: given c, x ~ Normal(1.5 c, sqrt(1 + 0.25 + 1)).
    x = torch.tensor(1.2)
    sd = math.sqrt(2.25)
    evidence = 0.6 * dist.Normal(0.0, sd).log_prob(x).exp()
    evidence = evidence + 0.4 * dist.Normal(1.5, sd).log_prob(x).exp()
    elbo = TraceTMC_ELBO(num_particles=4000, vectorize_particles=True, max_plate_nesting=0)
    log_z = _per_particle_estimates(elbo, mixed_model, mixed_guide)
    z_hat = log_z.exp()
    se = float(z_hat.std()) / math.sqrt(z_hat.numel())
    assert abs(float(z_hat.mean()) - float(evidence)) < 5 * se
    assert se < 0.05 * float(evidence)  # the check has power


def _per_particle_estimates(elbo, model, guide):
    """Each vectorized particle's estimate of log p(x): the contraction's output at the
    particle plate, one per element (the estimator sums them)."""
    with torch.no_grad():
        ((model_trace, guide_trace),) = list(elbo.get_traces(model, guide, (), {}))
        model_trace.compute_log_prob()
        guide_trace.compute_log_prob()
        joint = _joint_trace(model_trace, guide_trace)
        layout = enum_layout(joint, None, elbo.plate_window)
        outputs = Contraction(layout.plan)(factor_tensors(layout, joint))
        return sum(
            positional(o, view).reshape(-1) for o, (view, _, _) in zip(outputs, layout.outputs)
        )


def test_vectorized_particles_average_the_estimates():
    pyrolite.set_rng_seed(1)
    elbo = TraceTMC_ELBO(num_particles=50, vectorize_particles=True, max_plate_nesting=0)
    loss = elbo.loss(mixed_model, mixed_guide)
    pyrolite.set_rng_seed(1)
    per = _per_particle_estimates(elbo, mixed_model, mixed_guide)
    assert per.shape == (50,)
    assert loss == pytest.approx(-float(per.mean()), abs=1e-5)


def test_exact_gradient_of_model_param_is_the_evidence_gradient():
    def model():
        p = pyrolite.param("p", torch.tensor(0.3))
        z = pyrolite.sample("z", dist.Bernoulli(p), infer={"enumerate": "parallel"})
        pyrolite.sample("x", dist.Normal(2.0 * z, 1.0), obs=torch.tensor(1.5))

    loss = TraceTMC_ELBO(max_plate_nesting=0).differentiable_loss(model, lambda: None)
    p = pyrolite.get_param_store().unconstrained("p")
    (grad,) = torch.autograd.grad(loss, [p])
    lik = dist.Normal(torch.tensor([0.0, 2.0]), 1.0).log_prob(torch.tensor(1.5)).exp()
    evidence = (1 - p.detach()) * lik[0] + p.detach() * lik[1]
    # d(-log p(x))/dp = -(lik1 - lik0) / p(x)
    assert float(grad) == pytest.approx(float(-(lik[1] - lik[0]) / evidence), rel=1e-5)


def test_no_enumerated_site_warns():
    def guide():
        pyrolite.sample("z", dist.Bernoulli(0.5))

    with pytest.warns(UserWarning, match="TraceTMC_ELBO found no sample sites"):
        TraceTMC_ELBO(max_plate_nesting=0).loss(bern_model, guide)


def test_sequential_guide_site_is_refused():
    def guide():
        pyrolite.sample("z", dist.Bernoulli(0.5), infer={"enumerate": "sequential"})

    with pytest.raises(NotImplementedError, match="'sequential'"):
        TraceTMC_ELBO(max_plate_nesting=0).loss(bern_model, guide)


# --- Pyro as oracle (skipped without it) ------------------------------------------------


def _normal_pair(lib):
    x = torch.tensor(1.5)

    def model():
        z = lib.sample("z", lib_dist(lib).Normal(0.0, 1.0))
        lib.sample("x", lib_dist(lib).Normal(z, 1.0), obs=x)

    def guide():
        loc = lib.param("loc", torch.tensor(0.3))
        scale = lib.param("scale", torch.tensor(0.8), constraint=dist.constraints.positive)
        lib.sample(
            "z",
            lib_dist(lib).Normal(loc, scale),
            infer={"enumerate": "parallel", "num_samples": 5},
        )

    return model, guide


def lib_dist(lib):
    return dist if lib is pyrolite else __import__("pyro.distributions").distributions


@pytest.mark.parametrize("seed", [0, 3])
def test_reparameterized_gradients_match_pyro_at_the_same_draws(seed):
    pyro = pytest.importorskip("pyro")
    from pyro.infer import TraceTMC_ELBO as PyroTMC

    grads = []
    for lib, elbo in [(pyrolite, TraceTMC_ELBO), (pyro, PyroTMC)]:
        lib.clear_param_store()
        lib.set_rng_seed(seed)
        model, guide = _normal_pair(lib)
        loss = elbo(max_plate_nesting=0).differentiable_loss(model, guide)
        store = lib.get_param_store()
        params = [store.get_param("loc"), store.get_param("scale").unconstrained()]
        if lib is pyrolite:
            params[1] = store.unconstrained("scale")
        grads.append((float(loss), *[float(g) for g in torch.autograd.grad(loss, params)]))
    assert grads[0] == pytest.approx(grads[1], rel=1e-5, abs=1e-6)


def test_exact_enumeration_gradient_matches_pyro():
    pyro = pytest.importorskip("pyro")
    import pyro.distributions as pdist
    from pyro.infer import TraceTMC_ELBO as PyroTMC

    results = []
    for lib, ldist, elbo in [(pyrolite, dist, TraceTMC_ELBO), (pyro, pdist, PyroTMC)]:
        lib.clear_param_store()

        def model(lib=lib, ldist=ldist):
            loc = lib.param("loc", torch.tensor(0.5))
            with lib.plate("data", 3):
                z = lib.sample("z", ldist.Bernoulli(0.3))
                lib.sample("x", ldist.Normal(loc * z, 1.0), obs=X)

        def guide(lib=lib, ldist=ldist):
            p = lib.param("p", torch.tensor(0.6), constraint=dist.constraints.unit_interval)
            with lib.plate("data", 3):
                lib.sample("z", ldist.Bernoulli(p), infer={"enumerate": "parallel"})

        loss = elbo(max_plate_nesting=1).differentiable_loss(model, guide)
        (grad,) = torch.autograd.grad(loss, [lib.param("loc")])
        results.append((float(loss), float(grad)))
    assert results[0] == pytest.approx(results[1], rel=1e-5)


@pytest.mark.parametrize("num_particles", [1, 3])
def test_plated_hierarchy_matches_pyro_expand_strategy(num_particles):
    # pyrolite draws k values of a site per joint value of its sampled parents, which is
    # Pyro's infer={"expand": True} strategy: the same draws at the same seed.
    pyro = pytest.importorskip("pyro")
    import pyro.distributions as pdist
    from pyro.infer import TraceTMC_ELBO as PyroTMC

    results = []
    for lib, ldist, elbo in [(pyrolite, dist, TraceTMC_ELBO), (pyro, pdist, PyroTMC)]:

        def model(lib=lib, ldist=ldist):
            mu = lib.sample("mu", ldist.Normal(0.0, 1.0))
            with lib.plate("data", 3):
                z = lib.sample("z", ldist.Normal(mu, 1.0))
                lib.sample("x", ldist.Normal(z, 0.5), obs=X)

        def guide(lib=lib, ldist=ldist):
            loc = lib.param("loc", torch.tensor(0.3))
            infer = {"enumerate": "parallel", "expand": True}
            mu = lib.sample("mu", ldist.Normal(loc, 1.0), infer=dict(infer, num_samples=3))
            with lib.plate("data", 3):
                lib.sample("z", ldist.Normal(0.5 * mu, 1.2), infer=dict(infer, num_samples=4))

        lib.clear_param_store()
        lib.set_rng_seed(0)
        estimator = elbo(
            max_plate_nesting=1,
            num_particles=num_particles,
            vectorize_particles=num_particles > 1,
        )
        loss = estimator.differentiable_loss(model, guide)
        store = lib.get_param_store()
        loc = store.unconstrained("loc") if lib is pyrolite else store.get_param("loc")
        (grad,) = torch.autograd.grad(loss, [loc])
        results.append((float(loss), float(grad)))
    assert results[0] == pytest.approx(results[1], rel=1e-5)
