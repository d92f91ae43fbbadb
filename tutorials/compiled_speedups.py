"""Compiled SVI steps: eager vs ``JitTrace_ELBO`` vs ``SVI(..., compile=True)``, in µs per step.

Two benchmark workloads: W1, the coin (Beta prior, Bernoulli likelihood, Beta guide), and
W2, Bayesian linear regression (N=2500, P=8, a Normal/Normal/LogNormal mean-field guide).
Each variant takes the same warm-up steps (the compiled one compiles there: tens of seconds
of C++ compilation on a small machine) and is then timed over the same number of steps on
this machine; numbers are noisy on a shared box. Finally the compiled step's trained guide
is exported to TorchScript with ``export_guide``.

Run: python tutorials/compiled_speedups.py [--steps N] [--threads T]
"""

import argparse
import time

import torch

import pyrolite as pyro
import pyrolite.distributions as dist
import pyrolite.infer
from pyrolite.distributions import constraints
from pyrolite.infer import SVI, Trace_ELBO, export_guide
from pyrolite.optim import Adam


def coin_model(obs):
    f = pyro.sample("latent_fairness", dist.Beta(10.0, 10.0))
    with pyro.plate("data", obs.shape[0]):
        pyro.sample("obs", dist.Bernoulli(probs=f), obs=obs)


def coin_guide(obs):
    alpha_q = pyro.param("alpha_q", torch.tensor(15.0), constraint=constraints.positive)
    beta_q = pyro.param("beta_q", torch.tensor(15.0), constraint=constraints.positive)
    pyro.sample("latent_fairness", dist.Beta(alpha_q, beta_q))


def regression_model(x, y):
    alpha = pyro.sample("alpha", dist.Normal(0.0, 100.0))
    beta = pyro.sample("beta", dist.Normal(torch.zeros(x.shape[1]), 10.0).to_event(1))
    sigma = pyro.sample("sigma", dist.HalfNormal(10.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", dist.Normal(alpha + x @ beta, sigma), obs=y)


def regression_guide(x, y):
    p = x.shape[1]
    a_loc = pyro.param("alpha_loc", torch.tensor(0.0))
    a_scale = pyro.param("alpha_scale", torch.tensor(0.1), constraint=constraints.positive)
    b_loc = pyro.param("beta_loc", torch.zeros(p))
    b_scale = pyro.param("beta_scale", torch.full((p,), 0.1), constraint=constraints.positive)
    s_loc = pyro.param("log_sigma_loc", torch.tensor(0.0))
    s_scale = pyro.param("log_sigma_scale", torch.tensor(0.1), constraint=constraints.positive)
    pyro.sample("alpha", dist.Normal(a_loc, a_scale))
    pyro.sample("beta", dist.Normal(b_loc, b_scale).to_event(1))
    pyro.sample("sigma", dist.LogNormal(s_loc, s_scale))


def workloads():
    torch.manual_seed(42)
    x = torch.randn(2500, 8)
    y = 3.0 + x @ torch.linspace(-2.0, 2.0, 8) + 0.5 * torch.randn(2500)
    return {
        "W1 coin": (coin_model, coin_guide, (torch.tensor([1.0] * 6 + [0.0] * 4),)),
        "W2 regression N=2500 P=8": (regression_model, regression_guide, (x, y)),
    }


def variants():
    found = {"eager": lambda m, g: SVI(m, g, Adam({"lr": 0.01}), Trace_ELBO())}
    jit_elbo = getattr(pyrolite.infer, "JitTrace_ELBO", None)
    if jit_elbo is not None:
        found["JitTrace_ELBO"] = lambda m, g: SVI(m, g, Adam({"lr": 0.01}), jit_elbo())
    else:
        print("note: pyrolite.infer.JitTrace_ELBO is not available here; skipping it")
    found["compile=True"] = lambda m, g: SVI(m, g, Adam({"lr": 0.01}), Trace_ELBO(), compile=True)
    return found


def time_steps(svi, args, warmup: int, steps: int) -> float:
    """µs per ``svi.step`` after ``warmup`` steps; the best of three rounds (noise only slows)."""
    for _ in range(warmup):
        svi.step(*args)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(steps):
            svi.step(*args)
        best = min(best, (time.perf_counter() - start) / steps * 1e6)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="timed steps per round")
    # Steps this small are dominated by per-op overhead; extra intra-op threads only add
    # contention (on a shared 2-core box, 10x slower).
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); µs per svi.step()")
    for label, (model, guide, data) in workloads().items():
        results = {}
        for name, make in variants().items():
            pyro.clear_param_store()
            pyro.set_rng_seed(0)
            svi = make(model, guide)
            start = time.perf_counter()
            results[name] = time_steps(svi, data, warmup=5, steps=args.steps)
            setup = time.perf_counter() - start
            print(f"  {label:26s} {name:14s} {results[name]:9.1f} µs/step  (total {setup:.1f} s)")
        eager = results["eager"]
        speedups = ", ".join(f"{n} {eager / t:.1f}x" for n, t in results.items() if n != "eager")
        print(f"  {label:26s} speed-up over eager: {speedups}")

    # The last trained guide (W2, compiled) as a standalone TorchScript sampler.
    sampler = export_guide(guide, *data, num_samples=1000)
    draws = sampler(*data)
    print("exported W2 guide, posterior means:", {k: v.mean(0).tolist() for k, v in draws.items()})


if __name__ == "__main__":
    main()
