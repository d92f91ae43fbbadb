"""WeighedPredictive and MHResampler: log weights are model minus guide log densities,
weighted quantiles and MH-resampled draws recover a conjugate posterior, Pyro's results."""

import pytest
import torch

import pyrolite
import pyrolite.distributions as dist
from pyrolite.infer.predictive import MHResampler, Predictive, WeighedPredictive
from pyrolite.ops.stats import weighed_quantile

X = torch.tensor([1.0, 2.0, 0.5])
# z ~ N(0, 1), x_i ~ N(z, 1): posterior N(sum x / (n + 1), 1 / (n + 1))
POST_MEAN, POST_SD = float(X.sum()) / 4, 0.5


def model(x=None):
    z = pyrolite.sample("z", dist.Normal(0.0, 1.0))
    with pyrolite.plate("N", 3):
        return pyrolite.sample("x", dist.Normal(z, 1.0), obs=x)


def guide(x=None):  # deliberately off: wider and shifted
    pyrolite.sample("z", dist.Normal(0.5, 1.0))


def conditioned_model():
    return model(X)


@pytest.mark.parametrize("parallel", [False, True])
def test_log_weights_are_model_minus_guide_log_density(parallel):
    out = WeighedPredictive(model, guide=guide, num_samples=50, parallel=parallel)(
        model_guide=conditioned_model
    )
    z = out.samples["z"]
    assert z.shape == (50,) and out.samples["x"].shape == (50, 3)
    guide_lp = dist.Normal(0.5, 1.0).log_prob(z)
    model_lp = dist.Normal(0.0, 1.0).log_prob(z) + dist.Normal(z[:, None], 1.0).log_prob(X).sum(-1)
    assert torch.allclose(out.guide_log_prob, guide_lp, atol=1e-5)
    assert torch.allclose(out.model_log_prob, model_lp, atol=1e-5)
    assert torch.allclose(out.log_weights, model_lp - guide_lp, atol=1e-5)


def test_default_model_guide_is_the_model_with_the_same_args():
    out = WeighedPredictive(model, guide=guide, num_samples=20)(X)
    z = out.samples["z"]
    lp = dist.Normal(0.0, 1.0).log_prob(z) + dist.Normal(z[:, None], 1.0).log_prob(X).sum(-1)
    assert torch.allclose(out.model_log_prob, lp, atol=1e-5)
    assert torch.equal(out.samples["x"], X.expand(20, 3))  # observed: the data


def test_exact_guide_gives_constant_weights_equal_to_evidence():
    def exact_guide(x=None):
        pyrolite.sample("z", dist.Normal(POST_MEAN, POST_SD))

    out = WeighedPredictive(model, guide=exact_guide, num_samples=10)(model_guide=conditioned_model)
    evidence = dist.MultivariateNormal(torch.zeros(3), torch.eye(3) + 1).log_prob(X)
    assert torch.allclose(out.log_weights, evidence.expand(10), atol=1e-4)


def test_return_sites_and_predictive_unchanged():
    out = WeighedPredictive(model, guide=guide, num_samples=5, return_sites=["z"])(X)
    assert list(out.samples) == ["z"]
    assert set(Predictive(model, guide=guide, num_samples=5)(X)) == {"z", "x"}


def test_needs_a_guide():
    with pytest.raises(ValueError, match="guide"):
        WeighedPredictive(model, num_samples=5)


def test_weighed_quantile_of_weighed_samples_recovers_posterior():
    predictive = WeighedPredictive(model, guide=guide, num_samples=4000, parallel=True)
    out = predictive(model_guide=conditioned_model)
    q = weighed_quantile(out.samples["z"], [0.1587, 0.5, 0.8413], out.log_weights)
    # ESS ~ 2000 here; SE of a quantile ~ 1.25 sd / sqrt(ESS) ~ 0.015
    expected = torch.tensor([POST_MEAN - POST_SD, POST_MEAN, POST_MEAN + POST_SD])
    assert torch.allclose(q, expected, atol=0.08)


def test_mh_resampler_converges_to_posterior_moments():
    predictive = WeighedPredictive(
        model, guide=guide, num_samples=4000, return_sites=["z"], parallel=True
    )
    resampler = MHResampler(predictive)
    first = resampler(model_guide=conditioned_model)
    assert torch.allclose(first.samples["z"].mean(), torch.tensor(0.5), atol=0.1)  # the guide
    for _ in range(15):
        out = resampler(model_guide=conditioned_model)
    z = out.samples["z"]
    # independent chains after 15 MH steps with acceptance ~0.7: SE of mean 0.5/63 ~ 0.008
    assert abs(float(z.mean()) - POST_MEAN) < 0.05
    assert abs(float(z.std()) - POST_SD) < 0.05
    assert int(resampler.get_min_sample_transition_count()) >= 1
    assert int(resampler.get_total_transition_count()) > 4000 * 5


def test_mh_resampler_keeps_selected_calls():
    predictive = WeighedPredictive(model, guide=guide, num_samples=4, return_sites=["z"])
    resampler = MHResampler(
        predictive, source_samples_slice=slice(0, 2), stored_samples_slice=slice(None)
    )
    outs = [resampler(X) for _ in range(3)]
    assert resampler.get_source_samples().samples["z"].shape == (8,)
    stored = resampler.get_stored_samples()
    assert torch.equal(stored.samples["z"], torch.cat([o.samples["z"] for o in outs]))
    with pytest.raises(ValueError, match="slice"):
        MHResampler(predictive).get_source_samples()


def test_mh_resampler_with_exact_guide_accepts_every_move():
    def exact_guide(x=None):
        pyrolite.sample("z", dist.Normal(POST_MEAN, POST_SD))

    resampler = MHResampler(WeighedPredictive(model, guide=exact_guide, num_samples=50))
    for _ in range(3):
        resampler(model_guide=conditioned_model)
    # equal weights up to float error: log u < ~0 accepts with probability ~1
    assert int(resampler.get_total_transition_count()) >= 95


def test_matches_pyro_weighed_predictive():
    pyro = pytest.importorskip("pyro")
    pdist = pytest.importorskip("pyro.distributions")
    from pyro.infer.predictive import WeighedPredictive as PyroWP

    def pyro_model(x=None):
        z = pyro.sample("z", pdist.Normal(0.0, 1.0))
        with pyro.plate("N", 3):
            return pyro.sample("x", pdist.Normal(z, 1.0), obs=x)

    def pyro_guide(x=None):
        pyro.sample("z", pdist.Normal(0.5, 1.0))

    expected = PyroWP(pyro_model, guide=pyro_guide, num_samples=30)(
        model_guide=lambda: pyro_model(X)
    )
    # the same draws of z: pyrolite's weights at Pyro's z must equal Pyro's
    z = expected.samples["z"].reshape(-1)
    lp = dist.Normal(0.0, 1.0).log_prob(z) + dist.Normal(z[:, None], 1.0).log_prob(X).sum(-1)
    assert torch.allclose(lp - dist.Normal(0.5, 1.0).log_prob(z), expected.log_weights, atol=1e-5)
    # Pyro draws the guide twice before its samples, so seeded draws differ: compare the
    # distribution of the weights instead (same seed-independent statistic, 2000 draws each)
    ours = WeighedPredictive(model, guide=guide, num_samples=2000, parallel=True)(
        model_guide=conditioned_model
    )
    theirs = PyroWP(pyro_model, guide=pyro_guide, num_samples=2000, parallel=True)(
        model_guide=lambda: pyro_model(X)
    )
    assert theirs.samples["z"].shape == (2000, 1) and ours.samples["z"].shape == (2000,)
    # log weights have sd ~2.6: the SE of a median of 2000 is ~0.07, of a difference ~0.1
    assert abs(float(ours.log_weights.median() - theirs.log_weights.median())) < 0.5
    for out in (ours, theirs):  # both self-normalized estimates of the posterior mean
        w = torch.softmax(out.log_weights, 0)
        assert abs(float((w * out.samples["z"].reshape(-1)).sum()) - POST_MEAN) < 0.1
