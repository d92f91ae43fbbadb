"""SoftLaplace: a smooth, log-convex density with Laplace-like exponential tails (the
hyperbolic secant law), with closed-form cdf and icdf."""

import math
from typing import Union

import torch
from torch.distributions import constraints
from torch.distributions.utils import broadcast_all

from pyrolite.distributions.torch_distribution import TorchDistribution

_Number = Union[float, torch.Tensor]
_LOG_2_OVER_PI = math.log(2 / math.pi)
# torch.finfo costs a microsecond per call; rsample looks the value up per draw.
_TINY = {
    t: torch.finfo(t).tiny for t in (torch.float16, torch.bfloat16, torch.float32, torch.float64)
}


class SoftLaplace(TorchDistribution):
    """Density ``exp(log(2 / pi) - log(scale) - logaddexp(z, -z))`` with
    ``z = (value - loc) / scale``: infinitely differentiable, tails like a Laplace.

    >>> d = SoftLaplace(torch.tensor(0.0), torch.tensor(2.0))
    >>> float(d.cdf(torch.tensor(0.0))), round(float(d.variance), 4)
    (0.5, 9.8696)
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.real
    has_rsample = True

    def __init__(self, loc: _Number, scale: _Number, *, validate_args=None):
        self.loc, self.scale = broadcast_all(loc, scale)
        super().__init__(self.loc.shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(SoftLaplace, _instance)
        batch_shape = torch.Size(batch_shape)
        new.loc = self.loc.expand(batch_shape)
        new.scale = self.scale.expand(batch_shape)
        TorchDistribution.__init__(new, batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        z = (value - self.loc) / self.scale
        return _LOG_2_OVER_PI - self.scale.log() - torch.logaddexp(z, -z)

    def rsample(self, sample_shape=()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        # On [tiny, 1): off 0, where icdf is infinite, and otherwise torch.rand's numbers.
        u = self.loc.new_empty(shape).uniform_(_TINY[self.loc.dtype], 1.0)
        return self.icdf(u)

    def cdf(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        z = (value - self.loc) / self.scale
        return z.exp().atan().mul(2 / math.pi)

    def icdf(self, value: torch.Tensor) -> torch.Tensor:
        return self.loc + self.scale * value.mul(math.pi / 2).tan().log()

    @property
    def mean(self) -> torch.Tensor:
        return self.loc

    @property
    def variance(self) -> torch.Tensor:
        return (math.pi / 2 * self.scale).pow(2)
