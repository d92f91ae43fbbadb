"""``LocScaleReparam``: (partially) decenter a location-scale latent variable."""

from typing import Iterable, Optional, Union

import torch

from ... import primitives as pyro
from ...distributions import constraints
from ...distributions.delta import Delta
from ...distributions.util import is_identically_one
from .reparam import Reparam, sample_auxiliary


class LocScaleReparam(Reparam):
    """Decenter ``x ~ F(loc, scale)`` as ``x = loc + scale^(1-c) (y - c loc)``,
    ``y ~ F(c loc, scale^c)``, with the centering ``c`` in [0, 1].

    ``c = 1`` leaves the site as is, ``c = 0`` is the fully non-centered form;
    ``centered=None`` learns ``c`` (per event element) as the param ``{name}_centered``
    (init 0.5). ``shape_params`` names the other parameters passed through unchanged
    (e.g. ``["df"]`` for ``StudentT``). The auxiliary site is ``{name}_decentered``.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> from pyrolite.poutine.reparam_messenger import ReparamMessenger
    >>> def model():
    ...     return pyrolite.sample("x", dist.Normal(1.0, 2.0))
    >>> with poutine.trace() as tr, ReparamMessenger({"x": LocScaleReparam(0.0)}):
    ...     with poutine.condition(data={"x_decentered": torch.tensor(0.5)}):
    ...         x = model()
    >>> x
    tensor(2.)
    """

    def __init__(
        self,
        centered: Optional[Union[float, torch.Tensor]] = None,
        shape_params: Optional[Iterable[str]] = None,
    ):
        if isinstance(centered, (int, float)) and not 0 <= centered <= 1:
            raise ValueError(f"LocScaleReparam: centered must be in [0, 1], got {centered}")
        if isinstance(shape_params, str):
            shape_params = [shape_params]
        self.centered = centered
        self.shape_params = list(shape_params) if shape_params is not None else []

    def apply(self, msg):
        name, fn, value, is_observed = msg["name"], msg["fn"], msg["value"], msg["is_observed"]
        centered = self.centered
        if is_identically_one(centered):
            return msg
        event_shape, event_dim = fn.event_shape, fn.event_dim
        fn, extra_dims = self._unwrap(fn)
        if centered is None:
            centered = pyro.param(
                f"{name}_centered",
                lambda: fn.loc.new_full(event_shape, 0.5),
                constraint=constraints.unit_interval,
            )
        params = {key: getattr(fn, key) for key in self.shape_params}
        params["loc"] = fn.loc * centered
        params["scale"] = fn.scale**centered
        decentered_fn = self._wrap(type(fn)(**params), extra_dims)

        # The decentered value of an observed site is its deterministic image.
        decentered_value = None
        if value is not None:
            delta = (value - fn.loc) * fn.scale ** (centered - 1)
            decentered_value = delta + centered * fn.loc
        decentered_value = sample_auxiliary(
            f"{name}_decentered", decentered_fn, decentered_value, is_observed
        )
        delta = decentered_value - centered * fn.loc
        value = fn.loc + fn.scale.pow(1 - centered) * delta
        new_fn = Delta(value, event_dim=event_dim).mask(False)
        return {"fn": new_fn, "value": value, "is_observed": True}
