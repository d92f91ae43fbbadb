"""Seed 003: Bayesian linear regression with AutoDiagonalNormal, ported to pyrolite.

The program is the seed's, with ``pyro`` replaced by ``pyrolite`` (its estimator is
``JitTraceGraph_ELBO``, as in the seed; every latent is reparameterized, so its surrogate
is the plain ELBO, compiled). The seed's plots and its arviz/pandas summary are replaced
by printed means and sds, so the script needs nothing beyond pyrolite. ``--steps`` and
``--samples`` shorten the run.

Run: python tutorials/seed003_linear_regression.py [--steps 30000]
"""

import argparse
import time as tm

import numpy as np
import torch

import pyrolite as pyro
import pyrolite.contrib.autoguide as autoguide
import pyrolite.distributions as dist
import pyrolite.infer
import pyrolite.optim

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--steps", type=int, default=30000)
parser.add_argument("--samples", type=int, default=3000)
cli = parser.parse_args()

torch.set_num_threads(1)  # tiny tensors on a small machine: threads only add overhead
pyro.set_rng_seed(42)
N = 2500
P = 8
LEARNING_RATE = 1e-2
NUM_STEPS = cli.steps
NUM_SAMPLES = cli.samples
alpha_true = dist.Normal(42.0, 10.0).sample()
beta_true = dist.Normal(torch.zeros(P), 10.0).sample()
sigma_true = dist.Exponential(1.0).sample()
eps = dist.Normal(0.0, sigma_true).sample([N])
x = torch.randn(N, P)
y = alpha_true + x @ beta_true + eps


def model(x, y):
    alpha = pyro.sample("alpha", dist.Normal(0.0, 100.0))
    beta = pyro.sample("beta", dist.Normal(torch.zeros(P), 10.0))
    sigma = pyro.sample("sigma", dist.HalfNormal(10.0))
    mu = alpha + x @ beta
    return pyro.sample("y", dist.Normal(mu, sigma), obs=y)


guide = autoguide.AutoDiagonalNormal(model)
optimiser = pyro.optim.Adam({"lr": LEARNING_RATE})
loss = pyro.infer.JitTraceGraph_ELBO()
svi = pyro.infer.SVI(model, guide, optimiser, loss, num_samples=NUM_SAMPLES)
losses = np.empty(NUM_STEPS)
pyro.clear_param_store()
start = tm.time()
for step in range(NUM_STEPS):
    losses[step] = svi.step(x, y)
    if step % 5000 == 0:
        print(f"step: {step:>5}, ELBO loss: {losses[step]:.2f}")
print(f"\nfinished in {tm.time() - start:.2f} seconds")

for key, value in pyro.get_param_store().items():
    print(f"{key}:\n{value}\n")

posterior = svi.run(x, y)
support = posterior.marginal(["alpha", "beta", "sigma"]).support()
true_values = {"alpha": alpha_true, "beta": beta_true, "sigma": sigma_true}
print(f"{'name':>8} {'mean':>10} {'sd':>8} {'true':>10}")
for name in ("alpha", "beta", "sigma"):
    samples = support[name].reshape(NUM_SAMPLES, -1)
    truth = true_values[name].reshape(-1)
    for i in range(samples.shape[1]):
        label = name if samples.shape[1] == 1 else f"{name}[{i}]"
        print(
            f"{label:>8} {samples[:, i].mean().item():10.4f} {samples[:, i].std().item():8.4f} "
            f"{truth[i].item():10.4f}"
        )

ELBO_SAMPLES = 100
NUM_STEPS = min(300, cli.steps)
guide = autoguide.AutoDiagonalNormal(model)
optimiser = pyro.optim.Adam({"lr": LEARNING_RATE})
loss = pyro.infer.JitTraceGraph_ELBO(ELBO_SAMPLES)
svi = pyro.infer.SVI(model, guide, optimiser, loss)
losses2 = np.empty(NUM_STEPS)
pyro.clear_param_store()
start = tm.time()
for step in range(NUM_STEPS):
    losses2[step] = svi.step(x, y)
    if step % 50 == 0:
        print(f"step: {step:>5}, ELBO loss: {losses2[step]:.2f}")
print(f"\nfinished in {tm.time() - start:.2f} seconds")
