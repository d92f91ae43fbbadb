"""CSIS: a trained amortized guide recovers the conjugate posterior mean, the validation
loss decreases, and inference runs Importance with the trained guide."""

import pytest
import torch

import pyrolite
import pyrolite.distributions as dist
from pyrolite.infer.csis import CSIS
from pyrolite.optim import Adam, ClippedAdam


def model(observations=None):
    observations = {"x": torch.tensor(0.0)} if observations is None else observations
    z = pyrolite.sample("z", dist.Normal(0.0, 1.0))
    pyrolite.sample("x", dist.Normal(z, 1.0), obs=observations["x"])


def guide(observations=None):
    # The exact posterior is N(x / 2, 1/2): w -> 0.5, scale -> 0.707.
    w = pyrolite.param("w", torch.tensor(0.0))
    b = pyrolite.param("b", torch.tensor(0.0))
    scale = pyrolite.param("scale", torch.tensor(1.0), constraint=dist.constraints.positive)
    pyrolite.sample("z", dist.Normal(w * observations["x"] + b, scale))


def test_trained_guide_has_the_posterior_mean_and_validation_loss_decreases():
    csis = CSIS(
        model,
        guide,
        ClippedAdam({"lr": 0.1, "lrd": 0.985}),  # decays to lr 0.01 over the 150 steps
        num_inference_samples=200,
        training_batch_size=10,
    )
    csis.set_validation_batch()
    before = csis.validation_loss()
    for _ in range(150):
        csis.step()
    after = csis.validation_loss()
    assert after < before - 0.1
    # tolerance: Adam's step noise at the final lr 0.01 with batches of 10 (about 0.03)
    assert float(pyrolite.param("w")) == pytest.approx(0.5, abs=0.1)
    assert float(pyrolite.param("b")) == pytest.approx(0.0, abs=0.1)
    assert float(pyrolite.param("scale")) == pytest.approx(0.5**0.5, abs=0.1)
    x = torch.tensor(1.2)
    posterior = csis.run(observations={"x": x})
    z = torch.stack([t.nodes["z"]["value"] for t in posterior.exec_traces])
    weights = posterior.get_normalized_weights()
    mean = float((weights * z).sum())
    # 200 importance samples from a near-exact proposal: SE about 0.7 / sqrt(200) = 0.05
    assert mean == pytest.approx(float(x) / 2, abs=0.25)
    exact = dist.Normal(0.0, 2**0.5).log_prob(x)
    assert float(posterior.get_log_normalizer()) == pytest.approx(float(exact), abs=0.1)


def test_loss_is_the_guide_negative_log_density_at_model_draws():
    csis = CSIS(model, guide, Adam({"lr": 0.05}), validation_batch_size=5)
    csis.set_validation_batch()
    want = 0.0
    for trace in csis.validation_batch:
        z, x = trace.nodes["z"]["value"], trace.nodes["x"]["value"]
        want -= float(dist.Normal(0.0, 1.0).log_prob(z)) / 5  # w = b = 0, scale = 1
        assert trace.nodes["x"]["infer"].get("was_observed")
        del x
    assert csis.validation_loss() == pytest.approx(want, abs=1e-5)


def test_defaults_as_pyro():
    csis = CSIS(model, guide, Adam({"lr": 0.01}))
    assert (csis.num_samples, csis.training_batch_size, csis.validation_batch_size) == (10, 10, 20)


def test_losses_match_pyro_at_the_same_draws():
    pyro = pytest.importorskip("pyro")
    import pyro.distributions as pdist
    from pyro.infer import CSIS as PyroCSIS
    from pyro.optim import Adam as PyroAdam

    results = []
    for lib, ldist, csis_cls, adam in [
        (pyrolite, dist, CSIS, Adam),
        (pyro, pdist, PyroCSIS, PyroAdam),
    ]:
        lib.clear_param_store()
        lib.set_rng_seed(0)

        def lib_model(observations=None, lib=lib, ldist=ldist):
            observations = {"x": torch.tensor(0.0)} if observations is None else observations
            z = lib.sample("z", ldist.Normal(0.0, 1.0))
            lib.sample("x", ldist.Normal(z, 1.0), obs=observations["x"])

        def lib_guide(observations=None, lib=lib, ldist=ldist):
            w = lib.param("w", torch.tensor(0.2))
            lib.sample("z", ldist.Normal(w * observations["x"], 1.0))

        csis = csis_cls(lib_model, lib_guide, adam({"lr": 0.1}), training_batch_size=5)
        losses = [csis.validation_loss()]
        losses += [csis.step() for _ in range(3)]
        losses.append(csis.validation_loss())
        results.append(losses + [float(lib.param("w"))])
    assert results[0] == pytest.approx(results[1], rel=1e-5, abs=1e-6)
