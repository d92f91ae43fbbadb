"""Trace: log-prob bookkeeping (computed once, scaled and masked once), views, copies."""

import math

import pytest
import torch

import pyrolite
import pyrolite.distributions as dist
from pyrolite import poutine
from pyrolite.distributions.testing.fakes import NonreparameterizedNormal


def _normal_lp(x, loc=0.0, scale=1.0):
    return -0.5 * ((x - loc) / scale) ** 2 - math.log(scale) - 0.5 * math.log(2 * math.pi)


class CountingNormal(dist.Normal):
    """A Normal that counts its log_prob calls in a shared list."""

    calls = None

    def log_prob(self, value):
        CountingNormal.calls.append(1)
        return super().log_prob(value)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(CountingNormal, _instance)
        return super().expand(batch_shape, _instance=new)


@pytest.fixture
def log_prob_calls():
    CountingNormal.calls = []
    yield CountingNormal.calls
    CountingNormal.calls = None


def _mixed_model():
    z = pyrolite.sample("z", dist.Normal(0.0, 1.0))
    with pyrolite.plate("data", 3):
        pyrolite.sample("b", dist.Bernoulli(0.25), obs=torch.tensor([1.0, 0.0, 1.0]))
        pyrolite.sample("x", dist.Normal(z, 2.0), obs=torch.tensor([0.5, -1.0, 2.0]))
    return z


def test_log_prob_sum_matches_closed_forms():
    z = torch.tensor(0.7)
    tr = poutine.trace(poutine.condition(_mixed_model, data={"z": z})).get_trace()
    expected = _normal_lp(0.7)
    expected += 2 * math.log(0.25) + math.log(0.75)
    expected += sum(_normal_lp(x, 0.7, 2.0) for x in [0.5, -1.0, 2.0])
    assert tr.log_prob_sum().item() == pytest.approx(expected, abs=1e-5)
    only_x = tr.log_prob_sum(site_filter=lambda name, site: name == "x")
    assert only_x.item() == pytest.approx(
        sum(_normal_lp(x, 0.7, 2.0) for x in [0.5, -1.0, 2.0]), abs=1e-5
    )


def test_empty_trace_log_prob_sum_is_zero():
    assert poutine.trace(lambda: None).get_trace().log_prob_sum() == 0.0


def test_compute_log_prob_caches_and_fills_site_fields():
    tr = poutine.trace(_mixed_model).get_trace()
    tr.compute_log_prob()
    x = tr.nodes["x"]
    assert x["log_prob"].shape == (3,)
    assert torch.equal(x["log_prob"], x["unscaled_log_prob"])
    assert x["log_prob_sum"].item() == pytest.approx(x["log_prob"].sum().item())
    assert "log_prob" not in tr.nodes["_INPUT"]
    filtered = poutine.trace(_mixed_model).get_trace()
    filtered.compute_log_prob(site_filter=lambda name, site: name == "z")
    assert "log_prob" in filtered.nodes["z"] and "log_prob" not in filtered.nodes["x"]


def test_log_prob_is_computed_once_per_site_across_repeated_calls(log_prob_calls):
    def model():
        z = pyrolite.sample("z", CountingNormal(0.0, 1.0))
        with pyrolite.plate("data", 4):
            pyrolite.sample("x", CountingNormal(z, 1.0), obs=torch.zeros(4))

    tr = poutine.trace(model).get_trace()
    assert log_prob_calls == []
    tr.compute_log_prob()
    tr.compute_log_prob()
    first = tr.log_prob_sum()
    second = tr.log_prob_sum()
    assert len(log_prob_calls) == 2
    assert first.item() == second.item()

    tr2 = poutine.trace(model).get_trace()
    log_prob_calls.clear()
    tr2.log_prob_sum()
    tr2.compute_log_prob()
    tr2.log_prob_sum()
    assert len(log_prob_calls) == 2


def test_scale_and_mask_applied_exactly_once():
    def model():
        with pyrolite.plate("data", 10, subsample=torch.tensor([0, 1])):
            pyrolite.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor([1.0, 2.0]))

    masked = poutine.mask(poutine.scale(model, scale=3.0), mask=torch.tensor([True, False]))
    tr = poutine.trace(masked).get_trace()
    assert tr.nodes["x"]["scale"] == 15.0
    tr.compute_log_prob()
    expected = [15.0 * _normal_lp(1.0), 0.0]
    assert tr.nodes["x"]["log_prob"].tolist() == pytest.approx(expected, abs=1e-5)
    assert tr.nodes["x"]["unscaled_log_prob"].tolist() == pytest.approx(
        [_normal_lp(1.0), _normal_lp(2.0)], abs=1e-6
    )
    assert tr.log_prob_sum().item() == pytest.approx(expected[0], abs=1e-5)
    tr.compute_score_parts()
    assert tr.nodes["x"]["score_parts"].log_prob.tolist() == pytest.approx(expected, abs=1e-5)


def test_compute_score_parts_reparameterized_vs_nonreparameterized():
    def model():
        pyrolite.sample("r", dist.Normal(0.0, 1.0))
        pyrolite.sample("n", NonreparameterizedNormal(0.0, 1.0))

    with poutine.scale(scale=2.0):
        tr = poutine.trace(model).get_trace()
    tr.compute_score_parts()
    r, n = tr.nodes["r"], tr.nodes["n"]
    r_lp = 2.0 * _normal_lp(r["value"].item())
    n_lp = _normal_lp(n["value"].item())
    log_prob, score_function, entropy_term = r["score_parts"]
    assert log_prob.item() == pytest.approx(r_lp, abs=1e-5)
    assert score_function == 0
    assert entropy_term.item() == pytest.approx(r_lp, abs=1e-5)
    log_prob, score_function, entropy_term = n["score_parts"]
    assert log_prob.item() == pytest.approx(2.0 * n_lp, abs=1e-5)
    # score_function is left unscaled: estimators scale the downstream costs instead.
    assert score_function.item() == pytest.approx(n_lp, abs=1e-5)
    assert entropy_term == 0
    assert r["log_prob"].item() == pytest.approx(r_lp, abs=1e-5)
    assert n["log_prob_sum"].item() == pytest.approx(2.0 * n_lp, abs=1e-5)


def test_node_views():
    def model():
        pyrolite.param("p", torch.tensor(1.0))
        pyrolite.sample("r", dist.Normal(0.0, 1.0))
        pyrolite.sample("n", NonreparameterizedNormal(0.0, 1.0))
        pyrolite.sample("d", dist.Bernoulli(0.5))
        pyrolite.sample("o", dist.Normal(0.0, 1.0), obs=torch.tensor(0.0))

    tr = poutine.trace(model).get_trace()
    assert tr.stochastic_nodes == ["r", "n", "d"]
    assert tr.reparameterized_nodes == ["r"]
    assert tr.nonreparam_stochastic_nodes == ["n", "d"]
    assert tr.observation_nodes == ["o"]
    assert tr.param_nodes == ["p"]
    assert [name for name, _ in tr.iter_stochastic_nodes()] == ["r", "n", "d"]
    assert all(site is tr.nodes[name] for name, site in tr.iter_stochastic_nodes())
    assert len(tr) == 7 and "r" in tr and list(tr) == list(tr.nodes)


def test_copy_is_independent_of_original():
    tr = poutine.trace(_mixed_model, graph_type="dense").get_trace()
    copied = tr.copy()
    assert copied.graph_type == "dense"
    assert list(copied.nodes) == list(tr.nodes)
    assert copied.nodes["z"]["value"] is tr.nodes["z"]["value"]
    copied.nodes["z"]["value"] = torch.tensor(99.0)
    copied.remove_node("x")
    copied.add_edge("z", "b")
    copied.compute_log_prob()
    assert tr.nodes["z"]["value"].item() != 99.0
    assert "x" in tr.nodes and "log_prob" not in tr.nodes["z"]
    assert ("z", "x") in tr.edges and ("z", "x") not in copied.edges
    assert tr.successors("z") == {"b", "x"}


def test_detach_in_place():
    loc = torch.tensor(0.5, requires_grad=True)

    def model():
        pyrolite.sample("z", dist.Normal(loc, 1.0))

    tr = poutine.trace(model).get_trace()
    tr.compute_log_prob()
    assert tr.nodes["z"]["value"].requires_grad and tr.nodes["z"]["log_prob"].requires_grad
    assert tr.detach_() is tr
    for key in ("value", "log_prob", "log_prob_sum", "unscaled_log_prob"):
        assert not tr.nodes["z"][key].requires_grad


def test_format_shapes_for_plate_model():
    def model():
        pyrolite.param("w", torch.ones(2, 4))
        with pyrolite.plate("data", 5):
            z = pyrolite.sample("z", dist.Normal(torch.zeros(5, 3), 1.0).to_event(1))
            pyrolite.sample("x", dist.Normal(z.sum(-1), 1.0), obs=torch.zeros(5))

    tr = poutine.trace(model).get_trace()
    assert tr.format_shapes() == "\n".join(
        [
            "Trace Shapes:",
            " Param Sites:",
            "            w 2 4",
            "Sample Sites:",
            "       z dist   5 | 3",
            "        value   5 | 3",
            "       x dist   5 |",
            "        value   5 |",
        ]
    )
    assert tr.format_shapes(last_site="z").splitlines()[-1] == "        value   5 | 3"


def test_duplicate_sample_site_names_raise_naming_the_site():
    def model():
        pyrolite.sample("dup", dist.Normal(0.0, 1.0))
        pyrolite.sample("dup", dist.Normal(0.0, 1.0))

    with pytest.raises(RuntimeError, match="Multiple sample sites named 'dup'"):
        poutine.trace(model).get_trace()
    assert poutine.runtime._STACK == []


def test_param_and_sample_with_same_name_raise():
    def model():
        pyrolite.param("s", torch.tensor(1.0))
        pyrolite.sample("s", dist.Normal(0.0, 1.0))

    with pytest.raises(RuntimeError, match="Site 's' is already in the trace as a param"):
        poutine.trace(model).get_trace()


def test_observation_outside_support_raises_naming_the_site():
    def model():
        with pyrolite.plate("data", 2):
            pyrolite.sample("counts", dist.Bernoulli(0.5), obs=torch.tensor([1.0, 2.0]))

    tr = poutine.trace(model).get_trace()
    with pytest.raises(ValueError, match=r"site 'counts'.*support") as info:
        tr.log_prob_sum()
    assert "value shape (2,)" in str(info.value)


def test_add_node_and_remove_node_keep_edges_consistent():
    tr = poutine.Trace()
    for name in "abc":
        tr.add_node(name, type="sample", name=name)
    tr.add_edge("a", "b")
    tr.add_edge("b", "c")
    tr.remove_node("b")
    assert tr.edges == []
    assert tr.successors("a") == set() and tr.predecessors("c") == set()
