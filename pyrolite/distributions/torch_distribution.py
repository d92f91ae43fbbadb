"""The Pyro-style mixin every pyrolite distribution carries, and the base class for new ones.

The mixin adds shape helpers (``shape``, ``event_dim``, ``expand_by``, ``to_event``),
``mask``, ``has_rsample_`` and ``score_parts`` on top of ``torch.distributions`` without
re-implementing any density: the wrapped families keep torch's code paths unchanged.
"""

import inspect
from typing import Optional, Sequence, Union

import torch

from pyrolite.distributions.score_parts import ScoreParts

# Key under which a forced ``has_rsample`` is kept for classes whose torch ``has_rsample``
# is a read-only property (Independent, TransformedDistribution and its subclasses).
_FORCED_KEY = "_forced_has_rsample"


class ForceableHasRsample(property):
    """A ``has_rsample`` property that ``has_rsample_`` may override per instance."""

    def __init__(self, natural_fget):
        self.natural = natural_fget

        def fget(d):
            forced = d.__dict__.get(_FORCED_KEY)
            return natural_fget(d) if forced is None else forced

        def fset(d, value):
            d.__dict__[_FORCED_KEY] = value

        super().__init__(fget, fset, doc="Whether samples are pathwise differentiable.")


def _natural_has_rsample(d) -> bool:
    attr = inspect.getattr_static(type(d), "has_rsample")
    if isinstance(attr, ForceableHasRsample):
        return bool(attr.natural(d))
    if isinstance(attr, property):
        return bool(attr.fget(d))
    return bool(attr)


def copy_forced_has_rsample(source, target):
    """Carry a ``has_rsample_`` override from ``source`` over to ``target`` (after expand)."""
    source_dict = source.__dict__
    if "has_rsample" in source_dict:
        target.__dict__["has_rsample"] = source_dict["has_rsample"]
    if _FORCED_KEY in source_dict:
        target.__dict__[_FORCED_KEY] = source_dict[_FORCED_KEY]
    return target


class TorchDistributionMixin:
    """Pyro's additions to a ``torch.distributions.Distribution`` subclass.

    >>> import pyrolite.distributions as dist
    >>> d = dist.Normal(torch.zeros(3), 1.0).expand_by([2]).to_event(1)
    >>> d.shape(), d.event_dim
    (torch.Size([2, 3]), 1)
    """

    # What ``to_event`` and ``mask`` return. Both classes use this mixin, so their modules
    # set these when they define them (``distributions.torch``, ``distributions.masked``),
    # rather than this module importing them back.
    independent_class: type
    masked_class: type

    def __call__(self, sample_shape: Sequence[int] = ()) -> torch.Tensor:
        """Draw a sample: reparameterized when ``has_rsample`` is True, detached otherwise."""
        if self.has_rsample:
            return self.rsample(sample_shape)
        value = self.sample(sample_shape)
        # ``sample`` detaches by running under no_grad, which torch.jit.trace does not
        # record: a traced graph would differentiate through the draw (a pathwise gradient
        # added to the score-function one). Detach as an op the trace keeps.
        return value.detach() if torch.jit.is_tracing() else value

    @property
    def event_dim(self) -> int:
        return len(self.event_shape)

    def shape(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Size:
        """``sample_shape + batch_shape + event_shape``: the shape of ``self(sample_shape)``."""
        return torch.Size(sample_shape) + self.batch_shape + self.event_shape

    def expand_by(self, sample_shape: Sequence[int]):
        """Expand with ``sample_shape`` prepended to ``batch_shape``.

        >>> import pyrolite.distributions as dist
        >>> dist.Normal(0.0, 1.0).expand_by([4, 2]).batch_shape
        torch.Size([4, 2])
        """
        return self.expand(torch.Size(sample_shape) + self.batch_shape)

    def to_event(self, reinterpreted_batch_ndims: Optional[int] = None):
        """Reinterpret the rightmost ``reinterpreted_batch_ndims`` batch dims as event dims
        (all of them when None), returning an :class:`Independent`.

        >>> import pyrolite.distributions as dist
        >>> d = dist.Normal(torch.zeros(2, 3), 1.0).to_event()
        >>> d.batch_shape, d.event_shape
        (torch.Size([]), torch.Size([2, 3]))
        """
        if reinterpreted_batch_ndims is None:
            reinterpreted_batch_ndims = len(self.batch_shape)
        if reinterpreted_batch_ndims == 0:
            return self
        if reinterpreted_batch_ndims < 0:
            raise ValueError(
                f"to_event({reinterpreted_batch_ndims}): only an Independent distribution can "
                f"give back event dims, and {type(self).__name__} has none to give."
            )
        return TorchDistributionMixin.independent_class(self, reinterpreted_batch_ndims)

    def mask(self, mask: Union[bool, torch.Tensor]):
        """Zero ``log_prob`` wherever ``mask`` (broadcastable to ``batch_shape``) is False.

        >>> import pyrolite.distributions as dist
        >>> dist.Normal(0.0, 1.0).mask(torch.tensor([True, False])).log_prob(torch.tensor(9.0))
        tensor([-41.4189,   0.0000])
        """
        return TorchDistributionMixin.masked_class(self, mask)

    def has_rsample_(self, value: bool):
        """Force reparameterized (True) or detached (False) sampling on this instance, in place.

        Returns ``self``, as Pyro does. Forcing True on a distribution without ``rsample``
        raises ValueError.

        >>> import pyrolite.distributions as dist
        >>> loc = torch.tensor(0.0, requires_grad=True)
        >>> dist.Normal(loc, 1.0).has_rsample_(False)().requires_grad
        False
        """
        if value is not True and value is not False:
            raise ValueError(f"has_rsample_ expects True or False, got {value!r}")
        if value and not _natural_has_rsample(self):
            raise ValueError(
                f"{type(self).__name__} has no reparameterized sampler, so has_rsample_(True) "
                "cannot be honoured; use a reparameterizable family or leave it as is."
            )
        self.has_rsample = value
        return self

    def score_parts(self, value: torch.Tensor) -> ScoreParts:
        """Split ``log_prob(value)`` into the terms a gradient estimator differentiates.

        >>> from pyrolite.distributions.testing.fakes import NonreparameterizedNormal
        >>> NonreparameterizedNormal(0.0, 1.0).score_parts(torch.tensor(0.0)).entropy_term
        0
        """
        log_prob = self.log_prob(value)
        if self.has_rsample:
            return ScoreParts(log_prob=log_prob, score_function=0, entropy_term=log_prob)
        return ScoreParts(log_prob=log_prob, score_function=log_prob, entropy_term=0)


class TorchDistribution(torch.distributions.Distribution, TorchDistributionMixin):
    """Base class for distributions pyrolite defines itself (Delta, Unit, ...)."""
