"""Seed 001's multimodal-mixture guide and AutoMultivariateNormal examples, ported.

NumPyro's ``svi.run(key, n)`` becomes ``svi.fit(n)``, ``jnp`` becomes ``torch``, and
``Predictive(..., params=result.params)(key)`` becomes ``Predictive(...)()`` (seed the
stateful RNG instead of passing a key). Plots are replaced by printed summaries.

Run: python tutorials/seed001_guides.py [--steps N] [--auto-steps N]
"""

import argparse
import math

import torch

import pyrolite as pyro
import pyrolite.distributions as dist
from pyrolite.distributions import constraints
from pyrolite.infer import SVI, Predictive, Trace_ELBO
from pyrolite.infer.autoguide import AutoMultivariateNormal
from pyrolite.optim import Adam

sig1, sig2, b = 0.5, 2.0, 5.0


def log_distribution(x, y):
    """An arbitrary distribution, multimodal & correlated."""
    sqrt2 = 2**0.5
    f1 = torch.exp(-1 / 2 * (((x + y) / sqrt2 - b) / sig1) ** 2)
    f2 = torch.exp(-1 / 2 * (((x + y) / sqrt2 + b) / sig1) ** 2)
    log_fac = torch.log(f1 + f2)  # multimodal normal distribution along axis 1
    log_fac = log_fac + torch.log(1 / (1 + ((x - y) / sig2 / sqrt2) ** 2 / 2))  # Cauchy, axis 2
    return log_fac


def model_multimodal():
    x = pyro.sample("x", dist.Uniform(-20.0, 20.0))
    y = pyro.sample("y", dist.Uniform(-20.0, 20.0))
    pyro.factor("logfac", log_distribution(x, y))


def guide_multimodal():
    sig1_q = pyro.param("sig1_q", torch.tensor(1.0), constraint=constraints.positive)
    sig2_q = pyro.param("sig2_q", torch.tensor(1.0), constraint=constraints.positive)
    b = pyro.param("b", torch.tensor(1.0), constraint=constraints.positive)
    theta = pyro.param(
        "theta", torch.tensor(0.0), constraint=constraints.interval(-math.pi / 2, math.pi / 2)
    )
    weighting = torch.tensor([0.5, 0.5])
    gauss_mix = dist.MixtureGeneral(
        dist.Categorical(weighting),
        [dist.Normal(loc=b, scale=sig1_q), dist.Normal(loc=-b, scale=sig1_q)],
    )
    u1 = pyro.sample("u1", gauss_mix, infer={"is_auxiliary": True})
    u2 = pyro.sample("u2", dist.Normal(0.0, sig2_q), infer={"is_auxiliary": True})
    c, s = torch.cos(theta), torch.sin(theta)
    pyro.sample("x", dist.Delta(c * u1 - s * u2))
    pyro.sample("y", dist.Delta(c * u2 + s * u1))


SIG1, SIG2, THETA = 1.0, 3.0, 45 * math.pi / 180


def factor(x, y):
    c, s = math.cos(THETA), math.sin(THETA)
    log_fac = -1.0 / 2.0 * (((c * x - s * y) / SIG1) ** 2 + ((s * x + c * y) / SIG2) ** 2)
    return torch.exp(log_fac)


def model_forauto():
    x = pyro.sample("x", dist.ImproperUniform(constraints.real, (), ()))
    y = pyro.sample("y", dist.ImproperUniform(constraints.real, (), ()))
    pyro.factor("logfac", torch.log(factor(x, y)))


def main(steps: int, auto_steps: int) -> None:
    torch.set_num_threads(1)  # tiny tensors: threads only add overhead
    pyro.set_rng_seed(1)

    # Mixture guide: u1 is a non-reparameterizable mixture draw (score-function term);
    # 16 particles, vectorized, as NumPyro's Trace_ELBO(num_particles=16) does.
    pyro.clear_param_store()
    svi_multimodal = SVI(
        model_multimodal,
        guide_multimodal,
        Adam({"lr": 0.005}),
        loss=Trace_ELBO(num_particles=16, vectorize_particles=True),
    )
    result = svi_multimodal.fit(steps, stable_update=True)
    print("Optimal Guide Params")
    print("-" * 76)
    for key, val in result.params.items():
        if key != "theta":
            print(f"{key}:\t{float(val):0.3f}")
        else:
            print(f"{key}:\t{float(val) * 180 / math.pi:0.1f} deg")
    print("-" * 76)
    samples = Predictive(guide_multimodal, params=result.params, num_samples=5000)()
    u = (samples["x"] + samples["y"]) / 2**0.5
    print(f"recovered samples: fraction in the upper mode {(u > 0).float().mean():.2f} (0.5)")

    pyro.clear_param_store()
    autoguide = AutoMultivariateNormal(model_forauto)
    autosvi = SVI(model_forauto, autoguide, optim=Adam({"lr": 0.005}), loss=Trace_ELBO())
    autosvi_result = autosvi.fit(auto_steps)
    params = autosvi_result.params  # covariance factor: scale[:, None] * unit scale_tril
    scale = params["AutoMultivariateNormal.scale"]
    L = scale[:, None] * params["AutoMultivariateNormal.scale_tril"]
    cov = L @ L.T
    eigvals, eigvecs = torch.linalg.eigh(cov)
    sigmas = eigvals.sqrt()
    angle = math.degrees(math.atan2(eigvecs[1, 1], eigvecs[0, 1])) % 180
    print(
        f"sigma_1 {sigmas[0]:.2f} (1.0), sigma_2 {sigmas[1]:.2f} (3.0), major axis {angle:.1f} deg"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=10000)
    parser.add_argument("--auto-steps", type=int, default=10000)
    args = parser.parse_args()
    main(args.steps, args.auto_steps)
