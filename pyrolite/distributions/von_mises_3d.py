"""VonMises3D: the von Mises-Fisher distribution on the 2-sphere, with location and
concentration combined into one vector."""

import math
from typing import Optional

import torch

from pyrolite.distributions import constraints
from pyrolite.distributions.torch_distribution import TorchDistribution, copy_forced_has_rsample


class VonMises3D(TorchDistribution):
    """Density ``|c| / (4 pi sinh |c|) * exp(c . x)`` for unit 3-vectors ``x``, where
    ``c = concentration`` (its direction is the mode, its norm the concentration).

    Only ``log_prob`` is implemented, as in Pyro.

    >>> d = VonMises3D(torch.tensor([0.0, 0.0, 2.0]))
    >>> round(float(d.log_prob(torch.tensor([0.0, 0.0, 1.0]))), 4)
    -1.1262
    """

    arg_constraints = {"concentration": constraints.real}
    support = constraints.sphere

    def __init__(self, concentration: torch.Tensor, validate_args: Optional[bool] = None):
        if concentration.dim() < 1 or concentration.shape[-1] != 3:
            raise ValueError(
                "Expected concentration to have rightmost dim 3, actual shape = "
                f"{concentration.shape}"
            )
        self.concentration = concentration
        super().__init__(concentration.shape[:-1], concentration.shape[-1:], validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(VonMises3D, _instance)
        batch_shape = torch.Size(batch_shape)
        new.concentration = self.concentration.expand(batch_shape + (3,))
        super(VonMises3D, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return copy_forced_has_rsample(self, new)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            if not bool(constraints.sphere.check(value).all()):
                raise ValueError("direction vectors are not normalized")
        # log(sinh(k) / k) = k + log(1 - exp(-2k)) - log(2k), with expm1 keeping it exact
        # as k -> 0 (where the clamp only avoids log(0)).
        kappa = self.concentration.norm(2, dim=-1).clamp_min(1e-20)
        log_sinhc = kappa + torch.log(-torch.expm1(-2 * kappa)) - torch.log(2 * kappa)
        normalizer = log_sinhc + math.log(4 * math.pi)  # on the parameters' (small) shape
        if self.concentration.dim() == 1:
            return value @ self.concentration - normalizer  # one kernel for c . x
        return (self.concentration * value).sum(-1) - normalizer
