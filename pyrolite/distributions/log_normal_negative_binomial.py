"""LogNormalNegativeBinomial: a NegativeBinomial whose logits carry Normal noise, with the
noise integrated out by Gauss-Hermite quadrature in ``log_prob``."""

import functools
from typing import Tuple, Union

import torch
import torch.nn.functional as F
from torch.distributions import constraints
from torch.distributions.utils import broadcast_all

from pyrolite.distributions.torch import NegativeBinomial
from pyrolite.distributions.torch_distribution import TorchDistribution

_Number = Union[float, torch.Tensor]


@functools.cache
def _standard_normal_quadrature(num_points: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Gauss-Hermite nodes and log-weights for E[f(Z)], Z ~ Normal(0, 1), in float64.

    Golub-Welsch: the nodes are the eigenvalues of the Jacobi matrix of the probabilists'
    Hermite recurrence ``He_{k+1}(x) = x He_k(x) - k He_{k-1}(x)``, and each weight is the
    squared first component of its unit eigenvector (the weights of a probability measure
    sum to 1).
    """
    off_diagonal = torch.arange(1, num_points, dtype=torch.float64).sqrt()
    jacobi = torch.diag(off_diagonal, 1) + torch.diag(off_diagonal, -1)
    nodes, vectors = torch.linalg.eigh(jacobi)
    log_weights = vectors[0].pow(2).log()
    return nodes, log_weights - log_weights.logsumexp(0)


class LogNormalNegativeBinomial(TorchDistribution):
    """NegativeBinomial(``total_count``, ``logits + eps``) counts with
    ``eps ~ Normal(0, multiplicative_noise_scale)``: log-normal noise on the NB rate.

    ``log_prob`` approximates the integral over ``eps`` with ``num_quad_points``
    Gauss-Hermite points; ``mean`` and ``variance`` are exact. ``sample`` draws ``eps`` and
    then the count, so samples follow the exact law (Pyro has no sampler here).

    >>> d = LogNormalNegativeBinomial(2.0, torch.tensor(0.1), 0.5)
    >>> round(float(d.mean), 4), round(float(d.log_prob(torch.tensor(3.0))), 4)
    (2.5046, -2.1547)
    """

    arg_constraints = {
        "total_count": constraints.greater_than_eq(0),
        "logits": constraints.real,
        "multiplicative_noise_scale": constraints.positive,
    }
    support = constraints.nonnegative_integer

    def __init__(
        self,
        total_count: _Number,
        logits: torch.Tensor,
        multiplicative_noise_scale: _Number,
        *,
        num_quad_points: int = 8,
        validate_args=None,
    ):
        if num_quad_points < 1:
            raise ValueError(
                f"num_quad_points must be positive, got {num_quad_points}; 8 is a good default."
            )
        total_count, logits, multiplicative_noise_scale = broadcast_all(
            total_count, logits, multiplicative_noise_scale
        )
        self.total_count = total_count
        self.logits = logits
        self.multiplicative_noise_scale = multiplicative_noise_scale
        self.num_quad_points = num_quad_points
        nodes, log_weights = _standard_normal_quadrature(num_quad_points)
        self.quad_points = nodes.to(logits)
        self.log_weights = log_weights.to(logits)
        super().__init__(logits.shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(LogNormalNegativeBinomial, _instance)
        batch_shape = torch.Size(batch_shape)
        new.total_count = self.total_count.expand(batch_shape)
        new.logits = self.logits.expand(batch_shape)
        new.multiplicative_noise_scale = self.multiplicative_noise_scale.expand(batch_shape)
        new.num_quad_points = self.num_quad_points
        new.quad_points = self.quad_points
        new.log_weights = self.log_weights
        TorchDistribution.__init__(new, batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        n = self.total_count
        # NB(k | n, l) = C(k, n) * exp(k l - (n + k) softplus(l)): the coefficient does not
        # depend on the logits, so it stays out of the sum over quadrature points.
        coefficient = (value + n).lgamma() - n.lgamma() - (value + 1).lgamma()
        coefficient = coefficient.masked_fill(value + n == 0, 0.0)
        logits = (
            self.logits.unsqueeze(-1)
            + self.multiplicative_noise_scale.unsqueeze(-1) * self.quad_points
        )
        k = value.unsqueeze(-1)
        per_point = k * logits - (n.unsqueeze(-1) + k) * F.softplus(logits)
        return coefficient + (per_point + self.log_weights).logsumexp(-1)

    def sample(self, sample_shape=()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        with torch.no_grad():
            noise = torch.randn(shape, dtype=self.logits.dtype, device=self.logits.device)
            logits = self.logits + self.multiplicative_noise_scale * noise
            nb = NegativeBinomial(
                self.total_count.expand(shape), logits=logits, validate_args=False
            )
            return nb.sample()

    @property
    def mean(self) -> torch.Tensor:
        return self.total_count * (self.logits + self.multiplicative_noise_scale.pow(2) / 2).exp()

    @property
    def variance(self) -> torch.Tensor:
        mean = self.mean
        excess = self.multiplicative_noise_scale.pow(2).exp() * (1 + 1 / self.total_count) - 1
        return mean + excess * mean.pow(2)
