"""Global settings: ``get``, ``set``, ``context`` and ``register``, as ``pyro.settings``.

A setting is an alias for an attribute (a module constant or a class attribute) of the
module whose code it governs, so reading the attribute there is always current.
"""

import functools
import math
from contextlib import contextmanager
from importlib import import_module
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

# alias -> (module name, dotted attribute name, validator or None)
_REGISTRY: Dict[str, Tuple[str, str, Optional[Callable[[Any], None]]]] = {}
# Values of settings whose attribute the governing module does not define (yet).
_UNBOUND: Dict[str, Any] = {}


class SettingError(ValueError, AssertionError):
    """A value a setting's validator rejects (an ``AssertionError`` too, as in Pyro)."""


def _resolve(alias: str) -> Tuple[Any, str]:
    """(owner object, attribute name) of ``alias``; owner None when the module lacks it."""
    if alias not in _REGISTRY:
        raise KeyError(alias)
    modulename, deepname, _ = _REGISTRY[alias]
    try:
        owner: Any = import_module(modulename)
    except ModuleNotFoundError as e:
        if e.name != modulename:
            raise
        return None, deepname
    *path, attr = deepname.split(".")
    for name in path:
        owner = getattr(owner, name, None)
        if owner is None:
            return None, attr
    return (owner if hasattr(owner, attr) else None), attr


def _get_one(alias: str) -> Any:
    owner, attr = _resolve(alias)
    if owner is None:
        if alias in _UNBOUND:
            return _UNBOUND[alias]
        modulename, deepname, _ = _REGISTRY[alias]
        raise AttributeError(f"setting '{alias}': module '{modulename}' has no '{deepname}'")
    return getattr(owner, attr)


def get(alias: Optional[str] = None) -> Any:
    """One setting's current value, or a dict of all of them (sorted by alias).

    >>> get("cholesky_relative_jitter")
    4.0
    >>> sorted(get())[:2]
    ['binomial_approx_log_prob_tol', 'binomial_approx_sample_thresh']
    """
    if alias is None:
        return {name: _get_one(name) for name in sorted(_REGISTRY)}
    return _get_one(alias)


def set(**kwargs: Any) -> None:
    """Set one or more settings, ``alias=value`` each; each value is validated first.

    >>> set(cholesky_relative_jitter=0.5); get("cholesky_relative_jitter")
    0.5
    >>> set(cholesky_relative_jitter=4.0)
    """
    for alias, value in kwargs.items():
        if alias not in _REGISTRY:
            raise KeyError(alias)
        validator = _REGISTRY[alias][2]
        if validator is not None:
            validator(value)
    for alias, value in kwargs.items():
        owner, attr = _resolve(alias)
        if owner is None:
            _UNBOUND[alias] = value
        else:
            setattr(owner, attr, value)


@contextmanager
def context(**kwargs: Any) -> Iterator[None]:
    """Override settings inside a ``with`` block (or a decorated function), then restore.

    >>> with context(cholesky_relative_jitter=0.25):
    ...     get("cholesky_relative_jitter")
    0.25
    >>> get("cholesky_relative_jitter")
    4.0
    """
    saved = {alias: get(alias) for alias in kwargs}
    set(**kwargs)
    try:
        yield
    finally:
        set(**saved)


def register(
    alias: str,
    modulename: str,
    deepname: str,
    validator: Optional[Callable[[Any], None]] = None,
    *,
    default: Any = None,
) -> Callable:
    """Declare setting ``alias`` for attribute ``deepname`` (``"CONST"`` or
    ``"Class.attr"``) of module ``modulename``; optionally with a ``validator`` that
    raises on a bad value. Without a validator it returns a decorator that registers the
    decorated function as the validator (and returns it). ``default`` (pyrolite's
    addition) is the value while the module does not define the attribute.

    >>> import sys, types
    >>> sys.modules["my_settings_demo"] = types.SimpleNamespace(TOL=0.1)
    >>> @register("my_tol", "my_settings_demo", "TOL")
    ... def _check_tol(value):
    ...     if value <= 0:
    ...         raise ValueError("my_tol must be positive")
    >>> set(my_tol=0.5); sys.modules["my_settings_demo"].TOL
    0.5
    """
    if not (isinstance(alias, str) and alias.isidentifier()):
        raise SettingError(f"setting alias must be a python identifier, got {alias!r}")
    _REGISTRY[alias] = (modulename, deepname, validator)
    if default is not None:
        _UNBOUND.setdefault(alias, default)
    if validator is not None:
        return validator
    return functools.partial(_register_validator, alias)


def _register_validator(alias: str, validator: Callable[[Any], None]) -> Callable[[Any], None]:
    modulename, deepname, _ = _REGISTRY[alias]
    _REGISTRY[alias] = (modulename, deepname, validator)
    return validator


def _check(alias: str, ok: bool, expected: str, value: Any) -> None:
    if not ok:
        raise SettingError(
            f"setting '{alias}' must be {expected}, got {value!r} ({type(value).__name__})"
        )


def _validate_thresh(value: Any) -> None:
    _check(
        "binomial_approx_sample_thresh",
        isinstance(value, float) and value > 0,
        "a float > 0 (math.inf turns the approximation off)",
        value,
    )


def _validate_tol(value: Any) -> None:
    _check(
        "binomial_approx_log_prob_tol",
        isinstance(value, float) and value >= 0,
        "a float >= 0 (0.0 computes log_prob exactly)",
        value,
    )


def _validate_jitter(value: Any) -> None:
    _check(
        "cholesky_relative_jitter",
        isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0,
        "a number >= 0",
        value,
    )


def _validate_module_local_params(value: Any) -> None:
    _check("module_local_params", isinstance(value, bool), "True or False", value)


# pyrolite has one switch for its own checks (handlers, estimators, distribution
# extras), so the three Pyro aliases of it read and write the same flag.
register("validate_poutine", "pyrolite.process_state", "_VALIDATION_ENABLED")
register("validate_infer", "pyrolite.process_state", "_VALIDATION_ENABLED")
register("validate_distributions_pyro", "pyrolite.process_state", "_VALIDATION_ENABLED")
register(
    "validate_distributions_torch",
    "torch.distributions.distribution",
    "Distribution._validate_args",
)
register(
    "binomial_approx_sample_thresh",
    "pyrolite.distributions.torch",
    "Binomial.approx_sample_thresh",
    _validate_thresh,
    default=math.inf,
)
register(
    "binomial_approx_log_prob_tol",
    "pyrolite.distributions.torch",
    "Binomial.approx_log_prob_tol",
    _validate_tol,
    default=0.0,
)
register(
    "cholesky_relative_jitter",
    "pyrolite.ops.tensor_utils",
    "CHOLESKY_RELATIVE_JITTER",
    _validate_jitter,
    default=4.0,
)
register(
    "module_local_params",
    "pyrolite.nn.module",
    "_MODULE_LOCAL_PARAMS",
    _validate_module_local_params,
    default=False,
)

__all__ = ["context", "get", "register", "set"]
