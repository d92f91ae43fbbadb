"""``unwrap``: the model inside a stack of function-style handlers (Pyro's ``poutine.unwrap``)."""

from typing import Callable


def unwrap(fn: Callable) -> Callable:
    """``fn`` with every messenger wrapper (``poutine.scale(fn)``, ``poutine.block(fn)``,
    ...) peeled off, recursively. As in Pyro, a ``poutine.trace(fn)`` handler object, a
    plain function and a ``functools.partial`` are returned as they are.

    >>> import pyrolite
    >>> from pyrolite import poutine
    >>> def model():
    ...     pass
    >>> unwrap(poutine.block(poutine.scale(model, scale=2.0))) is model
    True
    """
    # Messenger.__call__'s wrapper: functools.wraps plus the messenger.
    while hasattr(fn, "msngr") and hasattr(fn, "__wrapped__"):
        fn = fn.__wrapped__
    return fn
