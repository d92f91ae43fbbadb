"""``StructuredReparam``: precondition a model's latents with a trained ``AutoStructured``."""

from contextlib import ExitStack
from typing import Callable, Dict, Iterable, Optional

import torch

from ...distributions.delta import Delta
from ...poutine.block_messenger import BlockMessenger
from ...poutine.condition_messenger import ConditionMessenger
from ...poutine.messenger import Messenger
from ...poutine.plate_messenger import block_plate
from ...poutine.reparam_messenger import ReparamMessenger
from ...poutine.runtime import get_mask
from .reparam import Reparam


class _CaptureDeltas(Messenger):
    """Take the guide's point masses at ``names`` out of the run (hidden from outer
    handlers), keeping its ``{name}_aux`` noise sites visible."""

    def __init__(self, names: Iterable[str]):
        self.names = set(names)
        self.deltas: Dict[str, Delta] = {}

    def _pyro_sample(self, msg) -> None:
        if msg["name"] in self.names:
            self.deltas[msg["name"]] = msg["fn"]
            msg["value"] = msg["fn"].v
            msg["done"] = True
            msg["stop"] = True


class StructuredReparam(Reparam):
    """At the first latent site of the guide's model, run the ``AutoStructured`` guide,
    recording its ``{name}_aux`` noise sites in the model, and make each latent site a
    ``Delta`` at the guide's value, with log-density the model's plus the guide's
    Jacobian term: the model becomes one over the whitened noise (e.g. for HMC). Latent
    sites only; use one instance for all sites (``StructuredReparam(guide).reparam(model)``).

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> from pyrolite.infer.autoguide.structured import AutoStructured
    >>> pyrolite.clear_param_store()
    >>> def model():
    ...     a = pyrolite.sample("a", dist.Normal(0.0, 1.0))
    ...     pyrolite.sample("b", dist.Normal(a, 1.0))
    >>> guide = AutoStructured(model, conditionals="normal")
    >>> _ = guide()
    >>> tr = poutine.trace(StructuredReparam(guide).reparam(model)).get_trace()
    >>> [n for n in tr.nodes if tr.nodes[n]["type"] == "sample"]
    ['a_aux', 'b_aux', 'a', 'b']
    """

    def __init__(self, guide):
        from ..autoguide.structured import AutoStructured

        if not isinstance(guide, AutoStructured):
            raise TypeError(
                f"StructuredReparam expected an AutoStructured guide, but got {type(guide)}"
            )
        if guide.prototype_trace is None:
            raise ValueError("StructuredReparam needs a set-up guide: call it once first.")
        self.guide = guide
        self.deltas: Dict[str, Delta] = {}

    def _reparam_config(self, site: dict) -> Optional["StructuredReparam"]:
        if site["name"] in self.guide.prototype_trace.nodes and not site["is_observed"]:
            return self
        return None

    def reparam(self, fn: Optional[Callable] = None):
        """``poutine.reparam(fn, config)`` with this reparameterizer at the guide's sites."""
        msngr = ReparamMessenger(self._reparam_config)
        return msngr if fn is None else msngr(fn)

    def _run_guide(self, args, kwargs) -> Dict[str, Delta]:
        capture = _CaptureDeltas(self.guide._sites)
        with ExitStack() as stack:
            # The guide re-creates the model's plates: hide the model's own while it runs.
            for name in list(self.guide.plates):
                stack.enter_context(block_plate(name=name, strict=False))
            stack.enter_context(capture)
            self.guide(*args, **kwargs)
        return capture.deltas

    def apply(self, msg):
        name, fn = msg["name"], msg["fn"]
        if msg["is_observed"]:
            raise NotImplementedError(
                f"StructuredReparam at site '{name}' does not support observed sites."
            )
        if not self.deltas:  # the first site runs the guide for all of them
            args, kwargs = self.args_kwargs if self.args_kwargs is not None else ((), {})
            self.deltas = self._run_guide(args, kwargs)
        guide_fn = self.deltas.pop(name)
        value = guide_fn.v
        log_density = guide_fn.log_density
        if get_mask() is not False:
            log_density = log_density + fn.log_prob(value)
        new_fn = Delta(value, log_density, event_dim=guide_fn.event_dim)
        return {"fn": new_fn, "value": value, "is_observed": True}

    def transform_samples(
        self, aux_samples: Dict[str, torch.Tensor], save_params: Optional[Iterable[str]] = None
    ) -> Dict[str, torch.Tensor]:
        """The latent values the guide gives at the noise values ``aux_samples``
        (``{"{name}_aux": tensor}``, e.g. from MCMC on the reparameterized model); with
        ``save_params``, only those sites."""
        with torch.no_grad(), BlockMessenger(), ConditionMessenger(aux_samples):
            deltas = self._run_guide((), {})
        names = deltas if save_params is None else save_params
        return {name: deltas[name].v for name in names}
