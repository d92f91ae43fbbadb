"""``trace``: record every site of a run into a ``Trace``.

Recording happens in postprocess, after every other handler has had its say, so
the trace holds final values, scales and plate stacks.
"""

from typing import Callable, Optional

from .messenger import Messenger, check_callable
from .replay_messenger import ReplayMessenger
from .runtime import Message
from .trace_struct import Trace


class TraceMessenger(Messenger):
    """Record sites; ``graph_type="dense"`` also adds an edge from every earlier sample site
    (except plate-subsample sites and sites in another iteration of a sequential plate).

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> with poutine.trace() as tracer:
    ...     _ = pyrolite.sample("x", dist.Normal(0.0, 1.0))
    >>> list(tracer.trace.nodes)
    ['x']
    """

    def __init__(self, graph_type: Optional[str] = None, param_only: Optional[bool] = None):
        self.graph_type = "flat" if graph_type is None else graph_type
        self.param_only = bool(param_only)
        self.trace = Trace(self.graph_type)
        self._dense = self.graph_type == "dense"

    def __enter__(self):
        self.trace = Trace(self.graph_type)
        return super().__enter__()

    def get_trace(self) -> Trace:
        return self.trace

    def _reset(self) -> None:
        # An escaped run (``queue``) restarts: keep only its inputs.
        fresh = Trace(self.graph_type)
        if "_INPUT" in self.trace.nodes:
            fresh.add_node("_INPUT", **self.trace.nodes["_INPUT"])
        self.trace = fresh

    def _postprocess_message(self, msg: Message) -> None:
        if msg["infer"].get("_do_not_trace"):
            return
        if self.param_only and msg["type"] != "param":
            return
        # Plate subsample indices carry no information, so they get no edges (as in Pyro).
        dependent = self._dense and msg["type"] == "sample" and not msg["infer"].get("_subsample")
        self.trace.add_site(msg["name"], msg.copy(), dependent)


class TraceHandler:
    """``poutine.trace(fn)``: call like ``fn``; ``get_trace(*args)`` returns the trace."""

    def __init__(self, msngr: TraceMessenger, fn: Callable):
        check_callable(fn, "poutine.trace")
        self.msngr = msngr
        self.fn = fn

    def __call__(self, *args, **kwargs):
        with self.msngr:
            self.msngr.trace.add_node(
                "_INPUT", name="_INPUT", type="args", args=args, kwargs=kwargs, infer={}
            )
            ret = self.fn(*args, **kwargs)
        self.msngr.trace.add_node(
            "_RETURN", name="_RETURN", type="return", value=ret, infer={}, is_observed=False
        )
        return ret

    @property
    def trace(self) -> Trace:
        return self.msngr.trace

    def get_trace(self, *args, **kwargs) -> Trace:
        self(*args, **kwargs)
        return self.msngr.get_trace()


def run_traced(
    fn: Callable,
    args: tuple,
    kwargs: dict,
    replay_trace=None,
    with_return: bool = False,
    graph_type: Optional[str] = None,
) -> Trace:
    """Run ``fn(*args, **kwargs)`` under ``trace`` (replaying ``replay_trace`` if given).

    The lean form estimators call every step; ``with_return`` also records the return
    value as the ``"_RETURN"`` site, as ``poutine.trace(fn).get_trace`` does;
    ``graph_type="dense"`` records dependency edges (see :class:`TraceMessenger`).
    """
    tracer = TraceMessenger(graph_type)
    with tracer:
        if replay_trace is None:
            ret = fn(*args, **kwargs)
        else:
            with ReplayMessenger(trace=replay_trace):
                ret = fn(*args, **kwargs)
    if with_return:
        tracer.trace.add_node(
            "_RETURN", name="_RETURN", type="return", value=ret, infer={}, is_observed=False
        )
    return tracer.trace
