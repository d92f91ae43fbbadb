"""Flow autoguides on a banana-shaped posterior: a flow can bend, a Gaussian cannot."""

import torch

import pyrolite as pyro
import pyrolite.distributions as dist
from pyrolite.distributions.transforms.affine_autoregressive import AffineAutoregressive
from pyrolite.infer import SVI, Trace_ELBO
from pyrolite.infer.autoguide import AutoMultivariateNormal
from pyrolite.infer.autoguide.flows import AutoIAFNormal, AutoNormalizingFlow
from pyrolite.nn.auto_reg_nn import AutoRegressiveNN
from pyrolite.optim import Adam


def banana():
    # No data: the posterior is this normalized prior, so log Z = 0 and ELBO = -KL(q || p).
    x = pyro.sample("x", dist.Normal(0.0, 1.0))
    pyro.sample("y", dist.Normal(x**2, 0.3))


def _final_elbo(guide, steps=300):
    pyro.set_rng_seed(0)
    svi = SVI(banana, guide, Adam({"lr": 0.03}), Trace_ELBO(4, vectorize_particles=True))
    for _ in range(steps):
        svi.step()
    pyro.set_rng_seed(1)
    return -Trace_ELBO(8000, vectorize_particles=True).loss(banana, guide)


def test_flows_beat_a_full_covariance_gaussian_on_a_banana():
    pyro.set_rng_seed(0)
    mvn = _final_elbo(AutoMultivariateNormal(banana))
    iaf = _final_elbo(AutoIAFNormal(banana, hidden_dim=16, num_transforms=2))
    flow = _final_elbo(
        AutoNormalizingFlow(
            banana,
            lambda d: AffineAutoregressive(AutoRegressiveNN(d, [16], permutation=torch.arange(d))),
        )
    )
    # Seed 0 gives ELBOs of about -0.82 (MVN; its optimum is ~ -0.77, the KL of the best
    # Gaussian to the banana), -0.50 (IAF) and -0.51 (flow). With 8000 particles the
    # estimates' standard errors are ~0.01, so a margin of 0.15 nats is 15 SE and half the
    # observed gap: the flows fit the curved y | x, which no Gaussian can.
    assert -1.0 < mvn < -0.6
    assert iaf > mvn + 0.15
    assert flow > mvn + 0.15


def test_flow_guide_params_are_the_transforms_submodule():
    guide = AutoIAFNormal(banana, num_transforms=2)
    guide()
    names = sorted(pyro.get_param_store().keys())
    assert names[0] == "AutoIAFNormal.transform$$$0.arn.layers.0.bias"
    assert len(names) == 8  # 2 flows x (2 layers x weight, bias)
    assert {n for n, _ in guide.named_parameters()} == {
        f"transform.{i}.arn.layers.{j}.{p}"
        for i in (0, 1)
        for j in (0, 1)
        for p in ("weight", "bias")
    }
    draws = guide.sample_posterior(sample_shape=(5,))
    assert draws["x"].shape == (5,) and draws["y"].shape == (5,)
