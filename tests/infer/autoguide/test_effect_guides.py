"""Effect-based autoguides (AutoNormalMessenger, AutoHierarchicalNormalMessenger,
AutoRegressiveMessenger): param names and inits against Pyro, the guide density on a fixed
sample with Pyro's params, and exact/fitted posteriors on conjugate Normal models."""

import math

import pytest
import torch

import pyrolite
import pyrolite.distributions as dist
from pyrolite import poutine
from pyrolite.infer import SVI, Trace_ELBO
from pyrolite.infer.autoguide.effect import (
    AutoHierarchicalNormalMessenger,
    AutoNormalMessenger,
    AutoRegressiveMessenger,
)
from pyrolite.optim import Adam

GUIDES = ["AutoNormalMessenger", "AutoHierarchicalNormalMessenger", "AutoRegressiveMessenger"]
Y = torch.tensor([1.0, 2.0, 3.0])


def _model(lib, d):
    def model(y=None):
        a = lib.sample("a", d.Normal(1.0, 2.0))
        s = lib.sample("s", d.LogNormal(0.5, 1.0))
        with lib.plate("p", 3):
            b = lib.sample("b", d.Normal(a, s))
            lib.sample("y", d.Normal(b, 1.0), obs=y)

    return model


def _both(name):
    pyro = pytest.importorskip("pyro")
    import pyro.infer.autoguide as pag

    from pyrolite.infer.autoguide import effect

    return (pyrolite, dist, getattr(effect, name)), (pyro, pyro.distributions, getattr(pag, name))


def _params(lib):
    store = lib.get_param_store()
    return {k: store[k].detach().clone() for k in store.keys()}


@pytest.mark.parametrize("name", GUIDES)
@pytest.mark.parametrize("init", ["mean", "value"])
def test_param_names_and_inits_equal_pyro(name, init):
    got = []
    for lib, d, Guide in _both(name):
        lib.clear_param_store()
        lib.set_rng_seed(0)
        kwargs = {}
        if init == "value":
            values = {"a": torch.tensor(3.0), "s": torch.tensor(5.0), "b": torch.full((3,), 2.0)}
            kwargs["init_loc_fn"] = lib.infer.autoguide.init_to_value(values=values)
        guide = Guide(_model(lib, d), **kwargs)
        out = guide(Y)
        got.append((_params(lib), sorted(out)))
    (mine, mine_sites), (ref, ref_sites) = got
    assert list(mine) == list(ref)  # same keys, same creation order
    assert mine_sites == ref_sites == ["a", "b", "s", "y"]
    for key in ref:
        # Same seed, same draws: even b's init (its prior depends on a's draw) agrees.
        assert torch.allclose(mine[key], ref[key], atol=1e-5), key


@pytest.mark.parametrize("name", GUIDES)
def test_guide_log_density_equals_pyro_with_copied_params(name):
    (lite, d, Guide), (pyro, pd, PGuide) = _both(name)
    fixed = {"a": torch.tensor(0.4), "s": torch.tensor(1.7), "b": torch.tensor([0.2, -0.5, 1.1])}
    densities = []
    pyro.clear_param_store()
    pguide = PGuide(_model(pyro, pd))
    pguide(Y)
    torch.manual_seed(3)
    with torch.no_grad():
        for key in list(pyro.get_param_store().keys()):
            value = pyro.get_param_store()[key]
            bump = 0.3 * torch.randn(value.shape)
            new = value + bump if key.startswith("locs") else value * bump.exp()
            pyro.get_param_store()[key] = new
    copied = _params(pyro)
    for lib, guide in [(pyro, pguide), (lite, None)]:
        if guide is None:
            lib.clear_param_store()
            guide = Guide(_model(lib, d))
            guide(Y)
            for key, value in copied.items():
                lib.get_param_store()[key] = value
        tr = lib.poutine.trace(lib.poutine.condition(guide, data=fixed)).get_trace(Y)
        densities.append({n: tr.nodes[n]["fn"].log_prob(tr.nodes[n]["value"]) for n in fixed})
    for n in fixed:
        assert torch.allclose(densities[0][n], densities[1][n], atol=1e-5), n


@pytest.mark.parametrize("name", ["AutoNormalMessenger", "AutoHierarchicalNormalMessenger"])
def test_median_equals_pyro(name):
    medians = []
    for lib, d, Guide in _both(name):
        lib.clear_param_store()
        guide = Guide(_model(lib, d))
        guide(Y)
        with torch.no_grad():
            for key in list(lib.get_param_store().keys()):
                kind = key.split(".")[0]
                lib.get_param_store()[key] = torch.full_like(
                    lib.get_param_store()[key], {"locs": 0.3, "scales": 0.7, "weights": 0.4}[kind]
                )
        medians.append({k: v.detach() for k, v in guide.median(Y).items()})
    assert sorted(medians[0]) == sorted(medians[1])
    for k in medians[1]:
        assert torch.allclose(medians[0][k], medians[1][k], atol=1e-6), k
    # Hierarchical: b's median is loc + weight * (a's median); a's is loc + weight * 1.
    if name == "AutoHierarchicalNormalMessenger":
        assert float(medians[0]["a"]) == pytest.approx(0.3 + 0.4 * 1.0)
        assert torch.allclose(medians[0]["b"], torch.tensor(0.3 + 0.4 * 0.7))


def test_amortized_and_subsampled_param_shapes_equal_pyro():
    pyro = pytest.importorskip("pyro")
    from pyro.infer.autoguide import AutoNormalMessenger as PGuide

    shapes = []
    for lib, d, Guide in [
        (pyrolite, dist, AutoNormalMessenger),
        (pyro, pyro.distributions, PGuide),
    ]:

        def model(lib=lib, d=d):
            with lib.plate("p", 10, subsample_size=3):
                lib.sample("b", d.Normal(0.0, 1.0))

        for plates in [(), ("p",)]:
            lib.clear_param_store()
            Guide(model, amortized_plates=plates)()
            shapes.append({k: tuple(v.shape) for k, v in lib.get_param_store().items()})
    assert shapes[:2] == shapes[2:]
    assert shapes[0] == {"locs.b": (10,), "scales.b": (10,)}
    assert shapes[1] == {"locs.b": (), "scales.b": ()}


def test_get_traces_model_has_priors_guide_has_posteriors():
    guide = AutoNormalMessenger(_model(pyrolite, dist))
    guide(Y)
    model_trace, guide_trace = guide.get_traces()
    assert isinstance(model_trace.nodes["a"]["fn"], dist.Normal)
    assert isinstance(guide_trace.nodes["a"]["fn"], dist.TransformedDistribution)
    assert "y" in model_trace.nodes and "y" not in guide_trace.nodes


# --- conjugate Normal models (analytic) -----------------------------------------------------

DATA = torch.tensor([0.5, 1.5, 2.0, 1.0])


def _conjugate(y=None):
    # loc ~ N(0, 2^2), y_i ~ N(loc, 1): loc | y ~ N(sum y / (n + 1/4), 1 / (n + 1/4)).
    loc = pyrolite.sample("loc", dist.Normal(0.0, 2.0))
    with pyrolite.plate("data", len(DATA)):
        pyrolite.sample("y", dist.Normal(loc, 1.0), obs=y)


POST_VAR = 1.0 / (len(DATA) + 0.25)
POST_MEAN = float(DATA.sum()) * POST_VAR
# log p(y) = log N(y; 0, I + 4 * 11^T), the evidence of the conjugate model.
LOG_EVIDENCE = float(
    torch.distributions.MultivariateNormal(
        torch.zeros(len(DATA)), torch.eye(len(DATA)) + 4.0 * torch.ones(len(DATA), len(DATA))
    ).log_prob(DATA)
)


def _exact_params(name):
    sd = math.sqrt(POST_VAR)
    if name == "AutoNormalMessenger":
        return {"locs.loc": POST_MEAN, "scales.loc": sd}
    if name == "AutoHierarchicalNormalMessenger":  # prior mean 0: loc is the whole mean
        return {"locs.loc": POST_MEAN, "scales.loc": sd, "weights.loc": 1.0}
    return {"locs.loc": POST_MEAN, "scales.loc": sd / 2.0}  # loc + scale * N(0, 2^2)


@pytest.mark.parametrize("name", GUIDES)
def test_exact_posterior_gives_the_evidence_for_every_draw(name):
    """With q the exact posterior, log p(y, z) - log q(z) = log p(y) for every z."""
    from pyrolite.infer.autoguide import effect

    guide = getattr(effect, name)(_conjugate)
    guide(DATA)
    for key, value in _exact_params(name).items():
        pyrolite.get_param_store()[key] = torch.tensor(value)
    losses = [Trace_ELBO().loss(_conjugate, guide, DATA) for _ in range(5)]
    assert losses == pytest.approx([-LOG_EVIDENCE] * 5, abs=1e-4)


def test_normal_messenger_svi_recovers_posterior_moments():
    guide = AutoNormalMessenger(_conjugate)
    svi = SVI(_conjugate, guide, Adam({"lr": 0.04}), Trace_ELBO())
    trail = []
    for step in range(350):
        svi.step(DATA)
        if step >= 200:
            trail.append([float(pyrolite.param("locs.loc")), float(pyrolite.param("scales.loc"))])
    # The mean of the last 150 iterates (one-particle gradients, lr 0.04) missed the exact
    # moments by at most 0.037 over seeds 0-3; 0.08 is about twice that.
    loc, sd = torch.tensor(trail).mean(0).tolist()
    assert loc == pytest.approx(POST_MEAN, abs=0.08)
    assert sd == pytest.approx(math.sqrt(POST_VAR), abs=0.08)


def test_hierarchical_messenger_exact_conditional_posterior():
    """a ~ N(0, 4), b ~ N(a, 1), y ~ N(b, 1): b | a, y ~ N((a + y) / 2, 1/2) is linear in
    a, which the hierarchical guide represents exactly (weight 1/2 on the prior mean a)."""
    y = torch.tensor(1.2)

    def model(y=None):
        a = pyrolite.sample("a", dist.Normal(0.0, 2.0))
        b = pyrolite.sample("b", dist.Normal(a, 1.0))
        pyrolite.sample("y", dist.Normal(b, 1.0), obs=y)

    guide = AutoHierarchicalNormalMessenger(model)
    guide(y)
    exact = {
        "locs.a": 2.0 * float(y) / 3.0,  # a | y ~ N(2y/3, 4/3): y ~ N(a, 2)
        "scales.a": math.sqrt(4.0 / 3.0),
        "locs.b": float(y) / 2.0,
        "scales.b": math.sqrt(0.5),
        "weights.b": 0.5,
    }
    for key, value in exact.items():
        pyrolite.get_param_store()[key] = torch.tensor(value)
    log_evidence = float(dist.Normal(0.0, math.sqrt(6.0)).log_prob(y))
    losses = [Trace_ELBO().loss(model, guide, y) for _ in range(5)]
    assert losses == pytest.approx([-log_evidence] * 5, abs=1e-4)
    assert float(guide.median(y)["b"]) == pytest.approx(0.5 * (2.0 * 1.2 / 3.0) + 0.6, abs=1e-5)


def test_guide_hides_observed_sites_from_outer_handlers():
    guide = AutoRegressiveMessenger(_conjugate)
    tr = poutine.trace(guide).get_trace(DATA)
    samples = [n for n, s in tr.nodes.items() if s["type"] == "sample"]
    assert "y" not in samples and "loc" in samples
    assert isinstance(tr.nodes["loc"]["infer"]["prior"], dist.Normal)
