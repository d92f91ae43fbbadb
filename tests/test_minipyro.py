"""Pyro's minipyro example program, written against ``pyroapi``, run on the ``"pyrolite"``
backend: SVI on a conjugate Normal model must find the analytic posterior."""

import math

import pytest
import torch

pytest.importorskip("pyroapi")

from pyroapi import distributions as dist  # noqa: E402
from pyroapi import infer, ops, optim, pyro, pyro_backend  # noqa: E402

import pyrolite.generic  # noqa: E402,F401  (registers the "pyrolite" backend)


# Backend-agnostic model and guide, as in the example: one Normal latent ``loc`` with a
# N(0, 1) prior, and a batch of N(loc, 1) observations.
def model(data):
    loc = pyro.sample("loc", dist.Normal(0.0, 1.0))
    with pyro.plate("data", len(data), dim=-1):
        pyro.sample("obs", dist.Normal(loc, 1.0), obs=data)


def guide(data):
    guide_loc = pyro.param("guide_loc", torch.tensor(0.0))
    guide_scale = ops.exp(pyro.param("guide_scale_log", torch.tensor(0.0)))
    pyro.sample("loc", dist.Normal(guide_loc, guide_scale))


def _train(backend: str, data: torch.Tensor, jit: bool, num_steps: int = 1001):
    """The example's training loop; returns guide_loc after each of the last half of the
    steps, and the final guide scale."""
    with pyro_backend(backend):
        pyro.set_rng_seed(0)
        pyro.get_param_store().clear()
        elbo = infer.JitTrace_ELBO() if jit else infer.Trace_ELBO()
        svi = infer.SVI(model, guide, optim.Adam({"lr": 0.02}), elbo)
        locs = []
        for step in range(num_steps):
            loss = svi.step(data)
            assert math.isfinite(loss)
            if step >= num_steps // 2:
                locs.append(float(pyro.param("guide_loc")))
        scale = float(ops.exp(pyro.param("guide_scale_log")))
    return torch.tensor(locs), scale


def test_minipyro_example_learns_the_analytic_posterior():
    torch.manual_seed(0)
    data = torch.randn(100) + 3.0
    n = len(data)
    # Conjugate posterior of loc: N(sum(data) / (n + 1), 1 / (n + 1)).
    post_loc = float(data.sum()) / (n + 1)
    post_scale = 1.0 / math.sqrt(n + 1)

    locs, scale = _train("pyrolite", data, jit=False)
    # The example's own check: the guide is centred near 3.
    assert abs(locs[-1] - 3.0) < 0.1
    # Single-sample gradients make the iterate wander by ~lr around the optimum; its
    # average over the last 500 steps is within a quarter posterior sd of the exact mean.
    assert abs(float(locs.mean()) - post_loc) < 0.25 * post_scale
    # The log-scale moves by at most ~lr per step from 0: after 1001 steps it has come
    # most of the way down from 1 to the posterior sd, from above.
    assert post_scale < scale < 2 * post_scale


def test_minipyro_example_with_jit_elbo_follows_the_eager_run():
    torch.manual_seed(0)
    data = torch.randn(100) + 3.0
    eager_locs, eager_scale = _train("pyrolite", data, jit=False, num_steps=201)
    jit_locs, jit_scale = _train("pyrolite", data, jit=True, num_steps=201)
    assert torch.allclose(jit_locs, eager_locs, atol=1e-5)
    assert abs(jit_scale - eager_scale) < 1e-5


def test_minipyro_example_follows_pyro_at_the_same_seed():
    pytest.importorskip("pyro")
    torch.manual_seed(0)
    data = torch.randn(100) + 3.0
    ours_locs, ours_scale = _train("pyrolite", data, False, num_steps=201)
    pyro_locs, pyro_scale = _train("pyro", data, False, num_steps=201)
    assert torch.allclose(ours_locs, pyro_locs, atol=1e-5)
    assert abs(ours_scale - pyro_scale) < 1e-5
