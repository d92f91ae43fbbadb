"""Predictive: the three uses of seed 001, shapes, values against their source, options."""

import math

import pytest
import torch

import pyrolite
import pyrolite.distributions as dist
from pyrolite import poutine
from pyrolite.distributions import constraints
from pyrolite.infer import SVI, Predictive, Trace_ELBO
from pyrolite.optim import Adam

DATA = torch.cat([torch.ones(12), torch.zeros(8)])


def model_headstails(data):
    f = pyrolite.sample("latent_fairness", dist.Uniform(0.0, 1.0))
    with pyrolite.plate("N", data.shape[0] if data is not None else 10):
        pyrolite.sample("obs", dist.Bernoulli(f), obs=data)


def guide_beta(data):
    alpha_q = pyrolite.param("alpha_q", torch.tensor(10.0), constraint=constraints.positive)
    beta_q = pyrolite.param("beta_q", torch.tensor(10.0), constraint=constraints.positive)
    pyrolite.sample("latent_fairness", dist.Beta(alpha_q, beta_q))


def beta_moments(a: float, b: float):
    mean = a / (a + b)
    return mean, a * b / ((a + b) ** 2 * (a + b + 1))


def test_seed_001_three_uses_after_fit():
    svi = SVI(model_headstails, guide_beta, Adam({"lr": 0.1}), Trace_ELBO())
    result = svi.fit(100, DATA, progress_bar=False)
    a, b = result.params["alpha_q"].item(), result.params["beta_q"].item()
    mean, var = beta_moments(a, b)
    n = 1000

    posterior = Predictive(guide_beta, params=result.params, num_samples=n)(data=None)
    assert set(posterior) == {"latent_fairness"} and posterior["latent_fairness"].shape == (n,)
    # Mean of n Beta draws: 4 standard errors sqrt(var / n).
    assert abs(posterior["latent_fairness"].mean().item() - mean) < 4 * math.sqrt(var / n)

    from_guide = Predictive(
        model_headstails, guide=guide_beta, params=result.params, num_samples=n
    )(data=None)
    assert from_guide["latent_fairness"].shape == (n,) and from_guide["obs"].shape == (n, 10)
    # Each row's mean has variance Var[f] + E[f(1-f)] / 10; average over n rows.
    row_var = var + (mean - mean**2 - var) / 10
    assert abs(from_guide["obs"].mean().item() - mean) < 4 * math.sqrt(row_var / n)

    from_samples = Predictive(model_headstails, posterior, params=result.params)(data=None)
    assert set(from_samples) == {"obs"} and from_samples["obs"].shape == (n, 10)
    assert abs(from_samples["obs"].mean().item() - mean) < 4 * math.sqrt(row_var / n)


def test_observed_sites_return_the_data_when_it_is_given():
    samples = Predictive(model_headstails, guide=guide_beta, num_samples=5)(DATA)
    assert samples["latent_fairness"].shape == (5,) and samples["obs"].shape == (5, 20)
    assert torch.equal(samples["obs"], DATA.expand(5, 20))


def test_posterior_samples_condition_each_run():
    f = torch.cat([torch.full((500,), 0.9), torch.full((500,), 0.1)])
    obs = Predictive(model_headstails, {"latent_fairness": f})(None)["obs"]
    # Each half's mean is over 5000 Bernoulli draws: sd sqrt(0.09 / 5000) ~ 0.0042; 4 sd.
    assert abs(obs[:500].mean().item() - 0.9) < 0.017
    assert abs(obs[500:].mean().item() - 0.1) < 0.017


def test_params_override_the_store():
    pyrolite.param("alpha_q", torch.tensor(15.0), constraint=constraints.positive)
    pyrolite.param("beta_q", torch.tensor(15.0), constraint=constraints.positive)
    params = {"alpha_q": torch.tensor(2.0), "beta_q": torch.tensor(8.0)}
    draws = Predictive(guide_beta, params=params, num_samples=2000)(None)["latent_fairness"]
    mean, var = beta_moments(2.0, 8.0)
    assert abs(draws.mean().item() - mean) < 4 * math.sqrt(var / 2000)
    assert pyrolite.param("alpha_q").item() == pytest.approx(15.0)  # the store is untouched
    assert not draws.requires_grad


def test_return_sites_filtering():
    samples = {"latent_fairness": torch.full((4,), 0.5)}
    only_obs = Predictive(model_headstails, guide=guide_beta, num_samples=4, return_sites=["obs"])
    assert set(only_obs(None)) == {"obs"}
    everything = Predictive(model_headstails, samples, return_sites=None)(None)
    assert set(everything) == {"latent_fairness", "obs"}
    assert torch.equal(everything["latent_fairness"], samples["latent_fairness"])

    def model_with_return(data):
        model_headstails(data)
        return torch.tensor(7.0)

    ret = Predictive(model_with_return, samples, return_sites=["_RETURN"])(None)
    assert torch.equal(ret["_RETURN"], torch.full((4,), 7.0))
    with pytest.raises(KeyError, match="not sample sites"):
        Predictive(model_headstails, samples, return_sites=["nope"])(None)


def test_parallel_matches_sequential_in_shape_and_mean():
    params = {"alpha_q": torch.tensor(6.0), "beta_q": torch.tensor(4.0)}
    mean, var = beta_moments(6.0, 4.0)
    n = 4000
    out = Predictive(
        model_headstails, guide=guide_beta, params=params, num_samples=n, parallel=True
    )(None)
    assert out["latent_fairness"].shape == (n,) and out["obs"].shape == (n, 10)
    assert abs(out["latent_fairness"].mean().item() - mean) < 4 * math.sqrt(var / n)
    # obs rows follow their own f: regress row means on f (slope 1 in expectation).
    row_mean = out["obs"].mean(-1)
    assert abs((row_mean - out["latent_fairness"]).mean().item()) < 4 * math.sqrt(0.25 / (10 * n))

    f = torch.linspace(0.05, 0.95, 50)
    vec = Predictive(model_headstails, {"latent_fairness": f}, parallel=True)
    assert vec(None)["obs"].shape == (50, 10)
    trace = vec.get_vectorized_trace(None)
    assert trace.nodes["obs"]["value"].shape == (50, 10)


def test_batch_ndims_keeps_chain_and_draw_dims():
    f = torch.rand(2, 30)
    out = Predictive(model_headstails, {"latent_fairness": f}, batch_ndims=2)(None)
    assert out["obs"].shape == (2, 30, 10)


def test_argument_errors_and_sample_count_warning():
    with pytest.raises(ValueError, match="num_samples"):
        Predictive(model_headstails)
    with pytest.raises(ValueError, match="not both"):
        Predictive(model_headstails, {"latent_fairness": torch.rand(3)}, guide=guide_beta)
    with pytest.warns(UserWarning, match="Defaulting to 3"):
        p = Predictive(model_headstails, {"latent_fairness": torch.rand(3)}, num_samples=5)
    assert p(None)["obs"].shape == (3, 10)


def test_runs_are_hidden_from_outer_handlers():
    with poutine.trace() as tracer:
        Predictive(model_headstails, guide=guide_beta, num_samples=3)(None)
    assert len(tracer.trace.nodes) == 0
