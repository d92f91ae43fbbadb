"""``scope`` and ``name_count`` (``pyro.contrib.autoname``): prefix sample-site names with
``scope/`` and number repeated names ``x``, ``x__1``, ``x__2``.

Scopes prefix sample sites only (not params). Under ``name_count``, a scope entered again
gets the suffix (``f``, ``f__1``) unless it was made with ``inner=True``, in which case
the repeated *sites* inside it are numbered (``f/x``, ``f/x__1``).
"""

import functools
from typing import Callable, Dict, List, Optional

from ...poutine.messenger import Messenger

# Active name counters (innermost last): a scope asks the innermost one to number its
# entrances, so the scope's prefix is decided once, when it is entered.
_COUNTERS: List["NameCountMessenger"] = []
_SCOPES: List[str] = []  # the effective prefixes of the active scopes, outermost first


def _numbered(counts: Dict[str, int], name: str) -> str:
    seen = counts.get(name, 0)
    counts[name] = seen + 1
    return name if seen == 0 else f"{name}__{seen}"


class NameCountMessenger(Messenger):
    """Number repeated sample-site names (and repeated scope entrances): the first keeps
    its name, later ones get ``__1``, ``__2``, ..."""

    def __enter__(self):
        self._sites: Dict[str, int] = {}
        self._scopes: Dict[str, int] = {}
        _COUNTERS.append(self)
        return super().__enter__()

    def __exit__(self, *exc):
        if _COUNTERS and _COUNTERS[-1] is self:
            _COUNTERS.pop()
        return super().__exit__(*exc)

    def _pyro_sample(self, msg) -> None:
        msg["name"] = _numbered(self._sites, msg["name"])

    def scope_prefix(self, path: str) -> str:
        return _numbered(self._scopes, path)


class ScopeMessenger(Messenger):
    """Prefix the names of sample sites with ``prefix/``."""

    def __init__(self, prefix: Optional[str] = None, inner: Optional[bool] = None) -> None:
        self.prefix = prefix
        self.inner = bool(inner)

    def __enter__(self):
        prefix = self.prefix
        if _COUNTERS and not self.inner:
            path = "/".join([*_SCOPES, prefix])
            numbered = _COUNTERS[-1].scope_prefix(path)
            prefix = prefix + numbered[len(path) :]
        self._effective = prefix
        _SCOPES.append(prefix)
        return super().__enter__()

    def __exit__(self, *exc):
        if _SCOPES:
            _SCOPES.pop()
        return super().__exit__(*exc)

    def _pyro_sample(self, msg) -> None:
        msg["name"] = f"{self._effective}/{msg['name']}"


def scope(
    fn: Optional[Callable] = None, prefix: Optional[str] = None, inner: Optional[bool] = None
):
    """Prefix sample-site names with ``prefix/``: a context manager, a decorator (the
    prefix defaults to the function's name) or a higher-order function.

    :param fn: a stochastic function (optional).
    :param prefix: the prefix (optional when ``fn`` is given).
    :param inner: under ``name_count``, number repeated sites inside the scope rather
        than repeated entrances of the scope.

    >>> import pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> @scope(prefix="b")
    ... def model():
    ...     with scope(prefix="a"):
    ...         return pyrolite.sample("x", dist.Normal(0.0, 1.0))
    >>> [n for n in poutine.trace(model).get_trace().nodes if not n.startswith("_")]
    ['b/a/x']
    """
    if fn is None:
        if prefix is None:
            raise ValueError("scope needs a prefix when used without a function: scope(prefix=...)")
        messenger = ScopeMessenger(prefix, inner)

        class _ScopeOrDecorator:
            def __enter__(self):
                return messenger.__enter__()

            def __exit__(self, *exc):
                return messenger.__exit__(*exc)

            def __call__(self, fn: Callable) -> Callable:
                return scope(fn, prefix=prefix, inner=inner)

        return _ScopeOrDecorator()
    if prefix is None:
        prefix = fn.__name__
    messenger = ScopeMessenger(prefix, inner)

    @functools.wraps(fn)
    def _fn(*args, **kwargs):
        with messenger:
            return fn(*args, **kwargs)

    return _fn


def name_count(fn: Optional[Callable] = None):
    """Number repeated names: the first ``x`` stays ``x``, then ``x__1``, ``x__2``; with
    ``scope``, repeated entrances of a scope get the suffix (``f/x``, ``f__1/x``).

    >>> import pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> @name_count
    ... def model():
    ...     for i in range(3):
    ...         pyrolite.sample("x", dist.Normal(0.0, 1.0))
    >>> [n for n in poutine.trace(model).get_trace().nodes if not n.startswith("_")]
    ['x', 'x__1', 'x__2']
    """
    messenger = NameCountMessenger()
    return messenger if fn is None else messenger(fn)
