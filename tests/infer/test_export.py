"""export_guide: a trained guide as TorchScript that samples the posterior without pyrolite."""

import json
import math
import subprocess
import sys

import pytest
import torch

import pyrolite as pyro
import pyrolite.distributions as dist
from pyrolite.distributions import constraints
from pyrolite.infer import export_guide
from pyrolite.infer.autoguide import AutoNormal

NUM_SAMPLES = 20000

# Runs in a fresh interpreter: loads each module with torch.jit.load and reports sample
# moments; asserts pyrolite was never imported.
CHILD = """
import json, sys, torch
out = {}
for path, inputs_path in zip(sys.argv[1::2], sys.argv[2::2]):
    module = torch.jit.load(path)
    inputs = torch.load(inputs_path, weights_only=True)
    draws = module(*inputs)
    out[path] = {
        name: {"shape": list(v.shape), "mean": v.mean(0).tolist(), "sd": v.std(0).tolist(),
               "log_mean": v.abs().log().mean(0).tolist(), "log_sd": v.abs().log().std(0).tolist()}
        for name, v in draws.items()
    }
assert "pyrolite" not in sys.modules, "the exported module must not need pyrolite"
print(json.dumps(out))
"""


def regression_guide(x, y):
    p = x.shape[1]
    a_loc = pyro.param("alpha_loc", torch.tensor(1.5))
    a_scale = pyro.param("alpha_scale", torch.tensor(0.2), constraint=constraints.positive)
    b_loc = pyro.param("beta_loc", torch.linspace(-1.0, 1.0, p))
    b_scale = pyro.param("beta_scale", torch.full((p,), 0.3), constraint=constraints.positive)
    s_loc = pyro.param("log_sigma_loc", torch.tensor(-0.5))
    s_scale = pyro.param("log_sigma_scale", torch.tensor(0.25), constraint=constraints.positive)
    pyro.sample("alpha", dist.Normal(a_loc, a_scale))
    pyro.sample("beta", dist.Normal(b_loc, b_scale).to_event(1))
    pyro.sample("sigma", dist.LogNormal(s_loc, s_scale))


def regression_model(x, y):
    alpha = pyro.sample("alpha", dist.Normal(0.0, 10.0))
    beta = pyro.sample("beta", dist.Normal(torch.zeros(x.shape[1]), 10.0).to_event(1))
    sigma = pyro.sample("sigma", dist.HalfNormal(10.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", dist.Normal(alpha + x @ beta, sigma), obs=y)


def coin_guide(obs):
    a = pyro.param("alpha_q", torch.tensor(16.0), constraint=constraints.positive)
    b = pyro.param("beta_q", torch.tensor(14.0), constraint=constraints.positive)
    pyro.sample("latent_fairness", dist.Beta(a, b))


def run_child(tmp_path, modules):
    """``modules``: {label: (ScriptModule path, inputs)} -> {label: {site: moments}}."""
    argv = []
    for label, (path, inputs) in modules.items():
        inputs_path = tmp_path / f"{label}_inputs.pt"
        torch.save(tuple(inputs), inputs_path)
        argv += [str(path), str(inputs_path)]
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *argv], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout.strip().splitlines()[-1])
    return {label: stats[str(path)] for label, (path, _) in modules.items()}


def assert_moments(stats, mean, sd, key="mean", sd_key="sd"):
    mean, sd = torch.as_tensor(mean).double(), torch.as_tensor(sd).double()
    got_mean = torch.as_tensor(stats[key]).double()
    got_sd = torch.as_tensor(stats[sd_key]).double()
    # 5 standard errors: mean error sd/sqrt(n), sd error about sd/sqrt(2n)
    assert torch.all((got_mean - mean).abs() < 5 * sd / math.sqrt(NUM_SAMPLES)), (got_mean, mean)
    assert torch.all((got_sd - sd).abs() < 5 * sd / math.sqrt(2 * NUM_SAMPLES)), (got_sd, sd)


def test_exported_guides_sample_their_posterior_without_pyrolite(tmp_path):
    x, y = torch.randn(50, 3), torch.randn(50)
    obs = torch.ones(10)
    regression_guide(x, y)
    coin_guide(obs)
    export_guide(regression_guide, x, y, num_samples=NUM_SAMPLES, path=tmp_path / "reg.pt")
    export_guide(coin_guide, obs, num_samples=NUM_SAMPLES, path=tmp_path / "coin.pt")
    stats = run_child(
        tmp_path, {"reg": (tmp_path / "reg.pt", (x, y)), "coin": (tmp_path / "coin.pt", (obs,))}
    )

    reg = stats["reg"]
    assert list(reg) == ["alpha", "beta", "sigma"]
    assert reg["beta"]["shape"] == [NUM_SAMPLES, 3]
    assert_moments(reg["alpha"], 1.5, 0.2)
    assert_moments(reg["beta"], torch.linspace(-1.0, 1.0, 3), torch.full((3,), 0.3))
    assert_moments(reg["sigma"], -0.5, 0.25, key="log_mean", sd_key="log_sd")

    a, b = 16.0, 14.0  # Beta(16, 14)
    beta_sd = math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
    assert_moments(stats["coin"]["latent_fairness"], a / (a + b), beta_sd)


def test_exported_autoguide_samples_its_posterior_without_pyrolite(tmp_path):
    x, y = torch.randn(40, 2), torch.randn(40)
    guide = AutoNormal(regression_model)
    guide(x, y)
    store = pyro.get_param_store()
    store["AutoNormal.locs.beta"] = torch.tensor([0.7, -1.2])  # as if trained: off the init
    store["AutoNormal.scales.beta"] = torch.tensor([0.05, 0.4])
    export_guide(guide, x, y, num_samples=NUM_SAMPLES, path=tmp_path / "auto.pt")
    stats = run_child(tmp_path, {"auto": (tmp_path / "auto.pt", (x, y))})["auto"]
    assert list(stats) == ["alpha", "beta", "sigma"]  # the auxiliary site is left out
    assert_moments(stats["beta"], [0.7, -1.2], [0.05, 0.4])
    sigma_loc = pyro.param("AutoNormal.locs.sigma").item()
    sigma_scale = pyro.param("AutoNormal.scales.sigma").item()
    assert_moments(stats["sigma"], sigma_loc, sigma_scale, key="log_mean", sd_key="log_sd")


def test_exported_module_draws_fresh_samples_with_baked_params():
    obs = torch.ones(10)
    coin_guide(obs)
    sampler = export_guide(coin_guide, obs)
    first, second = sampler(obs)["latent_fairness"], sampler(obs)["latent_fairness"]
    assert first.shape == (1,)
    assert not torch.equal(first, second)
    pyro.get_param_store()["alpha_q"] = torch.tensor(1.0)  # later training does not leak in
    draws = export_guide(coin_guide, obs, num_samples=NUM_SAMPLES)(obs)["latent_fairness"]
    assert draws.mean().item() == pytest.approx(1.0 / 15.0, abs=0.01)
    assert sampler.param_0.item() == pytest.approx(16.0)


def test_export_rejects_non_tensor_arguments():
    def guide(n):
        pyro.sample("z", dist.Normal(torch.zeros(n), 1.0))

    with pytest.raises(TypeError, match="argument 0 is a int"):
        export_guide(guide, 3)
