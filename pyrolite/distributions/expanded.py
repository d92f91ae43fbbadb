"""ExpandedDistribution: a distribution expanded to a larger batch shape by wrapping it.

It is what ``expand`` returns for a pyrolite-defined family that has no ``expand`` of its
own (this module installs that fallback on ``TorchDistribution``), as in Pyro.
"""

from typing import Sequence, Tuple

import torch
from torch.distributions import constraints

from pyrolite.distributions.distribution import ForceableHasRsample
from pyrolite.distributions.score_parts import ScoreParts
from pyrolite.distributions.torch_distribution import TorchDistribution, copy_forced_has_rsample


def _broadcast_plan(base_shape: torch.Size, batch_shape: torch.Size) -> Tuple[list, list]:
    """``(leading, stretched)``: the new leftmost sizes, and ``(dim, size)`` of the base
    dims of size 1 stretched to ``size`` (dims counted from the left of ``batch_shape``)."""
    lead = len(batch_shape) - len(base_shape)
    if lead < 0:
        raise ValueError(
            f"Cannot broadcast distribution of shape {base_shape} to shape {batch_shape}: "
            "expand may add dims on the left only; pass a batch_shape with at least "
            f"{len(base_shape)} dims."
        )
    stretched = []
    for i, (old, new) in enumerate(zip(base_shape, batch_shape[lead:])):
        if old == new:
            continue
        if old != 1:
            raise ValueError(
                f"Cannot broadcast distribution of shape {base_shape} to shape {batch_shape}: "
                f"size {old} at dim {i - len(base_shape)} can only expand if it is 1."
            )
        stretched.append((lead + i, new))
    return list(batch_shape[:lead]), stretched


class ExpandedDistribution(TorchDistribution):
    """``base_dist`` with its ``batch_shape`` broadcast to ``batch_shape``.

    New leading dims and stretched size-1 dims hold independent draws; ``log_prob`` is the
    base's, broadcast to the batch shape.

    >>> from pyrolite.distributions import Normal
    >>> d = ExpandedDistribution(Normal(torch.zeros(2, 1), 1.0), torch.Size([4, 2, 3]))
    >>> d.batch_shape, d.sample((5,)).shape, d.log_prob(torch.zeros(3)).shape
    (torch.Size([4, 2, 3]), torch.Size([5, 4, 2, 3]), torch.Size([4, 2, 3]))
    """

    arg_constraints = {}

    def __init__(self, base_dist, batch_shape: Sequence[int] = torch.Size()):
        batch_shape = torch.Size(batch_shape)
        self._leading, self._stretched = _broadcast_plan(base_dist.batch_shape, batch_shape)
        self.base_dist = base_dist
        super().__init__(batch_shape, base_dist.event_shape, validate_args=False)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        _broadcast_plan(self.batch_shape, batch_shape)  # may only grow this batch shape
        new = ExpandedDistribution(self.base_dist, batch_shape)
        return copy_forced_has_rsample(self, new)

    has_rsample = ForceableHasRsample(lambda self: self.base_dist.has_rsample)

    @property
    def has_enumerate_support(self) -> bool:
        return self.base_dist.has_enumerate_support

    @constraints.dependent_property
    def support(self):
        return self.base_dist.support

    def _draw(self, draw, sample_shape) -> torch.Tensor:
        # Draw the stretched and leading dims as extra sample dims of the base, then move
        # each stretched dim next to the size-1 base dim it replaces.
        sample_shape = torch.Size(sample_shape)
        value = draw(
            sample_shape + torch.Size([size for _, size in self._stretched] + self._leading)
        )
        if not self._stretched:
            return value
        n, k, lead = len(sample_shape), len(self._stretched), len(self._leading)
        stretched_at = {dim: j for j, (dim, _) in enumerate(self._stretched)}
        order = list(range(n)) + list(range(n + k, n + k + lead))
        for i in range(len(self.base_dist.batch_shape)):
            if lead + i in stretched_at:
                order.append(n + stretched_at[lead + i])
            order.append(n + k + lead + i)
        order += list(range(value.dim() - self.event_dim, value.dim()))
        return value.permute(order).reshape(sample_shape + self.batch_shape + self.event_shape)

    def sample(self, sample_shape=()) -> torch.Tensor:
        return self._draw(self.base_dist.sample, sample_shape)

    def rsample(self, sample_shape=()) -> torch.Tensor:
        return self._draw(self.base_dist.rsample, sample_shape)

    def _expand_to_value(self, part, value: torch.Tensor):
        if not isinstance(part, torch.Tensor):
            return part
        value_batch = value.shape[: value.dim() - self.event_dim]
        shape = torch.broadcast_shapes(value_batch, self.batch_shape)
        return part if part.shape == shape else part.expand(shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return self._expand_to_value(self.base_dist.log_prob(value), value)

    def score_parts(self, value: torch.Tensor) -> ScoreParts:
        parts = self.base_dist.score_parts(value)
        log_prob = self._expand_to_value(parts.log_prob, value)
        if parts.entropy_term is parts.log_prob:
            return ScoreParts(
                log_prob, self._expand_to_value(parts.score_function, value), log_prob
            )
        return ScoreParts(*(self._expand_to_value(part, value) for part in parts))

    def enumerate_support(self, expand: bool = True) -> torch.Tensor:
        values = self.base_dist.enumerate_support(expand=False)
        values = values.reshape(values.shape[:1] + (1,) * len(self.batch_shape) + self.event_shape)
        if expand:
            values = values.expand(values.shape[:1] + self.batch_shape + self.event_shape)
        return values

    @property
    def mean(self) -> torch.Tensor:
        return self.base_dist.mean.expand(self.batch_shape + self.event_shape)

    @property
    def variance(self) -> torch.Tensor:
        return self.base_dist.variance.expand(self.batch_shape + self.event_shape)


# ``TorchDistribution.expand``, for a family without its own, wraps the family in this.
TorchDistribution.expanded_class = ExpandedDistribution
expand_by_wrapping = TorchDistribution.expand
