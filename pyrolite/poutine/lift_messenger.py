"""``lift``: turn ``param`` calls into ``sample`` calls from a prior."""

from typing import Callable, Dict, Union

from ..params import param_store
from .messenger import Messenger
from .runtime import Message


class LiftMessenger(Messenger):
    """Lift params to random variables.

    ``prior`` is a distribution (used for every param), a dict from param name to a
    distribution or callable, or a callable. Repeated calls of the same lifted param
    return the same draw within one run.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> def model():
    ...     return pyrolite.param("w", torch.tensor(5.0))
    >>> lifted = poutine.lift(model, prior={"w": dist.Delta(torch.tensor(-1.0))})
    >>> tr = poutine.trace(lifted).get_trace()
    >>> tr.nodes["w"]["type"], tr.nodes["w"]["value"]
    ('sample', tensor(-1.))
    """

    def __init__(self, prior: Union[Callable, Dict]):
        self.prior = prior
        self._samples_cache: Dict[str, Message] = {}

    def __enter__(self):
        self._samples_cache = {}
        return super().__enter__()

    def _prior_for(self, name: str):
        if isinstance(self.prior, dict):
            user_name = param_store.user_param_name(name)
            if name in self.prior:
                return self.prior[name]
            return self.prior.get(user_name)
        return self.prior

    def _pyro_param(self, msg: Message) -> None:
        name = msg["name"]
        prior = self._prior_for(name)
        if prior is None:
            return
        if name in self._samples_cache:
            cached = self._samples_cache[name]
            msg["value"] = cached["value"]
            msg["is_observed"] = False
            msg["done"] = True
            msg["infer"]["_do_not_trace"] = True
            return
        msg["type"] = "sample"
        msg["fn"] = prior
        msg["args"] = ()
        msg["kwargs"] = {}
        msg["infer"] = {}
        msg["value"] = None
        msg["is_observed"] = False
        msg["done"] = False
        self._samples_cache[name] = msg
