"""EasyGuide: the Pyro docs' patterns (MAP via map_estimate, a joint MultivariateNormal
group, amortized local groups in a subsampled plate) train to known conjugate posteriors,
and build the same params and trace structure as Pyro's easyguide."""

import pytest
import torch

import pyrolite
import pyrolite.distributions as dist
from pyrolite import poutine
from pyrolite.contrib.easyguide import EasyGuide, easy_guide
from pyrolite.infer import SVI, Trace_ELBO
from pyrolite.optim import Adam

DATA = torch.tensor([0.5, 1.5, 2.0, 3.0, 1.0, 2.5])


def _train(model, guide, steps, lr, *args, particles=1):
    elbo = Trace_ELBO(num_particles=particles, vectorize_particles=particles > 1)
    svi = SVI(model, guide, Adam({"lr": lr}), elbo)
    for _ in range(steps):
        svi.step(*args)


# --- MAP via map_estimate --------------------------------------------------------------


def _map_model(pyro, dist, data):
    loc = pyro.sample("loc", dist.Normal(0.0, 10.0))
    scale = pyro.sample("scale", dist.LogNormal(0.0, 1.0))
    with pyro.plate("data", len(data)):
        pyro.sample("x", dist.Normal(loc, scale), obs=data)


def test_map_estimate_finds_the_joint_mode():
    def model(data):
        _map_model(pyrolite, dist, data)

    class Guide(EasyGuide):
        def init(self, site):
            return site["fn"].mean  # start near the mode: a prior draw of loc is ~N(0, 10)

        def guide(self, data):
            self.map_estimate("loc")
            self.map_estimate("scale")

    _train(model, Guide(model), 500, 0.05, DATA)
    loc, scale = pyrolite.param("Guide.loc").item(), pyrolite.param("Guide.scale").item()
    # MAP in the constrained space: d/dloc = sum(x - loc)/s^2 - loc/100 = 0 and, for
    # s ~ LogNormal(0, 1), d/ds [-n log s - SS/(2 s^2) - log s - log(s)^2/2] = 0.
    n = len(DATA)
    loc_hat = DATA.sum().item() / (n + scale**2 / 100)
    ss = ((DATA - loc) ** 2).sum().item()
    stationarity = -(n + 1) / scale + ss / scale**3 - torch.log(torch.tensor(scale)) / scale
    assert abs(loc - loc_hat) < 1e-3
    assert abs(float(stationarity)) < 1e-2


# --- one MultivariateNormal over all latents -------------------------------------------

X = torch.tensor([[1.0, 0.5, -1.0], [0.3, -1.2, 0.8], [2.0, 0.1, 0.4], [-0.7, 1.1, 1.5]])
Y = torch.tensor([1.2, -0.4, 2.1, 0.3])


def _regression_model(pyro, dist):
    a = pyro.sample("a", dist.Normal(0.0, 1.0))
    b = pyro.sample("b", dist.Normal(torch.zeros(2), 1.0).to_event(1))
    w = torch.cat([a.unsqueeze(-1), b], -1)  # batch dims end with the data plate's dim
    with pyro.plate("data", len(Y)):
        pyro.sample("y", dist.Normal((X * w).sum(-1), 1.0), obs=Y)


def _joint_guide(pyro, dist, group):
    loc = pyro.param("loc", torch.zeros(group.event_shape))
    scale_tril = pyro.param(
        "scale_tril", torch.eye(group.event_shape[0]), constraint=dist.constraints.lower_cholesky
    )
    return group.sample("joint", dist.MultivariateNormal(loc, scale_tril=scale_tril))


def test_multivariate_normal_group_recovers_the_exact_gaussian_posterior():
    def model():
        _regression_model(pyrolite, dist)

    @easy_guide(model)
    def guide(self):
        return _joint_guide(pyrolite, dist, self.group())

    precision = torch.eye(3) + X.T @ X
    cov = torch.linalg.inv(precision)
    mean = cov @ X.T @ Y
    # A coarse phase, then a fine one; with 256 particles the ELBO gradient's noise leaves
    # the iterate within ~0.01 of the optimum at lr 0.005.
    _train(model, guide, 250, 0.05, particles=256)
    _train(model, guide, 150, 0.005, particles=256)
    loc = pyrolite.param("loc").detach()
    tril = pyrolite.param("scale_tril").detach()
    assert torch.allclose(loc, mean, atol=0.04)
    assert torch.allclose(tril @ tril.T, cov, atol=0.03)


def test_group_sample_returns_constrained_values_per_site():
    def model():
        pyrolite.sample("a", dist.Normal(0.0, 1.0))
        pyrolite.sample("s", dist.LogNormal(torch.zeros(2), 1.0).to_event(1))
        pyrolite.sample("c", dist.Gamma(torch.ones(2, 3), 1.0).to_event(2))

    @easy_guide(model)
    def guide(self):
        group = self.group()
        assert group.event_shape == torch.Size([9])
        z = torch.arange(9.0) / 10
        return group.sample("joint", dist.Delta(z, event_dim=1))

    trace = poutine.trace(guide).get_trace()
    z = torch.arange(9.0) / 10
    assert torch.equal(trace.nodes["a"]["value"], z[0])
    assert torch.allclose(trace.nodes["s"]["value"], z[1:3].exp())
    assert torch.allclose(trace.nodes["c"]["value"], z[3:].exp().reshape(2, 3))
    # log_density is -log|dT/du| of exp: -sum(u) over each site's event
    assert torch.allclose(trace.nodes["c"]["fn"].log_density, -z[3:].sum())


# --- amortized local latents in a subsampled plate --------------------------------------

N, BATCH = 60, 20
LOCAL_DATA = torch.linspace(-2.0, 4.0, N)


def _local_model(pyro, dist, batch, subsample):
    mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
    with pyro.plate("data", N, subsample=subsample):
        z = pyro.sample("z", dist.Normal(mu, 1.0))
        pyro.sample("x", dist.Normal(z, 1.0), obs=batch)


class _Encoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(1, 2)

    def forward(self, x):
        out = self.linear(x.unsqueeze(-1))
        return out[..., :1], out[..., 1:].exp()


def _local_guide(pyro, dist, self, encoder, batch, subsample):
    self.map_estimate("mu")
    with self.plate("data", N, subsample=subsample):
        group = self.group(match="z")
        pyro.module("encoder", encoder)
        loc, scale = encoder(batch)
        return group.sample("z_aux", dist.Normal(loc, scale).to_event(1))


def test_amortized_local_group_learns_the_conditional_posterior():
    encoder = _Encoder()

    def model(batch, subsample):
        _local_model(pyrolite, dist, batch, subsample)

    @easy_guide(model)
    def guide(self, batch, subsample):
        return _local_guide(pyrolite, dist, self, encoder, batch, subsample)

    elbo = Trace_ELBO(num_particles=8, vectorize_particles=True)
    svi = SVI(model, guide, Adam({"lr": 0.03}), elbo)
    for _ in range(600):
        subsample = torch.randperm(N)[:BATCH]
        svi.step(LOCAL_DATA[subsample], subsample)
    mu = pyrolite.param("guide.mu").item()
    weight, bias = encoder.linear.weight.detach()[:, 0], encoder.linear.bias.detach()
    # Marginally x ~ N(mu, 2): the MAP of mu is sum(x)/2 / (n/2 + 1/100); given mu,
    # z | x ~ N((x + mu)/2, 1/2), so the encoder's loc is x/2 + mu/2, its scale sqrt(1/2).
    mu_hat = LOCAL_DATA.sum().item() / 2 / (N / 2 + 0.01)
    assert abs(mu - mu_hat) < 0.1
    assert abs(weight[0].item() - 0.5) < 0.05
    assert abs(bias[0].item() - mu_hat / 2) < 0.1
    assert abs(weight[1].item()) < 0.05
    assert abs(bias[1].exp().item() - 0.5**0.5) < 0.05


def test_map_estimate_in_a_subsampled_plate_keeps_a_full_size_param():
    def model(batch, subsample):
        _local_model(pyrolite, dist, batch, subsample)

    class Guide(EasyGuide):
        def guide(self, batch, subsample):
            self.map_estimate("mu")
            with self.plate("data", N, subsample=subsample):
                return self.group("z").map_estimate()

    subsample = torch.tensor([3, 7, 11])
    guide = Guide(model)
    values = guide(LOCAL_DATA[subsample], subsample)
    full = pyrolite.param("Guide.z")
    assert full.shape == (N,)
    assert torch.equal(values["z"], full[subsample])


def test_group_without_matching_sites_names_the_latent_sites():
    def model():
        pyrolite.sample("a", dist.Normal(0.0, 1.0))

    @easy_guide(model)
    def guide(self):
        self.group("nothing")

    with pytest.raises(ValueError, match="'a'"):
        guide()


# --- against Pyro ---------------------------------------------------------------------


def _structure(pyro, poutine, guide, *args):
    pyro.clear_param_store()
    trace = poutine.trace(guide).get_trace(*args)
    sites = []
    for name, site in trace.nodes.items():
        if site["type"] not in ("sample", "param") or site["infer"].get("_subsample"):
            continue
        if type(site["fn"]).__name__ == "_Subsample":
            continue
        entry = [name, site["type"], tuple(site["value"].shape)]
        entry.append([(f.name, f.dim, f.size) for f in site["cond_indep_stack"]])
        if site["type"] == "sample":
            fn = site["fn"]
            entry += [type(fn).__name__, fn.event_dim, dict(site["infer"])]
        sites.append(entry)
    return sites, sorted(pyro.get_param_store().keys())


def _both():
    pyro = pytest.importorskip("pyro")
    pyro_dist = pytest.importorskip("pyro.distributions")
    pyro_poutine = pytest.importorskip("pyro.poutine")
    from pyro.contrib.easyguide import easy_guide as pyro_easy_guide

    return [
        (pyrolite, dist, poutine, easy_guide),
        (pyro, pyro_dist, pyro_poutine, pyro_easy_guide),
    ]


def test_map_guide_matches_pyros_params_and_trace():
    results = []
    for pyro, d, p, make in _both():

        def model(data, pyro=pyro, d=d):
            _map_model(pyro, d, data)

        @make(model)
        def guide(self, data):
            self.map_estimate("loc")
            self.map_estimate("scale")

        results.append(_structure(pyro, p, guide, DATA))
    assert results[0] == results[1]
    assert results[0][1] == ["guide.loc", "guide.scale"]


def test_joint_group_guide_matches_pyros_params_and_trace():
    results = []
    for pyro, d, p, make in _both():

        def model(pyro=pyro, d=d):
            _regression_model(pyro, d)

        @make(model)
        def guide(self, pyro=pyro, d=d):
            return _joint_guide(pyro, d, self.group())

        results.append(_structure(pyro, p, guide))
    assert results[0] == results[1]


def test_amortized_guide_matches_pyros_params_and_trace():
    results = []
    subsample = torch.tensor([2, 5, 9, 30])
    for pyro, d, p, make in _both():
        encoder = _Encoder()

        def model(batch, subsample, pyro=pyro, d=d):
            _local_model(pyro, d, batch, subsample)

        @make(model)
        def guide(self, batch, subsample, pyro=pyro, d=d, encoder=encoder):
            return _local_guide(pyro, d, self, encoder, batch, subsample)

        results.append(_structure(pyro, p, guide, LOCAL_DATA[subsample], subsample))
        results[-1] = (results[-1], sorted(n for n, _ in guide.named_parameters()))
    assert results[0] == results[1]
