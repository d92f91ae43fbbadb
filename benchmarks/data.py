"""Benchmark data, made the same way in every worker, and the exact answers quality is scored on.

Data are drawn with torch (every worker imports it, the NumPyro one included) so all frameworks
see bit-identical numbers; NumPyro converts them to JAX arrays. With ``--device cuda`` they are
drawn on the CPU all the same and then copied to the GPU (``to``), so the GPU runs fit the same
numbers; the exact answers are always computed on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

NUM_FEATURES = 8
COIN_PRIOR = (10.0, 10.0)


@dataclass
class CoinData:
    obs: torch.Tensor  # (10,) float, 6 ones then 4 zeros

    def args(self):
        return (self.obs,)

    def to(self, device) -> CoinData:
        return replace(self, obs=self.obs.to(device))


@dataclass
class RegressionData:
    x: torch.Tensor  # (N, P)
    y: torch.Tensor  # (N,)
    true_alpha: float
    true_beta: np.ndarray

    def args(self):
        return (self.x, self.y)

    def to(self, device) -> RegressionData:
        return replace(self, x=self.x.to(device), y=self.y.to(device))


def coin_data() -> CoinData:
    return CoinData(torch.tensor([1.0] * 6 + [0.0] * 4))


def regression_data(num_data: int, num_features: int = NUM_FEATURES) -> RegressionData:
    """Linear-regression data drawn like seed 003 (torch seed 42, the same draw order)."""
    dist = torch.distributions
    torch.manual_seed(42)
    alpha = dist.Normal(42.0, 10.0).sample()
    beta = dist.Normal(torch.zeros(num_features), 10.0).sample()
    sigma = dist.Exponential(1.0).sample()
    eps = dist.Normal(0.0, sigma).sample([num_data])
    x = torch.randn(num_data, num_features)
    y = alpha + x @ beta + eps
    return RegressionData(x, y, float(alpha), beta.numpy().astype(np.float64))


COIN_WORKLOADS = ("W1", "W4")


def make_data(workload: str, num_data: int):
    return coin_data() if workload in COIN_WORKLOADS else regression_data(num_data)


def coin_posterior(obs: torch.Tensor) -> tuple:
    """The exact Beta posterior's concentrations: (10 + #ones, 10 + #zeros), Beta(16, 14)."""
    ones = float(obs.sum())
    return COIN_PRIOR[0] + ones, COIN_PRIOR[1] + (obs.numel() - ones)


def coin_posterior_mean(obs: torch.Tensor) -> float:
    """Mean of the exact Beta posterior: Beta(10 + #ones, 10 + #zeros)."""
    a, b = coin_posterior(obs)
    return a / (a + b)


def coin_quality(workload: str, alpha_q: float, beta_q: float, obs: torch.Tensor) -> float:
    """A coin workload's quality figure from the fitted guide's Beta(alpha_q, beta_q).

    W1: |E_q[f] - exact posterior mean|. W4: max(|alpha_q - 16|, |beta_q - 14|), the
    concentrations' distance to the exact posterior's; seed 004's convergence check
    (``|alpha_q - 16| < 0.8 and |beta_q - 14| < 0.8``) is this figure below 0.8.
    """
    if workload == "W4":
        a, b = coin_posterior(obs)
        return max(abs(alpha_q - a), abs(beta_q - b))
    return abs(alpha_q / (alpha_q + beta_q) - coin_posterior_mean(obs))


def least_squares_coefficients(x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """[intercept, slopes...] by float64 least squares: the posterior mean under vague priors."""
    xd = x.detach().cpu().double().numpy()
    design = np.concatenate([np.ones((xd.shape[0], 1)), xd], axis=1)
    coef, *_ = np.linalg.lstsq(design, y.detach().cpu().double().numpy(), rcond=None)
    return coef


def regression_error(alpha_mean: float, beta_mean, reference: np.ndarray) -> float:
    """Max abs error of the guide means of (alpha, beta) against ``reference``."""
    estimate = np.concatenate([[float(alpha_mean)], np.asarray(beta_mean, dtype=np.float64)])
    return float(np.max(np.abs(estimate - reference)))
