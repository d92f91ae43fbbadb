"""Models and data shared by several test modules (the seed 001/004 coin, seed 003's data)."""

import torch

import pyrolite as pyro
import pyrolite.distributions as dist
from pyrolite.distributions import constraints


def coin_data(n: int = 10) -> torch.Tensor:
    """Seed 004's flips: six heads then four tails (repeated for ``n`` > 10)."""
    return (torch.arange(n) % 10 < 6).float()


COIN = coin_data()


def coin_model(data):
    f = pyro.sample("latent_fairness", dist.Beta(10.0, 10.0))
    with pyro.plate("data", len(data)):
        pyro.sample("obs", dist.Bernoulli(f), obs=data)


def coin_guide(data):
    alpha_q = pyro.param("alpha_q", torch.tensor(15.0), constraint=constraints.positive)
    beta_q = pyro.param("beta_q", torch.tensor(15.0), constraint=constraints.positive)
    pyro.sample("latent_fairness", dist.Beta(alpha_q, beta_q))


def seed003_data(N=2500, P=8):
    """Seed 003's regression data (torch seed 42, its draw order):
    ``(x, y, alpha_true, beta_true, sigma_true)``."""
    pyro.set_rng_seed(42)
    alpha_true = dist.Normal(42.0, 10.0).sample()
    beta_true = dist.Normal(torch.zeros(P), 10.0).sample()
    sigma_true = dist.Exponential(1.0).sample()
    eps = dist.Normal(0.0, sigma_true).sample([N])
    x = torch.randn(N, P)
    y = alpha_true + x @ beta_true + eps
    return x, y, alpha_true, beta_true, sigma_true
