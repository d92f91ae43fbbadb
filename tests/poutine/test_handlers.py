"""Semantics of each effect handler (Pyro's), asserted on values and trace structure."""

import math
from collections import deque

import pytest
import torch
from torch.distributions import constraints

import pyrolite
import pyrolite.distributions as dist
from pyrolite import poutine
from pyrolite.poutine.broadcast_messenger import broadcast_site
from pyrolite.poutine.plate_messenger import CondIndepStackFrame
from pyrolite.poutine.runtime import new_message


def _normal_lp(x, loc=0.0, scale=1.0):
    return -0.5 * ((x - loc) / scale) ** 2 - math.log(scale) - 0.5 * math.log(2 * math.pi)


def two_site_model(data=None):
    loc = pyrolite.param("loc", torch.tensor(0.5))
    z = pyrolite.sample("z", dist.Normal(loc, 1.0))
    x = pyrolite.sample("x", dist.Normal(z, 2.0), obs=data)
    return z + 1.0, x


# --- trace ---------------------------------------------------------------------------------


def test_trace_records_nodes_in_execution_order_with_input_and_return():
    data = torch.tensor(0.3)
    tr = poutine.trace(two_site_model).get_trace(data)
    assert list(tr.nodes) == ["_INPUT", "loc", "z", "x", "_RETURN"]
    assert tr.nodes["_INPUT"]["type"] == "args"
    assert tr.nodes["_INPUT"]["args"] == (data,)
    assert tr.nodes["_RETURN"]["type"] == "return"
    ret = tr.nodes["_RETURN"]["value"]
    assert torch.equal(ret[0], tr.nodes["z"]["value"] + 1.0)
    assert ret[1] is data


def test_trace_site_fields():
    data = torch.tensor(0.3)
    tr = poutine.trace(two_site_model).get_trace(data)
    z, x, loc = tr.nodes["z"], tr.nodes["x"], tr.nodes["loc"]
    assert z["type"] == "sample" and z["name"] == "z"
    assert isinstance(z["fn"], dist.Normal)
    assert not z["is_observed"]
    assert z["scale"] == 1.0 and z["mask"] is None
    assert z["cond_indep_stack"] == ()
    assert z["done"] and z["infer"] == {}
    assert x["is_observed"] and x["value"] is data
    assert torch.equal(x["fn"].loc, z["value"])
    assert loc["type"] == "param"
    assert loc["value"].item() == 0.5 and loc["value"].requires_grad
    assert loc["args"][0] == "loc"


def test_trace_context_manager_has_no_input_or_return_nodes():
    with poutine.trace() as tracer:
        two_site_model()
    assert list(tracer.trace.nodes) == ["loc", "z", "x"]
    assert tracer.get_trace() is tracer.trace


def test_trace_handler_call_returns_model_value_and_exposes_trace():
    traced = poutine.trace(two_site_model)
    ret = traced()
    assert torch.equal(ret[0], traced.trace.nodes["z"]["value"] + 1.0)


def test_trace_param_only_records_params_only():
    tr = poutine.trace(two_site_model, param_only=True).get_trace()
    assert tr.param_nodes == ["loc"]
    assert tr.stochastic_nodes == [] and tr.observation_nodes == []


def test_trace_param_called_twice_is_one_node():
    def model():
        pyrolite.param("w", torch.ones(2))
        return pyrolite.param("w")

    tr = poutine.trace(model).get_trace()
    assert tr.param_nodes == ["w"]


def test_trace_dense_graph_edges_from_every_earlier_sample_site():
    def model():
        a = pyrolite.sample("a", dist.Normal(0.0, 1.0))
        pyrolite.param("p", torch.tensor(1.0))
        b = pyrolite.sample("b", dist.Normal(a, 1.0))
        pyrolite.sample("c", dist.Normal(b, 1.0), obs=torch.tensor(0.0))

    tr = poutine.trace(model, graph_type="dense").get_trace()
    assert sorted(tr.edges) == [("a", "b"), ("a", "c"), ("b", "c")]
    assert tr.successors("a") == {"b", "c"}
    assert tr.predecessors("c") == {"a", "b"}
    assert tr.topological_sort() == ["_INPUT", "a", "p", "b", "c", "_RETURN"]
    flat = poutine.trace(model).get_trace()
    assert flat.edges == []


def test_trace_dense_graph_skips_subsample_sites_and_other_sequential_iterations():
    def model():
        g = pyrolite.sample("g", dist.Normal(0.0, 1.0))
        for i in pyrolite.plate("seq", 2):
            pyrolite.sample(f"x_{i}", dist.Normal(g, 1.0))
        with pyrolite.plate("data", 10, subsample_size=3):
            pyrolite.sample("y", dist.Normal(g, 1.0))

    tr = poutine.trace(model, graph_type="dense").get_trace()
    assert "data" in tr.nodes
    assert sorted(tr.edges) == [
        ("g", "x_0"),
        ("g", "x_1"),
        ("g", "y"),
        ("x_0", "y"),
        ("x_1", "y"),
    ]


def test_trace_invalid_graph_type():
    with pytest.raises(ValueError, match="graph_type"):
        poutine.Trace("sparse")


# --- replay --------------------------------------------------------------------------------


def test_replay_reuses_latent_values_and_leaves_observed_sites():
    guide_tr = poutine.trace(two_site_model).get_trace()
    data = torch.tensor(7.0)
    tr = poutine.trace(poutine.replay(two_site_model, trace=guide_tr)).get_trace(data)
    assert tr.nodes["z"]["value"] is guide_tr.nodes["z"]["value"]
    assert tr.nodes["x"]["value"] is data
    assert tr.nodes["x"]["is_observed"]


def test_replay_copies_infer_dict_from_the_replayed_site():
    def guide():
        pyrolite.sample("z", dist.Bernoulli(0.5), infer={"enumerate": "sequential"})

    def model():
        pyrolite.sample("z", dist.Bernoulli(0.5))

    guide_tr = poutine.trace(guide).get_trace()
    tr = poutine.trace(poutine.replay(model, trace=guide_tr)).get_trace()
    assert tr.nodes["z"]["infer"] == {"enumerate": "sequential"}


def test_replay_ignores_sites_missing_from_trace():
    guide_tr = poutine.trace(lambda: pyrolite.sample("other", dist.Normal(0.0, 1.0))).get_trace()
    pyrolite.set_rng_seed(3)
    tr = poutine.trace(poutine.replay(two_site_model, trace=guide_tr)).get_trace()
    pyrolite.set_rng_seed(3)
    expected = poutine.trace(two_site_model).get_trace()
    assert torch.equal(tr.nodes["z"]["value"], expected.nodes["z"]["value"])


def test_replay_errors_when_site_is_observed_in_replayed_trace():
    observed_tr = poutine.trace(
        lambda: pyrolite.sample("z", dist.Normal(0.0, 1.0), obs=torch.tensor(1.0))
    ).get_trace()
    with pytest.raises(RuntimeError, match="site 'z' must be a latent sample site.*observed"):
        poutine.replay(two_site_model, trace=observed_tr)()


def test_replay_params():
    new_loc = torch.tensor(-3.0)
    tr = poutine.trace(poutine.replay(two_site_model, params={"loc": new_loc})).get_trace()
    assert tr.nodes["loc"]["value"] is new_loc
    assert tr.nodes["z"]["fn"].loc is new_loc


def test_replay_needs_trace_or_params():
    with pytest.raises(ValueError, match="needs a trace or params"):
        poutine.replay(two_site_model)


# --- block ---------------------------------------------------------------------------------


def _abc_model():
    pyrolite.param("p", torch.tensor(1.0))
    pyrolite.sample("a", dist.Normal(0.0, 1.0))
    pyrolite.sample("b", dist.Normal(0.0, 1.0))
    pyrolite.sample("c", dist.Normal(0.0, 1.0), obs=torch.tensor(0.0))


@pytest.mark.parametrize(
    "kwargs, visible",
    [
        ({}, []),
        ({"hide_all": False, "expose_all": True}, ["p", "a", "b", "c"]),
        ({"hide": ["a", "c"]}, ["p", "b"]),
        ({"expose": ["a"]}, ["a"]),
        ({"hide_types": ["param"]}, ["a", "b", "c"]),
        ({"expose_types": ["param"]}, ["p"]),
        ({"hide_fn": lambda msg: msg.get("is_observed", False)}, ["p", "a", "b"]),
        ({"expose_fn": lambda msg: msg["name"] in ("b", "c")}, ["b", "c"]),
    ],
)
def test_block_hides_and_exposes(kwargs, visible):
    tr = poutine.trace(poutine.block(_abc_model, **kwargs)).get_trace()
    assert [n for n in tr.nodes if n not in ("_INPUT", "_RETURN")] == visible


def test_block_hidden_sites_still_seen_by_inner_handlers():
    with poutine.trace() as outer:
        with poutine.block(hide=["a"]):
            with poutine.trace() as inner:
                _abc_model()
    assert list(inner.trace.nodes) == ["p", "a", "b", "c"]
    assert list(outer.trace.nodes) == ["p", "b", "c"]


def test_block_rejects_both_hide_fn_and_expose_fn():
    with pytest.raises(ValueError, match="only one of hide_fn and expose_fn"):
        poutine.block(hide_fn=lambda m: True, expose_fn=lambda m: True)


# --- condition -----------------------------------------------------------------------------


def test_condition_dict_observes_sites():
    value = torch.tensor(1.5)
    tr = poutine.trace(poutine.condition(two_site_model, data={"z": value})).get_trace()
    assert tr.nodes["z"]["value"] is value
    assert tr.nodes["z"]["is_observed"]
    assert tr.observation_nodes == ["z"]
    assert tr.stochastic_nodes == ["x"]
    expected = _normal_lp(1.5, 0.5, 1.0)
    tr.compute_log_prob()
    assert tr.nodes["z"]["log_prob"].item() == pytest.approx(expected, abs=1e-6)


def test_condition_with_trace_uses_trace_values():
    source = poutine.trace(two_site_model).get_trace()
    conditioned = poutine.condition(two_site_model, data=source)
    tr = poutine.trace(conditioned).get_trace()
    assert torch.equal(tr.nodes["z"]["value"], source.nodes["z"]["value"])
    assert torch.equal(tr.nodes["x"]["value"], source.nodes["x"]["value"])
    assert tr.nodes["z"]["is_observed"] and tr.nodes["x"]["is_observed"]


def test_condition_rejects_non_mapping():
    with pytest.raises(TypeError, match="dict"):
        poutine.condition(two_site_model, data=[1, 2])


def test_top_level_condition_is_the_handler():
    model = pyrolite.condition(two_site_model, data={"z": torch.tensor(0.0)})
    assert model()[0].item() == 1.0


# --- do ------------------------------------------------------------------------------------


def test_do_program_gets_intervention_and_factual_site_is_recorded():
    intervention = torch.tensor(10.0)
    tr = poutine.trace(poutine.do(two_site_model, data={"z": intervention})).get_trace()
    # The factual z is sampled under its own name and stays latent.
    assert "z" in tr.nodes and "z__CF" not in tr.nodes
    assert not tr.nodes["z"]["is_observed"]
    assert tr.nodes["z"]["value"].item() != 10.0
    # Downstream computation sees the intervened value.
    assert tr.nodes["_RETURN"]["value"][0].item() == 11.0
    assert tr.nodes["x"]["fn"].loc.item() == 10.0


def test_do_inside_subsampled_plate_scales_factual_site_once():
    def model():
        with pyrolite.plate("data", 10, subsample_size=5):
            return pyrolite.sample("z", dist.Normal(0.0, 1.0))

    tr = poutine.trace(poutine.do(model, data={"z": torch.tensor(0.0)})).get_trace()
    assert tr.nodes["z"]["scale"] == 2.0
    assert [f.name for f in tr.nodes["z"]["cond_indep_stack"]] == ["data"]


def test_do_rejects_non_tensor_intervention():
    with pytest.raises(TypeError, match="site 'z' must be a number or tensor"):
        poutine.do(two_site_model, data={"z": "ten"})()


# --- scale ---------------------------------------------------------------------------------


def test_scale_multiplies_log_prob_sum_exactly():
    def model():
        pyrolite.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor(1.0))

    tr = poutine.trace(poutine.scale(poutine.scale(model, scale=3.0), scale=0.5)).get_trace()
    assert tr.nodes["x"]["scale"] == 1.5
    assert tr.log_prob_sum().item() == pytest.approx(1.5 * _normal_lp(1.0), abs=1e-6)


def test_scale_tensor_scale():
    def model():
        with pyrolite.plate("p", 2):
            pyrolite.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor([0.0, 1.0]))

    scales = torch.tensor([2.0, 3.0])
    tr = poutine.trace(poutine.scale(model, scale=scales)).get_trace()
    expected = 2.0 * _normal_lp(0.0) + 3.0 * _normal_lp(1.0)
    assert tr.log_prob_sum().item() == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("bad", [0.0, -1.0, torch.tensor([1.0, -2.0])])
def test_scale_rejects_non_positive(bad):
    with pytest.raises(ValueError, match="positive"):
        poutine.scale(scale=bad)


# --- mask ----------------------------------------------------------------------------------


def _masked_obs_model():
    with pyrolite.plate("p", 2):
        pyrolite.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor([1.0, 2.0]))


def test_mask_false_zeroes_log_prob():
    tr = poutine.trace(poutine.mask(_masked_obs_model, mask=False)).get_trace()
    assert tr.log_prob_sum().item() == 0.0
    tr = poutine.trace(poutine.mask(_masked_obs_model, mask=True)).get_trace()
    expected = _normal_lp(1.0) + _normal_lp(2.0)
    assert tr.log_prob_sum().item() == pytest.approx(expected, abs=1e-6)


def test_mask_tensor_keeps_selected_entries():
    mask = torch.tensor([False, True])
    tr = poutine.trace(poutine.mask(_masked_obs_model, mask=mask)).get_trace()
    assert tr.log_prob_sum().item() == pytest.approx(_normal_lp(2.0), abs=1e-6)


def test_masked_minus_inf_observation_contributes_zero():
    def model():
        with pyrolite.plate("p", 2):
            pyrolite.sample("x", dist.Delta(torch.zeros(2)), obs=torch.tensor([0.0, 1.0]))

    tr = poutine.trace(model).get_trace()
    assert tr.log_prob_sum().item() == -math.inf
    masked = poutine.mask(model, mask=torch.tensor([True, False]))
    tr = poutine.trace(masked).get_trace()
    assert tr.log_prob_sum().item() == 0.0
    tr.compute_log_prob()
    assert tr.nodes["x"]["log_prob"].tolist() == [0.0, 0.0]


def test_nested_masks_combine_with_and():
    with poutine.trace() as tracer:
        with poutine.mask(mask=torch.tensor([True, True, False])):
            with poutine.mask(mask=torch.tensor([True, False, True])):
                with pyrolite.plate("p", 3):
                    pyrolite.sample("x", dist.Normal(0.0, 1.0))
    assert tracer.trace.nodes["x"]["mask"].tolist() == [True, False, False]


def test_get_mask():
    assert poutine.get_mask() is None
    with poutine.trace():
        assert poutine.get_mask() is None
    with poutine.mask(mask=False):
        assert poutine.get_mask() is False
    with poutine.mask(mask=torch.tensor([True, False])):
        with poutine.mask(mask=torch.tensor([False, False])):
            assert poutine.get_mask().tolist() == [False, False]
        assert poutine.get_mask().tolist() == [True, False]


def test_mask_rejects_non_bool_tensor():
    with pytest.raises(TypeError, match="mask.bool()"):
        poutine.mask(mask=torch.tensor([1.0, 0.0]))


# --- seed ----------------------------------------------------------------------------------


def test_seed_gives_same_draws_for_same_seed():
    a = poutine.trace(poutine.seed(two_site_model, rng_seed=7)).get_trace()
    b = poutine.trace(poutine.seed(two_site_model, rng_seed=7)).get_trace()
    c = poutine.trace(poutine.seed(two_site_model, rng_seed=8)).get_trace()
    assert torch.equal(a.nodes["z"]["value"], b.nodes["z"]["value"])
    assert not torch.equal(a.nodes["z"]["value"], c.nodes["z"]["value"])


def test_seed_leaves_outer_rng_stream_unaffected():
    pyrolite.set_rng_seed(1)
    first = torch.rand(3)
    expected_next = torch.rand(3)
    pyrolite.set_rng_seed(1)
    assert torch.equal(torch.rand(3), first)
    poutine.seed(two_site_model, rng_seed=123)()
    assert torch.equal(torch.rand(3), expected_next)


def test_seed_restores_rng_when_model_raises():
    def bad():
        torch.rand(5)
        raise RuntimeError("boom")

    pyrolite.set_rng_seed(2)
    expected = torch.rand(2)
    pyrolite.set_rng_seed(2)
    with pytest.raises(RuntimeError):
        poutine.seed(bad, rng_seed=5)()
    assert torch.equal(torch.rand(2), expected)


def test_seed_rejects_non_int():
    with pytest.raises(TypeError, match="int rng_seed"):
        poutine.seed(rng_seed=1.5)


# --- uncondition ---------------------------------------------------------------------------


def test_uncondition_samples_observed_sites():
    obs = torch.tensor(100.0)
    tr = poutine.trace(poutine.uncondition(two_site_model)).get_trace(obs)
    x = tr.nodes["x"]
    assert not x["is_observed"]
    assert x["infer"]["was_observed"] is True and x["infer"]["obs"] is obs
    # A draw from Normal(z, 2) is not the far-away observation.
    assert abs(x["value"].item() - tr.nodes["z"]["value"].item()) < 20.0
    assert tr.stochastic_nodes == ["z", "x"]


# --- lift ----------------------------------------------------------------------------------


def test_lift_with_dict_prior_lifts_only_named_params():
    def model():
        a = pyrolite.param("a", torch.tensor(5.0))
        b = pyrolite.param("b", torch.tensor(6.0))
        return a, b

    prior = {"a": dist.Delta(torch.tensor(-1.0))}
    tr = poutine.trace(poutine.lift(model, prior=prior)).get_trace()
    assert tr.nodes["a"]["type"] == "sample" and tr.nodes["a"]["value"].item() == -1.0
    assert tr.nodes["b"]["type"] == "param" and tr.nodes["b"]["value"].item() == 6.0
    assert "a" not in pyrolite.get_param_store() and "b" in pyrolite.get_param_store()


def test_lift_with_distribution_prior_same_draw_when_param_called_twice():
    def model():
        return pyrolite.param("w", torch.tensor(1.0)), pyrolite.param("w", torch.tensor(1.0))

    lifted = poutine.lift(model, prior=dist.Normal(0.0, 1.0))
    tr = poutine.trace(lifted).get_trace()
    first, second = tr.nodes["_RETURN"]["value"]
    assert first is second
    assert tr.stochastic_nodes == ["w"]
    # A fresh run draws again.
    tr2 = poutine.trace(lifted).get_trace()
    assert not torch.equal(tr2.nodes["w"]["value"], first)


# --- infer_config --------------------------------------------------------------------------


def test_infer_config_merges_into_sample_and_param_infer():
    def config(msg):
        return {"tag": msg["type"] + ":" + msg["name"]}

    tr = poutine.trace(poutine.infer_config(two_site_model, config_fn=config)).get_trace()
    assert tr.nodes["z"]["infer"] == {"tag": "sample:z"}
    assert tr.nodes["loc"]["infer"] == {"tag": "param:loc"}


def test_infer_config_keeps_existing_entries():
    def model():
        pyrolite.sample("b", dist.Bernoulli(0.5), infer={"baseline": {"use": True}})

    cfg = poutine.infer_config(model, lambda msg: {"enumerate": "parallel"})
    infer = poutine.trace(cfg).get_trace().nodes["b"]["infer"]
    assert infer == {"baseline": {"use": True}, "enumerate": "parallel"}


def test_infer_config_errors_name_the_handler_as_users_call_it():
    with pytest.raises(TypeError, match=r"poutine\.infer_config expected a callable") as err:
        poutine.infer_config(two_site_model(), config_fn=lambda msg: {})
    assert "inferconfig" not in str(err.value)
    with pytest.raises(TypeError, match=r"poutine\.infer_config expects config_fn"):
        poutine.infer_config(two_site_model, config_fn=None)


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("replay", {"params": {}}),
        ("block", {}),
        ("condition", {"data": {}}),
        ("substitute", {"data": {}}),
        ("do", {"data": {}}),
        ("scale", {"scale": 2.0}),
        ("mask", {"mask": True}),
        ("seed", {"rng_seed": 0}),
        ("uncondition", {}),
        ("lift", {"prior": {}}),
        ("infer_config", {"config_fn": lambda msg: {}}),
        ("escape", {"escape_fn": lambda msg: False}),
        ("broadcast", {}),
        ("enum", {}),
    ],
)
def test_non_callable_model_error_names_the_handler_function(name, kwargs):
    handler = getattr(poutine, name)
    with pytest.raises(TypeError) as err:
        handler(two_site_model(), **kwargs)
    assert str(err.value).startswith(f"poutine.{name} expected a callable")


# --- escape + queue ------------------------------------------------------------------------


def test_escape_raises_nonlocal_exit_at_selected_site():
    escaping = poutine.escape(two_site_model, escape_fn=lambda msg: msg["name"] == "z")
    traced = poutine.trace(escaping)
    with pytest.raises(poutine.NonlocalExit) as info:
        traced()
    assert info.value.site["name"] == "z"
    assert list(traced.trace.nodes) == ["_INPUT", "loc"]


def test_queue_enumerates_two_bernoulli_sites_exactly_once_each():
    def model():
        a = pyrolite.sample("a", dist.Bernoulli(0.3))
        b = pyrolite.sample("b", dist.Bernoulli(0.6))
        return a.item(), b.item()

    q = deque([poutine.Trace()])
    enum_model = poutine.queue(model, queue=q)
    seen = []
    while q:
        tr = poutine.trace(enum_model).get_trace()
        seen.append(tr.nodes["_RETURN"]["value"])
        assert tr.stochastic_nodes == ["a", "b"]
    assert sorted(seen) == [(0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0)]
    assert poutine.runtime._STACK == []


def test_queue_needs_a_queue():
    with pytest.raises(ValueError, match="needs a queue"):
        poutine.queue(two_site_model)


# --- markov --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "history, expected",
    [(1, {"x_0": ["x_0"], "x_3": ["x_2", "x_3"]}), (2, {"x_3": ["x_1", "x_2", "x_3"]})],
)
def test_markov_scope_holds_last_history_steps(history, expected):
    def chain():
        for t in pyrolite.markov(range(4), history=history):
            pyrolite.sample(f"x_{t}", dist.Normal(0.0, 1.0))

    tr = poutine.trace(chain).get_trace()
    for name, scope in expected.items():
        assert sorted(tr.nodes[name]["infer"]["_markov_scope"]) == scope
    assert poutine.runtime._STACK == []


def test_markov_as_context_manager_and_decorator():
    @poutine.markov
    def step():
        return pyrolite.sample("s", dist.Normal(0.0, 1.0))

    tr = poutine.trace(step).get_trace()
    assert tr.nodes["s"]["infer"]["_markov_scope"] == {"s"}
    with poutine.trace() as tracer, pyrolite.markov():
        pyrolite.sample("a", dist.Normal(0.0, 1.0))
        pyrolite.sample("b", dist.Normal(0.0, 1.0))
    assert tracer.trace.nodes["b"]["infer"]["_markov_scope"] == {"a", "b"}


def test_markov_rejects_negative_history():
    with pytest.raises(ValueError, match="nonnegative"):
        pyrolite.markov(history=-1)


# --- enum ----------------------------------------------------------------------------------


def test_parallel_enumeration_shapes_inside_plate():
    def model():
        with pyrolite.plate("data", 3):
            b = pyrolite.sample(
                "b", dist.Bernoulli(torch.tensor([0.1, 0.5, 0.9])), infer={"enumerate": "parallel"}
            )
            c = pyrolite.sample(
                "c", dist.Categorical(torch.ones(4) / 4), infer={"enumerate": "parallel"}
            )
            pyrolite.sample("obs", dist.Normal(b + c, 1.0), obs=torch.zeros(3))

    tr = poutine.trace(poutine.enum(model, first_available_dim=-2)).get_trace()
    b, c = tr.nodes["b"], tr.nodes["c"]
    assert b["value"].shape == (2, 1) and b["value"].flatten().tolist() == [0.0, 1.0]
    assert c["value"].shape == (4, 1, 1) and c["value"].flatten().tolist() == [0, 1, 2, 3]
    assert b["infer"]["_enumerate_dim"] == -2 and c["infer"]["_enumerate_dim"] == -3
    tr.compute_log_prob()
    assert b["log_prob"].shape == (2, 3)
    expected = torch.tensor([[0.9, 0.5, 0.1], [0.1, 0.5, 0.9]]).log()
    assert torch.allclose(b["log_prob"], expected)
    assert c["log_prob"].shape == (4, 1, 3)
    assert torch.allclose(c["log_prob"], torch.full((4, 1, 3), math.log(0.25)))
    assert tr.nodes["obs"]["log_prob"].shape == (4, 2, 3)


def test_enum_leaves_unmarked_and_observed_sites_alone():
    def model():
        a = pyrolite.sample("a", dist.Bernoulli(0.5))
        b = pyrolite.sample("b", dist.Bernoulli(0.5), obs=torch.tensor(1.0))
        return a, b

    a, b = poutine.enum(model, first_available_dim=-1)()
    assert a.shape == () and b.item() == 1.0


def test_enum_rejects_continuous_site_and_nonnegative_dim():
    def model():
        pyrolite.sample("z", dist.Normal(0.0, 1.0), infer={"enumerate": "parallel"})

    with pytest.raises(ValueError, match="site 'z' is marked for enumeration"):
        poutine.enum(model, first_available_dim=-1)()
    with pytest.raises(ValueError, match="must be negative"):
        poutine.enum(first_available_dim=0)


# --- broadcast -----------------------------------------------------------------------------


def test_broadcast_expands_to_plate_sizes():
    def model():
        with pyrolite.plate("outer", 2, dim=-2), pyrolite.plate("inner", 3):
            return pyrolite.sample("x", dist.Normal(0.0, 1.0))

    tr = poutine.trace(poutine.broadcast(model)).get_trace()
    assert tr.nodes["x"]["fn"].batch_shape == (2, 3)
    assert tr.nodes["x"]["value"].shape == (2, 3)


def test_broadcast_site_expands_and_reports_mismatch():
    frames = (CondIndepStackFrame("rows", -2, 4, 0, 4), CondIndepStackFrame("cols", -1, 3, 0, 3))
    msg = new_message("sample", "w", dist.Normal(torch.zeros(3), 1.0))
    msg["cond_indep_stack"] = frames
    broadcast_site(msg)
    assert msg["fn"].batch_shape == (4, 3)
    bad = new_message("sample", "w", dist.Normal(torch.zeros(5), 1.0))
    bad["cond_indep_stack"] = frames
    with pytest.raises(ValueError, match=r"plate\('cols'\) at site 'w'.*size 3 at dim -1"):
        broadcast_site(bad)


def test_broadcast_keeps_forced_has_rsample():
    fn = dist.Normal(0.0, 1.0)
    fn.has_rsample = False
    msg = new_message("sample", "w", fn)
    msg["cond_indep_stack"] = (CondIndepStackFrame("p", -1, 3, 0, 3),)
    broadcast_site(msg)
    assert msg["fn"].batch_shape == (3,) and msg["fn"].has_rsample is False


def test_param_inside_handlers_with_constraint():
    with poutine.trace() as tracer:
        s = pyrolite.param("s", torch.tensor([0.5, 2.0]), constraint=constraints.positive)
    assert torch.allclose(s, torch.tensor([0.5, 2.0]))
    assert tracer.trace.nodes["s"]["value"] is s


def test_queue_accepts_pyro_style_queue_and_outer_trace_is_reset_on_escape():
    import queue as queue_module

    def model():
        a = pyrolite.sample("a", dist.Bernoulli(0.3))
        b = pyrolite.sample("b", dist.Bernoulli(0.6))
        return a.item(), b.item()

    q = queue_module.LifoQueue()
    q.put(poutine.Trace())
    traced = poutine.trace(poutine.queue(model, queue=q))
    seen = []
    while not q.empty():
        tr = traced.get_trace()
        assert list(tr.nodes) == ["_INPUT", "a", "b", "_RETURN"]
        seen.append(tr.nodes["_RETURN"]["value"])
    assert sorted(seen) == [(0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0)]


def test_topological_sort_follows_execution_order():
    tr = poutine.Trace()
    for name in ["a", "b", "c", "d"]:
        tr.add_node(name, type="sample", name=name)
    tr.add_edge("c", "b")
    assert tr.topological_sort() == ["a", "c", "b", "d"]
    assert tr.topological_sort(reverse=True) == ["d", "b", "c", "a"]
    tr.add_edge("b", "c")
    with pytest.raises(ValueError, match="cycle"):
        tr.topological_sort()
