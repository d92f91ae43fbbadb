"""Differential tests: the same conditioned model gives Pyro's log-joint and site names."""

import pytest
import torch

import pyrolite
import pyrolite.distributions as pdist
from pyrolite import poutine as ppoutine

pyro = pytest.importorskip("pyro")
import pyro.distributions as odist  # noqa: E402
from pyro import poutine as opoutine  # noqa: E402

N, P = 6, 3
X = torch.linspace(-1.0, 1.0, N * P).reshape(N, P)
Y = torch.linspace(-2.0, 3.0, N)
FLIPS = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
SUBSAMPLE = torch.tensor([4, 1, 3])


def coin(lib, dist):
    f = lib.sample("f", dist.Beta(2.0, 3.0))
    with lib.plate("flips", N):
        lib.sample("obs", dist.Bernoulli(f), obs=FLIPS)


def linreg(lib, dist):
    alpha = lib.sample("alpha", dist.Normal(0.0, 10.0))
    beta = lib.sample("beta", dist.Normal(torch.zeros(P), 10.0).to_event(1))
    sigma = lib.sample("sigma", dist.HalfNormal(2.0))
    with lib.plate("data", N, subsample=SUBSAMPLE) as idx:
        x, y = X[idx], Y[idx]
        lib.sample("y", dist.Normal(alpha + x @ beta, sigma), obs=y)


def nested(lib, dist):
    mu = lib.sample("mu", dist.Normal(0.0, 1.0))
    with lib.plate("groups", 2, dim=-2):
        g = lib.sample("g", dist.Normal(mu, 1.0))
        with lib.plate("items", 3, dim=-1):
            lib.sample("z", dist.Normal(g, 0.5))
            lib.sample("x", dist.Normal(g, 2.0), obs=torch.arange(6.0).reshape(2, 3))


def masked_scaled(lib, dist, handlers):
    s = lib.sample("s", dist.Gamma(2.0, 1.0))
    with handlers.scale(scale=2.5):
        lib.sample("a", dist.Normal(0.0, s), obs=torch.tensor(0.3))
    with lib.plate("p", 3), handlers.mask(mask=torch.tensor([True, False, True])):
        lib.sample("b", dist.Normal(1.0, s), obs=torch.tensor([0.0, 100.0, 2.0]))
    lib.sample("c", dist.Normal(0.0, 1.0).mask(False), obs=torch.tensor(5.0))


def factor_delta(lib, dist):
    z = lib.sample("z", dist.Normal(0.0, 1.0))
    lib.factor("penalty", -(z**2))
    lib.sample("d", dist.Delta(z * 2.0), obs=torch.tensor(0.8))
    lib.deterministic("twice", z * 2.0)
    with lib.plate("rows", 2):
        lib.sample("w", dist.Delta(torch.tensor([1.0, 2.0]), log_density=torch.tensor(0.25)))


LATENTS = {
    "coin": {"f": torch.tensor(0.35)},
    "linreg": {
        "alpha": torch.tensor(0.4),
        "beta": torch.tensor([1.0, -0.5, 2.0]),
        "sigma": torch.tensor(1.3),
    },
    "nested": {
        "mu": torch.tensor(0.2),
        "g": torch.tensor([[0.5], [-1.0]]),
        "z": torch.tensor([[0.1, 0.2, 0.3], [-0.1, -0.2, -0.3]]),
    },
    "masked_scaled": {"s": torch.tensor(1.7)},
    "factor_delta": {"z": torch.tensor(0.4), "w": torch.tensor([1.0, 2.0])},
}

MODELS = {
    "coin": coin,
    "linreg": linreg,
    "nested": nested,
    "masked_scaled": masked_scaled,
    "factor_delta": factor_delta,
}


def _run(lib, dist, handlers, name):
    fn = MODELS[name]

    def model():
        if name == "masked_scaled":
            return fn(lib, dist, handlers)
        return fn(lib, dist)

    conditioned = handlers.condition(model, data=LATENTS[name])
    return handlers.trace(conditioned).get_trace()


def _sample_names(trace, is_subsample):
    return [
        n
        for n, s in trace.nodes.items()
        if s["type"] == "sample" and not is_subsample(s) and n not in ("_INPUT", "_RETURN")
    ]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_conditioned_log_prob_sum_and_site_names_match_pyro(name):
    ours = _run(pyrolite, pdist, ppoutine, name)
    theirs = _run(pyro, odist, opoutine, name)
    ours_lp = ours.log_prob_sum()
    theirs_lp = theirs.log_prob_sum()
    assert float(ours_lp) == pytest.approx(float(theirs_lp), abs=1e-5)
    assert _sample_names(ours, lambda s: s["infer"].get("_subsample")) == _sample_names(
        theirs, lambda s: type(s["fn"]).__name__ == "_Subsample"
    )
    assert ours.observation_nodes == [
        n for n in theirs.observation_nodes if n in ours.observation_nodes
    ]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_per_site_log_probs_match_pyro(name):
    ours = _run(pyrolite, pdist, ppoutine, name)
    theirs = _run(pyro, odist, opoutine, name)
    ours.compute_log_prob()
    theirs.compute_log_prob()
    for site_name in _sample_names(ours, lambda s: s["infer"].get("_subsample")):
        a = ours.nodes[site_name]["log_prob"]
        b = theirs.nodes[site_name]["log_prob"]
        assert torch.allclose(torch.as_tensor(a), torch.as_tensor(b), atol=1e-5), site_name
        assert ours.nodes[site_name]["scale"] == pytest.approx(
            float(theirs.nodes[site_name]["scale"])
        )
