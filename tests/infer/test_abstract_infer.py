"""TracePosterior: weighted trace draws, marginals, and SVI as a TracePosterior."""

import pytest
import torch

import pyrolite
import pyrolite.distributions as dist
from pyrolite.infer import SVI, EmpiricalMarginal, Trace_ELBO, TracePosterior
from pyrolite.optim import Adam
from pyrolite.poutine import Trace


def _posterior(values, weights):
    post = TracePosterior()
    for v, w in zip(values, weights):
        tr = Trace()
        tr.add_node("z", type="sample", value=torch.tensor(v), is_observed=False)
        tr.add_node("y", type="sample", value=torch.tensor(-v), is_observed=False)
        post.exec_traces.append(tr)
        post.log_weights.append(torch.tensor(w).log())
    return post


def test_call_draws_traces_in_proportion_to_weights():
    post = _posterior([1.0, 2.0, 3.0], [0.25, 0.75, 0.0])
    draws = torch.tensor([post().nodes["z"]["value"].item() for _ in range(2000)])
    assert not bool((draws == 3.0).any())  # zero weight: never drawn
    # Fraction of 2.0 among 2000 draws: sd sqrt(0.75 * 0.25 / 2000) ~ 0.0097; 4 sd.
    assert abs((draws == 2.0).float().mean().item() - 0.75) < 0.039


def test_empirical_marginal_weights_and_stacked_sites():
    post = _posterior([1.0, 2.0, 3.0], [0.25, 0.75, 0.0])
    assert EmpiricalMarginal(post, "z", validate_args=False).mean.item() == pytest.approx(1.75)
    both = EmpiricalMarginal(post, ["z", "y"])
    assert torch.allclose(both.mean, torch.tensor([1.75, -1.75]))
    with pytest.raises(KeyError, match="not in the posterior"):
        EmpiricalMarginal(post, "w")
    with pytest.raises(ValueError, match="run"):
        TracePosterior()()


def test_svi_run_is_a_trace_posterior():
    def model():
        pyrolite.sample("loc", dist.Normal(0.0, 1.0))

    def guide():
        pyrolite.sample("loc", dist.Normal(pyrolite.param("m", torch.tensor(5.0)), 0.5))

    svi = SVI(model, guide, Adam({"lr": 0.0}), Trace_ELBO(), num_samples=400)
    posterior = svi.run()
    support = posterior.marginal("loc").support()["loc"]
    assert support.shape == (400,)
    # Guide draws N(5, 0.5): the mean of 400 has sd 0.025; 4 sd.
    assert abs(support.mean().item() - 5.0) < 0.1
    marginal_mean = EmpiricalMarginal(posterior, "loc").mean.item()
    assert marginal_mean == pytest.approx(support.mean().item(), abs=1e-5)
