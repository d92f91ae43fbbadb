"""Process-wide state shared by every layer: the validation switch, RNG seeding and
state, and warn-once. Everything in pyrolite reads these from here; ``pyrolite.util``
re-exports them under Pyro's names."""

import random
import warnings
from contextlib import contextmanager
from typing import Any, Dict

import numpy as np
import torch
import torch.distributions

_VALIDATION_ENABLED = __debug__
_WARNED = set()


def set_rng_seed(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (all devices).

    >>> set_rng_seed(0); a = torch.rand(2); set_rng_seed(0)
    >>> bool((a == torch.rand(2)).all())
    True
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def get_rng_state() -> Dict[str, Any]:
    """Every RNG stream pyrolite draws from (torch CPU, CUDA if started, Python, NumPy).

    Plain data (tensors, ints, tuples) only, so it can go into a checkpoint loaded with
    ``weights_only=True``.

    >>> state = get_rng_state(); a = torch.rand(2); set_rng_state(state)
    >>> bool((a == torch.rand(2)).all())
    True
    """
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore a :func:`get_rng_state` result (tensors may come back on any device)."""
    torch.set_rng_state(state["torch"].cpu())
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.cpu().numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def enable_validation(is_validate: bool = True) -> None:
    """Turn argument/support checks on or off, in pyrolite and in torch.distributions."""
    global _VALIDATION_ENABLED
    _VALIDATION_ENABLED = bool(is_validate)
    # The distributions' own switch (Pyro's ``pyro.distributions.enable_validation``) sets
    # torch's default; imported here because ``pyrolite.distributions`` is built on this
    # module's siblings, not the other way round.
    from .distributions import util as distributions_util

    distributions_util.enable_validation(_VALIDATION_ENABLED)


def is_validation_enabled() -> bool:
    return _VALIDATION_ENABLED


class validation_disabled:
    """Skip torch.distributions' argument and support checks inside (pyrolite's too).

    Used on the hot path once a model/guide structure has been validated (a class,
    not a generator, because it runs every step).
    """

    __slots__ = ("_saved",)

    def __enter__(self):
        global _VALIDATION_ENABLED
        dist_cls = torch.distributions.Distribution
        self._saved = (_VALIDATION_ENABLED, dist_cls._validate_args)
        _VALIDATION_ENABLED = dist_cls._validate_args = False
        return self

    def __exit__(self, *exc):
        global _VALIDATION_ENABLED
        _VALIDATION_ENABLED, torch.distributions.Distribution._validate_args = self._saved
        return None


@contextmanager
def validation_enabled(is_validate: bool = True):
    """Context manager: validation on (or off) inside, restored afterwards (Pyro's).

    >>> with validation_enabled(False):
    ...     is_validation_enabled()
    False
    """
    saved = _VALIDATION_ENABLED
    enable_validation(is_validate)
    try:
        yield
    finally:
        enable_validation(saved)


def warn_once(key, message: str, category=UserWarning, stacklevel: int = 3) -> None:
    """Warn about ``key`` the first time only (per process)."""
    if key in _WARNED:
        return
    _WARNED.add(key)
    warnings.warn(message, category, stacklevel=stacklevel)


def reset_warn_once() -> None:
    """Forget which warnings were given (for tests)."""
    _WARNED.clear()
