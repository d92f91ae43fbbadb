"""``markov``: declare that sites only depend on the last ``history`` steps.

Enumeration uses this to recycle tensor dims in long chains. Each sample site
inside gets ``infer["_markov_scope"]``: the names of the sites it may depend on, and
``infer["_markov_context"]``: the innermost ``markov`` it runs in (``enum`` frees a dim
for reuse only within the context that allocated it, while that context is active).
"""

from collections import deque
from typing import Iterable, Optional

from .messenger import Messenger
from .runtime import Message


class MarkovMessenger(Messenger):
    """Context manager, decorator, or iterator: ``for t in markov(range(T)):``.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> def chain():
    ...     for t in pyrolite.markov(range(3)):
    ...         pyrolite.sample(f"x_{t}", dist.Normal(0.0, 1.0))
    >>> tr = poutine.trace(chain).get_trace()
    >>> sorted(tr.nodes["x_2"]["infer"]["_markov_scope"])
    ['x_1', 'x_2']
    """

    def __init__(self, history: int = 1, keep: bool = False, dim: Optional[int] = None, name=None):
        if history < 0:
            raise ValueError(f"markov history must be nonnegative, got {history}")
        self.history, self.keep, self.dim, self.name = history, keep, dim, name
        self._steps: deque = deque()
        self._iterable: Optional[Iterable] = None
        self.active = False
        self._depth = 0

    def __call__(self, fn_or_iterable):
        if callable(fn_or_iterable):
            return super().__call__(fn_or_iterable)
        self._iterable = fn_or_iterable
        return self

    def __iter__(self):
        if self._iterable is None:
            raise TypeError("markov(...) is iterable only when given an iterable")
        with self:
            for value in self._iterable:
                self._next_step()
                yield value

    def __enter__(self):
        if self.active:
            # Entered again from inside (a recursive function decorated with markov): the
            # next step of the chain.
            self._next_step()
        else:
            self._steps = deque([set()])
            self.active = True
        self._depth += 1
        return super().__enter__()

    def __exit__(self, *exc):
        self._depth -= 1
        if self._depth == 0:
            self.active = False
        return super().__exit__(*exc)

    def _next_step(self) -> None:
        self._steps.append(set())
        while len(self._steps) > self.history + 1:
            self._steps.popleft()

    def _pyro_sample(self, msg: Message) -> None:
        self._steps[-1].add(msg["name"])
        scope = set().union(*self._steps)
        outer = msg["infer"].get("_markov_scope")
        msg["infer"]["_markov_scope"] = scope if outer is None else scope | outer
        msg["infer"].setdefault("_markov_context", self)  # the innermost markov is first
