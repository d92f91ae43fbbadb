"""AffineBeta: ``loc + scale * X`` with ``X ~ Beta(concentration1, concentration0)``."""

from typing import Tuple, Union

import torch
from torch.distributions import constraints
from torch.distributions.transforms import AffineTransform
from torch.distributions.utils import broadcast_all

from pyrolite.distributions.torch import Beta, TransformedDistribution
from pyrolite.distributions.util import broadcast_shape

_Number = Union[float, torch.Tensor]


class AffineBeta(TransformedDistribution):
    """A Beta law stretched to the interval ``[loc, loc + scale]``.

    Draws of the Beta are kept ``eps`` inside ``(0, 1)`` before the affine map, so samples
    lie strictly inside the support and ``log_prob`` of a sample is finite.

    >>> d = AffineBeta(torch.tensor(2.0), torch.tensor(2.0), torch.tensor(-1.0), torch.tensor(4.0))
    >>> float(d.mean), round(float(d.variance), 4), (float(d.low), float(d.high))
    (1.0, 0.8, (-1.0, 3.0))
    """

    arg_constraints = {
        "concentration1": constraints.positive,
        "concentration0": constraints.positive,
        "loc": constraints.real,
        "scale": constraints.positive,
    }

    def __init__(
        self,
        concentration1: _Number,
        concentration0: _Number,
        loc: _Number,
        scale: _Number,
        validate_args=None,
    ):
        concentration1, concentration0, loc, scale = broadcast_all(
            concentration1, concentration0, loc, scale
        )
        base_dist = Beta(concentration1, concentration0, validate_args=validate_args)
        super().__init__(
            base_dist, AffineTransform(loc=loc, scale=scale), validate_args=validate_args
        )

    @staticmethod
    def infer_shapes(concentration1, concentration0, loc, scale) -> Tuple[tuple, tuple]:
        """``(batch_shape, event_shape)`` for parameters of the given shapes."""
        batch_shape = broadcast_shape(concentration1, concentration0, loc, scale)
        return tuple(batch_shape), ()

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(AffineBeta, _instance)
        return super().expand(batch_shape, _instance=new)

    def _unit_sample(self, sample_shape, reparameterized: bool) -> torch.Tensor:
        draw = self.base_dist.rsample if reparameterized else self.base_dist.sample
        x = draw(sample_shape)
        eps = torch.finfo(x.dtype).eps
        return x.clamp(min=eps, max=1 - eps)

    def sample(self, sample_shape=()) -> torch.Tensor:
        with torch.no_grad():
            return self.loc + self.scale * self._unit_sample(sample_shape, False)

    def rsample(self, sample_shape=()) -> torch.Tensor:
        return self.loc + self.scale * self._unit_sample(sample_shape, True)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        unit = (value - self.loc) / self.scale
        return self.base_dist.log_prob(unit) - self.scale.log()

    @constraints.dependent_property
    def support(self):
        return constraints.interval(self.loc, self.loc + self.scale)

    @property
    def concentration1(self) -> torch.Tensor:
        return self.base_dist.concentration1

    @property
    def concentration0(self) -> torch.Tensor:
        return self.base_dist.concentration0

    @property
    def sample_size(self) -> torch.Tensor:
        return self.concentration1 + self.concentration0

    @property
    def loc(self) -> torch.Tensor:
        return torch.as_tensor(self.transforms[0].loc)

    @property
    def scale(self) -> torch.Tensor:
        return torch.as_tensor(self.transforms[0].scale)

    @property
    def low(self) -> torch.Tensor:
        return self.loc

    @property
    def high(self) -> torch.Tensor:
        return self.loc + self.scale

    @property
    def mean(self) -> torch.Tensor:
        return self.loc + self.scale * self.base_dist.mean

    @property
    def variance(self) -> torch.Tensor:
        return self.scale.pow(2) * self.base_dist.variance
