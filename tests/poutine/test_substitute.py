"""``poutine.substitute``: fixed values for param sites (Pyro's semantics)."""

import warnings

import pytest
import torch
from torch.distributions import constraints

import pyrolite
import pyrolite.distributions as dist
from pyrolite import poutine

Y = torch.tensor([0.5, 2.0, -1.0])


def model(lib=pyrolite, d=dist):
    loc = lib.param("loc", torch.tensor(0.0))
    scale = lib.param("scale", torch.tensor(2.0), constraint=constraints.positive)
    z = lib.sample("z", d.Normal(loc, scale))
    with lib.plate("data", 3):
        lib.sample("y", d.Normal(z, 1.0), obs=Y)
    return loc, scale, lib.param("loc")


def _normal_lp(x, loc, scale):
    return (-0.5 * ((x - loc) / scale) ** 2 - torch.log(scale) - 0.9189385332046727).sum()


def test_substituted_param_gets_the_given_value_and_others_the_store_value():
    new_loc = torch.tensor(1.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loc, scale, loc_again = poutine.substitute(model, data={"loc": new_loc})()
    assert loc is new_loc and loc_again is new_loc
    assert scale.item() == pytest.approx(2.0)
    assert "scale" in pyrolite.get_param_store()


def test_store_is_neither_read_nor_written_for_substituted_params():
    pyrolite.param("loc", torch.tensor(-7.0))
    with poutine.substitute(data={"loc": torch.tensor(3.0), "scale": torch.tensor(0.5)}):
        loc, scale, _ = model()
    assert (loc.item(), scale.item()) == (3.0, 0.5)
    assert pyrolite.get_param_store()["loc"].item() == -7.0
    assert "scale" not in pyrolite.get_param_store()

    # A param with no initial value and no store entry is fine when substituted.
    with poutine.substitute(data={"w": torch.tensor(4.0)}):
        assert pyrolite.param("w").item() == 4.0
    assert "w" not in pyrolite.get_param_store()


def test_sample_sites_are_not_substituted():
    data = {"loc": torch.tensor(0.0), "scale": torch.tensor(1.0), "z": torch.tensor(100.0)}
    with pytest.warns(UserWarning, match=r"\['z'\]"):
        tr = poutine.trace(poutine.substitute(model, data=data)).get_trace()
    assert tr.nodes["z"]["value"].abs().item() < 10.0
    assert not tr.nodes["z"]["is_observed"]


def test_trace_records_substituted_values_and_log_prob_uses_them():
    z = torch.tensor(0.7)
    data = {"loc": torch.tensor(0.2), "scale": torch.tensor(0.5)}
    substituted = poutine.condition(poutine.substitute(model, data=data), data={"z": z})
    tr = poutine.trace(substituted).get_trace()
    assert tr.nodes["loc"]["type"] == "param"
    assert tr.nodes["loc"]["value"] is data["loc"]
    assert tr.nodes["scale"]["value"] is data["scale"]
    expected = _normal_lp(z, data["loc"], data["scale"]) + _normal_lp(Y, z, torch.tensor(1.0))
    assert tr.log_prob_sum().item() == pytest.approx(expected.item(), rel=1e-6)


def test_gradient_flows_into_the_substituted_tensor():
    loc = torch.tensor(0.2, requires_grad=True)
    scale = torch.tensor(0.5)
    z = torch.tensor(0.7)
    substituted = poutine.substitute(model, data={"loc": loc, "scale": scale})
    tr = poutine.trace(poutine.condition(substituted, data={"z": z})).get_trace()
    tr.log_prob_sum().backward()
    # d/dloc log N(z | loc, scale) = (z - loc) / scale**2
    assert loc.grad.item() == pytest.approx(((z - 0.2) / scale**2).item(), rel=1e-6)


def test_module_params_match_by_local_or_full_name():
    net = torch.nn.Linear(2, 1)
    weight, bias = torch.full((1, 2), 3.0), torch.full((1,), -1.0)

    def net_model():
        pyrolite.module("net", net)

    data = {"weight": weight, "net$$$bias": bias}
    tr = poutine.trace(poutine.substitute(net_model, data=data)).get_trace()
    assert tr.nodes["net$$$weight"]["value"] is weight
    assert tr.nodes["net$$$bias"]["value"] is bias


@pytest.mark.parametrize("bad", [None, [("loc", 1.0)], 3, "loc"])
def test_non_mapping_data_is_rejected_at_construction(bad):
    with pytest.raises(TypeError, match=r"poutine\.substitute expects data as a dict"):
        poutine.substitute(model, data=bad)


def test_non_callable_fn_names_the_handler():
    with pytest.raises(TypeError, match=r"poutine\.substitute expected a callable"):
        poutine.substitute(model(), data={})


def test_unused_names_warn_with_the_params_the_model_read():
    with pytest.warns(UserWarning) as record:
        poutine.substitute(model, data={"lco": torch.tensor(1.0)})()
    assert len(record) == 1
    message = str(record[0].message)
    assert "['lco']" in message
    assert "['loc', 'scale']" in message


def test_no_unused_name_warning_with_validation_off_or_on_error():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pyrolite.enable_validation(False)
        poutine.substitute(model, data={"lco": torch.tensor(1.0)})()
        pyrolite.enable_validation(True)

        def failing():
            raise KeyError("boom")

        with pytest.raises(KeyError):
            poutine.substitute(failing, data={"lco": torch.tensor(1.0)})()
    assert not poutine.runtime._STACK


def test_messenger_is_reusable_and_each_run_checks_its_own_names():
    msngr = poutine.SubstituteMessenger({"loc": torch.tensor(1.0)})
    with msngr:
        assert model()[0].item() == 1.0
    with pytest.warns(UserWarning, match=r"\['loc'\]"), msngr:
        pyrolite.param("other", torch.tensor(0.0))


def test_lift_outside_substitute_still_lifts():
    prior = {"loc": dist.Delta(torch.tensor(-3.0))}
    lifted = poutine.lift(poutine.substitute(model, data={"loc": torch.tensor(1.0)}), prior=prior)
    tr = poutine.trace(lifted).get_trace()
    assert tr.nodes["loc"]["type"] == "sample"
    assert tr.nodes["loc"]["value"].item() == -3.0


# --- against Pyro -----------------------------------------------------------------------------


@pytest.mark.parametrize("names", [("loc",), ("scale",), ("loc", "scale"), ()])
def test_matches_pyro(names):
    pyro = pytest.importorskip("pyro")
    import pyro.distributions as odist
    from pyro import poutine as opoutine

    values = {"loc": torch.tensor(0.3), "scale": torch.tensor(1.7)}
    data = {name: values[name] for name in names}
    z = torch.tensor(-0.4)

    def run(lib, d, handlers):
        lib.clear_param_store()
        lib.param("loc", torch.tensor(-2.0))  # in the store before the run
        substituted = handlers.substitute(lambda: model(lib, d), data=data)
        tr = handlers.trace(handlers.condition(substituted, data={"z": z})).get_trace()
        params = {n: s["value"].detach() for n, s in tr.nodes.items() if s["type"] == "param"}
        return params, tr.log_prob_sum().item(), sorted(lib.get_param_store().keys())

    ours, theirs = run(pyrolite, dist, poutine), run(pyro, odist, opoutine)
    assert ours[0].keys() == theirs[0].keys() == {"loc", "scale"}
    for name in ours[0]:
        assert ours[0][name].item() == pytest.approx(theirs[0][name].item())
    assert ours[1] == pytest.approx(theirs[1], rel=1e-6)
    assert ours[2] == theirs[2]


def test_unused_name_warns_like_pyro():
    pyro = pytest.importorskip("pyro")
    import pyro.distributions as odist
    from pyro import poutine as opoutine

    data = {"loc": torch.tensor(0.0), "missing": torch.tensor(1.0)}
    with pyro.validation_enabled(True):
        with pytest.warns(UserWarning, match="missing"):
            opoutine.substitute(lambda: model(pyro, odist), data=data)()
    with pytest.warns(UserWarning, match="missing"):
        poutine.substitute(model, data=data)()
