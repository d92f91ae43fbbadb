"""Importance sampling against the closed-form evidence of a conjugate Normal-Normal model."""

import math

import pytest
import torch

import pyrolite
import pyrolite.distributions as dist
from pyrolite.infer import EmpiricalMarginal, Importance, TracePredictive
from pyrolite.infer.importance import _prior_proposal, vectorized_importance_weights

PRIOR_SD, NOISE_SD = 2.0, 1.0
X = torch.tensor([0.8, 1.9, 1.2, 2.4, 1.6])


def model(x):
    z = pyrolite.sample("z", dist.Normal(0.0, PRIOR_SD))
    with pyrolite.plate("data", len(x)):
        pyrolite.sample("x", dist.Normal(z, NOISE_SD), obs=x)
    return z


def exact_posterior(x):
    precision = 1 / PRIOR_SD**2 + len(x) / NOISE_SD**2
    return x.sum().item() / NOISE_SD**2 / precision, precision**-0.5


def exact_guide(x):
    loc, scale = exact_posterior(x)
    pyrolite.sample("z", dist.Normal(loc, scale))


def exact_log_evidence(x):
    n = len(x)
    cov = NOISE_SD**2 * torch.eye(n) + PRIOR_SD**2 * torch.ones(n, n)
    return dist.MultivariateNormal(torch.zeros(n), cov).log_prob(x).item()


def test_exact_posterior_guide_gives_constant_weights_and_exact_evidence():
    posterior = Importance(model, exact_guide, num_samples=200).run(X)
    log_w = torch.stack(posterior.log_weights)
    assert (log_w.max() - log_w.min()).item() < 1e-4
    assert posterior.get_log_normalizer().item() == pytest.approx(exact_log_evidence(X), abs=1e-4)
    assert posterior.get_ESS().item() == pytest.approx(200, rel=1e-4)
    weights = posterior.get_normalized_weights()
    assert weights.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert torch.allclose(posterior.get_normalized_weights(log_scale=True).exp(), weights)


def _check_evidence(log_w: torch.Tensor, max_rel_se: float):
    """log Z estimate within 4 of its own standard errors (delta method: sd(w)/(mean(w) sqrt N))."""
    n = log_w.numel()
    w = (log_w - log_w.max()).exp()
    rel_se = (w.std() / w.mean()).item() / math.sqrt(n)
    assert rel_se < max_rel_se  # the check below is a sharp one
    estimate = (torch.logsumexp(log_w, 0) - math.log(n)).item()
    assert abs(estimate - exact_log_evidence(X)) < 4 * rel_se


def test_prior_proposal_evidence_vectorized_20k():
    log_w, model_trace, _ = vectorized_importance_weights(
        model, _prior_proposal(model), X, num_samples=20000, max_plate_nesting=1
    )
    assert log_w.shape == (20000,)
    assert model_trace.nodes["x"]["value"].shape == X.shape
    _check_evidence(log_w, max_rel_se=0.02)


def test_prior_proposal_evidence_sequential():
    posterior = Importance(model, num_samples=1500).run(X)
    _check_evidence(torch.stack(posterior.log_weights), max_rel_se=0.06)
    # Prior draws never see the data: the guide trace has no observed site.
    assert "x" not in pyrolite.poutine.trace(_prior_proposal(model)).get_trace(X).nodes


def test_weighted_empirical_marginal_recovers_posterior_mean():
    posterior = Importance(model, num_samples=1500).run(X)
    marginal = EmpiricalMarginal(posterior, "z")
    loc, scale = exact_posterior(X)
    ess = posterior.get_ESS().item()
    # A self-normalized weighted mean has standard error ~ posterior sd / sqrt(ESS).
    assert abs(marginal.mean.item() - loc) < 4 * scale / math.sqrt(ess)
    # Unweighted, the prior draws would be centred near 0, far from loc.
    unweighted = torch.stack([tr.nodes["z"]["value"] for tr in posterior.exec_traces]).mean()
    assert abs(unweighted.item() - loc) > 1.0
    returned = EmpiricalMarginal(posterior)  # the "_RETURN" site: z again
    assert returned.mean.item() == pytest.approx(marginal.mean.item(), abs=1e-5)


def test_trace_predictive_samples_new_data_from_posterior():
    def predictive_model(x):
        z = model(x)
        return pyrolite.sample("x_new", dist.Normal(z, NOISE_SD))

    posterior = Importance(predictive_model, exact_guide, num_samples=100).run(X)
    predictive = TracePredictive(predictive_model, posterior, num_samples=800).run(X)
    x_new = EmpiricalMarginal(predictive, "x_new")
    assert x_new.sample_size == 800
    loc, scale = exact_posterior(X)
    sd = math.sqrt(scale**2 + NOISE_SD**2)
    # 800 predictive draws around a 100-draw posterior: SE sqrt(sd^2/800 + scale^2/100).
    assert abs(x_new.mean.item() - loc) < 4 * math.sqrt(sd**2 / 800 + scale**2 / 100)
    # Latent sites come from the posterior traces (a subset of their values).
    posterior_z = {tr.nodes["z"]["value"].item() for tr in posterior.exec_traces}
    assert all(tr.nodes["z"]["value"].item() in posterior_z for tr in predictive.exec_traces)
    assert all(torch.equal(tr.nodes["x"]["value"], X) for tr in predictive.exec_traces)


def test_default_num_samples_and_errors():
    with pytest.warns(UserWarning, match="defaulting to 10"):
        importance = Importance(model)
    with pytest.raises(ValueError, match="run"):
        importance.get_log_normalizer()
    assert len(importance.run(X).exec_traces) == 10
