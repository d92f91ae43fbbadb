"""Trace_MMD and EnergyDistance: values and gradients against Pyro at the same seeds, the
MMD estimator's behaviour, and that SVI with each moves the guide where theory says."""

import math

import pytest
import torch

import pyrolite
import pyrolite.distributions as dist
from pyrolite.infer.energy_distance import EnergyDistance
from pyrolite.infer.svi import SVI
from pyrolite.infer.trace_mmd import Trace_MMD, mmd
from pyrolite.optim import Adam

DATA = torch.tensor([1.0, 2.0, 3.0])
PAIR = torch.tensor([0.5, 1.0])


def rbf(X, Z):
    return torch.exp(-0.5 * torch.cdist(X, Z) ** 2)


def programs(P, D, two_latents=False, two_observed=False):
    """A model/guide pair written against module ``P`` (pyro or pyrolite)."""

    def model():
        z = P.sample("z", D.Normal(0.0, 1.0))
        w = P.sample("w", D.Normal(z, 1.0)) if two_latents else z
        with P.plate("d", 3):
            P.sample("x", D.Normal(w, 1.0), obs=DATA)
        if two_observed:
            loc = z.unsqueeze(-1).expand(z.shape + (2,))
            P.sample("y", D.Normal(loc, 2.0).to_event(1), obs=PAIR)

    def guide():
        m = P.param("m", torch.tensor(0.5))
        z = P.sample("z", D.Normal(m, 0.7))
        if two_latents:
            P.sample("w", D.Normal(z, 0.7))

    return model, guide


def _value_and_grad(P, loss_fn, progs):
    P.clear_param_store()
    P.set_rng_seed(0)
    loss = loss_fn(*progs)
    loss.backward()
    return float(loss), float(P.param("m").grad)


# --- oracle: Pyro's values and gradients at the same seed ------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(num_particles=5),
        dict(num_particles=4, max_plate_nesting=1, mmd_scale=2.0),
        dict(num_particles=3, vectorize_particles=False),
    ],
)
@pytest.mark.parametrize("two_latents", [False, True])
def test_trace_mmd_matches_pyro(kwargs, two_latents):
    pyro = pytest.importorskip("pyro")
    gp = pytest.importorskip("pyro.contrib.gp")
    import pyro.distributions as pdist

    kernel = gp.kernels.RBF(input_dim=1)
    kernels = {"z": kernel, "w": gp.kernels.RBF(input_dim=1, lengthscale=torch.tensor(2.0))}
    kern = kernels if two_latents else kernel
    ours = Trace_MMD(kern, **kwargs)
    theirs = pyro.infer.Trace_MMD(kern, **kwargs)
    expected = _value_and_grad(pyro, theirs.differentiable_loss, programs(pyro, pdist, two_latents))
    actual = _value_and_grad(
        pyrolite, ours.differentiable_loss, programs(pyrolite, dist, two_latents)
    )
    assert actual == pytest.approx(expected, rel=1e-5, abs=1e-6)
    pyro.clear_param_store()
    pyro.set_rng_seed(1)
    want = theirs.loss(*programs(pyro, pdist, two_latents))
    pyrolite.clear_param_store()
    pyrolite.set_rng_seed(1)
    assert ours.loss(*programs(pyrolite, dist, two_latents)) == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize(
    "kwargs",
    [dict(num_particles=4), dict(num_particles=5, beta=0.5, prior_scale=0.3)],
)
@pytest.mark.parametrize("two_observed", [False, True])
def test_energy_distance_matches_pyro(kwargs, two_observed):
    pyro = pytest.importorskip("pyro")
    import pyro.distributions as pdist

    expected = _value_and_grad(
        pyro,
        pyro.infer.EnergyDistance(**kwargs),
        programs(pyro, pdist, two_observed=two_observed),
    )
    actual = _value_and_grad(
        pyrolite, EnergyDistance(**kwargs), programs(pyrolite, dist, two_observed=two_observed)
    )
    assert actual == pytest.approx(expected, rel=1e-5, abs=1e-6)


# --- interface and errors -------------------------------------------------------------


def test_constructor_errors_name_the_option():
    with pytest.raises(ValueError, match="beta in"):
        EnergyDistance(beta=2.0)
    with pytest.raises(ValueError, match="prior_scale >= 0"):
        EnergyDistance(prior_scale=-1.0)
    with pytest.raises(ValueError, match="num_particles >= 2"):
        EnergyDistance(num_particles=1)
    with pytest.raises(NotImplementedError, match="surrogate loss"):
        EnergyDistance().loss(None, None)
    with pytest.raises(TypeError, match="kernel"):
        Trace_MMD(3)
    with pytest.raises(TypeError, match="kernel"):
        Trace_MMD({"z": 3})
    with pytest.raises(TypeError, match="mmd_scale"):
        Trace_MMD(rbf, mmd_scale="a")
    model, guide = programs(pyrolite, dist, two_latents=True)
    with pytest.raises(KeyError, match="'w'"):
        Trace_MMD({"z": rbf}, num_particles=3).loss(model, guide)


def test_trace_mmd_is_the_likelihood_plus_the_v_statistic():
    # One site, vectorized: the loss rebuilt from the same draws in the same order.
    model, guide = programs(pyrolite, dist)
    pyrolite.clear_param_store()
    pyrolite.set_rng_seed(0)
    loss = Trace_MMD(rbf, num_particles=6, max_plate_nesting=1).loss(model, guide)
    pyrolite.set_rng_seed(0)
    q = torch.distributions.Normal(0.5, 0.7).sample((6, 1))
    p = torch.distributions.Normal(0.0, 1.0).sample((6, 1))
    log_lik = torch.distributions.Normal(q, 1.0).log_prob(DATA).sum() / 6
    v_stat = rbf(q, q).mean() + rbf(p, p).mean() - 2 * rbf(p, q).mean()
    assert loss == pytest.approx(float(-log_lik + v_stat), rel=1e-5)


# --- analytic checks ------------------------------------------------------------------


def test_mmd_of_identical_distributions_vanishes_as_n_grows():
    # The V-statistic's mean for equal distributions is (2/n)(k(x,x) - E k(x,x')) with
    # E k(x,x') = 1/sqrt(3) for this RBF and N(0,1): 0.845/n; its sd is of the same order.
    torch.manual_seed(0)
    for n in (100, 3000):
        x, z = torch.randn(n, 1), torch.randn(n, 1)
        assert 0 <= float(mmd(rbf, x, z)) < 5 * 0.845 / n
    shifted = float(mmd(rbf, torch.randn(3000, 1), torch.randn(3000, 1) + 1.0))
    # exact MMD^2 of N(0,1) and N(1,1) under this kernel: 2/sqrt(3) (1 - exp(-1/6))
    assert shifted == pytest.approx(2 / math.sqrt(3) * (1 - math.exp(-1 / 6)), abs=0.02)


def test_svi_with_trace_mmd_moves_the_guide_toward_the_posterior():
    # z ~ N(0, 1), x_i ~ N(z, 1), 10 points of mean 2: posterior N(20/11, 1/11).
    data = torch.full((10,), 2.0)
    post_mean = 20.0 / 11.0

    def model():
        z = pyrolite.sample("z", dist.Normal(0.0, 1.0))
        with pyrolite.plate("data", 10):
            pyrolite.sample("x", dist.Normal(z, 1.0), obs=data)

    def guide():
        loc = pyrolite.param("loc", torch.tensor(0.0))
        pyrolite.sample("z", dist.Normal(loc, 0.3))

    pyrolite.clear_param_store()
    pyrolite.set_rng_seed(0)
    svi = SVI(model, guide, Adam({"lr": 0.05}), Trace_MMD(rbf, num_particles=50))
    losses = [svi.step() for _ in range(300)]
    loc = pyrolite.param("loc").item()
    # The MMD term pulls toward the prior a little less than the KL would: the optimum lies
    # within 0.25 of the posterior mean (from 1.82 away at the start).
    assert abs(loc - post_mean) < 0.25
    assert sum(losses[-20:]) < sum(losses[:20])


def test_energy_distance_fits_the_location_of_a_simulator():
    # x_i ~ N(loc, 1), i < 50; as a function of a point guide's loc, E||X - x|| - ½E||X - X'||
    # depends on loc through ||loc - x||², minimal at the data mean.
    torch.manual_seed(1)
    data = 3.0 + torch.randn(50)

    def model():
        loc = pyrolite.sample("loc", dist.Normal(0.0, 10.0))
        with pyrolite.plate("data", 50):
            pyrolite.sample("x", dist.Normal(loc, 1.0), obs=data)

    def guide():
        pyrolite.sample("loc", dist.Delta(pyrolite.param("m", torch.tensor(0.0))))

    pyrolite.clear_param_store()
    pyrolite.set_rng_seed(0)
    svi = SVI(model, guide, Adam({"lr": 0.05}), EnergyDistance(num_particles=8))
    for _ in range(300):
        svi.step()
    # gradient noise at the optimum: the last 50 steps spread over about 0.01 at this lr
    assert pyrolite.param("m").item() == pytest.approx(float(data.mean()), abs=0.05)
