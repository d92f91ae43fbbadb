"""MaskedDistribution: a distribution whose log-density is zero where a mask is False."""

from typing import Union

import torch
from torch.distributions import constraints

from pyrolite.distributions.distribution import ForceableHasRsample
from pyrolite.distributions.score_parts import ScoreParts
from pyrolite.distributions.torch_distribution import (
    TorchDistribution,
    TorchDistributionMixin,
    copy_forced_has_rsample,
)
from pyrolite.distributions.util import broadcast_shape, scale_and_mask


class MaskedDistribution(TorchDistribution):
    """``base_dist`` with ``log_prob`` set to exactly 0 where ``mask`` is False.

    ``mask`` is a bool or a bool tensor broadcastable to ``base_dist.batch_shape``; the
    batch shape becomes their broadcast. Masked entries are 0 even where the base
    log-density is -inf, so masked-out data cannot poison a loss.

    >>> from pyrolite.distributions import Bernoulli
    >>> d = MaskedDistribution(Bernoulli(torch.tensor([0.0, 0.5])), torch.tensor([False, True]))
    >>> d.log_prob(torch.tensor([1.0, 1.0]))
    tensor([ 0.0000, -0.6931])
    """

    arg_constraints = {}

    def __init__(self, base_dist, mask: Union[bool, torch.Tensor]):
        if isinstance(mask, bool):
            self._mask = mask
        else:
            if mask.dtype != torch.bool:
                raise ValueError(f"mask must be a bool tensor, got dtype {mask.dtype}")
            batch_shape = broadcast_shape(mask.shape, base_dist.batch_shape)
            if mask.shape != batch_shape:
                mask = mask.expand(batch_shape)
            if base_dist.batch_shape != batch_shape:
                base_dist = base_dist.expand(batch_shape)
            self._mask = mask
        self.base_dist = base_dist
        super().__init__(base_dist.batch_shape, base_dist.event_shape, validate_args=False)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(MaskedDistribution, _instance)
        batch_shape = torch.Size(batch_shape)
        new.base_dist = self.base_dist.expand(batch_shape)
        new._mask = self._mask if isinstance(self._mask, bool) else self._mask.expand(batch_shape)
        super(MaskedDistribution, new).__init__(batch_shape, self.event_shape, validate_args=False)
        return copy_forced_has_rsample(self, new)

    has_rsample = ForceableHasRsample(lambda self: self.base_dist.has_rsample)

    @property
    def has_enumerate_support(self) -> bool:
        return self.base_dist.has_enumerate_support

    @constraints.dependent_property
    def support(self):
        return self.base_dist.support

    def sample(self, sample_shape=()):
        return self.base_dist.sample(sample_shape)

    def rsample(self, sample_shape=()):
        return self.base_dist.rsample(sample_shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._mask is False:
            shape = broadcast_shape(self.batch_shape, value.shape[: value.dim() - self.event_dim])
            return value.new_zeros(()).expand(shape)
        if self._mask is True:
            return self.base_dist.log_prob(value)
        return scale_and_mask(self.base_dist.log_prob(value), mask=self._mask)

    def score_parts(self, value: torch.Tensor) -> ScoreParts:
        if isinstance(self._mask, bool):
            return super().score_parts(value)
        # The base's parts, masked; like scale_and_mask, this leaves score_function alone.
        log_prob = self.base_dist.log_prob(value)
        if self.has_rsample:
            parts = ScoreParts(log_prob=log_prob, score_function=0, entropy_term=log_prob)
        else:
            parts = ScoreParts(log_prob=log_prob, score_function=log_prob, entropy_term=0)
        return parts.scale_and_mask(mask=self._mask)

    def enumerate_support(self, expand: bool = True) -> torch.Tensor:
        return self.base_dist.enumerate_support(expand=expand)

    @property
    def mean(self):
        return self.base_dist.mean

    @property
    def variance(self):
        return self.base_dist.variance


TorchDistributionMixin.masked_class = MaskedDistribution
