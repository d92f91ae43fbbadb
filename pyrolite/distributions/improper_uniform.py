"""ImproperUniform: a flat, unnormalized density over a constraint's support."""

from typing import Sequence

import torch
from torch.distributions import constraints

from pyrolite.distributions.torch_distribution import TorchDistribution, copy_forced_has_rsample
from pyrolite.distributions.util import broadcast_shape


class ImproperUniform(TorchDistribution):
    """Log-density 0 everywhere on ``support``; it cannot be sampled.

    Use it as a prior when only the likelihood (or a ``factor``) should shape the
    posterior; values come from a guide or an init strategy.

    >>> d = ImproperUniform(constraints.positive, (2,), ())
    >>> d.log_prob(torch.tensor([1.0, 3.0]))
    tensor([0., 0.])
    """

    arg_constraints = {}

    def __init__(
        self,
        support: constraints.Constraint,
        batch_shape: Sequence[int] = (),
        event_shape: Sequence[int] = (),
        validate_args=None,
    ):
        if support.event_dim > len(event_shape):
            raise ValueError(
                f"ImproperUniform: support has event_dim={support.event_dim} but "
                f"event_shape={tuple(event_shape)} has only {len(event_shape)} dims"
            )
        self._support = support
        super().__init__(torch.Size(batch_shape), torch.Size(event_shape), validate_args)

    @constraints.dependent_property
    def support(self):
        return constraints.independent(self._support, self.event_dim - self._support.event_dim)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(ImproperUniform, _instance)
        new._support = self._support
        super(ImproperUniform, new).__init__(
            torch.Size(batch_shape), self.event_shape, validate_args=False
        )
        new._validate_args = self._validate_args
        return copy_forced_has_rsample(self, new)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        # With validation on, the support is checked (Pyro does not check it): it costs more
        # than the (free) density, but a fast path that skips a check is not one we take.
        if self._validate_args:
            self._validate_sample(value)
        value_batch = value.shape[: value.dim() - self.event_dim]
        if value_batch == self.batch_shape:
            batch_shape = value_batch
        else:
            batch_shape = broadcast_shape(value_batch, self.batch_shape)
        return value.new_zeros(()).expand(batch_shape)

    def sample(self, sample_shape=()):
        raise NotImplementedError(
            "ImproperUniform has no normalized density and cannot be sampled: give the site "
            "a value from a guide (e.g. an autoguide) or an init strategy such as "
            "init_to_median / init_to_value."
        )
