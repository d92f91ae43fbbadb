"""``reparam``: replace sample sites by reparameterized ones (see ``pyrolite.infer.reparam``).

The handler asks its ``config`` which :class:`~pyrolite.infer.reparam.reparam.Reparam`
applies at each sample site; the reparameterizer samples its auxiliary sites and
returns the site's new distribution and value.
"""

import functools
from typing import Callable, Dict, Optional, Union

from .messenger import Messenger, check_callable
from .runtime import Message, broadcast_site

ReparamConfig = Union[Dict[str, "Reparam"], Callable[[Message], Optional["Reparam"]]]  # noqa: F821


class ReparamMessenger(Messenger):
    """Reparameterize the sample sites that ``config`` names.

    ``config`` is a dict ``{site name: Reparam}`` or a callable ``msg -> Reparam or None``
    (e.g. a strategy such as ``AutoReparam()``). Wrapping a model (``reparam(model,
    config)``) also lets reparameterizers that need the model's arguments see them.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> from pyrolite.infer.reparam.loc_scale import LocScaleReparam
    >>> def model():
    ...     return pyrolite.sample("x", dist.Normal(1.0, 2.0))
    >>> tr = poutine.trace(ReparamMessenger({"x": LocScaleReparam(0.0)})(model)).get_trace()
    >>> [name for name in tr.nodes if tr.nodes[name]["type"] == "sample"]
    ['x_decentered', 'x']
    """

    def __init__(self, config: ReparamConfig):
        if not (isinstance(config, dict) or callable(config)):
            raise TypeError(
                "poutine.reparam expects config as a dict {site name: Reparam} or a callable "
                f"msg -> Reparam or None, got {type(config).__name__} {config!r}"
            )
        self.config = config
        self._args_kwargs = None

    def __call__(self, fn: Callable) -> "ReparamHandler":
        return ReparamHandler(self, fn)

    def _pyro_sample(self, msg: Message) -> None:
        if msg["infer"].get("_subsample"):
            return
        if isinstance(self.config, dict):
            reparam = self.config.get(msg["name"])
        else:
            reparam = self.config(msg)
        if reparam is None:
            return
        # Plates broadcast a site's distribution only in the default effect; a
        # reparameterizer must see the full batch shape to size its auxiliary sites.
        if msg["cond_indep_stack"] and not msg["done"]:
            broadcast_site(msg)
        # The model's (args, kwargs), for reparameterizers that call a guide with them.
        previous = getattr(reparam, "args_kwargs", None)
        reparam.args_kwargs = self._args_kwargs
        try:
            new_msg = reparam.apply(
                {
                    "name": msg["name"],
                    "fn": msg["fn"],
                    "value": msg["value"],
                    "is_observed": msg["is_observed"],
                }
            )
        finally:
            reparam.args_kwargs = previous
        msg["fn"] = new_msg["fn"]
        msg["value"] = new_msg["value"]
        msg["is_observed"] = new_msg["is_observed"]


class ReparamHandler:
    """``reparam(fn, config)``: call like ``fn``, under a :class:`ReparamMessenger` that
    records the call's ``args, kwargs`` for reparameterizers that need them."""

    def __init__(self, msngr: ReparamMessenger, fn: Callable):
        check_callable(fn, "poutine.reparam")
        self.msngr = msngr
        self.fn = fn
        functools.update_wrapper(self, fn, updated=())

    def __call__(self, *args, **kwargs):
        self.msngr._args_kwargs = args, kwargs
        try:
            with self.msngr:
                return self.fn(*args, **kwargs)
        finally:
            self.msngr._args_kwargs = None
