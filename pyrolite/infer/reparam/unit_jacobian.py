"""``UnitJacobianReparam``: move a site into the image of a volume-preserving transform."""

from contextlib import ExitStack

import torch
from torch.distributions import biject_to
from torch.distributions.transforms import ComposeTransform, Transform

from ...distributions.delta import Delta
from ...distributions.torch import TransformedDistribution
from ...poutine.plate_messenger import block_plate
from .reparam import Reparam, sample_auxiliary


class UnitJacobianReparam(Reparam):
    """Replace ``x`` by ``x_{suffix} = transform(unconstrain(x))`` and ``x`` its inverse
    image (a ``Delta`` adding nothing). ``transform`` must have unit Jacobian (e.g. an
    orthonormal DCT or Haar transform), so the new site's density is the old one's.

    With ``experimental_allow_batch=True``, a transform over batch dims is applied by
    turning those dims into event dims of a site with a leading batch dim of size 1.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> from pyrolite.poutine.reparam_messenger import ReparamMessenger
    >>> from pyrolite.distributions.transforms.haar import HaarTransform
    >>> def model():
    ...     return pyrolite.sample("x", dist.Normal(torch.zeros(4), 1.0).to_event(1))
    >>> reparam = UnitJacobianReparam(HaarTransform(), suffix="haar")
    >>> tr = poutine.trace(ReparamMessenger({"x": reparam})(model)).get_trace()
    >>> [n for n in tr.nodes if tr.nodes[n]["type"] == "sample"]
    ['x_haar', 'x']
    """

    def __init__(
        self,
        transform: Transform,
        suffix: str = "transformed",
        *,
        experimental_allow_batch: bool = False,
    ):
        self.transform = transform.with_cache()
        self.suffix = suffix
        self.experimental_allow_batch = experimental_allow_batch

    def apply(self, msg):
        name, fn, value, is_observed = msg["name"], msg["fn"], msg["value"], msg["is_observed"]
        event_dim = fn.event_dim
        needed = self.transform.domain.event_dim
        extra = max(0, needed - event_dim)
        if extra:
            if not self.experimental_allow_batch:
                raise ValueError(
                    f"Cannot transform along batch dimension at site '{name}' (event_dim="
                    f"{event_dim}, the transform needs {needed}); try either converting a "
                    "batch dimension to an event dimension (.to_event()), or setting "
                    "experimental_allow_batch=True."
                )
            # Keep the number of batch dims: prepend size-1 dims, declare the rest events.
            fn = fn.expand(torch.Size((1,) * extra) + fn.batch_shape).to_event(extra)
            if value is not None:
                value = value.reshape(torch.Size((1,) * extra) + value.shape)
        to_unconstrained = biject_to(fn.support).inv.with_cache()
        full = ComposeTransform([to_unconstrained, self.transform]).with_cache()
        y = full(value) if value is not None else None
        with ExitStack() as stack:
            # Plates over the dims made into event dims must not re-expand them.
            for dim in range(-extra, 0):
                stack.enter_context(block_plate(dim=dim, strict=False))
            new_fn = TransformedDistribution(fn, [full])
            y = sample_auxiliary(f"{name}_{self.suffix}", new_fn, y, is_observed)
        x = full.inv(y)
        if extra:
            x = x.reshape(x.shape[extra:])
        new_fn = Delta(x, event_dim=event_dim)
        return {"fn": new_fn, "value": x, "is_observed": True}
