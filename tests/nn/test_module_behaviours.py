"""PyroModule behaviours checked against Pyro: replacing a param by a PyroParam,
PyroModuleList (and its slices), and the module_local_params setting; plus an analytic
check that a PyroModule regression trained with local params reaches least squares."""

import pytest
import torch
from torch import nn

import pyrolite
import pyrolite.distributions as dist
from pyrolite import poutine
from pyrolite.distributions import constraints
from pyrolite.infer import Trace_ELBO
from pyrolite.nn.module import PyroModule, PyroModuleList, PyroParam, PyroSample


def _pyro():
    return pytest.importorskip("pyro")


def _libs():
    """(pyrolite, pyro) with their nn classes, for the same code run on both."""
    pyro = _pyro()
    import pyro.nn as pnn

    lite = (pyrolite, PyroModule, PyroParam, PyroSample, PyroModuleList)
    ref = (pyro, pnn.PyroModule, pnn.PyroParam, pnn.PyroSample, pnn.PyroModuleList)
    return lite, ref


@pytest.fixture
def local_params():
    """module_local_params on, in both libraries, restored afterwards."""
    pyro = _pyro()
    with pyrolite.settings.context(module_local_params=True):
        with pyro.settings.context(module_local_params=True):
            yield


@pytest.fixture
def local_params_lite():
    with pyrolite.settings.context(module_local_params=True):
        yield


# --- PyroParam over an existing param -------------------------------------------------


def _replace_bias(lib, PyroModule, PyroParam):
    lib.clear_param_store()
    torch.manual_seed(0)
    m = PyroModule[nn.Linear](2, 1)
    m(torch.ones(2))
    keys = [sorted(lib.get_param_store().keys())]
    m.bias = PyroParam(torch.tensor([0.5]), constraints.positive)
    keys.append(sorted(lib.get_param_store().keys()))
    first = m(torch.ones(2)).detach()
    stored = lib.get_param_store()["bias"].detach()
    # A PyroParam over a PyroParam, with another constraint.
    m.bias = PyroParam(torch.tensor([0.25]), constraints.interval(0.0, 1.0))
    second = m(torch.ones(2)).detach()
    stored2 = lib.get_param_store()["bias"].detach()
    return keys, first, stored, second, stored2, m.weight.detach()


def test_pyroparam_over_parameter_replaces_store_entry_as_pyro():
    (lite, PM, PP, _, _), (pyro, PPM, PPP, _, _) = _libs()
    keys, first, stored, second, stored2, w = _replace_bias(lite, PM, PP)
    rkeys, rfirst, rstored, rsecond, rstored2, rw = _replace_bias(pyro, PPM, PPP)
    assert keys == rkeys == [["bias", "weight"], ["weight"]]
    assert torch.allclose(stored, rstored) and torch.allclose(stored, torch.tensor([0.5]))
    assert torch.allclose(stored2, rstored2) and torch.allclose(stored2, torch.tensor([0.25]))
    # Same weights (same seed): the outputs agree, and equal weight.sum() + the new bias.
    assert torch.allclose(w, rw)
    assert torch.allclose(first, rfirst) and torch.allclose(first, w.sum() + 0.5)
    assert torch.allclose(second, rsecond) and torch.allclose(second, w.sum() + 0.25)


def test_loaded_value_is_kept_but_replacement_drops_it_as_pyro():
    (lite, PM, PP, _, _), (pyro, PPM, PPP, _, _) = _libs()
    out = []
    for lib, PyroMod, PyroPar in [(lite, PM, PP), (pyro, PPM, PPP)]:
        lib.clear_param_store()
        lib.param("a", torch.tensor(5.0), constraint=constraints.positive)

        class M(PyroMod):
            def __init__(self, PyroPar=PyroPar):
                super().__init__()
                self.a = PyroPar(torch.tensor(1.0), constraints.positive)

            def forward(self):
                return self.a

        m = M()
        loaded = float(m())  # the module adopts the value already in the store
        m.a = PyroPar(torch.tensor(2.0), constraints.positive)
        gone = "a" in lib.get_param_store()
        out.append((loaded, gone, float(m()), float(lib.get_param_store()["a"])))
    assert out[0] == pytest.approx(out[1])
    assert out[0] == pytest.approx((5.0, False, 2.0, 2.0))


@pytest.mark.parametrize("replacement", ["sample", "parameter"])
def test_other_replacements_drop_store_entry_as_pyro(replacement):
    (lite, PM, _, PS, _), (pyro, PPM, _, PPS, _) = _libs()
    got = []
    for lib, PyroMod, PyroSam, d in [(lite, PM, PS, dist), (pyro, PPM, PPS, pyro.distributions)]:
        lib.clear_param_store()
        m = PyroMod[nn.Linear](2, 1)
        m(torch.ones(2))
        if replacement == "sample":
            m.weight = PyroSam(d.Normal(0.0, 1.0).expand([1, 2]).to_event(2))
        else:
            m.weight = nn.Parameter(torch.full((1, 2), 3.0))
        got.append(sorted(lib.get_param_store().keys()))
    assert got[0] == got[1] == ["bias"]


def test_pyroparam_none_takes_value_of_replaced_parameter():
    pyrolite.clear_param_store()
    m = PyroModule[nn.Linear](2, 1)
    w = m.weight.detach().clone()
    m(torch.ones(2))
    m.weight = PyroParam(None, constraints.real)
    out = m(torch.ones(2))
    assert torch.allclose(out, w.sum() + m.bias)
    assert torch.allclose(pyrolite.get_param_store()["weight"], w)


# --- PyroModuleList ---------------------------------------------------------------------


def _list_names(lib, PyroMod, PyroList):
    lib.clear_param_store()

    class Net(PyroMod):
        def __init__(self):
            super().__init__()
            self.layers = PyroList([PyroMod[nn.Linear](2, 2) for _ in range(3)])

        def forward(self, x):
            for layer in self.layers[1:]:
                x = layer(x)
            return x

    net = Net()
    net(torch.ones(2))
    tail = net.layers[1:]
    return (
        list(lib.get_param_store().keys()),
        [m._pyro_name for m in net.layers],
        [m._pyro_name for m in tail],
        list(tail._modules.keys()),
        len(tail),
        PyroMod[nn.ModuleList] is PyroList,
    )


def test_pyro_module_list_names_and_slices_as_pyro():
    (lite, PM, _, _, PL), (pyro, PPM, _, _, PPL) = _libs()
    mine, ref = _list_names(lite, PM, PL), _list_names(pyro, PPM, PPL)
    assert mine == ref
    assert mine[0] == ["layers.1.weight", "layers.1.bias", "layers.2.weight", "layers.2.bias"]
    assert mine[2] == ["layers.1", "layers.2"] and mine[3] == ["0", "1"]


def test_pyro_module_list_slice_is_a_pyro_module_list_of_the_same_modules():
    layers = PyroModuleList([PyroModule[nn.Linear](1, 1) for _ in range(4)])
    tail = layers[::2]
    assert isinstance(tail, PyroModuleList) and isinstance(tail, nn.ModuleList)
    assert tail[0] is layers[0] and tail[1] is layers[2]
    assert [m._pyro_name for m in tail] == ["0", "2"]


def test_pyro_module_list_append_and_setitem_name_children_as_pyro():
    (lite, PM, _, _, PL), (pyro, PPM, _, _, PPL) = _libs()
    got = []
    for PyroMod, PyroList in [(PM, PL), (PPM, PPL)]:
        ml = PyroList([PyroMod[nn.Linear](1, 1)])
        ml.append(PyroMod[nn.Linear](1, 1))
        ml[0] = PyroMod[nn.Linear](1, 1)
        # By index: Pyro's setitem also moves the item to the end of its iteration order
        # (its module dict re-inserts the key); pyrolite keeps the list's order.
        got.append([ml[i]._pyro_name for i in range(len(ml))])
    assert got[0] == got[1] == ["0", "1"]


# --- module_local_params ------------------------------------------------------------------


def _local_model_class(PyroMod, PyroPar):
    class M(PyroMod):
        def __init__(self):
            super().__init__()
            self.a = PyroPar(torch.tensor(1.0), constraints.positive)
            self.lin = PyroMod[nn.Linear](2, 1)

        def forward(self, x):
            return self.a * self.lin(x)

    return M


def _local_behaviour(lib, PyroMod, PyroPar, poutine_mod):
    lib.clear_param_store()
    M = _local_model_class(PyroMod, PyroPar)
    torch.manual_seed(0)
    m1, m2 = M(), M()
    x = torch.ones(2)
    m1(x)
    tr = poutine_mod.trace(m1).get_trace(x)
    sites = {k: v["value"] for k, v in tr.nodes.items() if v["type"] == "param"}
    with torch.no_grad():
        m1.a = torch.tensor(3.0)
    return (
        list(lib.get_param_store().keys()),
        sorted(sites),
        sites["lin.weight"] is m1.lin.weight,
        float(m1.a),
        float(m2.a),
        [n for n, _ in m1.named_parameters()],
        float(m1(x)),
        float(m2(x)),
    )


def test_local_params_keep_store_empty_and_instances_separate_as_pyro(local_params):
    pyro = _pyro()
    from pyro import poutine as ppoutine
    from pyro.nn import PyroModule as PPM
    from pyro.nn import PyroParam as PPP

    mine = _local_behaviour(pyrolite, PyroModule, PyroParam, poutine)
    ref = _local_behaviour(pyro, PPM, PPP, ppoutine)
    assert mine[:6] == ref[:6]
    assert mine[0] == [] and mine[1] == ["a", "lin.bias", "lin.weight"]
    assert mine[3:5] == (3.0, 1.0)  # the two instances keep separate values
    assert mine[6:] == pytest.approx(ref[6:])  # same seed, same weights


def test_local_params_refuse_global_param_as_pyro(local_params):
    pyro = _pyro()
    for lib, PyroMod in [(pyrolite, PyroModule), (pyro, pyro.nn.PyroModule)]:

        class G(PyroMod):
            def forward(self, lib=lib):
                return lib.param("q", torch.tensor(1.0))

        with pytest.raises(NotImplementedError, match="global pyro.param statements"):
            G()()
        # Outside a PyroModule a global param still works.
        assert float(lib.param("q2", torch.tensor(2.0))) == 2.0
        assert list(lib.get_param_store().keys()) == ["q2"]
        lib.clear_param_store()


def test_local_params_plain_child_sites_as_pyro(local_params):
    pyro = _pyro()
    got = []
    for lib, PyroMod, pout in [
        (pyrolite, PyroModule, poutine),
        (pyro, pyro.nn.PyroModule, pyro.poutine),
    ]:
        lib.clear_param_store()

        class P(PyroMod):
            def __init__(self):
                super().__init__()
                self.lin = nn.Linear(2, 1)

            def forward(self, x):
                return self.lin(x)

        p = P()
        tr = pout.trace(p).get_trace(torch.ones(2))
        params = {k: v["value"] for k, v in tr.nodes.items() if v["type"] == "param"}
        got.append((sorted(params), list(lib.get_param_store().keys())))
        assert params["lin$$$weight"] is p.lin.weight
    assert got[0] == got[1] == (["lin$$$bias", "lin$$$weight"], [])


def test_local_params_autoguide_params_stay_in_the_guide(local_params_lite):
    from pyrolite.infer.autoguide import AutoNormal

    def model():
        pyrolite.sample("z", dist.Normal(0.0, 1.0))

    g1, g2 = AutoNormal(model), AutoNormal(model)
    tr = poutine.trace(g1).get_trace()
    g2()
    assert list(pyrolite.get_param_store().keys()) == []
    assert [n for n, s in tr.nodes.items() if s["type"] == "param"] == [
        "AutoNormal.locs.z",
        "AutoNormal.scales.z",
    ]
    with torch.no_grad():
        g1.locs.z = torch.tensor(1.5)
    assert float(g1.median()["z"]) == 1.5 and float(g2.median()["z"]) == 0.0


def test_local_params_regression_reaches_least_squares(local_params_lite):
    """MAP of a flat-prior linear regression is the least-squares fit (closed form)."""
    torch.manual_seed(1)
    x = torch.randn(40, 2)
    y = x @ torch.tensor([1.5, -0.7]) + 0.3 + 0.2 * torch.randn(40)

    class Regression(PyroModule):
        def __init__(self):
            super().__init__()
            self.linear = PyroModule[nn.Linear](2, 1)
            self.sigma = PyroParam(torch.tensor(1.0), constraints.positive)

        def forward(self, x, y=None):
            mean = self.linear(x).squeeze(-1)
            with pyrolite.plate("data", len(x)):
                pyrolite.sample("obs", dist.Normal(mean, self.sigma), obs=y)

    def guide(x, y=None):
        pass

    model = Regression()
    loss_fn = Trace_ELBO()(model, guide)
    optim = torch.optim.Adam(loss_fn.parameters(), lr=0.05)
    for _ in range(600):
        optim.zero_grad()
        loss_fn(x, y).backward()
        optim.step()
    design = torch.cat([x, torch.ones(40, 1)], dim=-1)
    beta = torch.linalg.lstsq(design, y[:, None]).solution.squeeze(-1)
    fitted = torch.cat([model.linear.weight.detach()[0], model.linear.bias.detach()])
    assert torch.allclose(fitted, beta, atol=2e-3)
    # sigma's MLE is the residual RMS.
    rms = (design @ beta - y).pow(2).mean().sqrt()
    assert float(model.sigma) == pytest.approx(float(rms), abs=5e-3)
    assert list(pyrolite.get_param_store().keys()) == []
