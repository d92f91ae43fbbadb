"""``Messenger``: the one base class of every effect handler.

A messenger is both a context manager (``with trace() as tr:``) and a function
wrapper (``trace()(model)``). Pushing and popping the global stack lives here
only, including the restore when the wrapped code raises.
"""

import functools
from typing import Callable, Dict, Optional

from .runtime import _STACK, Message


def check_callable(fn, handler_name: str) -> None:
    if not callable(fn):
        raise TypeError(
            f"{handler_name} expected a callable (a model or guide function), got "
            f"{type(fn).__name__} {fn!r}. Pass the function itself, e.g. "
            f"{handler_name}(model), not {handler_name}(model())."
        )


class Messenger:
    """Base class of handlers.

    Subclasses define ``_pyro_<type>(msg)`` to act on messages of that type on the
    way in, and ``_pyro_post_<type>(msg)`` on the way out.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> class Double(Messenger):
    ...     def _pyro_post_sample(self, msg):
    ...         msg["value"] = msg["value"] * 2
    >>> with Double():
    ...     pyrolite.sample("x", dist.Delta(torch.tensor(1.5)))
    tensor(3.)
    """

    def __enter__(self):
        _STACK.append(self)
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        if exc_type is None:
            if _STACK and _STACK[-1] is self:
                _STACK.pop()
            else:
                raise RuntimeError(
                    f"{type(self).__name__} exited out of order; handlers must be "
                    "nested as with-blocks"
                )
        elif self in _STACK:
            # The wrapped code raised: drop this handler and any left above it.
            del _STACK[_STACK.index(self) :]
        return None

    def __call__(self, fn: Callable) -> Callable:
        check_callable(fn, type(self).__name__)

        @functools.wraps(fn)
        def _wrapper(*args, **kwargs):
            with self:
                return fn(*args, **kwargs)

        _wrapper.msngr = self
        return _wrapper

    def _reset(self) -> None:
        """Forget the state of an abandoned run (see ``NonlocalExit.reset_stack``)."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # Per-class dispatch tables: message type -> handler function (or None).
        cls._process_table = {}
        cls._postprocess_table = {}

    def _process_message(self, msg: Message) -> None:
        msg_type = msg["type"]
        try:
            method = self._process_table[msg_type]
        except KeyError:
            method = getattr(type(self), "_pyro_" + msg_type, None)
            self._process_table[msg_type] = method
        if method is not None:
            method(self, msg)

    def _postprocess_message(self, msg: Message) -> None:
        msg_type = msg["type"]
        try:
            method = self._postprocess_table[msg_type]
        except KeyError:
            method = getattr(type(self), "_pyro_post_" + msg_type, None)
            self._postprocess_table[msg_type] = method
        if method is not None:
            method(self, msg)


Messenger._process_table: Dict[str, Optional[Callable]] = {}
Messenger._postprocess_table: Dict[str, Optional[Callable]] = {}
