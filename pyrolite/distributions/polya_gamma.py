"""TruncatedPolyaGamma: the PolyaGamma(1, 0) density truncated to (0, 2.5), for models
that only need a good ``log_prob`` (e.g. HMC on Polya-Gamma augmented logistic models)."""

import math

import torch
from torch.distributions import constraints

from pyrolite.distributions.torch_distribution import TorchDistribution, copy_forced_has_rsample


class TruncatedPolyaGamma(TorchDistribution):
    """PolyaGamma(1, 0) restricted to ``(0, 2.5)``; ``prototype`` only fixes the dtype and
    device of samples and densities (the batch shape is ``()``, as in Pyro).

    ``log_prob`` is the untruncated density (the mass beyond 2.5, about 6e-6, is ignored,
    as in Pyro), from 7 terms of ``sum_n (-1)^n (2n + 1) exp(-(2n + 1)^2 / (8x)) /
    sqrt(2 pi x^3)`` below ``x = 0.5`` and of its dual ``2 pi sum_n (-1)^n (2n + 1)
    exp(-pi^2 (2n + 1)^2 x / 2)`` above, both converged to float64 precision there. (Pyro sums 7
    terms of the first series everywhere, which is off by up to 0.5 in log density near
    2.5, where that series cancels.) ``sample`` is a rough approximation, the sum of the first 8
    terms of the series of exponentials ``sum_k E_k / (2 pi^2 (k - 1/2)^2)`` clamped to the
    support, for uses such as initialization.

    >>> d = TruncatedPolyaGamma(torch.tensor(0.0))
    >>> d.batch_shape, round(float(d.log_prob(torch.tensor(0.5))), 4)
    (torch.Size([]), -0.6295)
    """

    truncation_point = 2.5
    num_log_prob_terms = 7
    num_gamma_variates = 8
    arg_constraints = {}
    support = constraints.interval(0.0, truncation_point)

    def __init__(self, prototype: torch.Tensor, validate_args=None):
        self.prototype = prototype
        super().__init__(batch_shape=torch.Size(), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(TruncatedPolyaGamma, _instance)
        new.prototype = self.prototype
        super(TruncatedPolyaGamma, new).__init__(torch.Size(batch_shape), validate_args=False)
        new._validate_args = self._validate_args
        return copy_forced_has_rsample(self, new)

    @torch.no_grad()
    def sample(self, sample_shape=()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        like = self.prototype
        half_odd = torch.arange(
            1, self.num_gamma_variates + 1, dtype=like.dtype, device=like.device
        ).sub_(0.5)
        rates = 2 * math.pi**2 * half_odd.pow(2)
        draws = torch.empty(
            shape + (self.num_gamma_variates,), dtype=like.dtype, device=like.device
        )
        draws.exponential_()
        x = (draws / rates).sum(-1)
        return x.clamp(torch.finfo(like.dtype).tiny, self.truncation_point)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        # Two expansions of one density, each relative to its first term:
        #   small x: sqrt(2 pi x^3)^-1 exp(-1/8x) sum_n (-1)^n (2n+1) q^(n(n+1)/2), q = e^(-1/x)
        #   large x: 2 pi exp(-pi^2 x / 2) sum_n (-1)^n (2n+1) q^(n(n+1)/2), q = e^(-4 pi^2 x)
        # (the theta-function dual). Each converges fast and without cancellation on its
        # side of x = 0.5, and both share one series in q.
        small = value < 0.5
        q = torch.exp(torch.where(small, -value.reciprocal(), -4 * math.pi**2 * value))
        series = torch.ones_like(q)
        term, step = torch.ones_like(q), torch.ones_like(q)
        for n in range(1, self.num_log_prob_terms):
            step = step * q
            term = term * step
            series = series + (-1) ** n * (2 * n + 1) * term
        near_zero = -0.125 / value - 1.5 * value.log() - 0.5 * math.log(2 * math.pi)
        far = math.log(2 * math.pi) - 0.5 * math.pi**2 * value
        return series.log() + torch.where(small, near_zero, far)
