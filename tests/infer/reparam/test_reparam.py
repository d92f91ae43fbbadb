"""Reparameterized models keep their marginals; LocScaleReparam learns its centering;
strategies, NeuTra and conjugate updates keep the joint density."""

import math

import pytest
import torch

import pyrolite
import pyrolite.distributions as dist
from pyrolite import poutine
from pyrolite.distributions.projected_normal import ProjectedNormal
from pyrolite.distributions.stable import Stable
from pyrolite.infer import SVI, Trace_ELBO
from pyrolite.infer.autoguide.continuous import AutoDiagonalNormal
from pyrolite.infer.autoguide.guides import AutoNormal
from pyrolite.infer.reparam import (
    AutoReparam,
    ConjugateReparam,
    DiscreteCosineReparam,
    GumbelSoftmaxReparam,
    HaarReparam,
    LatentStableReparam,
    LocScaleReparam,
    MinimalReparam,
    NeuTraReparam,
    ProjectedNormalReparam,
    Reparam,
    StableReparam,
    StudentTReparam,
    SymmetricStableReparam,
    TransformReparam,
)
from pyrolite.optim import Adam
from pyrolite.poutine.reparam_messenger import ReparamMessenger

N = 20000


def reparam(fn, config):
    return ReparamMessenger(config)(fn)


def _draw(make, config, event_shape=()):
    """N draws of site x: plate over N, reparameterized."""

    def model():
        with pyrolite.plate("n", N):
            return pyrolite.sample("x", make())

    return reparam(model, config)().detach()


@pytest.mark.parametrize(
    "make,config,mean,var",
    [
        (lambda: dist.Normal(1.0, 2.0), LocScaleReparam(0.0), 1.0, 4.0),
        (lambda: dist.Normal(1.0, 2.0), LocScaleReparam(0.4), 1.0, 4.0),
        (lambda: dist.Normal(1.0, 2.0), LocScaleReparam(), 1.0, 4.0),
        (lambda: dist.StudentT(6.0, 1.0, 2.0), LocScaleReparam(0.0, ["df"]), 1.0, 4 * 6 / 4),
        (lambda: dist.StudentT(6.0, 1.0, 2.0), StudentTReparam(), 1.0, 4 * 6 / 4),
        (
            lambda: dist.LogNormal(0.0, 0.5),
            TransformReparam(),
            math.exp(0.125),
            (math.exp(0.25) - 1) * math.exp(0.25),
        ),
    ],
)
def test_marginal_moments_are_kept(make, config, mean, var):
    # Under the reparameterized model the original site has its original law. Tolerance:
    # 5 standard errors of the mean, and of the variance (kurtosis <= 9 for these laws).
    x = _draw(make, {"x": config})
    assert abs(float(x.mean()) - mean) < 5 * math.sqrt(var / N)
    assert abs(float(x.var()) - var) < 5 * var * math.sqrt(8 / N)


def _ecdf_gap(x, y, points):
    return max(abs(float((x <= p).double().mean() - (y <= p).double().mean())) for p in points)


@pytest.mark.parametrize(
    "params,config",
    [
        ((1.5, 0.3, 2.0, 1.0), LatentStableReparam()),
        ((1.5, 0.3, 2.0, 1.0), StableReparam()),
        ((0.8, -0.7, 1.0, 0.0), StableReparam()),
        ((1.2, 0.0, 0.5, -1.0), SymmetricStableReparam()),
    ],
)
def test_stable_marginal_matches_stable_rsample(params, config):
    # Empirical CDFs of two samples of N: each point's gap has sd <= sqrt(2 * 0.25 / N),
    # so 5 sd is 0.025.
    pyrolite.set_rng_seed(0)
    d = Stable(*map(torch.tensor, params))
    ref = d.rsample((N,))
    if isinstance(config, LatentStableReparam):
        x = _draw(lambda: d, {"x": config})
    else:
        # The site is Normal given the auxiliaries: draw x from it.
        def model():
            with pyrolite.plate("n", N):
                return pyrolite.sample("x", d)

        x = reparam(model, {"x": config})().detach()
    points = [float(v) for v in ref.quantile(torch.tensor([0.1, 0.25, 0.5, 0.75, 0.9]))]
    assert _ecdf_gap(x, ref, points) < 0.025


def test_projected_normal_and_gumbel_marginals():
    pyrolite.set_rng_seed(0)
    conc = torch.tensor([1.0, 2.0, 0.5])
    x = _draw(lambda: ProjectedNormal(conc), {"x": ProjectedNormalReparam()}, (3,))
    ref = ProjectedNormal(conc).sample((N,))
    # Each coordinate is bounded by 1: 5 SE of a two-sample mean difference is < 0.05.
    assert (x.mean(0) - ref.mean(0)).abs().max() < 5 * math.sqrt(2 / N)
    assert torch.allclose(x.norm(dim=-1), torch.ones(N), atol=1e-5)
    probs = torch.tensor([0.2, 0.3, 0.5])
    relaxed = dist.RelaxedOneHotCategorical(torch.tensor(0.5), probs=probs)
    x = _draw(lambda: relaxed, {"x": GumbelSoftmaxReparam()}, (3,))
    ref = relaxed.sample((N,))
    assert (x.mean(0) - ref.mean(0)).abs().max() < 5 * math.sqrt(2 / N)


@pytest.mark.parametrize("config", [DiscreteCosineReparam(), HaarReparam()])
def test_unit_jacobian_keeps_mean_and_covariance(config):
    loc = torch.arange(4.0)
    scale_tril = torch.tensor([[1.0, 0, 0, 0], [0.5, 1, 0, 0], [0, 0.3, 2, 0], [0, 0, 0.1, 1]])
    d = dist.MultivariateNormal(loc, scale_tril=scale_tril)
    x = _draw(lambda: d, {"x": config}, (4,))
    cov = scale_tril @ scale_tril.T
    assert (x.mean(0) - loc).abs().max() < 5 * math.sqrt(4.0 / N)
    assert (torch.cov(x.T) - cov).abs().max() < 5 * 4.0 * math.sqrt(2 / N)


def test_loc_scale_learns_to_decenter_a_funnel():
    # Neal's funnel with no data: the non-centered form (centered -> 0) is what a
    # mean-field guide fits; from its init 0.5 the learned centering must fall below 0.4
    # in 300 steps (it is at about 0.31 then, and still falling).
    pyrolite.set_rng_seed(0)
    pyrolite.clear_param_store()

    def model():
        y = pyrolite.sample("y", dist.Normal(0.0, 3.0))
        with pyrolite.plate("p", 10):
            pyrolite.sample("x", dist.Normal(0.0, (0.5 * y).exp()))

    model = reparam(model, {"x": LocScaleReparam()})
    guide = AutoNormal(model)
    svi = SVI(model, guide, Adam({"lr": 0.05}), Trace_ELBO())
    for _ in range(300):
        svi.step()
    centered = pyrolite.param("x_centered")
    assert float(centered.detach()) < 0.4


def test_old_call_interface_warns_and_works():
    class OldShift(Reparam):
        def __call__(self, name, fn, obs):
            return dist.Normal(fn.loc + 1.0, fn.scale), obs

    def model():
        return pyrolite.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor(1.0))

    with pytest.warns(FutureWarning, match="apply"):
        tr = poutine.trace(reparam(model, {"x": OldShift()})).get_trace()
    assert float(tr.log_prob_sum()) == pytest.approx(-0.5 * math.log(2 * math.pi))


def test_reparam_config_must_be_dict_or_callable():
    with pytest.raises(TypeError, match="config"):
        ReparamMessenger(3)


def _strategy_model():
    pyrolite.sample("a", dist.Normal(0.0, 1.0))
    pyrolite.sample("b", dist.LogNormal(0.0, 1.0))
    pyrolite.sample("c", Stable(1.5, 0.5))
    pyrolite.sample("d", dist.StudentT(3.0, 0.0, 1.0))
    pyrolite.sample("g", Stable(1.5, 0.5), obs=torch.tensor(1.0))
    pyrolite.sample("h", Stable(1.5, 0.0), obs=torch.tensor(1.0))
    pyrolite.sample("j", dist.Gamma(2.0, 2.0))


def test_strategies_choose_pyros_reparameterizers():
    pyrolite.clear_param_store()
    auto = AutoReparam()
    poutine.trace(auto(_strategy_model)).get_trace()
    chosen = {k: type(v).__name__ if v is not None else None for k, v in auto.config.items()}
    assert chosen == {
        "a": "LocScaleReparam", "a_decentered": None, "b": "TransformReparam",
        "b_base": "LocScaleReparam", "b_base_decentered": None, "c": "LocScaleReparam",
        "c_decentered": "LatentStableReparam", "c_decentered_uniform": None,
        "c_decentered_exponential": None, "d": "LocScaleReparam", "d_decentered": None,
        "g": "StableReparam", "g_z_uniform": None, "g_z_exponential": None,
        "g_t_uniform": None, "g_t_exponential": None, "h": "SymmetricStableReparam",
        "h_uniform": None, "h_exponential": None, "j": None,
    }  # fmt: skip
    assert auto.config["c"].shape_params == ["skew", "stability"]
    minimal = MinimalReparam()
    poutine.trace(minimal(_strategy_model)).get_trace()
    chosen = {k for k, v in minimal.config.items() if v is not None}
    assert chosen == {"c", "g", "h"}


def test_neutra_keeps_the_joint_density():
    # With the shared latent z, log p(x(z)) + log|det dx/dz| is what the sites add up to.
    pyrolite.set_rng_seed(0)
    pyrolite.clear_param_store()

    def model():
        a = pyrolite.sample("a", dist.Normal(0.0, 1.0))
        pyrolite.sample("b", dist.LogNormal(a, 1.0))

    guide = AutoDiagonalNormal(model)
    guide()
    with torch.no_grad():
        for _, value in pyrolite.get_param_store().named_parameters():
            value.add_(0.3)
    neutra = NeuTraReparam(guide)
    tr = poutine.trace(neutra.reparam(model)).get_trace()
    z = tr.nodes["a_shared_latent"]["value"]
    u = guide.get_transform()(z)
    a, b = u[0], u[1].exp()
    expected = (
        dist.Normal(0.0, 1.0).log_prob(a)
        + dist.LogNormal(a, 1.0).log_prob(b)
        + u[1]  # log|d exp(u)/du|
        + guide.get_transform().log_abs_det_jacobian(z, u).sum()
    )
    assert float(tr.log_prob_sum()) == pytest.approx(float(expected), abs=1e-5)
    samples = neutra.transform_sample(z)
    assert torch.allclose(samples["b"], b)


def test_conjugate_reparam_keeps_the_joint_density():
    from pyrolite.distributions.gaussian_hmm import GaussianHMM

    eye = torch.eye(1)
    hmm = GaussianHMM(
        dist.MultivariateNormal(torch.zeros(1), eye), 0.9 * eye,
        dist.MultivariateNormal(torch.zeros(1), eye), eye,
        dist.MultivariateNormal(torch.zeros(1), eye), duration=3,
    )  # fmt: skip

    def model():
        return pyrolite.sample("x", hmm)

    like = dist.Normal(torch.tensor([[0.5], [1.0], [-1.0]]), 0.7).to_event(2)
    tr = poutine.trace(reparam(model, {"x": ConjugateReparam(like)})).get_trace()
    x = tr.nodes["x"]["value"]
    # The site weighs its draw from u = p * like / Z by p(x) / u(x) = Z / like(x).
    updated, _ = hmm.conjugate_update(like)
    expected = hmm.log_prob(x) - updated.log_prob(x)
    assert float(tr.log_prob_sum()) == pytest.approx(float(expected), abs=1e-4)
