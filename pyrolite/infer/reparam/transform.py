"""``TransformReparam``: sample a ``TransformedDistribution``'s base, then transform it."""

import torch

from ...distributions.delta import Delta
from .reparam import Reparam, sample_auxiliary


class TransformReparam(Reparam):
    """Replace ``x ~ TransformedDistribution(base, transforms)`` by ``x_base ~ base`` and
    ``x = transforms(x_base)`` (a site that adds nothing to the log-joint). An observed
    ``x`` observes ``x_base`` at the inverse transform of the value.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> from pyrolite.poutine.reparam_messenger import ReparamMessenger
    >>> def model():
    ...     return pyrolite.sample("x", dist.LogNormal(0.0, 1.0))
    >>> with ReparamMessenger({"x": TransformReparam()}):
    ...     with poutine.condition(data={"x_base": torch.tensor(0.0)}):
    ...         x = model()
    >>> x
    tensor(1.)
    """

    def apply(self, msg):
        name, fn, value, is_observed = msg["name"], msg["fn"], msg["value"], msg["is_observed"]
        event_dim = fn.event_dim
        shape = fn.batch_shape + fn.event_shape
        fn, _ = self._unwrap(fn)
        if not isinstance(fn, torch.distributions.TransformedDistribution):
            raise TypeError(
                f"TransformReparam at site '{name}' needs a TransformedDistribution, got "
                f"{type(fn).__name__}; use another reparameterizer or none for this site."
            )
        # Shape-preserving transforms: the base covers the site's shape, with the site's
        # event dims (those of the base plus any the transforms or Independent add).
        base_dist = fn.base_dist
        base_event = len(base_dist.event_shape)
        base_batch = shape[: len(shape) - base_event]
        if base_dist.batch_shape != base_batch:
            base_dist = base_dist.expand(base_batch)
        if event_dim > base_event:
            base_dist = base_dist.to_event(event_dim - base_event)

        x_base = None
        if value is not None:
            x_base = value
            for t in reversed(fn.transforms):
                x_base = t.inv(x_base)
        x_base = sample_auxiliary(f"{name}_base", base_dist, x_base, is_observed)
        x = x_base
        for t in fn.transforms:
            x = t(x)
        new_fn = Delta(x, event_dim=event_dim).mask(False)
        return {"fn": new_fn, "value": x, "is_observed": True}
