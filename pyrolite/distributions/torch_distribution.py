"""The Pyro-style mixin every pyrolite distribution carries, and the base class for new ones.

The mixin adds shape helpers (``shape``, ``event_dim``, ``expand_by``, ``to_event``) and
``mask`` (``has_rsample_`` and ``score_parts`` come from :class:`Distribution`) on top of
``torch.distributions`` without re-implementing any density: the wrapped families keep
torch's code paths unchanged.
"""

from typing import Optional, Sequence, Union

import torch

from pyrolite.distributions.distribution import FORCED_HAS_RSAMPLE_KEY, Distribution


def copy_forced_has_rsample(source, target):
    """Carry a ``has_rsample_`` override from ``source`` over to ``target`` (after expand)."""
    source_dict = source.__dict__
    if "has_rsample" in source_dict:
        target.__dict__["has_rsample"] = source_dict["has_rsample"]
    if FORCED_HAS_RSAMPLE_KEY in source_dict:
        target.__dict__[FORCED_HAS_RSAMPLE_KEY] = source_dict[FORCED_HAS_RSAMPLE_KEY]
    return target


class TorchDistributionMixin(Distribution):
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
    backed_by_torch = True

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


class TorchDistribution(torch.distributions.Distribution, TorchDistributionMixin):
    """Base class for distributions pyrolite defines itself (Delta, Unit, ...)."""

    # Set by ``distributions.expanded``, which defines it on top of this class.
    expanded_class: type

    def expand(self, batch_shape: Sequence[int], _instance=None):
        """``self`` seen with a larger ``batch_shape``. torch's default raises
        NotImplementedError; as in Pyro, a family without its own ``expand`` is wrapped in
        an :class:`~pyrolite.distributions.ExpandedDistribution` instead."""
        expanded = TorchDistribution.expanded_class(self, torch.Size(batch_shape))
        return copy_forced_has_rsample(self, expanded)
