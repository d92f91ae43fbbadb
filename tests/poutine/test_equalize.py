"""``poutine.equalize``, ``poutine.unwrap``, ``barrier`` and ``log``: their semantics, and
Pyro's behaviour on the same programs where Pyro is installed."""

import functools
import logging

import pytest
import torch

import pyrolite
import pyrolite.distributions as pdist
from pyrolite import poutine
from pyrolite.poutine.equalize_messenger import EqualizeMessenger, equalize
from pyrolite.poutine.unwrap import unwrap
from pyrolite.runtime_extras import _make_logger, barrier, log

try:
    import pyro
    import pyro.distributions as pyro_dist
except ImportError:
    pyro = None

needs_pyro = pytest.mark.skipif(pyro is None, reason="pyro-ppl (the oracle) is not installed")


def categories_model(p, d):
    def per_category(category):
        shift = p.param(f"{category}_shift", torch.randn(1))
        mean = p.sample(f"{category}_mean", d.Normal(0.0, 1.0))
        std = p.sample(f"{category}_std", d.LogNormal(0.0, 1.0))
        return p.sample(f"{category}_values", d.Normal(mean + shift, std))

    def model(categories):
        return {c: per_category(c) for c in categories}

    return model


def plated_model(p, d):
    def model():
        with p.plate("p", 3):
            a = p.sample("a", d.Normal(torch.zeros(2), 1.0).to_event(1))
            b = p.sample("b", d.Normal(torch.ones(2), 2.0).to_event(1))
        c = p.sample("c", d.Normal(0.0, 1.0))
        return a, b, c

    return model


def test_equalize_replaces_later_sites_by_masked_point_masses():
    model = categories_model(pyrolite, pdist)
    tr = poutine.trace(equalize(model, ".+_std")).get_trace(["a", "b", "c"])
    first = tr.nodes["a_std"]
    for name in ("b_std", "c_std"):
        site = tr.nodes[name]
        assert site["value"] is first["value"]
        assert site["is_observed"] and site["infer"] == {"_deterministic": True}
    # Only the first std site is scored: the later ones add exactly zero.
    expected = sum(
        tr.nodes[n]["fn"].log_prob(tr.nodes[n]["value"]).sum()
        for n in ["a_mean", "a_std", "a_values", "b_mean", "b_values", "c_mean", "c_values"]
    )
    assert torch.allclose(tr.log_prob_sum(), expected)
    # The means are untouched.
    assert tr.nodes["a_mean"]["value"] != tr.nodes["b_mean"]["value"]


def test_equalize_keep_dist_conditions_on_equal_values():
    model = plated_model(pyrolite, pdist)
    tr = poutine.trace(equalize(model, ["a", "b"], keep_dist=True)).get_trace()
    a, b = tr.nodes["a"], tr.nodes["b"]
    assert b["value"] is a["value"] and b["is_observed"]
    expected = (
        pdist.Normal(torch.zeros(2), 1.0).log_prob(a["value"]).sum()
        + pdist.Normal(torch.ones(2), 2.0).log_prob(a["value"]).sum()
        + pdist.Normal(0.0, 1.0).log_prob(tr.nodes["c"]["value"])
    )
    assert torch.allclose(tr.log_prob_sum(), expected)
    # Without keep_dist the point mass keeps the site's batch and event shapes.
    tr = poutine.trace(equalize(model, ["a", "b"])).get_trace()
    tr.compute_log_prob()
    assert tr.nodes["b"]["fn"].event_shape == (2,)
    assert tr.nodes["b"]["log_prob"].shape == (3,) and not tr.nodes["b"]["log_prob"].any()


def test_equalize_params_reads_no_second_param():
    model = categories_model(pyrolite, pdist)
    values = equalize(model, ".+_shift", "param")(["a", "b"])
    assert list(pyrolite.get_param_store().keys()) == ["a_shift"]
    tr = poutine.trace(equalize(model, ".+_shift", "param")).get_trace(["a", "b"])
    assert tr.nodes["b_shift"]["value"] is tr.nodes["a_shift"]["value"]
    assert set(values) == {"a", "b"}


def test_equalize_patterns_match_whole_names_and_reset_per_run():
    model = categories_model(pyrolite, pdist)
    for sites, equal in [("a_st", False), ("_std", False), ("a_std|b_std", True), (["a_s"], False)]:
        tr = poutine.trace(equalize(model, sites)).get_trace(["a", "b"])
        assert bool(tr.nodes["a_std"]["value"] == tr.nodes["b_std"]["value"]) is equal, sites
    msngr = equalize(sites=["a_std", "b_std"])
    assert isinstance(msngr, EqualizeMessenger)
    runs = []
    for _ in range(2):
        with poutine.trace() as tracer, msngr:
            model(["a", "b"])
        runs.append(tracer.trace)
    for tr in runs:
        assert tr.nodes["b_std"]["value"] is tr.nodes["a_std"]["value"]
    assert runs[0].nodes["a_std"]["value"] != runs[1].nodes["a_std"]["value"]


def test_equalize_overrides_an_observation_and_an_inner_replay():
    def model():
        d = pyrolite.sample("d", pdist.Normal(0.0, 1.0))
        c = pyrolite.sample("c", pdist.Normal(0.0, 1.0), obs=torch.tensor(5.0))
        return d, c

    d, c = equalize(model, ["c", "d"])()
    assert c is d
    base = poutine.trace(plated_model(pyrolite, pdist)).get_trace()
    replayed = poutine.replay(plated_model(pyrolite, pdist), trace=base)
    tr = poutine.trace(equalize(replayed, ["a", "b"])).get_trace()
    assert torch.equal(tr.nodes["a"]["value"], base.nodes["a"]["value"])
    assert torch.equal(tr.nodes["b"]["value"], base.nodes["a"]["value"])


def test_equalize_rejects_bad_sites():
    with pytest.raises(TypeError, match="sites"):
        equalize(lambda: None, sites=3)
    with pytest.raises(TypeError, match="needs sites"):
        equalize(lambda: None)


@needs_pyro
@pytest.mark.parametrize("keep_dist", [False, True])
def test_equalize_matches_pyro_at_the_same_seed(keep_dist):
    results = []
    for p, d, eq in [(pyrolite, pdist, equalize), (pyro, pyro_dist, pyro.poutine.equalize)]:
        p.clear_param_store()
        p.set_rng_seed(0)
        model = categories_model(p, d)
        model = eq(model, ".+_std", keep_dist=keep_dist)
        model = eq(model, ".+_shift", "param")
        tr = p.poutine.trace(model).get_trace(["a", "b", "c"])
        sites = {
            n: (float(s["value"].sum()), s["is_observed"], dict(s["infer"]))
            for n, s in tr.nodes.items()
            if s["type"] in ("sample", "param")
        }
        results.append((sites, float(tr.log_prob_sum()), list(p.get_param_store().keys())))
    (ours, ours_lp, ours_store), (theirs, theirs_lp, theirs_store) = results
    assert ours_store == theirs_store == ["a_shift"]
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert ours[name][0] == pytest.approx(theirs[name][0], abs=1e-5), name
        assert ours[name][1:] == theirs[name][1:], name
    assert ours_lp == pytest.approx(theirs_lp, abs=1e-4)


def test_unwrap_peels_handlers_only():
    def model():
        return pyrolite.sample("x", pdist.Normal(0.0, 1.0))

    assert unwrap(model) is model
    assert unwrap(poutine.block(poutine.scale(model, scale=2.0))) is model
    assert unwrap(poutine.condition(poutine.seed(model, rng_seed=0), data={})) is model
    partial = functools.partial(model)
    assert unwrap(partial) is partial
    traced = poutine.trace(poutine.scale(model, scale=2.0))
    assert unwrap(traced) is traced  # a trace handler object is not a wrapper (as in Pyro)
    msngr = poutine.trace()
    assert unwrap(msngr) is msngr


@needs_pyro
def test_unwrap_matches_pyro():
    def model():
        pass

    for p, unwrap_fn in [(pyrolite, unwrap), (pyro, pyro.poutine.unwrap)]:
        wrapped = p.poutine.block(p.poutine.scale(model, scale=2.0))
        assert unwrap_fn(wrapped) is model
        traced = p.poutine.trace(wrapped)
        assert unwrap_fn(traced) is traced
        partial = functools.partial(model)
        assert unwrap_fn(partial) is partial


def test_barrier_is_an_untraced_identity_message():
    x = torch.tensor([1.0, 2.0])
    assert barrier(x) is x
    seen = []

    class Spy(poutine.Messenger):
        def _pyro_barrier(self, msg):
            seen.append((msg["name"], msg["args"][0] is x))

    with Spy():
        assert barrier(x) is x
    assert seen == [(None, True)]
    tr = poutine.trace(lambda: barrier(x)).get_trace()
    assert list(tr.nodes) == ["_INPUT", "_RETURN"]
    data = {"a": x, "b": [x, 1]}
    with Spy():
        assert barrier(data) is data

    class Force(poutine.Messenger):
        def _pyro_barrier(self, msg):
            msg["value"] = msg["args"][0] * 0

    with Force():
        assert torch.equal(barrier(x), torch.zeros(2))


@needs_pyro
def test_barrier_and_log_match_pyro():
    x = torch.tensor([1.0, 2.0])
    assert pyro.barrier(x) is x and barrier(x) is x
    assert isinstance(log, logging.Logger) and isinstance(pyro.log, logging.Logger)
    assert log.level == pyro.log.level == logging.INFO
    assert log.isEnabledFor(logging.INFO) and not log.isEnabledFor(logging.DEBUG)


@pytest.fixture
def pristine_logging(monkeypatch):
    """The pyrolite logger without handlers, restored after (the root logger's handlers are
    set in the test body: pytest adds its capture handler for each test phase)."""
    logger = logging.getLogger("pyrolite")
    monkeypatch.setattr(logger, "handlers", [])
    monkeypatch.setattr(logger, "propagate", True)
    yield logger


def test_log_without_logging_config_writes_to_stderr_as_pyro(pristine_logging, monkeypatch):
    # Pyro, imported with no root handler: one StreamHandler at INFO, format
    # "%(levelname)s \t %(message)s", propagate False; with one, no handler of its own.
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    logger = _make_logger()
    assert logger is pristine_logging and not logger.propagate
    (handler,) = logger.handlers
    assert type(handler) is logging.StreamHandler and handler.level == logging.INFO
    record = logger.makeRecord("pyrolite", logging.INFO, __file__, 1, "hello %d", (3,), None)
    assert handler.format(record) == "INFO \t hello 3"
    assert _make_logger().handlers == [handler]  # set up once


def test_log_defers_to_a_configured_root_logger(pristine_logging, monkeypatch):
    monkeypatch.setattr(logging.getLogger(), "handlers", [logging.NullHandler()])
    logger = _make_logger()
    assert logger.handlers == [] and logger.propagate and logger.level == logging.INFO
