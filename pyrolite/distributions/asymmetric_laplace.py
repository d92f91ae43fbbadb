"""AsymmetricLaplace (two exponential tails of different scales meeting at ``loc``) and
SoftAsymmetricLaplace (the same, convolved with a Normal: a smooth density)."""

import math
from typing import Union

import torch
from torch.distributions import constraints
from torch.distributions.utils import broadcast_all, lazy_property

from pyrolite.distributions.torch_distribution import TorchDistribution

_Number = Union[float, torch.Tensor]
_LOG_SQRT_PI = 0.5 * math.log(math.pi)
_SQRT_HALF = math.sqrt(0.5)
# log erfc(u) = -u^2 - log(u sqrt(pi)) + log(1 + sum_k c_k / u^2k) (asymptotic series). Per
# dtype: from which u the series replaces erfc (which nears underflow past it) and the c_k
# needed there; the first dropped term is below that dtype's resolution.
_ERFC_TAIL = {torch.float64: (25.0, (-0.5, 0.75, -1.875, 6.5625, -29.53125))}
_ERFC_TAIL_DEFAULT = (9.0, (-0.5, 0.75, -1.875))


def _log_erfc_tail(
    u: torch.Tensor, ratio: torch.Tensor, z: torch.Tensor, half_z2: torch.Tensor
) -> torch.Tensor:
    """One side of the soft density, ``ratio * (ratio / 2 - z) + log erfc(u)`` with
    ``u = (ratio - z) / sqrt(2)``: the log of ``2 exp(ratio^2 / 2 - z ratio) Phi(z - ratio)``,
    an exponential tail smoothed by a unit Normal (``z`` and ``ratio`` in soft-scale units).

    torch's ``log_ndtr`` is stable but ~40x slower than ``erfc`` on CPU, and ``log(erfc)``
    underflows for large ``u``. There the asymptotic series' ``-u^2`` cancels the exponent
    exactly, leaving ``-z^2 / 2``: no large terms to cancel.
    """
    far_from, coefficients = _ERFC_TAIL.get(u.dtype, _ERFC_TAIL_DEFAULT)
    near = ratio * (0.5 * ratio - z) + u.clamp(max=far_from).erfc().log()
    u_far = u.clamp(min=far_from)
    r = u_far.pow(-2)
    series = coefficients[-1]
    for c in reversed(coefficients[:-1]):
        series = c + r * series
    far = ((1 + r * series) / u_far).log() - half_z2 - _LOG_SQRT_PI
    return torch.where(u < far_from, near, far)


class AsymmetricLaplace(TorchDistribution):
    """Left of ``loc`` a reflected Exponential of scale ``scale * asymmetry``, right of it an
    Exponential of scale ``scale / asymmetry``; the density is continuous at ``loc``.

    >>> d = AsymmetricLaplace(torch.tensor(0.0), torch.tensor(1.0), torch.tensor(2.0))
    >>> float(d.left_scale), float(d.right_scale), float(d.mean), float(d.variance)
    (2.0, 0.5, -1.5, 4.25)
    """

    arg_constraints = {
        "loc": constraints.real,
        "scale": constraints.positive,
        "asymmetry": constraints.positive,
    }
    support = constraints.real
    has_rsample = True

    def __init__(self, loc: _Number, scale: _Number, asymmetry: _Number, *, validate_args=None):
        self.loc, self.scale, self.asymmetry = broadcast_all(loc, scale, asymmetry)
        super().__init__(self.loc.shape, validate_args=validate_args)

    @lazy_property
    def left_scale(self) -> torch.Tensor:
        return self.scale * self.asymmetry

    @lazy_property
    def right_scale(self) -> torch.Tensor:
        return self.scale / self.asymmetry

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(AsymmetricLaplace, _instance)
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
        z = value - self.loc
        left, right = self.left_scale, self.right_scale
        return torch.where(z < 0, z / left, -z / right) - (left + right).log()

    def rsample(self, sample_shape=()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        # The difference of two exponentials with the side scales has this density.
        u, v = self.loc.new_empty((2,) + shape).exponential_()
        return self.loc - self.left_scale * u + self.right_scale * v

    @property
    def mean(self) -> torch.Tensor:
        return self.loc + self.right_scale - self.left_scale

    @property
    def variance(self) -> torch.Tensor:
        return self.left_scale.pow(2) + self.right_scale.pow(2)


class SoftAsymmetricLaplace(TorchDistribution):
    """``AsymmetricLaplace(loc, scale, asymmetry)`` plus independent
    ``Normal(0, scale * softness)`` noise: an infinitely differentiable density with the same
    exponential tails, tending to AsymmetricLaplace as ``softness -> 0``.

    >>> d = SoftAsymmetricLaplace(torch.tensor(0.0), torch.tensor(1.0), softness=torch.tensor(1.0))
    >>> float(d.mean), float(d.variance), round(float(d.log_prob(torch.tensor(0.0))), 4)
    (0.0, 3.0, -1.341)
    """

    arg_constraints = {
        "loc": constraints.real,
        "scale": constraints.positive,
        "asymmetry": constraints.positive,
        "softness": constraints.positive,
    }
    support = constraints.real
    has_rsample = True

    def __init__(
        self,
        loc: _Number,
        scale: _Number,
        asymmetry: _Number = 1.0,
        softness: _Number = 1.0,
        *,
        validate_args=None,
    ):
        self.loc, self.scale, self.asymmetry, self.softness = broadcast_all(
            loc, scale, asymmetry, softness
        )
        super().__init__(self.loc.shape, validate_args=validate_args)

    @lazy_property
    def left_scale(self) -> torch.Tensor:
        return self.scale * self.asymmetry

    @lazy_property
    def right_scale(self) -> torch.Tensor:
        return self.scale / self.asymmetry

    @lazy_property
    def soft_scale(self) -> torch.Tensor:
        return self.scale * self.softness

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(SoftAsymmetricLaplace, _instance)
        batch_shape = torch.Size(batch_shape)
        new.loc = self.loc.expand(batch_shape)
        new.scale = self.scale.expand(batch_shape)
        new.asymmetry = self.asymmetry.expand(batch_shape)
        new.softness = self.softness.expand(batch_shape)
        TorchDistribution.__init__(new, batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        left, right, soft = self.left_scale, self.right_scale, self.soft_scale
        z = (value - self.loc) / soft
        half_z2 = 0.5 * z * z
        ratio_right, ratio_left = soft / right, soft / left
        right_side = _log_erfc_tail((ratio_right - z) * _SQRT_HALF, ratio_right, z, half_z2)
        left_side = _log_erfc_tail((ratio_left + z) * _SQRT_HALF, ratio_left, -z, half_z2)
        return torch.logaddexp(left_side, right_side) - (2 * (left + right)).log()

    def rsample(self, sample_shape=()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        z = self.loc.new_empty(shape).normal_()
        u, v = self.loc.new_empty((2,) + shape).exponential_()
        return self.loc + self.soft_scale * z - self.left_scale * u + self.right_scale * v

    @property
    def mean(self) -> torch.Tensor:
        return self.loc + self.right_scale - self.left_scale

    @property
    def variance(self) -> torch.Tensor:
        return self.left_scale.pow(2) + self.right_scale.pow(2) + self.soft_scale.pow(2)
