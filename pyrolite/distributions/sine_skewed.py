"""SineSkewed: breaks the point symmetry of a distribution on the d-torus by the factor
``1 + sum_i skewness_i * sin(x_i - loc_i)``, keeping its normalizer."""

import math
from typing import Optional

import torch
from torch.distributions import constraints

from pyrolite.distributions.torch_distribution import TorchDistribution, copy_forced_has_rsample


class SineSkewed(TorchDistribution):
    """``base_dist`` (symmetric about its mean ``loc``, events of shape ``(d,)`` on the
    torus) reweighted by ``1 + sum_i skewness_i * sin(x_i - loc_i)``; the weights keep
    the total mass one while ``sum_i |skewness_i| <= 1``.

    Sampling flips a base draw about ``loc`` with probability
    ``(1 - sum_i skewness_i sin(x_i - loc_i)) / 2`` and wraps it into ``[-pi, pi)``.

    >>> from pyrolite.distributions.torch import VonMises
    >>> base = VonMises(torch.tensor([0.5]), torch.tensor([2.0])).to_event(1)
    >>> d = SineSkewed(base, torch.tensor([0.3]))
    >>> round(float(d.log_prob(torch.tensor([1.0]))), 4)
    -0.7723
    """

    arg_constraints = {
        "skewness": constraints.independent(constraints.interval(-1.0, 1.0), 1),
    }
    support = constraints.independent(constraints.real, 1)

    def __init__(
        self,
        base_dist: torch.distributions.Distribution,
        skewness: torch.Tensor,
        validate_args: Optional[bool] = None,
    ):
        if base_dist.event_shape != skewness.shape[-1:]:
            raise ValueError(
                f"SineSkewed: skewness shape {tuple(skewness.shape)} must end with the base "
                f"distribution's event shape {tuple(base_dist.event_shape)} (one weight per "
                "angle; wrap a scalar VonMises with .to_event(1) on a (1,)-shaped batch)."
            )
        batch_shape = torch.broadcast_shapes(base_dist.batch_shape, skewness.shape[:-1])
        event_shape = skewness.shape[-1:]
        self.skewness = skewness.expand(batch_shape + event_shape)
        self.base_dist = base_dist.expand(batch_shape)
        super().__init__(batch_shape, event_shape, validate_args=validate_args)
        if self._validate_args and bool((self.skewness.abs().sum(-1) > 1.0).any()):
            raise ValueError(
                "SineSkewed: the absolute skewness weights of an event must sum to at most "
                f"1, got {self.skewness.abs().sum(-1)}; scale them down."
            )

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(SineSkewed, _instance)
        batch_shape = torch.Size(batch_shape)
        new.base_dist = self.base_dist.expand(batch_shape)
        new.skewness = self.skewness.expand(batch_shape + self.event_shape)
        super(SineSkewed, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return copy_forced_has_rsample(self, new)

    def _skew(self, value: torch.Tensor) -> torch.Tensor:
        return (self.skewness * torch.sin(value - self.base_dist.mean)).sum(-1)

    @torch.no_grad()
    def sample(self, sample_shape=()) -> torch.Tensor:
        loc = self.base_dist.mean
        y = self.base_dist.sample(sample_shape)
        u = torch.rand(y.shape[:-1], dtype=y.dtype, device=y.device)
        keep = (u <= 0.5 * (1 + self._skew(y))).unsqueeze(-1)
        x = torch.where(keep, y, 2 * loc - y)
        return torch.remainder(x + math.pi, 2 * math.pi) - math.pi

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return self.base_dist.log_prob(value) + torch.log1p(self._skew(value))
