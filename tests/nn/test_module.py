"""PyroModule: param names and constraints in the store, PyroSample sites, training with SVI."""

import pytest
import torch
from torch import nn

import pyrolite
import pyrolite.distributions as dist
from pyrolite import poutine
from pyrolite.distributions import constraints
from pyrolite.infer import SVI, Predictive, Trace_ELBO
from pyrolite.nn import PyroModule, PyroParam, PyroSample, pyro_method, to_pyro_module_
from pyrolite.optim import ClippedAdam


def _build_nested(nn_module, PyroModule, PyroParam, PyroSample, dist, constraints):
    """The same module structure, built from either library's classes (for the Pyro oracle)."""

    class Nested(PyroModule):
        def __init__(self):
            super().__init__()
            self.linear = PyroModule[nn_module.Linear](3, 2)
            self.linear.weight = PyroSample(dist.Normal(0.0, 1.0).expand([2, 3]).to_event(2))
            self.scale = PyroParam(torch.tensor(1.0), constraint=constraints.positive)
            self.seq = PyroModule[nn_module.Sequential](
                PyroModule[nn_module.Linear](2, 2),
                nn_module.ReLU(),
                PyroModule[nn_module.Linear](2, 1),
            )
            self.plain = nn_module.Linear(2, 2)
            self.p = nn_module.Parameter(torch.zeros(2))
            self.loc = PyroParam(lambda: torch.ones(2))

        def forward(self, x):
            h = self.linear(x)
            return (
                (self.seq(h) * self.scale).sum()
                + self.plain(h).sum()
                + self.p.sum()
                + self.loc.sum()
            )

    return Nested()


def _nested():
    return _build_nested(nn, PyroModule, PyroParam, PyroSample, dist, constraints)


def test_param_names_in_store_follow_module_structure():
    model = _nested()
    trace = poutine.trace(model).get_trace(torch.randn(4, 3))
    expected = [
        "linear.bias", "seq.0.weight", "seq.0.bias", "seq.2.weight", "seq.2.bias", "scale",
        "plain$$$weight", "plain$$$bias", "p", "loc",
    ]  # fmt: skip
    assert list(pyrolite.get_param_store().keys()) == expected
    assert [n for n, s in trace.nodes.items() if s["type"] == "param"] == expected
    assert trace.nodes["linear.weight"]["type"] == "sample"


def test_root_module_params_have_bare_names():
    lin = PyroModule[nn.Linear](3, 1)
    lin(torch.randn(2, 3))
    assert sorted(pyrolite.get_param_store().keys()) == ["bias", "weight"]
    assert PyroModule[nn.Linear] is type(lin) and type(lin).__name__ == "PyroLinear"
    # Reads outside a call (here inside nn.Linear's own __init__) never touch the store.
    pyrolite.clear_param_store()
    PyroModule[nn.Linear](2, 5)
    assert len(pyrolite.get_param_store()) == 0


def test_param_names_match_pyro():
    pyro = pytest.importorskip("pyro")
    import pyro.distributions as pdist
    import pyro.nn as pnn

    pyro.clear_param_store()
    theirs = _build_nested(
        nn, pnn.PyroModule, pnn.PyroParam, pnn.PyroSample, pdist, pdist.constraints
    )
    their_trace = pyro.poutine.trace(theirs).get_trace(torch.randn(4, 3))
    ours = _nested()
    our_trace = poutine.trace(ours).get_trace(torch.randn(4, 3))
    assert list(pyrolite.get_param_store().keys()) == list(pyro.get_param_store().keys())
    site_types = lambda tr: [(n, s["type"]) for n, s in tr.nodes.items()]
    assert site_types(our_trace) == site_types(their_trace)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    pyro.clear_param_store()


def test_pyro_param_constraint_and_shared_leaf():
    class Scaled(PyroModule):
        def __init__(self):
            super().__init__()
            self.scale = PyroParam(torch.tensor([0.5, 2.0]), constraint=constraints.positive)

        def forward(self):
            return self.scale

    m = Scaled()
    value = m()
    store = pyrolite.get_param_store()
    assert torch.allclose(value, torch.tensor([0.5, 2.0]))
    assert store.constraint("scale") is constraints.positive
    # The store steps the module's own tensor: log(scale), unconstrained.
    assert store.unconstrained("scale") is m.scale_unconstrained
    assert torch.allclose(m.scale_unconstrained, torch.tensor([0.5, 2.0]).log())
    with torch.no_grad():
        m.scale_unconstrained.fill_(-50.0)  # far outside: the constrained value stays > 0
    assert bool((m() > 0).all())
    m.scale = torch.tensor([3.0, 4.0])  # assignment updates the value in place
    assert torch.allclose(store["scale"], torch.tensor([3.0, 4.0]))
    with pytest.raises(ValueError, match="init_value=None"):
        m.other = PyroParam(None)


def test_module_adopts_param_already_in_store():
    pyrolite.get_param_store().setdefault("weight", torch.full((1, 2), 7.0))
    lin = PyroModule[nn.Linear](2, 1)
    out = lin(torch.ones(1, 2))
    assert torch.allclose(out - lin.bias, torch.tensor([[14.0]]))
    assert lin.weight is pyrolite.get_param_store().unconstrained("weight")


def test_pyro_sample_is_drawn_once_per_call_and_recorded():
    class Noisy(PyroModule):
        def __init__(self):
            super().__init__()
            self.loc = PyroParam(torch.tensor(3.0))
            self.z = PyroSample(lambda self: dist.Normal(self.loc, 1.0))

        def forward(self):
            return self.z, self.z

        @pyro_method
        def twice(self):
            return self.z - self.z

    m = Noisy()
    trace = poutine.trace(m).get_trace()
    a, b = trace.nodes["_RETURN"]["value"]
    assert a is b and trace.nodes["z"]["value"] is a
    assert trace.nodes["z"]["fn"].loc.item() == 3.0  # the prior read the PyroParam
    assert m.twice().item() == 0.0
    # Outside a call every read draws afresh.
    draws = torch.stack([m.z for _ in range(2000)])
    # mean of 2000 N(3, 1) draws: standard error 1/sqrt(2000) ~ 0.022; 4 SE ~ 0.09
    assert abs(draws.mean().item() - 3.0) < 0.09
    assert draws.std().item() > 0.9


def test_pyro_param_decorator_and_lazy_init():
    class Lazy(PyroModule):
        @PyroParam(constraint=constraints.positive, event_dim=1)
        def rate(self):
            return torch.full((3,), 2.0)

        def forward(self):
            return self.rate

    m = Lazy()
    assert torch.allclose(m(), torch.full((3,), 2.0))
    assert pyrolite.get_param_store().constraint("rate") is constraints.positive


def test_to_pyro_module_names_children():
    net = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
    to_pyro_module_(net)
    net[0].weight = PyroSample(dist.Normal(0.0, 1.0).expand([3, 2]).to_event(2))
    trace = poutine.trace(net).get_trace(torch.ones(4, 2))
    assert trace.nodes["0.weight"]["type"] == "sample"
    assert sorted(pyrolite.get_param_store().keys()) == ["0.bias", "2.bias", "2.weight"]


class BayesianRegression(PyroModule):
    def __init__(self, num_features: int):
        super().__init__()
        self.linear = PyroModule[nn.Linear](num_features, 1)
        self.linear.weight = PyroSample(dist.Normal(0.0, 1.0).expand([1, num_features]).to_event(2))
        self.linear.bias = PyroSample(dist.Normal(0.0, 10.0).expand([1]).to_event(1))

    def forward(self, x, y=None):
        mean = self.linear(x).squeeze(-1)
        with pyrolite.plate("data", x.shape[0]):
            pyrolite.sample("obs", dist.Normal(mean, 0.1), obs=y)
        return mean


def regression_guide(x, y=None):
    p = x.shape[-1]
    w_loc = pyrolite.param("w_loc", torch.zeros(1, p))
    w_scale = pyrolite.param("w_scale", torch.full((1, p), 0.1), constraint=constraints.positive)
    b_loc = pyrolite.param("b_loc", torch.zeros(1))
    b_scale = pyrolite.param("b_scale", torch.full((1,), 0.1), constraint=constraints.positive)
    pyrolite.sample("linear.weight", dist.Normal(w_loc, w_scale).to_event(2))
    pyrolite.sample("linear.bias", dist.Normal(b_loc, b_scale).to_event(1))


def test_bayesian_regression_trains_to_least_squares_and_predicts():
    torch.manual_seed(0)
    n, p = 200, 3
    x = torch.randn(n, p)
    y = x @ torch.tensor([1.5, -2.0, 0.5]) + 1.0 + 0.1 * torch.randn(n)
    design = torch.cat([x, torch.ones(n, 1)], 1)
    coef = torch.linalg.lstsq(design, y.unsqueeze(-1)).solution.squeeze(-1)

    model = BayesianRegression(p)
    # lr decays 0.1 -> 0.005 over 150 steps so the final iterates sit still near the optimum.
    svi = SVI(model, regression_guide, ClippedAdam({"lr": 0.1, "lrd": 0.98}), Trace_ELBO())
    for _ in range(150):
        svi.step(x, y)
    store = pyrolite.get_param_store()
    # The posterior sd of each coefficient is ~0.1/sqrt(200) ~ 0.007 and the prior's pull
    # is ~1e-4; 0.03 (4 posterior sds) leaves room for the optimizer's final jitter.
    assert torch.allclose(store["w_loc"].detach().squeeze(0), coef[:p], atol=0.03)
    assert torch.allclose(store["b_loc"].detach(), coef[p:], atol=0.03)
    assert bool((store["w_scale"] < 0.05).all())  # shrunk from its init 0.1 towards ~0.007

    x_new = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, -1.0]])
    predictive = Predictive(model, guide=regression_guide, num_samples=200)
    samples = predictive(x_new)
    assert samples["linear.weight"].shape == (200, 1, p)
    assert samples["obs"].shape == (200, 2)
    expected = torch.cat([x_new, torch.ones(2, 1)], 1) @ coef
    # SE of a 200-draw mean of obs (sd ~0.1) is ~0.007; the fitted coefficients add a
    # bias of up to ~0.03 (checked above) times |x| <= 2: 0.05 covers both.
    assert torch.allclose(samples["obs"].mean(0), expected, atol=0.05)
