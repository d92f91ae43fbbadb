"""ReweightedWakeSleep: the phi-loss gradient against the analytic KL(p(z|x) || q)
gradient, a fitted guide's moments against the conjugate posterior, and Pyro's losses
and gradients at the same draws."""

import math

import pytest
import torch

import pyrolite
import pyrolite.distributions as dist
from pyrolite.infer import SVI
from pyrolite.infer.rws import ReweightedWakeSleep
from pyrolite.optim import Adam

X = torch.tensor(1.5)
POST_LOC, POST_SCALE = 0.75, math.sqrt(0.5)  # z ~ N(0, 1), x | z ~ N(z, 1)


def model(observations=None):
    observations = {"x": X} if observations is None else observations
    z = pyrolite.sample("z", dist.Normal(0.0, 1.0))
    pyrolite.sample("x", dist.Normal(z, 1.0), obs=observations["x"])


def guide(observations=None):
    loc = pyrolite.param("loc", torch.tensor(0.0))
    scale = pyrolite.param("scale", torch.tensor(1.0), constraint=dist.constraints.positive)
    pyrolite.sample("z", dist.Normal(loc, scale))


def _guide_grads():
    store = pyrolite.get_param_store()
    return torch.stack([store.unconstrained("loc").grad, store.unconstrained("scale").grad])


def test_wake_phi_gradient_is_the_inclusive_kl_gradient():
    # d/dphi E_post[-log q]: loc: -(mu - loc)/s^2; log s: 1 - (sigma^2 + (mu - loc)^2)/s^2.
    analytic = torch.tensor([-POST_LOC, 1 - (POST_SCALE**2 + POST_LOC**2)])
    ReweightedWakeSleep(num_particles=20000, max_plate_nesting=0).loss_and_grads(model, guide)
    assert torch.allclose(_guide_grads(), analytic, atol=0.04)


def test_sleep_phi_gradient_matches_the_same_kl_gradient():
    analytic = torch.tensor([-POST_LOC, 1 - (POST_SCALE**2 + POST_LOC**2)])
    # Sleep draws x too, so its expectation is over the joint: E_p(x,z)[-d log q(z)] with
    # an unamortized guide: loc: -E[z]/s^2 = 0; log s: 1 - E[z^2] = 0.
    rws = ReweightedWakeSleep(num_particles=20000, insomnia=0.0, max_plate_nesting=0)
    theta, phi = rws.loss_and_grads(model, guide, observations={"x": X})
    assert torch.allclose(_guide_grads(), torch.zeros(2), atol=0.05)
    assert analytic.abs().max() > 0.5  # (wake-phi and sleep-phi differ here)


def test_fitted_guide_has_the_posterior_moments():
    svi = SVI(model, guide, Adam({"lr": 0.05}), ReweightedWakeSleep(num_particles=50))
    for _ in range(400):
        svi.step()
    loc = float(pyrolite.param("loc"))
    scale = float(pyrolite.param("scale"))
    # tolerance: the step noise of Adam at lr 0.05 around the optimum (about 0.05)
    assert loc == pytest.approx(POST_LOC, abs=0.1)
    assert scale == pytest.approx(POST_SCALE, abs=0.1)


def test_wake_theta_is_the_iwae_bound_with_model_gradients_only():
    def model_with_param(observations=None):
        observations = {"x": X} if observations is None else observations
        m = pyrolite.param("m", torch.tensor(0.2))
        z = pyrolite.sample("z", dist.Normal(m, 1.0))
        pyrolite.sample("x", dist.Normal(z, 1.0), obs=observations["x"])

    pyrolite.set_rng_seed(4)
    theta, phi = ReweightedWakeSleep(num_particles=4, max_plate_nesting=0).loss(
        model_with_param, guide
    )
    pyrolite.set_rng_seed(4)
    z = torch.randn(4)  # the guide's vectorized draws: N(0, 1)
    log_w = dist.Normal(0.2, 1.0).log_prob(z) + dist.Normal(z, 1.0).log_prob(X)
    log_w = log_w - dist.Normal(0.0, 1.0).log_prob(z)
    assert float(theta) == pytest.approx(-float(torch.logsumexp(log_w, 0) - math.log(4)), abs=1e-5)
    weights = torch.softmax(log_w, 0)
    assert float(phi) == pytest.approx(
        -float((weights * dist.Normal(0.0, 1.0).log_prob(z)).sum()), abs=1e-5
    )


def test_options_as_pyro():
    with pytest.raises(AssertionError, match="insomnia"):
        ReweightedWakeSleep(insomnia=1.5)
    with pytest.raises(AssertionError, match="more than one particle"):
        ReweightedWakeSleep(num_particles=1)


@pytest.mark.parametrize("insomnia,vectorize", [(1.0, True), (0.5, True), (0.5, False)])
def test_losses_and_gradients_match_pyro_at_the_same_draws(insomnia, vectorize):
    pyro = pytest.importorskip("pyro")
    import pyro.distributions as pdist
    from pyro.infer import ReweightedWakeSleep as PyroRWS

    results = []
    for lib, ldist, rws in [(pyrolite, dist, ReweightedWakeSleep), (pyro, pdist, PyroRWS)]:
        lib.clear_param_store()
        lib.set_rng_seed(0)

        def lib_model(observations=None, lib=lib, ldist=ldist):
            observations = {"x": X} if observations is None else observations
            m = lib.param("m", torch.tensor(0.2))
            z = lib.sample("z", ldist.Normal(m, 1.0))
            lib.sample("x", ldist.Normal(z, 1.0), obs=observations["x"])

        def lib_guide(observations=None, lib=lib, ldist=ldist):
            loc = lib.param("loc", torch.tensor(0.3))
            scale = lib.param("s", torch.tensor(1.0), constraint=ldist.constraints.positive)
            lib.sample("z", ldist.Normal(loc, scale))

        elbo = rws(
            num_particles=3, insomnia=insomnia, vectorize_particles=vectorize, max_plate_nesting=0
        )
        losses = elbo.loss_and_grads(lib_model, lib_guide, observations={"x": X})
        if lib is pyro:
            grads = [pyro.param(n).unconstrained().grad for n in ("m", "loc", "s")]
        else:
            store = pyrolite.get_param_store()
            grads = [store.unconstrained(n).grad for n in ("m", "loc", "s")]
        results.append((*losses, *[float(g) for g in grads]))
    assert results[0] == pytest.approx(results[1], rel=1e-5, abs=1e-6)
