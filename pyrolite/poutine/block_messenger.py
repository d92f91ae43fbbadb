"""``block``: hide sites from the handlers outside it."""

from typing import Callable, Iterable, Optional

from .messenger import Messenger
from .runtime import Message


def _make_default_hide_fn(hide_all, expose_all, hide, expose, hide_types, expose_types):
    if hide is not None or hide_types is not None:
        hide, hide_types = set(hide or ()), set(hide_types or ())
        return lambda msg: msg["name"] in hide or msg["type"] in hide_types
    if expose is not None or expose_types is not None:
        expose, expose_types = set(expose or ()), set(expose_types or ())
        return lambda msg: not (msg["name"] in expose or msg["type"] in expose_types)
    if expose_all:
        return lambda msg: False
    if hide_all:
        return lambda msg: True
    raise ValueError("poutine.block: nothing to hide or expose; pass hide=... or expose=...")


class BlockMessenger(Messenger):
    """Stop selected messages here: outer handlers (e.g. an outer ``trace``) never see them.

    By default every site is hidden. Choose with ``hide``/``expose`` (site names),
    ``hide_types``/``expose_types`` (``"sample"``, ``"param"``, ...), or
    ``hide_fn``/``expose_fn`` (predicates on the message).

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> def model():
    ...     pyrolite.sample("a", dist.Normal(0.0, 1.0))
    ...     pyrolite.sample("b", dist.Normal(0.0, 1.0))
    >>> poutine.trace(poutine.block(model, hide=["a"])).get_trace().stochastic_nodes
    ['b']
    """

    def __init__(
        self,
        hide_fn: Optional[Callable[[Message], bool]] = None,
        expose_fn: Optional[Callable[[Message], bool]] = None,
        hide_all: bool = True,
        expose_all: bool = False,
        hide: Optional[Iterable[str]] = None,
        expose: Optional[Iterable[str]] = None,
        hide_types: Optional[Iterable[str]] = None,
        expose_types: Optional[Iterable[str]] = None,
    ):
        if not (hide_fn is None or expose_fn is None):
            raise ValueError("poutine.block: pass only one of hide_fn and expose_fn")
        if hide_fn is not None:
            self.hide_fn = hide_fn
        elif expose_fn is not None:
            self.hide_fn = lambda msg: not expose_fn(msg)
        else:
            self.hide_fn = _make_default_hide_fn(
                hide_all, expose_all, hide, expose, hide_types, expose_types
            )

    def _process_message(self, msg: Message) -> None:
        if self.hide_fn(msg):
            msg["stop"] = True
