"""FoldedDistribution: ``|X|`` for a univariate ``X``, with the density of both preimages."""

import torch
from torch.distributions import constraints
from torch.distributions.transforms import AbsTransform

from pyrolite.distributions.torch import TransformedDistribution


class FoldedDistribution(TransformedDistribution):
    """``TransformedDistribution(base_dist, AbsTransform())`` plus a ``log_prob``:
    ``log(p(x) + p(-x))`` for ``x > 0``.

    >>> from pyrolite.distributions.torch import Normal
    >>> d = FoldedDistribution(Normal(torch.tensor(0.0), torch.tensor(1.0)))
    >>> round(float(d.log_prob(torch.tensor(1.0)).exp()), 4)
    0.4839
    """

    support = constraints.positive

    def __init__(self, base_dist: torch.distributions.Distribution, validate_args=None):
        if base_dist.event_shape:
            raise ValueError(
                f"Only univariate distributions can be folded: base_dist has event_shape "
                f"{tuple(base_dist.event_shape)}; fold the univariate base, then .to_event()."
            )
        super().__init__(base_dist, AbsTransform(), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(FoldedDistribution, _instance)
        return super().expand(batch_shape, _instance=new)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        base = self.base_dist
        return torch.logaddexp(base.log_prob(value), base.log_prob(-value))
