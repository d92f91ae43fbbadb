"""``Reparam``: the interface every reparameterizer implements (``apply(msg) -> dict``)."""

import warnings
from abc import ABC
from typing import Any, Dict, Optional, Tuple

import torch

from ... import primitives as pyro
from ...poutine.runtime import am_i_wrapped, apply_stack, new_message

ReparamMessage = Dict[str, Any]  # keys: name, fn, value, is_observed
ReparamResult = Dict[str, Any]  # keys: fn, value, is_observed


class Reparam(ABC):  # noqa: B024 (apply has a default: the old interface)
    """Base class of reparameterizers, applied at one sample site by ``poutine.reparam``.

    A subclass implements :meth:`apply`: it receives the site's ``name``, ``fn`` (the
    distribution), ``value`` and ``is_observed``, may sample auxiliary sites, and returns
    the new ``fn``, ``value`` and ``is_observed`` of the original site. The older
    ``__call__(name, fn, obs) -> (fn, obs)`` interface still works, with a
    ``FutureWarning``, as in Pyro 1.9.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> class Shift(Reparam):
    ...     def apply(self, msg):
    ...         return {"fn": msg["fn"], "value": msg["value"], "is_observed": msg["is_observed"]}
    >>> Shift().apply({"name": "x", "fn": dist.Normal(0.0, 1.0), "value": None,
    ...                "is_observed": False})["is_observed"]
    False
    """

    # The model's (args, kwargs) while poutine.reparam applies this reparameterizer.
    args_kwargs: Optional[Tuple[tuple, dict]] = None

    def apply(self, msg: ReparamMessage) -> ReparamResult:
        """Reparameterize the site described by ``msg``; see the class docstring."""
        if type(self).__call__ is Reparam.__call__:
            raise NotImplementedError(
                f"{type(self).__name__} must implement apply(msg) -> "
                "{'fn': ..., 'value': ..., 'is_observed': ...}"
            )
        warnings.warn(
            f"{type(self).__name__}.__call__(name, fn, obs) is deprecated in favor of "
            ".apply(msg); rename the method and return a dict with keys fn, value, "
            "is_observed.",
            FutureWarning,
        )
        obs = msg["value"] if msg["is_observed"] else None
        fn, value = self(msg["name"], msg["fn"], obs)
        return {"fn": fn, "value": value, "is_observed": value is not None}

    def __call__(self, name: str, fn, obs: Optional[torch.Tensor]) -> Tuple[Any, Any]:
        """The older interface: return ``(new_fn, new_obs)``; prefer :meth:`apply`."""
        result = self.apply({"name": name, "fn": fn, "value": obs, "is_observed": obs is not None})
        return result["fn"], result["value"] if result["is_observed"] else None

    def _unwrap(self, fn) -> Tuple[Any, int]:
        """Strip ``Independent`` wrappers: the base distribution and the event dims added."""
        event_dim = 0
        while isinstance(fn, torch.distributions.Independent):
            event_dim += fn.reinterpreted_batch_ndims
            fn = fn.base_dist
        return fn, event_dim

    def _wrap(self, fn, event_dim: int):
        """Undo :meth:`_unwrap`: declare ``event_dim`` more event dims."""
        if event_dim:
            fn = fn.to_event(event_dim)
        return fn


def sample_auxiliary(name: str, fn, value: Optional[torch.Tensor], is_observed: bool):
    """Sample the new site ``name`` at ``value`` when the original site had one: observed
    if the original was, else latent with that value (e.g. a replayed site), as Pyro does."""
    if value is None or is_observed:
        return pyro.sample(name, fn, obs=value)
    if not am_i_wrapped():
        return value
    msg = new_message("sample", name, fn, value=value, is_observed=False)
    return apply_stack(msg)["value"]
