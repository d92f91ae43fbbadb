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

# W5: the mixture the data are drawn from (K = 3 well-separated Normals with one shared scale).
MIXTURE_WEIGHTS = (0.3, 0.45, 0.25)
MIXTURE_LOCS = (-6.0, 0.0, 5.0)
MIXTURE_SCALE = 1.0

# W7-W9: the HMM the sequences are drawn from. State 0 before t = 0, then x_t ~
# Categorical(HMM_STAY on the diagonal of the transition matrix, the rest spread evenly) and
# y_t ~ Normal(HMM_LOCS[x_t], HMM_SCALE).
HMM_STATES = 8
HMM_SEQUENCES = 16
HMM_STAY = 0.8
HMM_LOCS = tuple(2.0 * k - 7.0 for k in range(HMM_STATES))  # -7, -5, ..., 7
HMM_SCALE = 0.5


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


@dataclass
class MixtureData:
    obs: torch.Tensor  # (N,) float

    def args(self):
        return (self.obs,)

    def to(self, device) -> MixtureData:
        return replace(self, obs=self.obs.to(device))


@dataclass
class HMMData:
    """B sequences of length T, in both layouts (each made once, contiguous): the sequential
    models read ``by_time[t]`` (B,), ``DiscreteHMM`` scores ``by_sequence`` (B, T) at once.
    Every HMM model takes both arguments and reads the one it needs."""

    by_time: torch.Tensor  # (T, B)
    by_sequence: torch.Tensor  # (B, T)

    def args(self):
        return (self.by_time, self.by_sequence)

    def to(self, device) -> HMMData:
        return replace(
            self, by_time=self.by_time.to(device), by_sequence=self.by_sequence.to(device)
        )


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


def mixture_data(num_data: int) -> MixtureData:
    """W5: ``num_data`` draws from the three-component mixture (torch seed 5)."""
    generator = torch.Generator().manual_seed(5)
    weights = torch.tensor(MIXTURE_WEIGHTS)
    assignment = torch.multinomial(weights, num_data, replacement=True, generator=generator)
    noise = torch.randn(num_data, generator=generator)
    return MixtureData(torch.tensor(MIXTURE_LOCS)[assignment] + MIXTURE_SCALE * noise)


def hmm_transition_probs(stay: float, states: int = HMM_STATES) -> torch.Tensor:
    """A (states, states) transition matrix: ``stay`` on the diagonal, the rest spread evenly."""
    move = (1.0 - stay) / (states - 1)
    return torch.full((states, states), move) + (stay - move) * torch.eye(states)


def hmm_data(num_steps: int, sequences: int = HMM_SEQUENCES) -> HMMData:
    """W7-W9: ``sequences`` HMM sequences of ``num_steps`` steps (torch seed 7), state 0 before
    the first step. The first ``T`` steps are the same for every ``T`` (one draw per step)."""
    generator = torch.Generator().manual_seed(7)
    transition = hmm_transition_probs(HMM_STAY)
    locs = torch.tensor(HMM_LOCS)
    state = torch.zeros(sequences, dtype=torch.long)
    columns = []
    for _ in range(num_steps):
        state = torch.multinomial(transition[state], 1, generator=generator).squeeze(-1)
        columns.append(locs[state] + HMM_SCALE * torch.randn(sequences, generator=generator))
    by_time = torch.stack(columns)
    return HMMData(by_time, by_time.T.contiguous())


COIN_WORKLOADS = ("W1", "W4")
MIXTURE_WORKLOADS = ("W5",)
HMM_WORKLOADS = ("W7", "W8", "W9")


def make_data(workload: str, num_data: int):
    if workload in COIN_WORKLOADS:
        return coin_data()
    if workload in MIXTURE_WORKLOADS:
        return mixture_data(num_data)
    if workload in HMM_WORKLOADS:
        return hmm_data(num_data)
    return regression_data(num_data)


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


def locs_error(locs, true_locs) -> float:
    """Max abs error of the fitted component/state means, sorted, against the true ones
    (sorting makes the figure blind to a relabelling of the components)."""
    fitted = np.sort(np.asarray(locs, dtype=np.float64))
    return float(np.max(np.abs(fitted - np.sort(np.asarray(true_locs, dtype=np.float64)))))


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
