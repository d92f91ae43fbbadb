"""Seed 001's coin-fairness examples, ported from NumPyro to pyrolite's stateful style.

12 heads and 8 tails under a Uniform(0, 1) prior: the exact posterior is
Beta(13, 9). We fit a Beta guide (exact family), a Normal guide (approximate),
and the Beta guide again with 32 particles, and compare with the exact posterior.

Run: python tutorials/coin_fit.py [--steps N]
"""

import argparse

import torch

import pyrolite as pyro
import pyrolite.distributions as dist
from pyrolite.distributions import constraints
from pyrolite.infer import SVI, Trace_ELBO
from pyrolite.optim import Adam

A_TRUE, B_TRUE = 12, 8
data_headstails = torch.cat([torch.ones(A_TRUE), torch.zeros(B_TRUE)])
# Exact posterior under the Uniform prior: Beta(1 + heads, 1 + tails).
A_POST, B_POST = 1 + A_TRUE, 1 + B_TRUE


def model_headstails(data):
    f = pyro.sample("latent_fairness", dist.Uniform(0.0, 1.0))
    with pyro.plate("N", data.shape[0] if data is not None else 10):
        pyro.sample("obs", dist.Bernoulli(f), obs=data)


def guide_beta(data):
    alpha_q = pyro.param("alpha_q", torch.tensor(20.0 / 2.0), constraint=constraints.positive)
    beta_q = pyro.param("beta_q", torch.tensor(20.0 / 2.0), constraint=constraints.positive)
    pyro.sample("latent_fairness", dist.Beta(alpha_q, beta_q))


def guide_normal(data):
    mean = pyro.param("mean", torch.tensor(0.5), constraint=constraints.unit_interval)
    var = pyro.param("var", torch.tensor(0.1), constraint=constraints.positive)
    pyro.sample("latent_fairness", dist.Normal(mean, var))


def beta_summary(a, b):
    mean = a / (a + b)
    sd = (a * b / (a + b) ** 2 / (a + b + 1)) ** 0.5
    return mean, sd


def report(title, rows):
    print("-" * 60)
    print(title)
    print("\t Exact \t SVI")
    for name, exact, fitted in rows:
        print(f"{name} \t {exact:0.3f} \t {fitted:0.3f}")


def main(steps: int) -> None:
    pyro.set_rng_seed(1)
    exact_mean, exact_sd = beta_summary(A_POST, B_POST)

    pyro.clear_param_store()
    svi_beta = SVI(model_headstails, guide_beta, Adam({"lr": 5e-3}), loss=Trace_ELBO())
    result = svi_beta.fit(steps, data_headstails)
    a, b = result.params["alpha_q"].item(), result.params["beta_q"].item()
    mean, sd = beta_summary(a, b)
    report(
        "Beta guide (exact family)",
        [("A", A_POST, a), ("B", B_POST, b), ("Mean", exact_mean, mean), ("SD", exact_sd, sd)],
    )

    # A Normal guide can put mass outside [0, 1], where the model's log-density is
    # -inf; stable_update skips such (rare) steps instead of stopping the run.
    pyro.clear_param_store()
    svi_norm = SVI(model_headstails, guide_normal, Adam({"lr": 5e-3}), loss=Trace_ELBO())
    result_norm = svi_norm.fit(steps, data_headstails, stable_update=True)
    report(
        "Normal guide (approximate)",
        [
            ("Mean", exact_mean, result_norm.params["mean"].item()),
            ("SD", exact_sd, result_norm.params["var"].item()),
        ],
    )

    pyro.clear_param_store()
    svi_32 = SVI(
        model_headstails,
        guide_beta,
        Adam({"lr": 5e-3}),
        loss=Trace_ELBO(num_particles=32, vectorize_particles=True),
    )
    result_32 = svi_32.fit(steps, data_headstails)
    tail = max(1, steps // 10)
    print("-" * 60)
    print(
        "loss spread over the last 10% of steps: "
        f"1 particle {result.losses[-tail:].std():.3f}, "
        f"32 particles {result_32.losses[-tail:].std():.3f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=4000)
    main(parser.parse_args().steps)
