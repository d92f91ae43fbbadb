"""``pyrolite.infer.inspect``: model relations, dependencies and rendering, checked against
known structures and, where installed, against Pyro's on the same models."""

import contextlib
import random
import sys

import pytest
import torch

import pyrolite
import pyrolite.distributions as pdist
from pyrolite.infer.inspect import (
    TrackProvenance,
    generate_graph_specification,
    get_dependencies,
    get_model_relations,
    get_provenance,
    is_sample_site,
    render_graph,
    render_model,
    site_is_deterministic,
)

try:
    import pyro
    import pyro.distributions as pyro_dist
    import pyro.infer.inspect as pyro_inspect
except ImportError:
    pyro = None

needs_pyro = pytest.mark.skipif(pyro is None, reason="pyro-ppl (the oracle) is not installed")


def _libs():
    libs = [(pyrolite, pdist, sys.modules[__name__])]
    if pyro is not None:
        libs.append((pyro, pyro_dist, pyro_inspect))
    return libs


# Models written once for both libraries: ``p`` is pyrolite or pyro, ``d`` its distributions.


def model_conjugate(p, d):
    def model(data):
        m = p.sample("m", d.Normal(0.0, 1.0))
        sd = p.sample("sd", d.LogNormal(m, 1.0))
        s = p.param("s", torch.tensor(1.0), constraint=d.constraints.positive)
        det = p.deterministic("det", m * 2)
        with p.plate("N", len(data)):
            p.sample("obs", d.Normal(m + det, sd * s), obs=data)

    return model, (torch.ones(3),)


def model_wrappers(p, d):
    def model(x):
        a = p.sample("a", d.Normal(torch.zeros(2), 1.0).to_event(1))
        w = p.param("w", torch.ones(2))
        with p.plate("outer", 3, subsample_size=2):
            b = p.sample("b", d.Normal(a.sum(), 1.0).expand([2]).mask(True))
            with p.plate("inner", 4, dim=-2):
                p.sample("c", d.Bernoulli(logits=b * w.sum()))
        for i in p.plate("seq", 2):
            p.sample(f"z_{i}", d.Normal(0.0, 1.0))
        e = p.sample("e", d.Delta(a.sum()))
        p.factor("f", e)
        p.sample("y", d.MultivariateNormal(torch.zeros(2), torch.eye(2)), obs=x)

    return model, (torch.ones(2),)


def model_nested(p, d):
    def model():
        with p.plate("A", 2, dim=-1):
            with p.plate("B", 2, dim=-2):
                with p.plate("C", 2, dim=-3):
                    p.sample("x", d.Normal(0.0, 1.0))
                p.sample("y", d.Normal(0.0, 1.0))
            p.sample("z", d.Normal(0.0, 1.0))

    return model, ()


def model_clone(p, d):
    def model():
        p1, p2 = p.plate("p1", 2, dim=-1), p.plate("p2", 3, dim=-2)
        with p2:
            z = p.sample("z", d.Normal(0.0, 1.0))
        with p1, p2:
            x = p.sample("x", d.Normal(z, 1.0))
        with p1:
            p.sample("y", d.Normal(x.sum(0), 1.0), obs=torch.zeros(2))

    return model, ()


def model_moral(p, d):
    def model():
        pl = p.plate("p", 2, dim=-1)
        with pl:
            a = p.sample("a", d.Normal(0.0, 1.0))
            b = p.sample("b", d.LogNormal(0.0, 1.0))
        with p.plate("q", 3, dim=-2):
            c = p.sample("c", d.Normal(a.sum() + b.sum(), 1.0))
            with pl:
                p.sample("o", d.Normal(c + a, b), obs=torch.zeros(3, 2))
        for i in p.plate("s", 2):
            p.sample(f"u{i}", d.Normal(c.sum(), 1.0))

    return model, ()


def model_masked_obs(p, d):
    def model():
        a = p.sample("a", d.Normal(0.0, 1.0))
        x = p.sample(
            "x",
            d.Normal(torch.zeros(3) + a, 1.0),
            obs=torch.zeros(3),
            obs_mask=torch.tensor([True, False, True]),
        )
        with p.poutine.mask(mask=False):
            o = p.sample("o", d.Normal(a, 1.0), obs=torch.tensor(1.0))
        g = p.sample("g", d.Normal(a, 1.0).mask(False))
        h = p.sample("h", d.Normal(0.0, 1.0), obs=a * 2)
        p.sample("q", d.Normal(x.sum() + o + g + h, 1.0))

    return model, ()


def model_chain(p, d):
    def model(y):
        s = p.sample("s", d.LogNormal(0.0, 1.0))
        prev = p.sample("y0", d.Normal(0.0, s), obs=y[0])
        for t in range(1, len(y)):
            prev = p.sample(f"y{t}", d.Normal(prev, 1.0), obs=y[t])
        p.sample("z", d.Normal(prev, 1.0))

    return model, (torch.ones(3),)


def model_semisupervised(p, d):
    def model(x, y=None):
        a = p.sample("a", d.Normal(0.0, 1.0))
        with p.plate("N", len(x)):
            yy = p.sample("y", d.Bernoulli(logits=a + 0 * x), obs=y)
            p.sample("x", d.Normal(yy, 1.0), obs=x)

    return model, (torch.zeros(3),)


MODELS = [
    model_conjugate,
    model_wrappers,
    model_nested,
    model_clone,
    model_moral,
    model_masked_obs,
    model_chain,
    model_semisupervised,
]


@contextlib.contextmanager
def _fresh(p):
    p.clear_param_store()
    yield


# --- analytic structure (no Pyro needed) -------------------------------------------------


def test_relations_of_conjugate_model():
    model, args = model_conjugate(pyrolite, pdist)
    r = get_model_relations(model, args)
    assert r == {
        "sample_sample": {"m": [], "sd": ["m"], "det": ["m"], "obs": ["m", "sd"]},
        "sample_param": {"m": [], "sd": [], "det": [], "obs": ["s"]},
        "sample_dist": {"m": "Normal", "sd": "LogNormal", "det": "Deterministic", "obs": "Normal"},
        "param_constraint": {"s": "GreaterThan(lower_bound=0.0)"},
        "plate_sample": {"N": ["obs"]},
        "observed": ["det", "obs"],
    }
    # With deterministic sites tracked, obs depends on det itself.
    r = get_model_relations(model, args, include_deterministic=True)
    assert r["sample_sample"]["obs"] == ["m", "sd", "det"]


def test_relations_unwrap_distributions_and_skip_subsample_sites():
    model, args = model_wrappers(pyrolite, pdist)
    r = get_model_relations(model, args)
    assert r["sample_dist"] == {
        "a": "Normal",
        "b": "Normal",
        "c": "Bernoulli",
        "z_0": "Normal",
        "z_1": "Normal",
        "e": "Delta",
        "f": "Unit",
        "y": "MultivariateNormal",
    }
    assert r["sample_sample"]["c"] == ["b"] and r["sample_param"]["c"] == ["w"]
    # The Delta site e is no provenance source: f depends on a through e's value.
    assert r["sample_sample"]["f"] == ["a"]
    assert r["plate_sample"] == {"outer": ["b", "c"], "inner": ["c"], "seq": ["z_0", "z_1"]}


def test_inconsistent_plate_nesting_is_split_into_a_clone():
    model, _ = model_clone(pyrolite, pdist)
    r = get_model_relations(model)
    assert r["plate_sample"] == {"p2": ["z", "x"], "p1": ["x"], "p1__CLONE": ["y"]}
    spec = generate_graph_specification(r)
    assert spec["plate_data"] == {
        "p1": {"parent": "p2"},
        "p2": {"parent": None},
        "p1__CLONE": {"parent": None},
    }


def test_dependencies_moralize_and_mark_all_to_all_plates():
    model, _ = model_moral(pyrolite, pdist)
    deps = get_dependencies(model)
    assert deps["prior_dependencies"]["o"] == {"o": set(), "a": set(), "b": set(), "c": set()}
    post = deps["posterior_dependencies"]
    # a, b share the child c, which lies outside their plate p: all-to-all across p.
    assert post["a"] == {"a": {"p"}, "c": set(), "o": set(), "b": {"p"}}
    # c (plate q) feeds the u_i outside q; the sequential plate s induces no plate.
    assert post["c"] == {"c": {"q"}, "o": set(), "u0": set(), "u1": set()}
    assert "o" not in post


def test_dependencies_docstring_example():
    def model():
        with pyrolite.plate("p", 5):
            a = pyrolite.sample("a", pdist.Normal(0.0, 1.0))
        pyrolite.sample("b", pdist.Normal(a.sum(), 1.0), obs=torch.tensor(0.0))

    assert get_dependencies(model) == {
        "prior_dependencies": {"a": {"a": set()}, "b": {"a": set(), "b": set()}},
        "posterior_dependencies": {"a": {"a": {"p"}, "b": set()}},
    }


def test_inspection_leaves_rng_and_grad_mode_alone():
    seen = {}

    def model():
        seen["grad"] = torch.is_grad_enabled()
        pyrolite.sample("x", pdist.Normal(0.0, 1.0))

    torch.manual_seed(3)
    expected = torch.rand(2)
    torch.manual_seed(3)
    get_model_relations(model)
    get_dependencies(model)
    assert torch.equal(torch.rand(2), expected)
    assert seen["grad"] is False and torch.is_grad_enabled()


def test_track_provenance_replaces_marks_and_tracks_params():
    with TrackProvenance(include_deterministic=True):
        x = pyrolite.sample("x", pdist.Normal(0.0, 1.0))
        w = pyrolite.param("w", torch.tensor(2.0))
        y = pyrolite.deterministic("y", x + 1)
    assert get_provenance(x * w) == frozenset({"x", "w"})
    assert get_provenance(y) == frozenset({"y"})


def test_is_sample_site_rules():
    def msg(**kw):
        m = {"type": "sample", "is_observed": False, "mask": None, "infer": {}}
        m["fn"] = pdist.Normal(0.0, 1.0)
        m.update(kw)
        return m

    delta = pdist.Delta(torch.ones(2))
    cases = {
        "plain": (msg(), True, True),
        "observed masked out": (msg(is_observed=True, mask=False), False, True),
        "latent masked out": (msg(mask=False), True, True),
        "delta": (msg(fn=delta), False, True),
        "wrapped delta": (msg(fn=delta.mask(False).to_event(1)), False, True),
        "param": (msg(type="param"), False, False),
        "subsample": (msg(infer={"_subsample": True}), False, False),
    }
    for name, (m, plain, with_det) in cases.items():
        assert is_sample_site(m) is plain, name
        assert is_sample_site(m, include_deterministic=True) is with_det, name
    assert site_is_deterministic(msg(infer={"_deterministic": True}))
    assert not site_is_deterministic(msg(type="param", infer={"_deterministic": True}))


def test_overlapping_plates_in_a_hand_made_spec_raise():
    relations = {
        "sample_sample": {"u": [], "v": [], "w": []},
        "sample_param": {"u": [], "v": [], "w": []},
        "sample_dist": {"u": "Normal", "v": "Normal", "w": "Normal"},
        "param_constraint": {},
        "plate_sample": {"X": ["v", "w"], "Y": ["v", "u"]},
        "observed": [],
    }
    with pytest.raises(NotImplementedError, match="'X','Y'"):
        generate_graph_specification(relations)


def test_render_model_source():
    pytest.importorskip("graphviz")
    model, args = model_conjugate(pyrolite, pdist)
    graph = render_model(model, args, render_distributions=True)
    assert graph.source == (
        "digraph {\n"
        "\tm [label=m fillcolor=white shape=ellipse style=filled]\n"
        "\tsd [label=sd fillcolor=white shape=ellipse style=filled]\n"
        '\tdet [label=det fillcolor=gray shape=ellipse style="filled,dashed"]\n'
        "\tsubgraph cluster_N {\n"
        "\t\tlabel=N labeljust=r labelloc=b\n"
        "\t\tobs [label=obs fillcolor=gray shape=ellipse style=filled]\n"
        "\t}\n"
        "\tm -> sd\n"
        "\tm -> det\n"
        "\tm -> obs\n"
        "\tsd -> obs\n"
        '\tdistribution_description_node [label="m ~ Normal\\lsd ~ LogNormal\\l'
        'det ~ Deterministic\\lobs ~ Normal\\l" shape=plaintext]\n'
        "}\n"
    )


def test_render_model_merges_runs_and_half_fills_sometimes_observed_sites():
    pytest.importorskip("graphviz")
    model, (x,) = model_semisupervised(pyrolite, pdist)
    graph = render_model(model, [(x,), (x,)], [{"y": torch.ones(3)}, {}])
    assert 'y [label=y fillcolor="gray:white"' in graph.source
    with pytest.raises(AssertionError, match="same length"):
        render_model(model, [(x,)], [{}, {}])


@needs_pyro
def test_render_graph_nests_clusters_as_pyro_on_a_hand_made_spec():
    pytest.importorskip("graphviz")
    node = {"is_observed": False, "distribution": "Normal"}
    spec = {
        "plate_groups": {"A": ["x", "y"], "B": ["x"], "C": ["y"], "D": ["q"], None: ["r"]},
        "plate_data": {
            "A": {"parent": None},
            "C": {"parent": "A"},
            "D": {"parent": None},
            "B": {"parent": "A"},
        },
        "node_data": {n: dict(node) for n in "xyqr"},
        "edge_list": [("r", "x")],
    }
    ours = render_graph(spec, render_distributions=True).source
    assert ours == pyro_inspect.render_graph(spec, render_distributions=True).source
    # A cluster is attached once its children are in it: D (a leaf) precedes A.
    assert ours.index("cluster_D") < ours.index("cluster_A") < ours.index("cluster_C")


def test_render_model_without_graphviz_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)
    model, args = model_conjugate(pyrolite, pdist)
    with pytest.raises(ImportError, match=r"pip install pyrolite\[render\]"):
        render_model(model, args)


def test_render_model_to_a_file_without_dot_raises_graphviz_error(tmp_path, monkeypatch):
    graphviz = pytest.importorskip("graphviz")
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` on it
    model, args = model_conjugate(pyrolite, pdist)
    with pytest.raises(graphviz.ExecutableNotFound, match="dot"):
        render_model(model, args, filename=str(tmp_path / "model.pdf"))


# --- Pyro as the oracle ---------------------------------------------------------------


def _run_both(make, fn_name, *args, **kwargs):
    results = []
    for p, d, module in _libs():
        model, model_args = make(p, d)
        with _fresh(p):
            torch.manual_seed(0)
            results.append(getattr(module, fn_name)(model, model_args, *args, **kwargs))
    return results


@needs_pyro
@pytest.mark.parametrize("make", MODELS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("include_deterministic", [False, True])
def test_relations_and_dependencies_match_pyro(make, include_deterministic):
    ours, theirs = _run_both(
        make, "get_model_relations", include_deterministic=include_deterministic
    )
    assert ours == theirs
    ours, theirs = _run_both(make, "get_dependencies", include_deterministic=include_deterministic)
    assert ours == theirs
    ours, theirs = _run_both(make, "get_model_relations")
    for render_params in (False, True):
        ours_spec = generate_graph_specification(ours, render_params)
        theirs_spec = pyro_inspect.generate_graph_specification(theirs, render_params)
        # Pyro orders the params of the top-level group by set iteration (hash order).
        ours_spec["plate_groups"][None].sort()
        theirs_spec["plate_groups"][None].sort()
        assert ours_spec == theirs_spec


def _normalized(source: str, sort: bool) -> str:
    return "\n".join(sorted(source.split("\n"))) if sort else source


@needs_pyro
@pytest.mark.parametrize("make", MODELS, ids=lambda m: m.__name__)
@pytest.mark.parametrize(
    "flags", [(False, False, False), (True, False, False), (True, True, True), (False, True, False)]
)
def test_render_model_source_matches_pyro(make, flags):
    pytest.importorskip("graphviz")
    render_distributions, render_params, render_deterministic = flags
    ours, theirs = _run_both(
        make,
        "render_model",
        render_distributions=render_distributions,
        render_params=render_params,
        render_deterministic=render_deterministic,
    )
    # Only with params does Pyro's node order depend on hashing; then compare line sets.
    assert _normalized(ours.source, render_params) == _normalized(theirs.source, render_params)


@needs_pyro
def test_render_model_multiple_runs_match_pyro():
    pytest.importorskip("graphviz")
    sources = []
    for p, d, module in _libs():
        model, (x,) = model_semisupervised(p, d)
        graph = module.render_model(model, [(x,), (x,)], [{}, {"y": torch.ones(3)}], None, True)
        sources.append(graph.source)
    assert sources[0] == sources[1]


@needs_pyro
def test_plate_splitting_matches_pyro_on_random_nestings():
    rng = random.Random(0)
    dims = {"p": -1, "q": -2, "r": -3, "s": -4}
    for _ in range(25):
        spec = [
            (f"x{i}", rng.sample(list(dims), rng.randint(1, 3))) for i in range(rng.randint(2, 6))
        ]
        results = []
        for p, d, module in _libs():

            def model(p=p, d=d, spec=spec):
                plates = {k: p.plate(k, 2, dim=dim) for k, dim in dims.items()}
                for site, names in spec:
                    with contextlib.ExitStack() as stack:
                        for name in names:
                            stack.enter_context(plates[name])
                        p.sample(site, d.Normal(0.0, 1.0))

            relations = module.get_model_relations(model)
            try:
                plate_data = module.generate_graph_specification(relations)["plate_data"]
            except NotImplementedError:
                plate_data = "NotImplementedError"
            results.append((relations["plate_sample"], plate_data))
        assert results[0] == results[1], spec
