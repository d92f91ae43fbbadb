"""``PositivePowerTransform``: ``y = x ** exponent`` for a positive exponent, extended to
negative ``x`` as an odd function so it is a bijection of the real line."""

from typing import Optional, Union

import torch
from torch.distributions import Distribution
from torch.distributions.transforms import Transform

from pyrolite.distributions import constraints


class PositivePowerTransform(Transform):
    """``y = sign(x) |x| ** exponent``; ``exponent > 0`` is checked when ``validate_args``
    (default: torch's distribution validation setting).

    >>> PositivePowerTransform(2.0)(torch.tensor([-2.0, 3.0]))
    tensor([-4.,  9.])
    """

    domain = constraints.real
    codomain = constraints.real
    bijective = True
    sign = +1

    def __init__(
        self,
        exponent: Union[float, torch.Tensor],
        *,
        cache_size: int = 0,
        validate_args: Optional[bool] = None,
    ):
        super().__init__(cache_size=cache_size)
        if isinstance(exponent, (int, float)):
            exponent = torch.tensor(float(exponent))
        self.exponent = exponent
        if validate_args is None:
            validate_args = Distribution._validate_args
        if validate_args and not exponent.gt(0).all():
            raise ValueError(f"Expected exponent > 0 but got:{exponent}")

    def __eq__(self, other):
        if not isinstance(other, PositivePowerTransform):
            return False
        return bool(self.exponent.eq(other.exponent).all().item())

    def with_cache(self, cache_size: int = 1) -> "PositivePowerTransform":
        if cache_size == self._cache_size:
            return self
        return PositivePowerTransform(self.exponent, cache_size=cache_size)

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        return x.abs().pow(self.exponent) * x.sign()

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y.abs().pow(self.exponent.reciprocal()) * y.sign()

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # dy/dx = exponent |x| ** (exponent - 1) = exponent y / x (NaN at 0, as in Pyro).
        return torch.log(self.exponent * y / x)

    def forward_shape(self, shape):
        return torch.broadcast_shapes(shape, getattr(self.exponent, "shape", ()))

    def inverse_shape(self, shape):
        return torch.broadcast_shapes(shape, getattr(self.exponent, "shape", ()))
