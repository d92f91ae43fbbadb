"""Unit: the distribution behind ``factor``, adding ``log_factor`` to the joint density."""

from typing import Optional, Union

import torch
from torch.distributions import constraints

from pyrolite.distributions.torch_distribution import TorchDistribution, copy_forced_has_rsample
from pyrolite.distributions.util import broadcast_shape


class Unit(TorchDistribution):
    """Unnormalized distribution over the unit type: its one value holds no data.

    A value is an empty tensor of shape ``batch_shape + (0,)``; ``log_prob`` ignores it and
    returns ``log_factor``. ``has_rsample`` is False unless given at construction (``factor``
    in a guide must say whether ``log_factor`` came from reparameterized samples).

    >>> d = Unit(torch.tensor([1.5, -2.0]))
    >>> d().shape, d.log_prob(d())
    (torch.Size([2, 0]), tensor([ 1.5000, -2.0000]))
    """

    arg_constraints = {"log_factor": constraints.real}
    support = constraints.real

    def __init__(
        self,
        log_factor: Union[float, torch.Tensor],
        *,
        has_rsample: Optional[bool] = None,
        validate_args=None,
    ):
        if not isinstance(log_factor, torch.Tensor):  # a tensor stays on its device
            log_factor = torch.as_tensor(log_factor)
        self.log_factor = log_factor
        if has_rsample is not None:
            self.has_rsample = has_rsample
        super().__init__(log_factor.shape, torch.Size((0,)), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(Unit, _instance)
        batch_shape = torch.Size(batch_shape)
        new.log_factor = self.log_factor.expand(batch_shape)
        super(Unit, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return copy_forced_has_rsample(self, new)

    def sample(self, sample_shape=()) -> torch.Tensor:
        return self.log_factor.new_empty(self.shape(sample_shape))

    def rsample(self, sample_shape=()) -> torch.Tensor:
        return self.log_factor.new_empty(self.shape(sample_shape))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        batch_shape = value.shape[:-1]
        if batch_shape == self.batch_shape:  # the common case: a value from this site
            return self.log_factor
        return self.log_factor.expand(broadcast_shape(self.batch_shape, batch_shape))
