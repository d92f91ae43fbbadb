"""Elementwise activations as bijections: ``ELUTransform`` and ``LeakyReLUTransform``
(slope 0.01), with the ``elu`` / ``leaky_relu`` helpers."""

import math

import torch
import torch.nn.functional as F
from torch.distributions.transforms import Transform

from pyrolite.distributions import constraints


class ELUTransform(Transform):
    """``y = elu(x)``, inverse ``log1p`` on the negative side.

    The range of ELU is ``(-1, inf)``; the codomain says so (Pyro 1.9 declares
    ``positive``, which rejects the negative outputs).

    >>> t = ELUTransform()
    >>> [round(float(v), 4) for v in t.inv(t(torch.tensor([-1.0, 2.0])))]
    [-1.0, 2.0]
    """

    domain = constraints.real
    codomain = constraints.greater_than(-1.0)
    bijective = True
    sign = +1

    def __init__(self, cache_size: int = 0) -> None:
        super().__init__(cache_size=cache_size)

    def __eq__(self, other):
        return isinstance(other, ELUTransform)

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        return F.elu(x)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        return torch.where(y > 0, y, torch.log1p(y))

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # d elu / dx is exp(x) for x < 0 and 1 otherwise.
        return -F.relu(-x)


class LeakyReLUTransform(Transform):
    """``y = leaky_relu(x)`` with slope 0.01 below zero.

    >>> LeakyReLUTransform()(torch.tensor([-1.0, 2.0]))
    tensor([-0.0100,  2.0000])
    """

    domain = constraints.real
    codomain = constraints.real
    bijective = True
    sign = +1

    def __init__(self, cache_size: int = 0) -> None:
        super().__init__(cache_size=cache_size)

    def __eq__(self, other):
        return isinstance(other, LeakyReLUTransform)

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(y, negative_slope=100.0)

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.where(x >= 0.0, torch.zeros_like(x), torch.full_like(x, math.log(0.01)))


def elu() -> ELUTransform:
    """An :class:`ELUTransform`.

    >>> elu()
    ELUTransform()
    """
    return ELUTransform()


def leaky_relu() -> LeakyReLUTransform:
    """A :class:`LeakyReLUTransform`.

    >>> leaky_relu()
    LeakyReLUTransform()
    """
    return LeakyReLUTransform()
