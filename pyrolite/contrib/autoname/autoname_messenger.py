"""``autoname`` (``pyro.contrib.autoname``): name scopes from functions, ``with`` blocks and
loops, and a ``sample`` whose name may be left out (then it is the distribution's class name).

Inside an active ``autoname`` a site gets ``scope/.../name``; a name repeated in one scope
becomes ``name1``, ``name2`` and a repeated scope ``scope__1``, ``scope__2`` (sites and
scopes share one counter per scope entrance). Outside one, names pass through unchanged.
"""

from collections import defaultdict
from typing import Callable, Iterable, Iterator, List, Optional, Union

import torch

import pyrolite

from ...poutine.messenger import Messenger
from ...poutine.runtime import active_handlers


class _NameScope:
    def __init__(self, name: str) -> None:
        self.name = name
        # One counter for child sites and child scopes: a site "f1" then a scope "f1" is
        # "f1" then "f1__1", as in Pyro.
        self.counts = defaultdict(int)


# The open scopes, outermost first. Loop scopes live here too, so a loop inside an active
# autoname prefixes its sites; the prefix applies only while an AutoNameMessenger is active.
_SCOPES: List[_NameScope] = []


def _open_scope(name: str) -> int:
    """Push a scope named ``name`` (numbered within its parent) and return the depth to
    truncate back to when it closes."""
    depth = len(_SCOPES)
    if _SCOPES:
        counts = _SCOPES[-1].counts
        seen = counts[name]
        counts[name] = seen + 1
        if seen:
            name = f"{name}__{seen}"
    _SCOPES.append(_NameScope(name))
    return depth


def _close_scope(depth: int) -> None:
    # Truncating (not popping) also drops scopes left open by a loop abandoned by an error.
    del _SCOPES[depth:]


def _active() -> bool:
    return any(isinstance(handler, AutoNameMessenger) for handler in active_handlers())


def genname(name: str) -> str:
    """The site name ``name`` gets here: ``scope/.../name`` numbered within the innermost
    scope under an active ``autoname``, else ``name`` itself."""
    if not _active() or not _SCOPES:
        return name
    counts = _SCOPES[-1].counts
    seen = counts[name]
    counts[name] = seen + 1
    leaf = f"{name}{seen}" if seen else name
    return "/".join([*(scope.name for scope in _SCOPES), leaf])


class AutoNameMessenger(Messenger):
    """A name scope: while it is active, ``autoname``'s ``sample`` names sites
    ``name/...``. Re-entering it (recursion, nested ``with``) opens a nested scope.

    :param name: the scope's name; as a decorator it defaults to the function's name.

    >>> import pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> @AutoNameMessenger(name="model")
    ... def model():
    ...     sample(dist.Normal(0.0, 1.0))
    ...     sample(dist.Normal(0.0, 1.0))
    >>> [n for n in poutine.trace(model).get_trace().nodes if not n.startswith("_")]
    ['model/Normal', 'model/Normal1']
    """

    def __init__(self, name: Optional[str] = None) -> None:
        self.name = name
        self._depths: List[int] = []

    def __enter__(self):
        # str(): Pyro names a scope entered without a name "None".
        self._depths.append(_open_scope(str(self.name)))
        return super().__enter__()

    def __exit__(self, exc_type, exc_value, traceback):
        if self._depths:
            _close_scope(self._depths.pop())
        return super().__exit__(exc_type, exc_value, traceback)

    def __call__(self, fn: Callable) -> Callable:
        if self.name is None:
            self.name = fn.__name__
        return super().__call__(fn)


AutonameMessenger = AutoNameMessenger  # Pyro's spelling of the class name


def _loop(iterable: Iterable, name: str) -> Iterator:
    # Each item runs the loop body in a fresh scope: name, name__1, name__2, ...
    for item in iterable:
        depth = _open_scope(name)
        try:
            yield item
        finally:
            _close_scope(depth)


def autoname(
    fn: Union[Callable, Iterable, None] = None, name: Optional[str] = None
) -> Union[AutoNameMessenger, Callable, Iterator]:
    """Open a name scope: a context manager (``with autoname(name="s"):``), a decorator
    (the name defaults to the function's), or a loop wrapper (``for i in autoname(range(3),
    name="t")`` runs each step in ``t``, ``t__1``, ...; ``name`` is required there).

    :param fn: a function or an iterable (optional).
    :param name: the scope's name.

    >>> import pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> @autoname
    ... def f1():
    ...     sample(dist.Bernoulli(0.5))
    >>> @autoname(name="model")
    ... def f2():
    ...     for i in autoname(range(2), name="t"):
    ...         f1()
    ...     sample("x", dist.Bernoulli(0.5))
    ...     sample("x", dist.Bernoulli(0.5))
    >>> [n for n in poutine.trace(f2).get_trace().nodes if not n.startswith("_")]
    ['model/t/f1/Bernoulli', 'model/t__1/f1/Bernoulli', 'model/x', 'model/x1']
    """
    if fn is None:
        return AutoNameMessenger(name)
    if callable(fn):
        return AutoNameMessenger(name if name is not None else fn.__name__)(fn)
    if isinstance(fn, Iterable):
        if name is None:
            raise AttributeError(
                f"autoname over a {type(fn).__name__} needs a scope name: "
                f"autoname(iterable, name=...)"
            )
        return _loop(fn, name)
    raise TypeError(
        f"autoname expected a function, an iterable or nothing, got {type(fn).__name__}"
    )


def sample(*args, **kwargs) -> torch.Tensor:
    """``pyrolite.sample`` whose name may be left out: ``sample("x", d)`` or ``sample(d)``
    (named ``type(d).__name__``); under ``autoname`` the name gets the scope prefix and a
    per-scope count (``x``, ``x1``, ...). Keyword arguments (``obs``, ``infer``, ...) pass
    through.

    >>> import pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> model = autoname(lambda: [sample(dist.Normal(0.0, 1.0)) for _ in range(2)], name="m")
    >>> [n for n in poutine.trace(model).get_trace().nodes if not n.startswith("_")]
    ['m/Normal', 'm/Normal1']
    """
    if not args:
        raise TypeError("sample requires at least 1 positional argument")
    first = args[0]
    if isinstance(first, str):
        if len(args) < 2:
            raise TypeError(
                f"sample({first!r}) is missing the distribution: sample({first!r}, fn, ...)"
            )
        name, rest = first, args[1:]
    elif isinstance(first, torch.distributions.Distribution):
        name, rest = type(first).__name__, args
    else:
        raise NotImplementedError(
            f"sample's first argument must be a site name (str) or a distribution, got "
            f"{type(first).__name__}; for a named.Object use obj.sample_(fn)"
        )
    return pyrolite.sample(genname(name), *rest, **kwargs)
