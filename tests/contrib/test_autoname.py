"""scope and name_count give sample sites the same names as Pyro's contrib.autoname."""

import pytest
import torch

import pyrolite
import pyrolite.distributions as dist
from pyrolite import poutine
from pyrolite.contrib.autoname import name_count, scope


def _programs(pyro, dist, scope, name_count):
    def normal():
        return dist.Normal(0.0, 1.0)

    @scope
    def f1():
        return pyro.sample("x", normal())

    @scope(prefix="inner_f", inner=True)
    def fi():
        return pyro.sample("x", normal())

    def repeated_scopes():
        f1()
        f1()
        with scope(prefix="s"):
            pyro.sample("y", normal())
        pyro.sample("y", normal())
        with scope(prefix="s"):
            pyro.sample("y", normal())

    def mixed():
        for _ in range(3):
            pyro.sample("x", normal())
        fi()
        fi()
        with scope(prefix="a"):
            pyro.sample("x", normal())
            pyro.param("p", torch.ones(1))
            with scope(prefix="b"):
                pyro.sample("x", normal())
        with scope(prefix="a"):
            pyro.sample("x", normal())

    @scope(prefix="outer")
    def nested():
        with scope(prefix="a"):
            pyro.sample("x", normal())
        f1()

    return {
        "repeated_scopes": name_count(repeated_scopes),
        "mixed": name_count(mixed),
        "nested": nested,
        "higher_order": scope(lambda: pyro.sample("x", normal()), prefix="h"),
        "twice_under_one_counter": name_count(lambda: [mixed(), f1()]),
        "duplicate_without_counter": repeated_scopes,
    }


def _names(poutine, fn):
    try:
        trace = poutine.trace(fn).get_trace()
    except RuntimeError:
        return "RuntimeError"
    return [n for n in trace.nodes if not n.startswith("_")]


def test_site_names_match_pyro():
    pyro = pytest.importorskip("pyro")
    pyro_dist = pytest.importorskip("pyro.distributions")
    pyro_poutine = pytest.importorskip("pyro.poutine")
    from pyro.contrib.autoname import name_count as pyro_name_count
    from pyro.contrib.autoname import scope as pyro_scope

    ours = _programs(pyrolite, dist, scope, name_count)
    theirs = _programs(pyro, pyro_dist, pyro_scope, pyro_name_count)
    for key in ours:
        assert _names(poutine, ours[key]) == _names(pyro_poutine, theirs[key]), key


def test_name_count_numbers_repeats_and_scope_entrances():
    programs = _programs(pyrolite, dist, scope, name_count)
    assert _names(poutine, programs["repeated_scopes"]) == ["f1/x", "f1__1/x", "s/y", "y", "s__1/y"]
    assert _names(poutine, programs["mixed"]) == [
        "x",
        "x__1",
        "x__2",
        "inner_f/x",
        "inner_f/x__1",
        "a/x",
        "p",  # params are not scoped
        "a/b/x",
        "a__1/x",
    ]
    assert _names(poutine, programs["nested"]) == ["outer/a/x", "outer/f1/x"]
    # each run of a counted model starts counting afresh
    assert _names(poutine, programs["mixed"])[:2] == ["x", "x__1"]


def test_repeated_names_without_name_count_are_an_error():
    programs = _programs(pyrolite, dist, scope, name_count)
    assert _names(poutine, programs["duplicate_without_counter"]) == "RuntimeError"


def test_scope_without_prefix_or_function_says_what_to_pass():
    with pytest.raises(ValueError, match="prefix"):
        scope()


# ---------------------------------------------------------------------------------------
# autoname and sample


def _autoname_programs(pyro, dist, autoname, sample, scope, name_count):
    def bern():
        return dist.Bernoulli(0.5)

    @autoname
    def f1():
        return sample(bern())

    @autoname
    def f2():
        f1()
        f1()
        sample(bern())

    @autoname(name="model")
    def loops():
        for _ in autoname(range(3), name="time"):
            sample(bern())
            f1()
        for _ in autoname(range(2), name="t"):
            for _ in autoname(range(2), name="u"):
                sample("x", dist.Normal(0.0, 1.0))

    def with_block():
        with autoname(name="prefix"):
            f1()
            f1()
            sample(bern())

    def repeated_names():
        sample("x", bern())
        sample(bern())
        sample(bern())
        sample(bern())
        sample("x", bern())
        sample(dist.Normal(0.0, 1.0))
        sample("Normal", dist.Normal(0.0, 1.0))
        sample("x__1", dist.Normal(0.0, 1.0))
        sample(dist.Normal(0.0, 1.0).expand([2]).to_event(1))
        sample("y", dist.Normal(0.0, 1.0), obs=torch.tensor(0.5))

    def sites_and_scopes_share_a_counter():
        sample("f1", bern())
        f1()
        f1()
        sample("f1", bern())

    @autoname
    def rec(n):
        sample(bern())
        if n > 0:
            rec(n - 1)

    shared = autoname(name="A")

    def reentrant():
        with shared:
            sample(bern())
            with shared:
                sample(bern())
            with shared:
                sample(bern())

    def unnamed_with():
        with autoname():
            sample(bern())

    def mixed_handlers():
        with scope(prefix="s"):
            f1()
        pyro.sample("plain", bern())
        pyro.param("p", torch.ones(1))

    return {
        "f2": f2,
        "loops": loops,
        "with_block": with_block,
        "repeated_names": autoname(repeated_names),
        "sites_and_scopes_share_a_counter": autoname(sites_and_scopes_share_a_counter),
        "rec": lambda: rec(2),
        "reentrant": reentrant,
        "unnamed_with": unnamed_with,
        "decorator_without_name": autoname()(repeated_names),
        "higher_order": autoname(lambda: [f1(), f1()], name="h"),
        "mixed_handlers": autoname(mixed_handlers),
        "under_scope": scope(
            autoname(lambda: [sample(bern()), sample(bern())], name="a"), prefix="s"
        ),
        "under_name_count": name_count(
            autoname(lambda: [sample(bern()), sample(bern())], name="a")
        ),
        "no_autoname_twice": lambda: [sample(bern()), sample(bern())],
        "no_autoname_scopes_twice": lambda: [f1(), f1()],
        "collision": autoname(
            lambda: [sample("x", bern()), sample("x", bern()), sample("x1", bern())]
        ),
    }


def _names_values(poutine, fn, seed_fn):
    seed_fn(0)
    try:
        trace = poutine.trace(fn).get_trace()
    except RuntimeError:
        return "RuntimeError", None
    nodes = [n for n in trace.nodes if not n.startswith("_")]
    values = [trace.nodes[n]["value"].detach() for n in nodes if trace.nodes[n]["type"] == "sample"]
    return nodes, values


def test_autoname_site_names_and_values_match_pyro():
    pyro = pytest.importorskip("pyro")
    pyro_dist = pytest.importorskip("pyro.distributions")
    pyro_poutine = pytest.importorskip("pyro.poutine")
    from pyro.contrib import autoname as pyro_an

    from pyrolite.contrib import autoname as an

    ours = _autoname_programs(pyrolite, dist, an.autoname, an.sample, an.scope, an.name_count)
    theirs = _autoname_programs(
        pyro, pyro_dist, pyro_an.autoname, pyro_an.sample, pyro_an.scope, pyro_an.name_count
    )
    for key in ours:
        pyro.clear_param_store()
        pyrolite.clear_param_store()
        our_names, our_values = _names_values(poutine, ours[key], pyrolite.set_rng_seed)
        their_names, their_values = _names_values(pyro_poutine, theirs[key], pyro.set_rng_seed)
        assert our_names == their_names, key
        if our_values is not None:
            for a, b in zip(our_values, their_values):
                assert torch.equal(a, b), key


def test_autoname_naming_rules():
    from pyrolite.contrib.autoname import autoname, sample

    programs = _autoname_programs(pyrolite, dist, autoname, sample, scope, name_count)
    names = lambda key: _names_values(poutine, programs[key], pyrolite.set_rng_seed)[0]  # noqa: E731
    assert names("f2") == ["f2/f1/Bernoulli", "f2/f1__1/Bernoulli", "f2/Bernoulli"]
    assert names("loops")[:4] == [
        "model/time/Bernoulli",
        "model/time/f1/Bernoulli",
        "model/time__1/Bernoulli",
        "model/time__1/f1/Bernoulli",
    ]
    assert names("loops")[-4:] == [
        "model/t/u/x",
        "model/t/u__1/x",
        "model/t__1/u/x",
        "model/t__1/u__1/x",
    ]
    assert names("repeated_names") == [
        "repeated_names/x",
        "repeated_names/Bernoulli",
        "repeated_names/Bernoulli1",
        "repeated_names/Bernoulli2",
        "repeated_names/x1",
        "repeated_names/Normal",
        "repeated_names/Normal1",
        "repeated_names/x__1",
        "repeated_names/Independent",
        "repeated_names/y",
    ]
    # a site and a scope of the same name share one counter
    assert names("sites_and_scopes_share_a_counter") == [
        "sites_and_scopes_share_a_counter/f1",
        "sites_and_scopes_share_a_counter/f1__1/Bernoulli",
        "sites_and_scopes_share_a_counter/f1__2/Bernoulli",
        "sites_and_scopes_share_a_counter/f13",
    ]
    assert names("rec") == ["rec/Bernoulli", "rec/rec/Bernoulli", "rec/rec/rec/Bernoulli"]
    assert names("reentrant") == ["A/Bernoulli", "A/A/Bernoulli", "A/A__1/Bernoulli"]
    assert names("mixed_handlers") == ["s/mixed_handlers/f1/Bernoulli", "plain", "p"]
    # without an active autoname, names pass through (and so collide)
    assert names("no_autoname_twice") == "RuntimeError"
    assert names("no_autoname_scopes_twice") == "RuntimeError"
    # a fresh run counts afresh
    assert names("f2") == ["f2/f1/Bernoulli", "f2/f1__1/Bernoulli", "f2/Bernoulli"]


def test_autoname_errors_and_state_recovery():
    from pyrolite.contrib.autoname import autoname, autoname_messenger, sample

    with pytest.raises(TypeError, match="at least 1"):
        sample()
    with pytest.raises(TypeError, match="distribution"):
        sample("x")
    with pytest.raises(NotImplementedError, match="site name"):
        sample(3)
    with pytest.raises(AttributeError, match="name="):
        autoname(range(3))

    @autoname
    def bad():
        for _ in autoname(range(2), name="t"):
            sample(dist.Normal(0.0, 1.0))
            raise ValueError("boom")

    with pytest.raises(ValueError):
        bad()
    assert autoname_messenger._SCOPES == []
    model = autoname(lambda: sample(dist.Normal(0.0, 1.0)), name="m")
    assert list(poutine.trace(model).get_trace().nodes)[1] == "m/Normal"


# ---------------------------------------------------------------------------------------
# named


def _named_model(pyro, dist, named, constraints):
    def model():
        state = named.Object("state")
        loc = state.loc.param_(torch.zeros(1))
        scale = state.scale.param_(torch.ones(1), constraint=constraints.positive)
        z = state.z.sample_(dist.Normal(loc, scale))
        state.x.sample_(dist.Normal(loc, scale), obs=z)
        state.xs = named.List()
        for _ in range(2):
            state.xs.add().sample_(dist.Normal(0.0, 1.0))
        state.d = named.Dict()
        state.d["k"].sample_(dist.Normal(0.0, 1.0))
        state.d[3].sample_(dist.Normal(0.0, 1.0))
        state.d[(1, 2)].param_(torch.ones(2))
        state.a.b.sample_(dist.Normal(0.0, 1.0))
        roots = named.List("lst"), named.Dict("dd")
        roots[0].add().sample_(dist.Normal(0.0, 1.0))
        roots[1]["q"].sample_(dist.Normal(0.0, 1.0))
        state.ln = named.List()
        state.ln.add().inner = named.List()
        state.ln[0].inner.add().sample_(dist.Normal(0.0, 1.0))
        return state

    return model


def test_named_site_names_and_values_match_pyro():
    pyro = pytest.importorskip("pyro")
    pyro_dist = pytest.importorskip("pyro.distributions")
    pyro_poutine = pytest.importorskip("pyro.poutine")
    from pyro.contrib.autoname import named as pyro_named

    from pyrolite.contrib.autoname import named
    from pyrolite.distributions import constraints

    pyro.clear_param_store()
    ours = _names_values(
        poutine, _named_model(pyrolite, dist, named, constraints), pyrolite.set_rng_seed
    )
    theirs = _names_values(
        pyro_poutine,
        _named_model(pyro, pyro_dist, pyro_named, pyro_dist.constraints),
        pyro.set_rng_seed,
    )
    assert ours[0] == theirs[0]
    for a, b in zip(ours[1], theirs[1]):
        assert torch.equal(a, b)
    assert "state.d[(1, 2)]" in ours[0] and "state.ln[0].inner[0]" in ours[0]


def test_named_containers_rules():
    from pyrolite.contrib.autoname import named

    state = named.Object("state")
    assert str(state) == "state" and str(state.x.y.z) == "state.x.y.z"
    assert state.x is state.x
    state.xs = named.List()
    assert [str(state.xs.add()), str(state.xs.add())] == ["state.xs[0]", "state.xs[1]"]
    assert str(state.xs) == "state.xs" and len(state.xs) == 2
    state.ys = named.Dict()
    assert str(state.ys["foo"]) == "state.ys['foo']" and state.ys["foo"] is state.ys["foo"]
    with poutine.trace() as tr:
        value = state.z.sample_(dist.Normal(0.0, 1.0))
        assert state.z is value  # the draw takes the placeholder's place
        first = state.xs[0].sample_(dist.Normal(0.0, 1.0))
        assert state.xs[0] is first
        item = state.ys["foo"].param_(torch.ones(2))
        assert state.ys["foo"] is item and item.shape == (2,)
    assert list(tr.trace.nodes) == ["state.z", "state.xs[0]", "state.ys['foo']"]

    state.v = 3
    with pytest.raises(RuntimeError, match="Cannot overwrite state.v"):
        state.v = 4
    assert isinstance(state.w, named.Object)  # a placeholder may be replaced by a value
    state.w = 5
    assert state.w == 5
    state.a.b = 1
    with pytest.raises(RuntimeError, match="initialized named.Object state.a"):
        state.a.sample_(dist.Normal(0.0, 1.0))
    with pytest.raises(RuntimeError, match="Cannot rename named.List: other"):
        state.other = named.List("other")
    with pytest.raises(RuntimeError, match="Cannot rename named.Dict: dn"):
        state.dn = named.Dict("dn")
    with pytest.raises(RuntimeError, match="before storing"):
        named.List().add()
    with pytest.raises(RuntimeError, match="unnamed named.Dict"):
        named.Dict()["a"]
    with pytest.raises(TypeError, match="not made by a container"):
        named.Object("root").sample_(dist.Normal(0.0, 1.0))
    assert not hasattr(state, "__deepcopy_hook__")  # dunders are not placeholders
