"""pyrolite: stochastic variational inference on PyTorch, Pyro-compatible.

``import pyrolite as pyro`` runs ordinary Pyro SVI code.
"""

__version__ = "0.1.0"

from . import distributions, infer, nn, optim, params, poutine, settings
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
from .util import enable_validation, is_validation_enabled, set_rng_seed, validation_enabled

__all__ = [
    "__version__", "clear_param_store", "condition", "deterministic", "distributions", "do",
    "infer", "nn", "optim",
    "enable_validation", "factor", "get_param_store", "is_validation_enabled", "markov", "module",
    "param", "params", "plate", "plate_stack", "poutine", "random_module", "sample",
    "set_rng_seed", "settings", "subsample", "validation_enabled",
]  # fmt: skip
