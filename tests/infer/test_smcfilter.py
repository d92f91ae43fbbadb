"""SMCFilter: on a linear-Gaussian state-space model the particle mean and variance follow
the Kalman filter; SMCState checks; SMCFailed; the same particles as Pyro at one seed."""

import math

import pytest
import torch

import pyrolite
import pyrolite.distributions as dist
from pyrolite.infer.smcfilter import SMCFailed, SMCFilter, SMCState

PHI, Q, R = 0.9, 0.5, 1.0  # z_t = PHI z_(t-1) + N(0, Q^2), y_t = z_t + N(0, R^2), z_0 ~ N(0, 1)
YS = torch.tensor([1.0, 2.0, 0.5, -1.0, 0.3, 1.5])


def make(lib, d):
    class Model:
        def init(self, state):
            self.t = 0
            state["z"] = lib.sample("z_0", d.Normal(0.0, 1.0))

        def step(self, state, y):
            self.t += 1
            state["z"] = lib.sample(f"z_{self.t}", d.Normal(PHI * state["z"], Q))
            lib.sample(f"y_{self.t}", d.Normal(state["z"], R), obs=y)

    class Guide:  # the transition prior as proposal (bootstrap filter)
        def init(self, state):
            self.t = 0
            lib.sample("z_0", d.Normal(0.0, 1.0))

        def step(self, state, y):
            self.t += 1
            lib.sample(f"z_{self.t}", d.Normal(PHI * state["z"], Q))

    return Model(), Guide()


def kalman(ys):
    mean, var, out = 0.0, 1.0, []
    for y in ys.tolist():
        mean, var = PHI * mean, PHI**2 * var + Q**2
        gain = var / (var + R**2)
        mean, var = mean + gain * (y - mean), (1 - gain) * var
        out.append((mean, var))
    return out


def test_particle_filter_tracks_the_kalman_filter():
    model, guide = make(pyrolite, dist)
    smc = SMCFilter(model, guide, num_particles=5000, max_plate_nesting=0)
    smc.init()
    for y, (mean, var) in zip(YS, kalman(YS)):
        smc.step(y)
        z = smc.get_empirical()["z"]
        # filtering sd ~0.6; with an ESS of >= 2500 the SE of the mean is ~0.012
        assert abs(float(z.mean) - mean) < 0.06
        assert abs(float(z.variance) - var) < 0.05


def test_resampling_happens_below_the_ess_threshold():
    model, guide = make(pyrolite, dist)
    smc = SMCFilter(model, guide, num_particles=100, max_plate_nesting=0, ess_threshold=1.0)
    smc.init()
    smc.step(torch.tensor(1.0))
    assert torch.equal(smc.state._log_weights, torch.zeros(100))  # always resampled
    smc = SMCFilter(model, guide, num_particles=100, max_plate_nesting=0, ess_threshold=1e-9)
    smc.init()
    smc.step(torch.tensor(1.0))
    log_w = smc.state._log_weights
    assert abs(float(log_w.logsumexp(0))) < 1e-5 and float(log_w.std()) > 0  # normalized


def test_smc_failed_when_no_particle_is_possible():
    class Model:
        def init(self, state):
            state["z"] = pyrolite.sample("z", dist.Uniform(0.0, 1.0))

        def step(self, state, y):
            pyrolite.sample("y", dist.Uniform(state["z"], state["z"] + 1.0), obs=y)

    class Guide:
        def init(self, state):
            pyrolite.sample("z", dist.Uniform(0.0, 1.0))

        def step(self, state, y):
            pass

    pyrolite.enable_validation(False)  # the impossible observation must reach the weights
    smc = SMCFilter(Model(), Guide(), num_particles=10, max_plate_nesting=0)
    smc.init()
    with pytest.raises(SMCFailed, match="feasible"):
        smc.step(torch.tensor(5.0))
    assert issubclass(SMCFailed, ValueError)


def test_smc_state_checks_values_and_locks_for_the_guide():
    state = SMCState(3)
    state["a"] = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="leading dim of size 3"):
        state["b"] = torch.zeros(2)
    with pytest.raises(TypeError, match="Only Tensors"):
        state["b"] = 1.0
    with state._lock():
        with pytest.raises(RuntimeError, match="Guide cannot write"):
            state["b"] = torch.zeros(3)
    state._resample(torch.tensor([2, 2, 0]))
    assert state["a"].shape == (3, 2)


def test_plated_state_with_max_plate_nesting_one():
    class Model:
        def init(self, state):
            with pyrolite.plate("dims", 2, dim=-1):
                state["z"] = pyrolite.sample("z", dist.Normal(0.0, 1.0))

        def step(self, state, y):
            with pyrolite.plate("dims", 2, dim=-1):
                pyrolite.sample("y", dist.Normal(state["z"], 1.0), obs=y)

    class Guide:
        def init(self, state):
            with pyrolite.plate("dims", 2, dim=-1):
                pyrolite.sample("z", dist.Normal(0.0, 1.0))

        def step(self, state, y):
            pass

    smc = SMCFilter(Model(), Guide(), num_particles=4000, max_plate_nesting=1)
    smc.init()
    smc.step(torch.tensor([2.0, -2.0]))
    z = smc.get_empirical()["z"]
    assert smc.state["z"].shape == (4000, 2)
    # posterior N(y / 2, 1 / 2) per dim; ESS ~ 1500 here, SE of mean ~0.02
    assert torch.allclose(z.mean, torch.tensor([1.0, -1.0]), atol=0.1)
    assert math.isclose(float(z.variance.mean()), 0.5, abs_tol=0.08)


def test_same_particles_and_weights_as_pyro_at_one_seed():
    pyro = pytest.importorskip("pyro")
    pdist = pytest.importorskip("pyro.distributions")
    from pyro.infer import SMCFilter as PyroSMCFilter

    results = []
    for lib, d, cls in [(pyro, pdist, PyroSMCFilter), (pyrolite, dist, SMCFilter)]:
        torch.manual_seed(0)
        smc = cls(*make(lib, d), num_particles=100, max_plate_nesting=0, ess_threshold=0.5)
        smc.init()
        for y in YS:
            smc.step(y)
        z = smc.get_empirical()["z"]
        results.append((smc.state["z"], smc.state._log_weights, z.mean, z.variance))
    for ours, theirs in zip(results[1], results[0]):
        assert torch.allclose(ours, theirs, atol=1e-5)
