"""``equalize``: give several sites the value of the first of them (Pyro's semantics).

Sites are chosen by name (regular expressions, matched in full) and type. The first
matching site runs as usual; each later one takes its value and, unless ``keep_dist``,
becomes a deterministic site (a masked point mass) so it adds nothing to the log-joint.
"""

import re
from typing import Callable, List, Optional, Union

from ..distributions.delta import Delta
from .messenger import Messenger, check_callable
from .runtime import Message


class EqualizeMessenger(Messenger):
    """Force the sites matching ``sites`` (of message type ``type``) to share the value of
    the first of them; ``keep_dist=True`` keeps the later sites' distributions, which
    conditions the model on the values being equal instead.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> def model():
    ...     a = pyrolite.sample("a_std", dist.LogNormal(0.0, 1.0))
    ...     b = pyrolite.sample("b_std", dist.LogNormal(0.0, 1.0))
    ...     return a, b
    >>> tr = poutine.trace(EqualizeMessenger(".+_std")(model)).get_trace()
    >>> bool(tr.nodes["a_std"]["value"] == tr.nodes["b_std"]["value"])
    True
    >>> tr.nodes["b_std"]["is_observed"], tr.nodes["b_std"]["infer"]
    (True, {'_deterministic': True})
    """

    def __init__(
        self,
        sites: Union[str, List[str]],
        type: Optional[str] = "sample",
        keep_dist: Optional[bool] = False,
    ):
        if isinstance(sites, str):
            sites = [sites]
        if not isinstance(sites, (list, tuple)) or not all(isinstance(s, str) for s in sites):
            raise TypeError(
                f"poutine.equalize: sites must be a site name (or regular expression) or a "
                f"list of them, got {sites!r}"
            )
        self.sites = list(sites)
        self.type = type
        self.keep_dist = keep_dist
        self.value = None

    def __enter__(self):
        # Each run equalizes to its own first value.
        self.value = None
        return super().__enter__()

    def _is_matching(self, msg: Message) -> bool:
        if msg["type"] != self.type:
            return False
        name = msg["name"]
        return any(re.fullmatch(pattern, name) for pattern in self.sites)

    def _process_message(self, msg: Message) -> None:
        if self.value is None or not self._is_matching(msg):
            return
        msg["value"] = self.value
        if msg["type"] != "sample":
            return
        if not self.keep_dist:
            # As ``pyrolite.deterministic``: a point mass at the value, masked out.
            event_dim = len(getattr(msg["fn"], "event_shape", ()))
            msg["fn"] = Delta(self.value, event_dim=event_dim).mask(False)
            msg["infer"] = {"_deterministic": True}
        msg["is_observed"] = True

    def _postprocess_message(self, msg: Message) -> None:
        if self.value is None and self._is_matching(msg):
            self.value = msg["value"]


def equalize(
    fn: Optional[Callable] = None,
    sites: Union[str, List[str], None] = None,
    type: Optional[str] = "sample",
    keep_dist: Optional[bool] = False,
):
    """``poutine.equalize(fn, sites, type="sample", keep_dist=False)``: see
    :class:`EqualizeMessenger`; without ``fn``, the messenger itself.

    >>> import torch, pyrolite
    >>> from pyrolite import poutine
    >>> def model():
    ...     return pyrolite.param("a_shift", torch.tensor(1.0)), pyrolite.param(
    ...         "b_shift", torch.tensor(2.0))
    >>> [float(v) for v in equalize(model, ".+_shift", "param")()]
    [1.0, 1.0]
    """
    if sites is None:
        raise TypeError("poutine.equalize needs sites: a site name, a regex, or a list of them")
    msngr = EqualizeMessenger(sites, type=type, keep_dist=keep_dist)
    if fn is None:
        return msngr
    check_callable(fn, "poutine.equalize")
    return msngr(fn)
