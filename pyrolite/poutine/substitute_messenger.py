"""``substitute``: give ``param`` sites fixed values instead of the ParamStore's."""

import warnings
from collections.abc import Mapping
from typing import Set

import torch

from ..params import param_store
from ..process_state import is_validation_enabled
from .messenger import Messenger
from .runtime import Message


class SubstituteMessenger(Messenger):
    """Each ``param`` site named in ``data`` returns ``data[name]``, a constrained value.

    The value is used as given (gradients flow into it if it requires grad), and the
    ParamStore is neither read nor written for that site. Sample sites, and params
    not in ``data``, are untouched. A name matches the store name or, as in Pyro, its
    module-local part (``"weight"`` for ``pyrolite.module("net", ...)``'s
    ``"net$$$weight"``). With validation on, leaving the handler warns about the names
    in ``data`` that no param site used.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> pyrolite.clear_param_store()
    >>> def model():
    ...     loc = pyrolite.param("loc", torch.tensor(0.0))
    ...     return pyrolite.sample("x", dist.Normal(loc, 1.0), obs=torch.tensor(1.0))
    >>> tr = poutine.trace(poutine.substitute(model, data={"loc": torch.tensor(1.0)})).get_trace()
    >>> tr.nodes["loc"]["value"], round(tr.log_prob_sum().item(), 4)
    (tensor(1.), -0.9189)
    >>> "loc" in pyrolite.get_param_store()
    False
    """

    def __init__(self, data: Mapping[str, torch.Tensor]):
        if not isinstance(data, Mapping):
            raise TypeError(
                "poutine.substitute expects data as a dict {param name: constrained value}, "
                f"got {type(data).__name__}"
            )
        self.data = data
        self._used: Set[str] = set()
        self._unmatched: Set[str] = set()

    def __enter__(self):
        self._reset()
        return super().__enter__()

    def __exit__(self, exc_type, exc_value, traceback):
        super().__exit__(exc_type, exc_value, traceback)
        if exc_type is None and is_validation_enabled():
            unused = [name for name in self.data if name not in self._used]
            if unused:
                # Usually a typo or a missing module prefix; show what the model did read.
                warnings.warn(
                    f"poutine.substitute: no param site used data names {unused}; the params "
                    f"the model read are {sorted(self._unmatched | self._used)}. Fix the names "
                    "or drop them from data."
                )

    def _reset(self) -> None:
        self._used = set()
        self._unmatched = set()

    def _pyro_param(self, msg: Message) -> None:
        name = msg["name"]
        key = name if name in self.data else param_store.user_param_name(name)
        if key not in self.data:
            self._unmatched.add(name)
            return
        self._used.add(key)
        # A value set before the default effect stops it from reading the store.
        msg["value"] = self.data[key]
