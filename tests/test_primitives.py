"""The modelling primitives: sample, param, factor, deterministic, module, obs_mask, ..."""

import math
import warnings

import pytest
import torch
from torch.distributions import constraints

import pyrolite
import pyrolite.distributions as dist
from pyrolite import poutine
from pyrolite.poutine.plate_messenger import CondIndepStackFrame
from pyrolite.poutine.util import check_site_shape


def _normal_lp(x, loc=0.0, scale=1.0):
    return -0.5 * ((x - loc) / scale) ** 2 - math.log(scale) - 0.5 * math.log(2 * math.pi)


def test_sample_outside_handlers_draws_or_returns_obs():
    pyrolite.set_rng_seed(5)
    x = pyrolite.sample("x", dist.Normal(torch.zeros(3), 1.0))
    pyrolite.set_rng_seed(5)
    assert torch.equal(x, dist.Normal(torch.zeros(3), 1.0).sample())
    obs = torch.tensor(2.5)
    assert pyrolite.sample("y", dist.Normal(0.0, 1.0), obs=obs) is obs


def test_sample_name_must_be_a_string():
    with poutine.trace(), pytest.raises(TypeError, match="site name must be a str"):
        pyrolite.sample(3, dist.Normal(0.0, 1.0))


def test_param_outside_handlers_initializes_and_reads_store_with_constraint():
    store = pyrolite.get_param_store()
    s = pyrolite.param("s", torch.tensor([0.5, 2.0]), constraint=constraints.positive)
    assert torch.allclose(s, torch.tensor([0.5, 2.0]))
    assert "s" in store
    leaf = store.unconstrained("s")
    assert torch.allclose(leaf, torch.tensor([0.5, 2.0]).log())
    # A later read needs only the name and ignores a new init value.
    again = pyrolite.param("s", torch.tensor([9.0, 9.0]))
    assert torch.allclose(again, torch.tensor([0.5, 2.0]))
    # Gradients of the constrained value reach the unconstrained leaf: d exp(u)/du = exp(u).
    again.sum().backward()
    assert torch.allclose(leaf.grad, torch.tensor([0.5, 2.0]))


def test_param_accepts_float_and_callable_init():
    assert pyrolite.param("f", 1.5).item() == 1.5
    assert pyrolite.param("c", lambda: torch.ones(2)).tolist() == [1.0, 1.0]
    pyrolite.clear_param_store()
    assert "f" not in pyrolite.get_param_store()


def test_param_inside_trace_is_recorded_with_gradients():
    with poutine.trace() as tracer:
        w = pyrolite.param("w", torch.tensor(3.0))
    site = tracer.trace.nodes["w"]
    assert site["value"] is w
    (2 * w).backward()
    assert pyrolite.get_param_store().unconstrained("w").grad.item() == 2.0


def test_factor_adds_log_factor_to_log_prob_sum():
    def model():
        pyrolite.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor(1.0))
        pyrolite.factor("f", torch.tensor(-2.25))
        with pyrolite.plate("data", 2):
            pyrolite.factor("g", torch.tensor([0.5, 1.0]))

    tr = poutine.trace(model).get_trace()
    assert tr.log_prob_sum().item() == pytest.approx(_normal_lp(1.0) - 2.25 + 1.5, abs=1e-6)
    f = tr.nodes["f"]
    assert f["is_observed"] and f["infer"]["is_auxiliary"] is True
    assert tr.observation_nodes == ["x", "f", "g"]


def test_factor_in_guide_declares_has_rsample():
    with poutine.trace() as tracer:
        pyrolite.factor("f", torch.tensor(1.0), has_rsample=True)
    assert tracer.trace.nodes["f"]["fn"].has_rsample is True


def test_deterministic_records_value_and_contributes_zero():
    value = torch.tensor([1.0, 2.0])

    def model():
        return pyrolite.deterministic("d", value)

    tr = poutine.trace(model).get_trace()
    d = tr.nodes["d"]
    assert d["value"] is value and d["is_observed"]
    assert d["infer"]["_deterministic"] is True
    assert tr.log_prob_sum().item() == 0.0
    tr.compute_log_prob()
    assert torch.equal(d["log_prob"], torch.zeros(()))
    assert pyrolite.deterministic("outside", value) is value


def test_module_registers_params_and_shares_leaves():
    net = torch.nn.Linear(2, 1)
    returned = pyrolite.module("net", net)
    assert returned is net
    store = pyrolite.get_param_store()
    assert sorted(store.keys()) == ["net$$$bias", "net$$$weight"]
    # The module's Parameters are the store's leaves, so optimizing the store trains it.
    assert store.unconstrained("net$$$weight") is net.weight
    assert store.unconstrained("net$$$bias") is net.bias
    assert store.param_name(net.weight) == "net$$$weight"


def test_module_inside_trace_records_param_sites():
    net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
    with poutine.trace() as tracer:
        pyrolite.module("mlp", net)
    assert tracer.trace.param_nodes == [
        "mlp$$$0.weight",
        "mlp$$$0.bias",
        "mlp$$$1.weight",
        "mlp$$$1.bias",
    ]
    assert tracer.trace.nodes["mlp$$$0.weight"]["value"] is net[0].weight


def test_module_copies_existing_store_values_into_module():
    first = torch.nn.Linear(2, 1)
    pyrolite.module("net", first)
    second = torch.nn.Linear(2, 1)
    pyrolite.module("net", second)
    assert torch.equal(second.weight, first.weight)
    with pytest.raises(TypeError, match="expects an nn.Module"):
        pyrolite.module("bad", torch.zeros(2))


def test_random_module_draws_weights_from_prior():
    net = torch.nn.Linear(3, 1)
    prior = {
        "weight": dist.Delta(torch.full((1, 3), 7.0)).to_event(2),
        "bias": dist.Delta(torch.full((1,), -1.0)).to_event(1),
    }
    sampler = pyrolite.random_module("net", net, prior)
    tr = poutine.trace(sampler).get_trace()
    sampled = tr.nodes["_RETURN"]["value"]
    assert sampled is not net
    assert tr.stochastic_nodes == ["net$$$weight", "net$$$bias"]
    assert torch.equal(sampled.weight, torch.full((1, 3), 7.0))
    assert torch.equal(sampled.bias, torch.tensor([-1.0]))
    assert not torch.equal(net.weight, torch.full((1, 3), 7.0))
    assert sampled(torch.ones(1, 3)).item() == pytest.approx(20.0)


def test_random_module_draws_fresh_weights_each_call():
    net = torch.nn.Linear(4, 2)
    prior = {
        "weight": dist.Normal(torch.zeros(2, 4), 10.0).to_event(2),
        "bias": dist.Normal(torch.zeros(2), 10.0).to_event(1),
    }
    sampler = pyrolite.random_module("net", net, prior)
    pyrolite.set_rng_seed(11)
    a = sampler()
    pyrolite.set_rng_seed(11)
    expected_weight = prior["weight"].sample()
    assert torch.equal(a.weight, expected_weight)
    b = sampler()
    assert a.weight.shape == (2, 4) and b.bias.shape == (2,)
    assert not torch.equal(a.weight, b.weight)
    assert not torch.equal(a.weight, net.weight)


def test_obs_mask_splits_into_observed_and_unobserved_sites():
    obs = torch.tensor([1.0, 2.0, 3.0])
    mask = torch.tensor([True, False, True])

    def model():
        with pyrolite.plate("p", 3):
            return pyrolite.sample("x", dist.Normal(0.0, 1.0), obs=obs, obs_mask=mask)

    tr = poutine.trace(model).get_trace()
    assert [n for n in tr.nodes if n.startswith("x")] == ["x_observed", "x_unobserved", "x"]
    observed, latent = tr.nodes["x_observed"], tr.nodes["x_unobserved"]
    assert observed["is_observed"] and not latent["is_observed"]
    value = tr.nodes["_RETURN"]["value"]
    assert value[0].item() == 1.0 and value[2].item() == 3.0
    assert value[1].item() == latent["value"][1].item()
    assert torch.equal(tr.nodes["x"]["value"], value)
    tr.compute_log_prob()
    assert observed["log_prob"].tolist() == pytest.approx(
        [_normal_lp(1.0), 0.0, _normal_lp(3.0)], abs=1e-6
    )
    assert latent["log_prob"][0].item() == 0.0 and latent["log_prob"][2].item() == 0.0
    assert tr.nodes["x"]["log_prob_sum"].item() == 0.0


def test_obs_mask_errors():
    # Pyro raises ValueError; an obs_mask without obs is allowed (both parts latent).
    with poutine.trace():
        with pytest.raises(ValueError, match="must be a bool tensor"):
            pyrolite.sample("x", dist.Normal(0.0, 1.0), obs=torch.zeros(2), obs_mask=torch.ones(2))


def _seed003_model(x, y):
    alpha = pyrolite.sample("alpha", dist.Normal(0.0, 100.0))
    beta = pyrolite.sample("beta", dist.Normal(torch.zeros(8), 10.0))
    sigma = pyrolite.sample("sigma", dist.HalfNormal(10.0))
    with pyrolite.plate("data", x.shape[0]):
        return pyrolite.sample("y", dist.Normal(alpha + x @ beta, sigma), obs=y)


def test_check_site_shape_warns_once_for_unclaimed_batch_dim():
    x, y = torch.randn(5, 8), torch.randn(5)
    tr = poutine.trace(_seed003_model).get_trace(x, y)
    tr.compute_log_prob()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            for site in tr.nodes.values():
                if site["type"] == "sample":
                    check_site_shape(site, max_plate_nesting=1)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1
    assert "'beta'" in messages[0] and ".to_event(1)" in messages[0] and "plate" in messages[0]
    assert "(8,)" in messages[0]
    # The unclaimed dim is summed into the log-joint.
    beta = tr.nodes["beta"]
    expected = sum(_normal_lp(b, 0.0, 10.0) for b in beta["value"].tolist())
    assert beta["log_prob_sum"].item() == pytest.approx(expected, abs=1e-4)
    total = sum(tr.nodes[n]["log_prob_sum"] for n in ["alpha", "beta", "sigma", "y"])
    assert tr.log_prob_sum().item() == pytest.approx(total.item(), abs=1e-4)


def test_check_site_shape_accepts_claimed_dims_and_enumeration_dims():
    frame = CondIndepStackFrame("data", -1, 3, 0, 3)
    site = {
        "name": "x",
        "unscaled_log_prob": torch.zeros(2, 3),
        "cond_indep_stack": (frame,),
        "infer": {"_enumerate_dim": -2},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_site_shape(site, max_plate_nesting=2)
        check_site_shape(site, max_plate_nesting=1)


def test_check_site_shape_wrong_plate_size_raises():
    frame = CondIndepStackFrame("data", -1, 3, 0, 3)
    site = {
        "name": "x",
        "unscaled_log_prob": torch.zeros(5),
        "cond_indep_stack": (frame,),
        "infer": {},
    }
    with pytest.raises(ValueError, match=r"site 'x'.*\(5,\).*plate\('data'\) expects size 3"):
        check_site_shape(site, max_plate_nesting=1)


def test_top_level_api_exports():
    for name in [
        "sample",
        "param",
        "module",
        "random_module",
        "plate",
        "plate_stack",
        "factor",
        "deterministic",
        "markov",
        "subsample",
        "condition",
        "do",
        "get_param_store",
        "clear_param_store",
        "set_rng_seed",
        "enable_validation",
        "validation_enabled",
        "__version__",
    ]:
        assert hasattr(pyrolite, name), name
    assert pyrolite.condition is poutine.condition and pyrolite.do is poutine.do


def test_iarange_irange_are_deprecated_plates():
    with pytest.warns(FutureWarning, match="use plate"):
        p = pyrolite.iarange("p", 3)
    with p:
        assert pyrolite.sample("x", dist.Normal(0.0, 1.0)).shape == (3,)
    with pytest.warns(FutureWarning, match="use plate"):
        assert isinstance(pyrolite.irange("q", 2), pyrolite.plate)


def test_sample_and_param_follow_device(device):
    loc = torch.zeros(2, device=device)
    with poutine.trace() as tracer:
        w = pyrolite.param("w", torch.ones(2, device=device))
        with pyrolite.plate("p", 2, device=device):
            pyrolite.sample("x", dist.Normal(loc, w), obs=torch.zeros(2, device=device))
    lp = tracer.trace.log_prob_sum()
    assert lp.device.type == device.type
    assert lp.item() == pytest.approx(2 * _normal_lp(0.0), abs=1e-6)
