"""pyrolite: stochastic variational inference on PyTorch, Pyro-compatible.

``import pyrolite as pyro`` runs ordinary Pyro SVI code.
"""

__version__ = "0.1.0"

from . import distributions, infer, nn, optim, params, poutine, settings
from .infer.inspect import render_model
from .poutine.handlers import condition, do, markov
from .primitives import (
    clear_param_store,
    deterministic,
    factor,
    get_param_store,
    iarange,
    irange,
    module,
    param,
    plate,
    plate_stack,
    random_module,
    sample,
    subsample,
)
from .runtime_extras import barrier, log
from .util import enable_validation, is_validation_enabled, set_rng_seed, validation_enabled

try:  # registers the "pyrolite" backend with pyro-api when that is installed
    from . import generic  # noqa: F401
except ImportError:
    pass

__all__ = [
    "__version__",
    "barrier",
    "clear_param_store",
    "condition",
    "deterministic",
    "distributions",
    "do",
    "enable_validation",
    "factor",
    "get_param_store",
    "infer",
    "is_validation_enabled",
    "log",
    "markov",
    "module",
    "nn",
    "optim",
    "param",
    "params",
    "plate",
    "plate_stack",
    "poutine",
    "random_module",
    "render_model",
    "sample",
    "set_rng_seed",
    "settings",
    "subsample",
    "validation_enabled",
]
