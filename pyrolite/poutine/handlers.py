"""Function-style handlers: ``poutine.trace(fn)``, ``with poutine.block(hide=[...]):``.

Each handler below builds its messenger; given ``fn`` it returns ``fn`` wrapped,
otherwise the messenger itself, usable as a context manager or decorator.
"""

import functools
from collections import deque
from typing import Callable, Dict, Optional

from .block_messenger import BlockMessenger
from .broadcast_messenger import BroadcastMessenger
from .condition_messenger import ConditionMessenger
from .do_messenger import DoMessenger
from .enum_messenger import EnumMessenger
from .equalize_messenger import equalize  # noqa: F401 (Pyro has it here too)
from .escape_messenger import EscapeMessenger
from .infer_config_messenger import InferConfigMessenger
from .lift_messenger import LiftMessenger
from .markov_messenger import MarkovMessenger
from .mask_messenger import MaskMessenger
from .messenger import check_callable
from .reparam_messenger import ReparamMessenger
from .replay_messenger import ReplayMessenger
from .runtime import NonlocalExit
from .scale_messenger import ScaleMessenger
from .seed_messenger import SeedMessenger
from .shard_messenger import ShardMessenger
from .substitute_messenger import SubstituteMessenger
from .trace_messenger import TraceHandler, TraceMessenger
from .trace_struct import Trace
from .uncondition_messenger import UnconditionMessenger
from .util import discrete_escape, enum_extend


def _handler(name: str, messenger_cls, fn, *args, **kwargs):
    """``messenger_cls(...)``, wrapped around ``fn`` if given; ``name`` is for errors."""
    msngr = messenger_cls(*args, **kwargs)
    if fn is None:
        return msngr
    check_callable(fn, f"poutine.{name}")
    return msngr(fn)


def trace(fn=None, graph_type: Optional[str] = None, param_only: Optional[bool] = None):
    """Record a run: ``poutine.trace(model).get_trace(*args)``, or ``with poutine.trace() as tr:``.

    ``graph_type="dense"`` also records edges from every earlier sample site.
    """
    msngr = TraceMessenger(graph_type=graph_type, param_only=param_only)
    return msngr if fn is None else TraceHandler(msngr, fn)


def replay(fn=None, trace: Optional[Trace] = None, params: Optional[Dict] = None):
    """Reuse the sample values of ``trace`` (and param values from ``params``)."""
    return _handler("replay", ReplayMessenger, fn, trace=trace, params=params)


def block(
    fn=None,
    hide_fn=None,
    expose_fn=None,
    hide_all=True,
    expose_all=False,
    hide=None,
    expose=None,
    hide_types=None,
    expose_types=None,
):
    """Hide sites from outer handlers (all by default)."""
    return _handler(
        "block",
        BlockMessenger,
        fn,
        hide_fn=hide_fn,
        expose_fn=expose_fn,
        hide_all=hide_all,
        expose_all=expose_all,
        hide=hide,
        expose=expose,
        hide_types=hide_types,
        expose_types=expose_types,
    )


def condition(fn=None, data=None):
    """Observe the sites in ``data`` at the given values."""
    return _handler("condition", ConditionMessenger, fn, data=data)


def substitute(fn=None, data: Optional[Dict] = None):
    """Give the ``param`` sites in ``data`` these (constrained) values instead of the store's."""
    return _handler("substitute", SubstituteMessenger, fn, data=data)


def do(fn=None, data=None):
    """Intervene on the sites in ``data``."""
    return _handler("do", DoMessenger, fn, data=data)


def scale(fn=None, scale=1.0):
    """Multiply log-probs by ``scale``."""
    return _handler("scale", ScaleMessenger, fn, scale=scale)


def mask(fn=None, mask=None):
    """Zero log-probs where ``mask`` is False."""
    return _handler("mask", MaskMessenger, fn, mask=mask)


def reparam(fn=None, config=None):
    """Reparameterize sample sites: ``config`` is a dict ``{name: Reparam}`` or a callable
    ``msg -> Reparam or None`` (see ``pyrolite.infer.reparam``)."""
    return _handler("reparam", ReparamMessenger, fn, config=config)


def shard(fn=None, rank: int = 0, world_size: int = 1, split=None, local=()):
    """Data-parallel plates: this process's part of the data (see ``ShardMessenger``).

    ``DistributedSVI`` applies it for you; wrap model and guide yourself for a plain torch
    loop (e.g. under ``DistributedDataParallel``).
    """
    return _handler("shard", ShardMessenger, fn, rank, world_size, split=split, local=local)


def seed(fn=None, rng_seed: int = 0):
    """Run under a fixed seed, restoring the RNG state afterwards."""
    return _handler("seed", SeedMessenger, fn, rng_seed=rng_seed)


def uncondition(fn=None):
    """Sample observed sites instead of observing them."""
    return _handler("uncondition", UnconditionMessenger, fn)


def lift(fn=None, prior=None):
    """Turn params into samples from ``prior``."""
    return _handler("lift", LiftMessenger, fn, prior=prior)


def infer_config(fn=None, config_fn=None):
    """Merge ``config_fn(msg)`` into each site's ``infer`` dict."""
    return _handler("infer_config", InferConfigMessenger, fn, config_fn=config_fn)


def escape(fn=None, escape_fn=None):
    """Leave the program with ``NonlocalExit`` at the first site where ``escape_fn(msg)``."""
    return _handler("escape", EscapeMessenger, fn, escape_fn=escape_fn)


def broadcast(fn=None):
    """Expand distributions to their plates' batch shapes."""
    return _handler("broadcast", BroadcastMessenger, fn)


def enum(fn=None, first_available_dim: Optional[int] = None):
    """Enumerate sites marked ``infer={"enumerate": "parallel"}`` in fresh left dims."""
    return _handler("enum", EnumMessenger, fn, first_available_dim=first_available_dim)


def markov(fn=None, history: int = 1, keep: bool = False, dim=None, name=None):
    """Markov context: a context manager, a decorator, or ``for t in markov(range(T))``."""
    msngr = MarkovMessenger(history=history, keep=keep, dim=dim, name=name)
    return msngr if fn is None else msngr(fn)


def queue(
    fn=None,
    queue: Optional[deque] = None,
    max_tries: Optional[int] = None,
    escape_fn: Callable = None,
    extend_fn: Callable = None,
    num_samples: int = None,
):
    """Run ``fn`` once per partial trace in ``queue`` until one run completes.

    ``queue`` is a ``collections.deque`` or a ``queue.Queue``-like object (Pyro's).

    This drives sequential enumeration.

    Each run replays a partial trace and escapes at the first new site chosen by
    ``escape_fn`` (default: a discrete latent); ``extend_fn`` then puts one extended
    trace per value of that site back in the queue.
    """
    if max_tries is None:
        max_tries = int(1e6)
    escape_fn = discrete_escape if escape_fn is None else escape_fn
    extend_fn = enum_extend if extend_fn is None else extend_fn
    if queue is None:
        raise ValueError("poutine.queue needs a queue (e.g. collections.deque([Trace()]))")

    def wrapper(wrapped):
        check_callable(wrapped, "poutine.queue")

        # A deque (pop/append) or, as in Pyro, a queue.Queue-like object (get/put/empty).
        if hasattr(queue, "put"):
            is_empty, pop, push = queue.empty, queue.get, queue.put
        else:
            is_empty, pop, push = (lambda: not queue), queue.pop, queue.append

        @functools.wraps(wrapped)
        def _fn(*args, **kwargs):
            for _ in range(max_tries):
                if is_empty():
                    raise ValueError("poutine.queue: the queue is empty")
                next_trace = pop()
                runner = trace(
                    escape(
                        replay(wrapped, trace=next_trace),
                        escape_fn=functools.partial(escape_fn, next_trace),
                    )
                )
                try:
                    return runner(*args, **kwargs)
                except NonlocalExit as site_container:
                    site_container.reset_stack()
                    kwargs_ext = {} if num_samples is None else {"num_samples": num_samples}
                    for new_trace in extend_fn(
                        runner.trace.copy(), site_container.site, **kwargs_ext
                    ):
                        push(new_trace)
            raise ValueError(f"poutine.queue: max_tries ({max_tries}) exceeded")

        return _fn

    return wrapper(fn) if fn is not None else wrapper
