"""pyrolite as a ``pyroapi`` backend: ``with pyroapi.pyro_backend("pyrolite"): ...``.

Importing this module registers the backend ``"pyrolite"`` with ``pyroapi`` (the
``pyro-api`` package) and re-exports ``pyroapi``'s generic modules, as Pyro's
``pyro.generic`` does, so code written against ``pyroapi`` runs on pyrolite.

>>> import pyrolite
>>> with pyro_backend("pyrolite"):
...     pyro.sample is pyrolite.sample, handlers.trace is pyrolite.poutine.trace
(True, True)
"""

from typing import Dict

try:
    from pyroapi import (
        distributions,
        handlers,
        infer,
        ops,
        optim,
        pyro,
        pyro_backend,
        register_backend,
    )
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "pyrolite.generic needs the pyro-api package: pip install pyro-api "
        "(or pip install pyrolite[test])"
    ) from e

# Which pyrolite module serves each of pyroapi's generic modules; ``ops`` is torch
# itself, as for Pyro's own backend.
PYROLITE_MODULES: Dict[str, str] = {
    "distributions": "pyrolite.distributions",
    "handlers": "pyrolite.poutine",
    "infer": "pyrolite.infer",
    "ops": "torch",
    "optim": "pyrolite.optim",
    "pyro": "pyrolite",
}

register_backend("pyrolite", PYROLITE_MODULES)

__all__ = [
    "distributions",
    "handlers",
    "infer",
    "ops",
    "optim",
    "pyro",
    "pyro_backend",
    "register_backend",
]
