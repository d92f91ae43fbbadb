"""Pyro 1.9 as an oracle for the autoguides as ``PyroModule``s: the same ParamStore keys,
``named_parameters`` and ``state_dict`` keys, and, with Pyro's params copied in, the same
guide log-density at the same draw."""

import pytest
import torch

import pyrolite
import pyrolite.distributions as dist
from pyrolite import poutine
from pyrolite.infer import autoguide

pyro = pytest.importorskip("pyro")
pyro_dist = pytest.importorskip("pyro.distributions")
pyro_autoguide = pytest.importorskip("pyro.infer.autoguide")

GUIDES = [
    "AutoNormal",
    "AutoDelta",
    "AutoDiagonalNormal",
    "AutoMultivariateNormal",
    "AutoLowRankMultivariateNormal",
    "AutoLaplaceApproximation",
]


def make_model(p, d):
    def model(x):
        a = p.sample("a", d.Normal(0.0, 2.0))  # scalar
        with p.plate("plate", 3):
            b = p.sample("b", d.Normal(a, 1.0))  # plated
        c = p.sample("c", d.LogNormal(0.0, 1.0))  # constrained
        with p.plate("data", len(x)):
            p.sample("x", d.Normal(b.sum() + a, c), obs=x)

    return model


X = torch.tensor([0.3, -1.0, 2.0])


@pytest.fixture(autouse=True)
def _clear_pyro():
    pyro.clear_param_store()
    yield
    pyro.clear_param_store()


def _both(name):
    ours = getattr(autoguide, name)(make_model(pyrolite, dist))
    theirs = getattr(pyro_autoguide, name)(make_model(pyro, pyro_dist))
    ours(X)
    theirs(X)
    return ours, theirs


@pytest.mark.parametrize("name", GUIDES)
def test_param_store_keys_and_module_names_match_pyro(name):
    ours, theirs = _both(name)
    assert list(pyrolite.get_param_store().keys()) == list(pyro.get_param_store().keys())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for (n, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert p.shape == q.shape, n


def _root_draws(trace):
    """The guide's sites that are draws, not point masses computed from other draws."""
    return {
        n: s["value"]
        for n, s in trace.nodes.items()
        if s["type"] == "sample" and not s["is_observed"] and not isinstance(s["fn"], dist.Delta)
    }


@pytest.mark.parametrize("name", GUIDES)
def test_guide_log_density_matches_pyro_with_pyros_params(name):
    ours, theirs = _both(name)
    # Move Pyro's params away from the init (a random, correlated point), then copy them.
    torch.manual_seed(0)
    with torch.no_grad():
        for p in theirs.parameters():
            p.add_(0.3 * torch.randn_like(p))
    store = pyrolite.get_param_store()
    for key, value in pyro.get_param_store().items():
        store[key] = value.detach().clone()
    pyro.set_rng_seed(1)
    their_trace = pyro.poutine.trace(theirs).get_trace(X)
    our_sites = _root_draws(poutine.trace(ours).get_trace(X))
    values = {n: their_trace.nodes[n]["value"].detach() for n in our_sites}
    our_trace = poutine.trace(poutine.condition(ours, data=values)).get_trace(X)
    for site in ["a", "b", "c"]:
        assert torch.allclose(our_trace.nodes[site]["value"], their_trace.nodes[site]["value"])
    expected = their_trace.log_prob_sum().item()
    assert our_trace.log_prob_sum().item() == pytest.approx(expected, rel=1e-5, abs=1e-5)
    if name == "AutoLaplaceApproximation":
        return  # Pyro's has no median (pyrolite's is the MAP)
    # The posterior summaries agree too.
    ours_median, theirs_median = ours.median(X), theirs.median(X)
    for site in ["a", "b", "c"]:
        assert torch.allclose(ours_median[site], theirs_median[site].detach(), atol=1e-5)


@pytest.mark.parametrize("name", ["AutoNormal", "AutoDiagonalNormal", "AutoMultivariateNormal"])
def test_quantiles_match_pyro(name):
    ours, theirs = _both(name)
    store = pyrolite.get_param_store()
    for key, value in pyro.get_param_store().items():
        store[key] = value.detach().clone()
    q_ours, q_theirs = ours.quantiles([0.1, 0.5, 0.9], X), theirs.quantiles([0.1, 0.5, 0.9], X)
    for site in ["a", "b", "c"]:
        assert torch.allclose(q_ours[site], q_theirs[site].detach(), atol=1e-5)


def test_guide_list_names_its_parts_as_pyro_does():
    def parts(p, d, ag):
        model = make_model(p, d)
        guide = ag.AutoGuideList(model)
        guide.append(ag.AutoDiagonalNormal(p.poutine.block(model, hide=["c"])))
        guide.append(ag.AutoNormal(p.poutine.block(model, expose=["c"])))
        guide(X)
        return guide

    ours = parts(pyrolite, dist, autoguide)
    theirs = parts(pyro, pyro_dist, pyro_autoguide)
    assert list(pyrolite.get_param_store().keys()) == list(pyro.get_param_store().keys())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    latent = [n for n in poutine.trace(ours).get_trace(X).nodes if n.endswith("_latent")]
    their_latent = [n for n in pyro.poutine.trace(theirs).get_trace(X).nodes if "_latent" in n]
    assert latent == their_latent == ["_AutoGuideList.0_latent"]


def test_laplace_approximation_matches_pyro():
    def make_gaussian_model(p, d):
        def model(x):
            w = p.sample("w", d.Normal(torch.zeros(2), 2.0).to_event(1))
            s = p.sample("s", d.LogNormal(0.0, 0.5))
            with p.plate("data", len(x)):
                p.sample("x", d.Normal(w[0] + 0.5 * w[1], 1.0), obs=x)
            p.sample("y", d.Normal(w[1] * s, 1.0), obs=torch.tensor(0.5))

        return model

    ours = autoguide.AutoLaplaceApproximation(make_gaussian_model(pyrolite, dist))
    theirs = pyro_autoguide.AutoLaplaceApproximation(make_gaussian_model(pyro, pyro_dist))
    ours(X)
    theirs(X)
    store = pyrolite.get_param_store()
    for key, value in pyro.get_param_store().items():
        store[key] = value.detach().clone()
    our_laplace, their_laplace = ours.laplace_approximation(X), theirs.laplace_approximation(X)
    assert [n for n, _ in our_laplace.named_parameters()] == []  # fixed tensors, as in Pyro
    for attr in ["loc", "scale", "scale_tril"]:
        expected = getattr(their_laplace, attr).detach()
        assert torch.allclose(getattr(our_laplace, attr), expected, rtol=1e-4, atol=1e-5), attr


class _Draw(torch.nn.Module):
    """An ``nn.Module`` holding a guide, as one would export it."""

    def __init__(self, guide, method):
        super().__init__()
        self.guide, self.method = guide, method

    def forward(self, x):
        values = self.guide(x) if self.method == "call" else self.guide.median(x)
        return values["a"] + values["b"].sum() + values["c"]


@pytest.mark.parametrize("name", ["AutoNormal", "AutoDelta", "AutoMultivariateNormal"])
def test_state_dict_round_trip_and_trace_module_as_in_pyro(name):
    ours, theirs = _both(name)
    with torch.no_grad():
        for p in ours.parameters():
            p.add_(0.25)
    pyrolite.clear_param_store()
    fresh = getattr(autoguide, name)(make_model(pyrolite, dist))
    fresh(X)
    fresh.load_state_dict(ours.state_dict())
    for site, value in ours.median(X).items():
        assert torch.equal(fresh.median(X)[site], value)

    for method in ["median", "call"]:
        traced = torch.jit.trace_module(_Draw(fresh, method), {"forward": (X,)}, check_trace=False)
        pyro_traced = torch.jit.trace_module(
            _Draw(theirs, method), {"forward": (X,)}, check_trace=False
        )
        names = [n for n, _ in traced.named_parameters()]
        assert names == [n for n, _ in pyro_traced.named_parameters()]
        if method == "median":
            expected = _Draw(fresh, method)(X)
            assert torch.allclose(traced(X), expected)
        else:
            # The graph reads the guide's own leaves: gradients reach them.
            fresh.zero_grad()
            traced(X).backward()
            assert all(p.grad is not None for p in fresh.parameters())


@pytest.mark.parametrize(
    "conditionals", ["mvn", "normal", {"a": "delta", "b": "normal", "c": "mvn", "e": "mvn"}]
)
def test_structured_guide_matches_pyro(conditionals):
    from pyrolite.infer.autoguide.structured import AutoStructured

    def make(p, d):
        def model():
            a = p.sample("a", d.Normal(0.0, 1.0))
            with p.plate("p", 3):
                b = p.sample("b", d.Normal(a, 1.0))
            p.sample("c", d.LogNormal(b.sum(), 1.0))
            p.sample("e", d.Normal(torch.zeros(2), 1.0).to_event(1))

        return model

    theirs = pyro_autoguide.AutoStructured(make(pyro, pyro_dist), conditionals=conditionals)
    ours = AutoStructured(make(pyrolite, dist), conditionals=conditionals)
    theirs()
    ours()
    assert list(pyrolite.get_param_store().keys()) == list(pyro.get_param_store().keys())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    torch.manual_seed(0)
    with torch.no_grad():
        for p in theirs.parameters():
            p.add_(0.4 * torch.randn_like(p))
    store = pyrolite.get_param_store()
    for key, value in pyro.get_param_store().items():
        store[key] = value.detach().clone()
    their_trace = pyro.poutine.trace(theirs).get_trace()
    aux = {n: s["value"] for n, s in their_trace.nodes.items() if n.endswith("_aux")}
    our_trace = poutine.trace(poutine.condition(ours, data=aux)).get_trace()
    for site in ["a", "b", "c", "e"]:
        assert torch.allclose(our_trace.nodes[site]["value"], their_trace.nodes[site]["value"])
    expected = their_trace.log_prob_sum().item()
    assert our_trace.log_prob_sum().item() == pytest.approx(expected, rel=1e-5, abs=1e-5)


def test_dense_gaussian_guide_matches_pyro():
    from pyrolite.infer.autoguide.gaussian import AutoGaussian

    def make(p, d):
        def model():
            a = p.sample("a", d.Normal(0.0, 1.0))
            with p.plate("p", 3):
                b = p.sample("b", d.Normal(a, 1.0))
            p.sample("e", d.LogNormal(torch.zeros(2) + b.sum(), 1.0).to_event(1))

        return model

    theirs = pyro_autoguide.AutoGaussian(make(pyro, pyro_dist))
    ours = AutoGaussian(make(pyrolite, dist))
    theirs()
    ours()
    assert list(pyrolite.get_param_store().keys()) == list(pyro.get_param_store().keys())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    torch.manual_seed(0)
    with torch.no_grad():
        for p in theirs.parameters():
            p.add_(0.3 * torch.randn_like(p))
    store = pyrolite.get_param_store()
    for key, value in pyro.get_param_store().items():
        store[key] = value.detach().clone()
    their_trace = pyro.poutine.trace(theirs).get_trace()
    latent = {"_AutoGaussianDense_latent": their_trace.nodes["_AutoGaussianDense_latent"]["value"]}
    our_trace = poutine.trace(poutine.condition(ours, data=latent)).get_trace()
    for site in ["a", "b", "e"]:
        assert torch.allclose(our_trace.nodes[site]["value"], their_trace.nodes[site]["value"])
    expected = their_trace.log_prob_sum().item()
    assert our_trace.log_prob_sum().item() == pytest.approx(expected, rel=1e-5, abs=1e-5)
    for site, value in theirs.median().items():
        assert torch.allclose(ours.median()[site], value.detach(), atol=1e-5)
