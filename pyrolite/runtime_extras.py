"""Top-level extras of Pyro's namespace: ``barrier`` (an effect that handlers may use to
force a value) and ``log``, the package's logger (Pyro's ``pyro.log``).

>>> log.name, log.level == logging.INFO
('pyrolite', True)
"""

import logging

from .poutine.runtime import am_i_wrapped, apply_stack, new_message


def _identity(data):
    return data


def barrier(data):
    """Ensure ``data`` (a tensor or a structure of them) is a concrete value: a ``barrier``
    message that handlers of lazy or sequential computations may act on; with none of
    them active, ``data`` itself (Pyro's ``pyro.barrier``).

    >>> import torch
    >>> x = torch.ones(2)
    >>> barrier(x) is x
    True
    """
    if not am_i_wrapped():
        return data
    # Not a site: no trace records it (a trace keeps named sample and param sites).
    msg = new_message("barrier", None, _identity, (data,), infer={"_do_not_trace": True})
    return apply_stack(msg)["value"]


def _make_logger() -> logging.Logger:
    """``logging.getLogger("pyrolite")`` set up as Pyro's ``pyro.log``: INFO level and,
    when the application has configured no logging (the root logger has no handler), its
    own stderr handler (``LEVEL \t message``) instead of propagating to the root."""
    logger = logging.getLogger("pyrolite")
    logger.setLevel(logging.INFO)
    if not logging.getLogger().handlers and not any(
        getattr(h, "_pyrolite_default", False) for h in logger.handlers
    ):
        handler = logging.StreamHandler()
        handler.setLevel(logging.INFO)
        handler.setFormatter(logging.Formatter("%(levelname)s \t %(message)s"))
        handler._pyrolite_default = True
        logger.addHandler(handler)
        logger.propagate = False
    return logger


log = _make_logger()

__all__ = ["barrier", "log"]
