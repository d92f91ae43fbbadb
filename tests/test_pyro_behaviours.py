"""Behaviours where pyrolite once differed from Pyro 1.9, each reproduced against Pyro:
observe-outside-inference warnings, params under no_grad, mismatched subsample sizes,
edge-only topological sort, obs_mask site semantics, and ``ParamStore._params``."""

import warnings

import pytest
import torch

import pyrolite
import pyrolite.distributions as dist
from pyrolite import infer, optim, poutine

OBSERVE_OUTSIDE = "trying to observe a value outside of inference at"


def _caught(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - the outcome is part of the comparison
            return [("raised", type(e).__name__)]
    return [(w.category.__name__, str(w.message)) for w in caught]


def _observe_cases(lib, d):
    x = torch.tensor(1.0)

    def in_plate():
        with lib.plate("p", 3):
            lib.sample("x", d.Normal(0.0, 1.0), obs=torch.ones(3))

    def sequential_plate():
        for _ in lib.plate("s", 2):
            lib.sample("y", d.Normal(0.0, 1.0), obs=x)

    return {
        "observed": lambda: lib.sample("x", d.Normal(0.0, 1.0), obs=x),
        "latent": lambda: lib.sample("x", d.Normal(0.0, 1.0)),
        "obs_none": lambda: lib.sample("x", d.Normal(0.0, 1.0), obs=None),
        "in_plate": in_plate,
        "sequential_plate": sequential_plate,
        "under_trace": lambda: lib.poutine.trace(
            lambda: lib.sample("x", d.Normal(0.0, 1.0), obs=x)
        ).get_trace(),
        "deterministic": lambda: lib.deterministic("d", x),
        "factor": lambda: lib.factor("f", x),
        "obs_mask": lambda: lib.sample(
            "x", d.Normal(0.0, 1.0), obs=torch.ones(2), obs_mask=torch.tensor([True, False])
        ),
    }


def test_observing_outside_inference_warns():
    got = {k: _caught(fn) for k, fn in _observe_cases(pyrolite, dist).items()}
    assert got["observed"] == [("RuntimeWarning", f"{OBSERVE_OUTSIDE} x")]
    assert got["factor"] == [("RuntimeWarning", f"{OBSERVE_OUTSIDE} f")]
    assert all(got[k] == [] for k in got if k not in ("observed", "factor"))
    # the value is still returned
    obs = torch.tensor(2.5)
    with pytest.warns(RuntimeWarning, match=OBSERVE_OUTSIDE):
        assert pyrolite.sample("y", dist.Normal(0.0, 1.0), obs=obs) is obs


def test_observing_outside_inference_warns_exactly_where_pyro_does():
    pyro = pytest.importorskip("pyro")
    import pyro.distributions as pdist

    ours = {k: _caught(fn) for k, fn in _observe_cases(pyrolite, dist).items()}
    theirs = {k: _caught(fn) for k, fn in _observe_cases(pyro, pdist).items()}
    assert ours == theirs


def _model(data):
    loc = pyrolite.sample("loc", dist.Normal(0.0, 1.0))
    with pyrolite.plate("data", len(data), subsample_size=2) as idx:
        pyrolite.sample("obs", dist.Normal(loc, 1.0), obs=data[idx])


def _guide(data):
    q = pyrolite.param("q", torch.tensor(0.0))
    pyrolite.sample("loc", dist.Normal(q, 1.0))


def test_ordinary_inference_does_not_warn_about_observations():
    data = torch.randn(6)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=OBSERVE_OUTSIDE)
        for elbo in (infer.Trace_ELBO(), infer.TraceGraph_ELBO(), infer.TraceMeanField_ELBO()):
            svi = infer.SVI(_model, _guide, optim.Adam({"lr": 0.01}), elbo)
            assert torch.isfinite(torch.tensor(svi.step(data)))
        auto = infer.autoguide.AutoNormal(_model)
        svi = infer.SVI(_model, auto, optim.Adam({"lr": 0.01}), infer.Trace_ELBO())
        svi.step(data)
        samples = infer.Predictive(_model, guide=auto, num_samples=3)(data)
        assert samples["obs"].shape == (3, 2)


def test_param_read_under_no_grad_is_silent_as_in_pyro():
    pyrolite.param("a", torch.tensor(1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with torch.no_grad():
            value = pyrolite.param("a")
            pyrolite.param("b", torch.tensor(2.0))
            poutine.trace(lambda: pyrolite.param("a")).get_trace()
    assert value.item() == 1.0


def test_param_under_no_grad_matches_pyro():
    pyro = pytest.importorskip("pyro")

    def reads(lib):
        lib.clear_param_store()
        lib.param("a", torch.tensor(1.0))

        def run():
            with torch.no_grad():
                lib.param("a")
                lib.param("b", torch.tensor(2.0))

        return _caught(run)

    assert reads(pyrolite) == reads(pyro) == []


def _subsample_programs(lib, d, model_size, guide_size, n=100, guide_n=100):
    data = torch.arange(float(n))

    def model():
        loc = lib.sample("loc", d.Normal(0.0, 1.0))
        with lib.plate("data", n, subsample_size=model_size) as idx:
            lib.sample("obs", d.Normal(loc, 1.0), obs=data[idx])

    def guide():
        q = lib.param("q", torch.tensor(0.0))
        lib.sample("loc", d.Normal(q, 1.0))
        with lib.plate("data", guide_n, subsample_size=guide_size):
            pass

    return model, guide


@pytest.mark.parametrize(
    "elbo", ["Trace_ELBO", "TraceGraph_ELBO", "TraceEnum_ELBO", "TraceMeanField_ELBO"]
)
def test_mismatched_subsample_sizes_raise_value_error(elbo):
    model, guide = _subsample_programs(pyrolite, dist, 10, 5)
    svi = infer.SVI(model, guide, optim.Adam({"lr": 0.1}), getattr(infer, elbo)())
    with pytest.raises(
        ValueError, match=r"subsample_size does not match len\(subsample\), 10 vs 5"
    ):
        svi.step()
    model, guide = _subsample_programs(pyrolite, dist, 10, 10)
    svi = infer.SVI(model, guide, optim.Adam({"lr": 0.1}), getattr(infer, elbo)())
    assert torch.isfinite(torch.tensor(svi.step()))


def test_mismatched_subsample_raises_in_the_replayed_plate():
    model, guide = _subsample_programs(pyrolite, dist, 10, 5)
    guide_trace = poutine.trace(guide).get_trace()
    with pytest.raises(ValueError, match="Did you accidentally use different subsample_size"):
        poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace()
    # a different plate size with the same subsample_size is not checked (as in Pyro)
    model, guide = _subsample_programs(pyrolite, dist, 10, 10, guide_n=50)
    guide_trace = poutine.trace(guide).get_trace()
    tr = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace()
    assert tr.nodes["data"]["value"].shape == (10,)


def test_mismatched_subsample_matches_pyro():
    pyro = pytest.importorskip("pyro")
    import pyro.distributions as pdist

    def outcome(lib, d, sizes):
        lib.clear_param_store()
        model, guide = _subsample_programs(lib, d, *sizes)
        svi = lib.infer.SVI(model, guide, lib.optim.Adam({"lr": 0.1}), lib.infer.Trace_ELBO())
        try:
            svi.step()
            return "ok"
        except ValueError as e:
            return str(e).split("Did you")[0].split("subsample_size does not match")[1]

    for sizes in [(10, 5), (3, 7), (4, 4)]:
        assert outcome(pyrolite, dist, sizes) == outcome(pyro, pdist, sizes)


def _is_topological(order, edges):
    position = {n: i for i, n in enumerate(order)}
    return all(position[a] < position[b] for a, b in edges)


def test_topological_sort_of_an_edge_only_graph():
    edges = [("a", "b"), ("b", "c"), ("a", "c"), ("d", "c")]
    tr = poutine.Trace()
    for src, dst in edges:
        tr.add_edge(src, dst)
    order = tr.topological_sort()
    assert sorted(order) == ["a", "b", "c", "d"] and _is_topological(order, edges)
    assert tr.topological_sort(reverse=True) == order[::-1]
    assert list(tr.nodes) == ["a", "b", "c", "d"] and tr.nodes["a"]["type"] == "node"


def test_topological_sort_agrees_with_pyro_where_the_order_is_unique():
    # Pyro breaks ties by the iteration order of Python sets of names (it changes with
    # PYTHONHASHSEED), pyrolite by insertion order; where the graph fixes the order the
    # two agree, and every order either returns is a topological order of the same graph.
    pyro_poutine = pytest.importorskip("pyro.poutine")
    graphs = [
        [("c", "b"), ("b", "a")],
        [("x", "y"), ("y", "z"), ("x", "z")],
        [("a", "b"), ("b", "c"), ("a", "c"), ("d", "c")],
        [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")],
    ]
    for edges in graphs:
        ours, theirs = poutine.Trace(), pyro_poutine.Trace()
        for src, dst in edges:
            ours.add_edge(src, dst)
            theirs.add_edge(src, dst)
        assert list(ours.nodes) == list(theirs.nodes)
        mine, pyros = ours.topological_sort(), theirs.topological_sort()
        assert sorted(mine) == sorted(pyros)
        assert _is_topological(mine, edges) and _is_topological(pyros, edges)
    chain = graphs[0]
    ours, theirs = poutine.Trace(), pyro_poutine.Trace()
    for src, dst in chain:
        ours.add_edge(src, dst)
        theirs.add_edge(src, dst)
    assert ours.topological_sort() == theirs.topological_sort() == ["c", "b", "a"]
    assert ours.topological_sort(True) == theirs.topological_sort(True) == ["a", "b", "c"]


DATA = torch.tensor([1.0, 2.0, 3.0])
MASK = torch.tensor([True, False, True])


def _obs_mask_models(lib, d):
    def no_plate(obs=DATA):
        return lib.sample("x", d.Normal(0.0, 1.0), obs=obs, obs_mask=MASK)

    def plated():
        with lib.plate("p", 3):
            return lib.sample("x", d.Normal(0.0, 1.0), obs=DATA, obs_mask=MASK)

    def event():
        with lib.plate("p", 3):
            mvn = d.MultivariateNormal(torch.zeros(2), torch.eye(2))
            return lib.sample("x", mvn, obs=torch.ones(3, 2), obs_mask=MASK)

    def two_plates():
        with lib.plate("p", 2, dim=-2), lib.plate("q", 3):
            return lib.sample("x", d.Normal(0.0, 1.0), obs=DATA, obs_mask=MASK)

    return [no_plate, lambda: no_plate(None), plated, event, two_plates]


def _obs_mask_summary(lib, model):
    lib.set_rng_seed(0)
    tr = lib.poutine.trace(model).get_trace()
    tr.compute_log_prob()
    out = {}
    for name, site in tr.nodes.items():
        if site["type"] != "sample" or not name.startswith("x"):
            continue
        mask = site["mask"]
        out[name] = {
            "is_observed": site["is_observed"],
            "value": site["value"],
            "log_prob": site["log_prob"],
            "mask": None if mask is None else mask.tolist(),
            "deterministic": bool(site["infer"].get("_deterministic")),
        }
    return list(tr.nodes), out


def test_obs_mask_sites_and_shapes():
    _, sites = _obs_mask_summary(pyrolite, _obs_mask_models(pyrolite, dist)[0])
    observed, latent, merged = sites["x_observed"], sites["x_unobserved"], sites["x"]
    assert observed["is_observed"] and not latent["is_observed"] and merged["deterministic"]
    assert observed["mask"] == [True, False, True] and latent["mask"] == [False, True, False]
    # outside a plate the latent part is one draw of the unexpanded distribution
    assert latent["value"].shape == () and observed["value"].shape == (3,)
    assert latent["log_prob"].shape == (3,) and latent["log_prob"][[0, 2]].tolist() == [0.0, 0.0]
    normal = torch.distributions.Normal(0.0, 1.0)
    assert torch.allclose(observed["log_prob"], normal.log_prob(DATA) * MASK)
    assert torch.equal(merged["value"], torch.where(MASK, DATA, latent["value"]))
    assert merged["log_prob"].tolist() == [0.0, 0.0, 0.0]


def test_obs_mask_without_obs_samples_both_parts():
    _, sites = _obs_mask_summary(pyrolite, _obs_mask_models(pyrolite, dist)[1])
    assert not sites["x_observed"]["is_observed"] and not sites["x_unobserved"]["is_observed"]
    merged = sites["x"]["value"]
    assert merged.shape == (3,)
    assert merged[0] == sites["x_observed"]["value"] and merged[1] == sites["x_unobserved"]["value"]


def test_obs_mask_matches_pyro():
    pyro = pytest.importorskip("pyro")
    import pyro.distributions as pdist

    for ours_model, their_model in zip(
        _obs_mask_models(pyrolite, dist), _obs_mask_models(pyro, pdist)
    ):
        our_nodes, ours = _obs_mask_summary(pyrolite, ours_model)
        their_nodes, theirs = _obs_mask_summary(pyro, their_model)
        assert [n for n in our_nodes if n.startswith("x")] == [
            n for n in their_nodes if n.startswith("x")
        ]
        assert ours.keys() == theirs.keys()
        for name in ours:
            a, b = ours[name], theirs[name]
            assert a["is_observed"] == b["is_observed"] and a["mask"] == b["mask"], name
            assert a["deterministic"] == b["deterministic"], name
            assert a["value"].shape == b["value"].shape, name
            assert a["log_prob"].shape == b["log_prob"].shape, name
            # same seed, same draws (torch's normal sampler under both)
            assert torch.allclose(a["value"], b["value"]), name
            assert torch.allclose(a["log_prob"], b["log_prob"], atol=1e-6), name


def test_params_view_is_read_only_and_live():
    from torch.distributions import constraints

    store = pyrolite.get_param_store()
    pyrolite.param("s", torch.tensor(2.0), constraint=constraints.positive)
    pyrolite.param("w", torch.tensor([1.0, 2.0]))
    view = store._params
    assert sorted(view) == ["s", "w"] and len(view) == 2 and "s" in view
    assert view["s"].item() == pytest.approx(torch.tensor(2.0).log().item())
    assert view["s"].requires_grad and view["s"].is_leaf
    assert view["w"] is store.unconstrained("w")
    with pytest.raises(TypeError):
        view["s"] = torch.tensor(0.0)
    with pytest.raises(KeyError):
        view["missing"]
    pyrolite.param("t", torch.tensor(0.5))
    assert "t" in view  # live
    assert {k: v.tolist() for k, v in view.items()} == {
        k: store.unconstrained(k).tolist() for k in store.keys()
    }


def test_params_view_matches_pyro():
    pyro = pytest.importorskip("pyro")
    from torch.distributions import constraints

    views = []
    for lib in (pyrolite, pyro):
        lib.clear_param_store()
        lib.param("s", torch.tensor([2.0, 3.0]), constraint=constraints.positive)
        lib.param("u", torch.tensor(0.25), constraint=constraints.unit_interval)
        views.append({k: v.detach() for k, v in lib.get_param_store()._params.items()})
    assert views[0].keys() == views[1].keys()
    for name in views[0]:
        assert torch.allclose(views[0][name], views[1][name])
