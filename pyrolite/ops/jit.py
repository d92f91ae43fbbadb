"""``trace``: compile a function of the ParamStore and its tensor arguments with TorchScript.

One graph per call signature (tensor shapes/dtypes/devices, the other arguments, grad
mode). The params the function reads become graph inputs, so gradients reach the
ParamStore leaves and sampling ops stay random on every call. Where a trace would be
wrong (Python control flow on tensor values, params that differ between runs, an op
the tracer cannot record), that signature runs eagerly instead, after one warning.
"""

import operator
import os
import warnings
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from ..params.param_store import get_param_store
from ..poutine.block_messenger import BlockMessenger
from ..poutine.param_leaves_messenger import ParamLeavesMessenger
from ..poutine.param_reads_messenger import ParamReadsMessenger
from ..poutine.runtime import am_i_wrapped, apply_stack, new_message
from ..process_state import get_rng_state, set_rng_state, validation_disabled

__all__ = ["CompiledFunction", "JitFallbackWarning", "trace"]


class JitFallbackWarning(UserWarning):
    """A compiled function runs eagerly for some call signature; the message says why."""


# A tracer warning starting so means a tensor steered Python code. In the user's code
# that is a value (``if x.sum() > 0:``): the trace would replay one branch forever, so
# it is refused. In pyrolite's and torch's own code it is shape bookkeeping (sizes are
# 0-d tensors while tracing), which the cache key makes safe.
_DATA_DEPENDENT = "Converting a tensor to a"  # ... Python bool/float/..., NumPy array
_LIBRARY_DIRS = tuple(
    os.path.dirname(os.path.abspath(m.__file__)) + os.sep for m in (torch, __import__("pyrolite"))
)
# Tracer warnings about baking in shapes or Python constants: harmless here, because
# shapes and non-tensor arguments are part of the cache key (a change re-traces).
_SAFE_BY_KEY = (
    "Using len to get tensor shape",
    "Iterating over a tensor",
    "torch.tensor results are registered as constants",
    "torch.as_tensor results are registered as constants",
)
_EAGER = object()  # cache value: this signature runs eagerly


class _TraceRefused(Exception):
    """The trace was recorded but would not generalize; the message is the reason."""


class _Compiled:
    """A traced graph and what a call needs: its params (checked unchanged) and outputs."""

    __slots__ = ("graph", "names", "leaves", "unflatten", "num_outputs")

    def __init__(self, graph, names, leaves, out_spec, num_outputs):
        self.graph = graph
        self.names, self.leaves = names, leaves
        self.num_outputs = num_outputs
        if isinstance(out_spec, tuple) and out_spec[0] is tuple:
            if all(s is _TENSOR for s in out_spec[1]):
                # The common case (e.g. loss and surrogate): a slice of the graph's tuple.
                self.unflatten = operator.itemgetter(slice(0, num_outputs))
                return
        self.unflatten = lambda flat: _unflatten(out_spec, iter(flat))


class CompiledFunction:
    """``fn`` compiled per call signature; call it as you would call ``fn``.

    ``compile_count`` counts the graphs traced; ``fn`` is the eager function.
    """

    def __init__(
        self,
        fn: Callable,
        ignore_warnings: bool = False,
        jit_options: Optional[dict] = None,
    ):
        self.fn = fn
        self.ignore_warnings = ignore_warnings
        self.jit_options = {"check_trace": False, **(jit_options or {})}
        self.compile_count = 0
        self._cache: Dict[tuple, Any] = {}
        self._warned: set = set()
        self.__name__ = getattr(fn, "__name__", type(fn).__name__)
        self.__qualname__ = getattr(fn, "__qualname__", self.__name__)
        self.__doc__ = getattr(fn, "__doc__", None)

    def __call__(self, *args, **kwargs):
        tensors: List[torch.Tensor] = []
        key = (
            _signature(args, tensors),
            _signature(kwargs, tensors) if kwargs else None,
            torch.is_grad_enabled(),
        )
        compiled = self._cache.get(key)
        if compiled is None:
            return self._compile(key, args, kwargs, tensors)
        if compiled is _EAGER:
            return self.fn(*args, **kwargs)
        current = get_param_store().leaves(compiled.names)
        if not all(map(operator.is_, current, compiled.leaves)):
            # A param was removed or replaced (store cleared, loaded, set): trace again.
            return self._compile(key, args, kwargs, tensors)
        try:
            # Without graph optimization: the profiling executor's optimized graph may run
            # independent random ops in another order than the trace (so the draws land on
            # other sites than the eager run's), and costs as much at these sizes.
            with torch.jit.optimized_execution(False):
                flat = compiled.graph(*compiled.leaves, *tensors)
        except Exception as e:
            self._fall_back(key, f"its compiled graph raised {type(e).__name__}: {e}")
            return self.fn(*args, **kwargs)
        if am_i_wrapped():
            _announce(compiled.names, flat[compiled.num_outputs :])
        return compiled.unflatten(flat)

    # --- compiling ---------------------------------------------------------------------

    def _compile(self, key, args, kwargs, tensors):
        """Run ``fn`` eagerly (this call's result), then trace it for the next calls.

        The eager run finds the params ``fn`` reads and creates lazy ones. The trace
        and its check start from the RNG state the eager run left and restore it, so a
        compiling call draws exactly what an eager call would.
        """
        reads = ParamReadsMessenger()
        with BlockMessenger(), reads:
            result = self.fn(*args, **kwargs)
        store = get_param_store()
        names = tuple(n for n in reads.names if n in store)
        rng = get_rng_state()
        try:
            self._cache[key] = self._trace(names, args, kwargs, tensors, rng)
            self.compile_count += 1
        except _TraceRefused as e:
            self._fall_back(key, str(e))
        except Exception as e:
            self._fall_back(key, f"tracing raised {type(e).__name__}: {e}")
        finally:
            set_rng_state(rng)
        if am_i_wrapped():
            _announce(names, [reads.values[n] for n in names])
        return result

    def _trace(self, names, args, kwargs, tensors, rng) -> _Compiled:
        store = get_param_store()
        leaves = store.leaves(names)
        transforms = {n: store.transform(n) for n in names}
        num_params, fn = len(names), self.fn
        traced_run: Dict[str, Any] = {}

        def flat_fn(*inputs):
            call_args, call_kwargs = _rebuild((args, kwargs), iter(inputs[num_params:]))
            reads = ParamReadsMessenger()
            # Every param is read from its graph input, through the store's transform.
            graph_leaves = dict(zip(names, inputs[:num_params]))
            with validation_disabled(), BlockMessenger(), reads:
                with ParamLeavesMessenger(graph_leaves, transforms):
                    out = fn(*call_args, **call_kwargs)
            if set(reads.values) != set(names):
                raise _TraceRefused(
                    f"it read params {sorted(reads.values)} on one run and {sorted(names)} "
                    "on another (dynamic structure)"
                )
            flat_out: List[torch.Tensor] = []
            traced_run["out_spec"] = _flatten_output(out, flat_out)
            traced_run["num_outputs"] = len(flat_out)
            return tuple(flat_out) + tuple(reads.values[n] for n in names)

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            graph = torch.jit.trace(flat_fn, leaves + tuple(tensors), **self.jit_options)
        self._check_warnings(caught)

        # The graph and one more eager run, from the same draws, must agree; they don't
        # when the function reads state outside its arguments (globals, Python RNG).
        set_rng_state(rng)
        expected: List[torch.Tensor] = []
        with validation_disabled(), BlockMessenger():
            _flatten_output(fn(*args, **kwargs), expected)
        set_rng_state(rng)
        replayed = graph(*leaves, *tensors)
        for got, want in zip(replayed, expected):
            if got.shape != want.shape or not torch.allclose(
                got, want, rtol=1e-4, atol=1e-6, equal_nan=True
            ):
                raise _TraceRefused(
                    "its compiled graph does not reproduce it (it reads state outside its "
                    "arguments, e.g. globals or Python-side randomness)"
                )
        out_spec, num_outputs = traced_run["out_spec"], traced_run["num_outputs"]
        return _Compiled(graph, names, leaves, out_spec, num_outputs)

    def _check_warnings(self, caught) -> None:
        for w in caught:
            text = str(w.message)
            if issubclass(w.category, torch.jit.TracerWarning):
                if text.startswith(_DATA_DEPENDENT):
                    if os.path.abspath(w.filename).startswith(_LIBRARY_DIRS):
                        continue
                    raise _TraceRefused(
                        f"Python control flow depends on tensor values ({text.split('.')[0]} "
                        f"at {w.filename}:{w.lineno}); make the structure static or use the "
                        "eager estimator"
                    )
                if self.ignore_warnings or text.startswith(_SAFE_BY_KEY):
                    continue
            elif issubclass(w.category, DeprecationWarning) and "torch.jit" in text:
                # torch.jit.trace's own deprecation notice says nothing to our users.
                continue
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)

    def _fall_back(self, key, reason: str) -> None:
        self._cache[key] = _EAGER
        if reason not in self._warned:
            self._warned.add(reason)
            warnings.warn(
                f"pyrolite.ops.jit: {self.__qualname__} runs eagerly for this call signature "
                f"because {reason}",
                JitFallbackWarning,
                stacklevel=4,
            )


def trace(
    fn: Optional[Callable] = None,
    ignore_warnings: bool = False,
    jit_options: Optional[dict] = None,
):
    """Compile ``fn`` (a function of ``pyrolite.param``s and tensor arguments) lazily.

    On the first call with a new signature ``fn`` runs eagerly (creating any lazily
    initialized params) and is traced with ``torch.jit.trace``; later calls with that
    signature run the graph. ``ignore_warnings`` drops the tracer's warnings;
    ``jit_options`` go to ``torch.jit.trace`` (``check_trace`` defaults to False). Use
    as ``trace(fn)`` or as a decorator, ``@trace`` / ``@trace(ignore_warnings=True)``.

    >>> import torch, pyrolite
    >>> pyrolite.clear_param_store()
    >>> @trace
    ... def weighted_sum(x):
    ...     w = pyrolite.param("w", torch.tensor(2.0))
    ...     return (w * x).sum()
    >>> [weighted_sum(torch.ones(3)).item() for _ in range(3)]
    [6.0, 6.0, 6.0]
    >>> weighted_sum.compile_count
    1
    """
    if fn is None:
        return lambda fn: CompiledFunction(fn, ignore_warnings, jit_options)
    return CompiledFunction(fn, ignore_warnings, jit_options)


# --- arguments and outputs -----------------------------------------------------------------

_TENSOR = "tensor"


def _signature(obj, tensors: List[torch.Tensor]):
    """A hashable description of ``obj`` for the cache key; appends its tensors in order."""
    if isinstance(obj, torch.Tensor):
        tensors.append(obj)
        return (obj.shape, obj.dtype, obj.device, obj.requires_grad)
    if isinstance(obj, (tuple, list)):
        return (type(obj), tuple([_signature(o, tensors) for o in obj]))
    if isinstance(obj, dict):
        return (dict, tuple([(k, _signature(v, tensors)) for k, v in obj.items()]))
    try:
        hash(obj)
    except TypeError:
        return (type(obj), "id", id(obj))
    # The type is part of the key: 1, 1.0 and True are equal but not interchangeable.
    return (type(obj), obj)


def _rebuild(obj, tensors):
    """``obj`` with its tensors (in ``_signature`` order) replaced by ``next(tensors)``."""
    if isinstance(obj, torch.Tensor):
        return next(tensors)
    if isinstance(obj, tuple):
        items = [_rebuild(o, tensors) for o in obj]
        return type(obj)(*items) if hasattr(obj, "_fields") else type(obj)(items)
    if isinstance(obj, list):
        return type(obj)([_rebuild(o, tensors) for o in obj])
    if isinstance(obj, dict):
        return {k: _rebuild(v, tensors) for k, v in obj.items()}
    return obj


def _flatten_output(obj, flat: List[torch.Tensor]):
    """The structure of ``obj`` (tensors replaced by a marker); appends its tensors."""
    if isinstance(obj, torch.Tensor):
        flat.append(obj)
        return _TENSOR
    if isinstance(obj, (tuple, list)):
        return (type(obj), tuple(_flatten_output(o, flat) for o in obj))
    if isinstance(obj, dict):
        return (dict, tuple((k, _flatten_output(v, flat)) for k, v in obj.items()))
    return ("constant", obj)


def _unflatten(spec, flat):
    if spec is _TENSOR:
        return next(flat)
    kind = spec[0]
    if kind == "constant":
        return spec[1]
    if kind is dict:
        return {k: _unflatten(s, flat) for k, s in spec[1]}
    items = [_unflatten(s, flat) for s in spec[1]]
    return kind(*items) if hasattr(kind, "_fields") else kind(items)


def _announce(names: Tuple[str, ...], values) -> None:
    """Show the params read by a compiled call to the outer handlers (e.g. SVI's collector)."""
    get_param = get_param_store().get_param
    for name, value in zip(names, values):
        apply_stack(new_message("param", name, get_param, (name, None, None, None), value=value))
