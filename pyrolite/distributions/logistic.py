"""Logistic and SkewLogistic (type I generalized logistic): smooth, log-concave densities
with exponential tails, sampled by inverting their closed-form cdf."""

import math
from typing import Union

import torch
import torch.nn.functional as F
from torch.distributions import constraints
from torch.distributions.utils import broadcast_all

from pyrolite.distributions.torch_distribution import TorchDistribution

_Number = Union[float, torch.Tensor]
_EULER_GAMMA = 0.5772156649015329


# torch.finfo costs a microsecond per call; samplers look the value up per draw.
_TINY = {
    t: torch.finfo(t).tiny for t in (torch.float16, torch.bfloat16, torch.float32, torch.float64)
}


def _uniform(loc: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Uniform draws on ``[tiny, 1)``: off 0, where the inverse cdfs are infinite, and
    otherwise the same numbers as ``torch.rand`` (``tiny + U`` rounds to ``U``)."""
    return loc.new_empty(shape).uniform_(_TINY[loc.dtype], 1.0)


class SkewLogistic(TorchDistribution):
    """For ``loc=0, scale=1`` the density ``a exp(-x) / (1 + exp(-x)) ** (a + 1)`` with
    ``a = asymmetry``: skewed right for ``a > 1``, left for ``a < 1``, Logistic at ``a = 1``.

    >>> d = SkewLogistic(torch.tensor(0.0), torch.tensor(1.0), torch.tensor(2.0))
    >>> round(float(d.cdf(torch.tensor(0.0))), 4), round(float(d.icdf(torch.tensor(0.25))), 4)
    (0.25, 0.0)
    """

    arg_constraints = {
        "loc": constraints.real,
        "scale": constraints.positive,
        "asymmetry": constraints.positive,
    }
    support = constraints.real
    has_rsample = True

    def __init__(
        self, loc: _Number, scale: _Number, asymmetry: _Number = 1.0, *, validate_args=None
    ):
        self.loc, self.scale, self.asymmetry = broadcast_all(loc, scale, asymmetry)
        super().__init__(self.loc.shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(SkewLogistic, _instance)
        batch_shape = torch.Size(batch_shape)
        new.loc = self.loc.expand(batch_shape)
        new.scale = self.scale.expand(batch_shape)
        new.asymmetry = self.asymmetry.expand(batch_shape)
        TorchDistribution.__init__(new, batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        z = (value - self.loc) / self.scale
        a = self.asymmetry
        return (a + 1) * F.logsigmoid(z) - z + a.log() - self.scale.log()

    def rsample(self, sample_shape=()) -> torch.Tensor:
        return self.icdf(_uniform(self.loc, self._extended_shape(sample_shape)))

    def cdf(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        z = (value - self.loc) / self.scale
        return (self.asymmetry * F.logsigmoid(z)).exp()

    def icdf(self, value: torch.Tensor) -> torch.Tensor:
        # cdf(z) = (1 + e^-z)^-a  =>  z = -log(u^(-1/a) - 1) = -log(expm1(-log(u) / a)).
        z = -(value.log().neg() / self.asymmetry).expm1().log()
        return self.loc + self.scale * z

    @property
    def mean(self) -> torch.Tensor:
        return self.loc + self.scale * (self.asymmetry.digamma() + _EULER_GAMMA)

    @property
    def variance(self) -> torch.Tensor:
        return self.scale.pow(2) * (math.pi**2 / 6 + self.asymmetry.polygamma(1))


class Logistic(TorchDistribution):
    """For ``loc=0, scale=1`` the density ``exp(-x) / (1 + exp(-x)) ** 2``; its cdf is the
    sigmoid of ``(value - loc) / scale``.

    >>> d = Logistic(torch.tensor(1.0), torch.tensor(2.0))
    >>> float(d.cdf(torch.tensor(1.0))), round(float(d.variance), 4), round(float(d.entropy()), 4)
    (0.5, 13.1595, 2.6931)
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.real
    has_rsample = True

    def __init__(self, loc: _Number, scale: _Number, *, validate_args=None):
        self.loc, self.scale = broadcast_all(loc, scale)
        super().__init__(self.loc.shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(Logistic, _instance)
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
        return 2 * F.logsigmoid(z) - z - self.scale.log()

    def rsample(self, sample_shape=()) -> torch.Tensor:
        u = self.loc.new_empty(self._extended_shape(sample_shape)).uniform_()
        # logit's eps keeps u = 0 off -inf inside the same kernel (no separate clamp).
        return self.loc + self.scale * torch.logit(u, _TINY[u.dtype])

    def cdf(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return torch.sigmoid((value - self.loc) / self.scale)

    def icdf(self, value: torch.Tensor) -> torch.Tensor:
        return self.loc + self.scale * torch.logit(value)

    @property
    def mean(self) -> torch.Tensor:
        return self.loc

    @property
    def variance(self) -> torch.Tensor:
        return self.scale.pow(2) * (math.pi**2 / 3)

    def entropy(self) -> torch.Tensor:
        return self.scale.log() + 2
