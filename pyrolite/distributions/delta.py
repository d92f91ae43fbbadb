"""Delta: a point mass, used to put a deterministic value at a sample site."""

import numbers
from typing import Union

import torch
from torch.distributions import constraints

from pyrolite.distributions.torch_distribution import TorchDistribution, copy_forced_has_rsample
from pyrolite.distributions.util import sum_rightmost


class Delta(TorchDistribution):
    """Point mass at ``v`` whose rightmost ``event_dim`` dims form the event.

    ``log_prob(x)`` is ``log_density`` where ``x == v`` (over the whole event) and -inf
    elsewhere; samples are ``v`` itself, so gradients flow through ``v``.

    >>> d = Delta(torch.tensor([1.0, 2.0]), log_density=torch.tensor(0.5), event_dim=1)
    >>> d.rsample((2,)).shape, d.log_prob(torch.tensor([1.0, 2.0]))
    (torch.Size([2, 2]), tensor(0.5000))
    >>> d.log_prob(torch.tensor([1.0, 3.0]))
    tensor(-inf)
    """

    arg_constraints = {"v": constraints.dependent, "log_density": constraints.real}
    has_rsample = True

    def __init__(
        self,
        v: torch.Tensor,
        log_density: Union[float, torch.Tensor] = 0.0,
        event_dim: int = 0,
        validate_args=None,
    ):
        if not isinstance(v, torch.Tensor):  # a tensor stays on its device (whatever the
            v = torch.as_tensor(v)  # default device), as torch.distributions keep params
        if event_dim > v.dim():
            raise ValueError(
                f"Delta: event_dim={event_dim} exceeds v.dim()={v.dim()} (v.shape={tuple(v.shape)})"
            )
        batch_dim = v.dim() - event_dim
        batch_shape, event_shape = v.shape[:batch_dim], v.shape[batch_dim:]
        if isinstance(log_density, numbers.Number):
            log_density = torch.full(batch_shape, log_density, dtype=v.dtype, device=v.device)
        elif log_density.shape != batch_shape:
            log_density = log_density.expand(batch_shape)
        self.v = v
        self.log_density = log_density
        super().__init__(batch_shape, event_shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(Delta, _instance)
        batch_shape = torch.Size(batch_shape)
        new.v = self.v.expand(batch_shape + self.event_shape)
        new.log_density = self.log_density.expand(batch_shape)
        super(Delta, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return copy_forced_has_rsample(self, new)

    @constraints.dependent_property
    def support(self):
        return constraints.independent(constraints.real, self.event_dim)

    def rsample(self, sample_shape=()) -> torch.Tensor:
        if not sample_shape:
            return self.v
        return self.v.expand(torch.Size(sample_shape) + self.v.shape)

    def sample(self, sample_shape=()) -> torch.Tensor:
        # An expanded view of ``v`` would still require grad under no_grad, hence detach.
        return self.rsample(sample_shape).detach()

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        if x is self.v:
            # Scoring its own draw (a guide's deterministic site): the point mass is hit.
            return self.log_density
        v = self.v.expand(self.shape())
        log_prob = (x == v).type(x.dtype).log()
        return sum_rightmost(log_prob, self.event_dim) + self.log_density

    @property
    def mean(self) -> torch.Tensor:
        return self.v

    @property
    def variance(self) -> torch.Tensor:
        return torch.zeros_like(self.v)
