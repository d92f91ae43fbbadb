"""MaskedMixture: a deterministic, mask-selected mixture of two distributions."""

import torch
from torch.distributions import constraints

from pyrolite.distributions.distribution import ForceableHasRsample
from pyrolite.distributions.torch_distribution import TorchDistribution, copy_forced_has_rsample
from pyrolite.distributions.util import broadcast_shape


class _MaskedConstraint(constraints.Constraint):
    """``constraint1`` where ``mask`` is True, ``constraint0`` where it is False."""

    def __init__(self, mask: torch.Tensor, constraint0, constraint1):
        self.mask = mask
        self.constraint0 = constraint0
        self.constraint1 = constraint1
        self.is_discrete = constraint0.is_discrete
        self.event_dim = constraint0.event_dim

    def check(self, value: torch.Tensor) -> torch.Tensor:
        return torch.where(self.mask, self.constraint1.check(value), self.constraint0.check(value))


class MaskedMixture(TorchDistribution):
    """``component1`` where the bool tensor ``mask`` is True, ``component0`` where False.

    Useful when the mask is itself sampled (a change point, say) and enumerated out. The
    components share ``event_shape``; the batch shape is the broadcast of the mask's and
    the components'.

    >>> from pyrolite.distributions import Normal
    >>> d = MaskedMixture(torch.tensor([False, True]), Normal(0.0, 1.0), Normal(0.0, 2.0))
    >>> d.log_prob(torch.tensor([1.0, 1.0]))
    tensor([-1.4189, -1.7371])
    """

    arg_constraints = {}

    def __init__(
        self,
        mask: torch.Tensor,
        component0: torch.distributions.Distribution,
        component1: torch.distributions.Distribution,
        validate_args=None,
    ):
        if not torch.is_tensor(mask) or mask.dtype != torch.bool:
            raise ValueError(
                f"MaskedMixture: expected mask to be a bool tensor, got {type(mask).__name__}"
                f"{'' if not torch.is_tensor(mask) else ' of dtype ' + str(mask.dtype)}; "
                "convert it with mask.bool()."
            )
        if component0.event_shape != component1.event_shape:
            raise ValueError(
                f"MaskedMixture: components event_shape disagree: {component0.event_shape} vs "
                f"{component1.event_shape}"
            )
        batch_shape = broadcast_shape(mask.shape, component0.batch_shape, component1.batch_shape)
        # Always expand: an expanded copy does not validate, so a component never rejects
        # a value where the other one is selected (this mixture validates against its own
        # masked support instead).
        self.mask = mask.expand(batch_shape)
        self.component0 = _unvalidated(component0, batch_shape)
        self.component1 = _unvalidated(component1, batch_shape)
        super().__init__(batch_shape, component0.event_shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(MaskedMixture, _instance)
        batch_shape = torch.Size(batch_shape)
        new.mask = self.mask.expand(batch_shape)
        new.component0 = self.component0.expand(batch_shape)
        new.component1 = self.component1.expand(batch_shape)
        super(MaskedMixture, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return copy_forced_has_rsample(self, new)

    has_rsample = ForceableHasRsample(
        lambda self: self.component0.has_rsample and self.component1.has_rsample
    )

    @constraints.dependent_property
    def support(self):
        if self.component0.support is self.component1.support:
            return self.component0.support
        return _MaskedConstraint(self.mask, self.component0.support, self.component1.support)

    def _select(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        # The mask covers batch dims only: pad it on the right to reach the event dims.
        mask = self.mask.reshape(self.mask.shape + (1,) * self.event_dim)
        return torch.where(mask, x1, x0)

    def sample(self, sample_shape=()) -> torch.Tensor:
        return self._select(
            self.component0.sample(sample_shape), self.component1.sample(sample_shape)
        )

    def rsample(self, sample_shape=()) -> torch.Tensor:
        return self._select(
            self.component0.rsample(sample_shape), self.component1.rsample(sample_shape)
        )

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return torch.where(
            self.mask, self.component1.log_prob(value), self.component0.log_prob(value)
        )

    @property
    def mean(self) -> torch.Tensor:
        return self._select(self.component0.mean, self.component1.mean)

    @property
    def variance(self) -> torch.Tensor:
        return self._select(self.component0.variance, self.component1.variance)


def _unvalidated(component, batch_shape: torch.Size):
    """``component`` expanded to ``batch_shape``, as a copy that does not validate values."""
    expanded = component.expand(batch_shape)
    if expanded is not component:
        expanded._validate_args = False
    return expanded
