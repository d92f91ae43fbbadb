"""The effect-handler stack: messages, ``apply_stack``, ``effectful``, and what a model
may ask of its context (``am_i_wrapped``, ``get_mask``, ``get_plates``).

Every primitive (``sample``, ``param``, ``subsample``, ...) becomes a *message*, a
plain dict, that travels through the active handlers: innermost first through
``process_message``, then the default effect, then back outwards through
``postprocess_message``. Handlers communicate only through the message fields.
"""

import functools
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from ..params.param_store import ParamStoreDict as ParamStoreDict

# Handlers in the order they were entered; the last one is the innermost.
_STACK: List[Any] = []

Message = Dict[str, Any]
InferDict = Dict[str, Any]  # a message's ``infer`` field (a TypedDict in Pyro)


class NonlocalExit(Exception):
    """Raised by a handler (e.g. ``escape``) to leave the model at ``site``."""

    def __init__(self, site: Message, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.site = site

    def reset_stack(self) -> None:
        """Pop the handlers entered after the one that raised, and reset the rest.

        The run is abandoned, so what outer handlers recorded of it (e.g. an outer
        ``trace`` around ``queue``) is discarded, innermost first, up to a handler
        that hides the site (a ``block``), as in Pyro.
        """
        frame = self.site.get("_escape_frame")
        if frame is not None and frame in _STACK:
            del _STACK[_STACK.index(frame) + 1 :]
        for frame in reversed(_STACK):
            frame._reset()
            hide_fn = getattr(frame, "hide_fn", None)
            if hide_fn is not None and hide_fn(self.site):
                break


def active_handlers() -> Tuple[Any, ...]:
    """The handlers now active, outermost first (a snapshot; for handlers that ask whether
    another handler encloses them).

    >>> active_handlers()
    ()
    """
    return tuple(_STACK)


def am_i_wrapped() -> bool:
    """True when at least one handler is active."""
    return bool(_STACK)


def new_message(
    type: str,
    name: Optional[str],
    fn: Optional[Callable],
    args: tuple = (),
    kwargs: Optional[dict] = None,
    value: Any = None,
    is_observed: bool = False,
    infer: Optional[dict] = None,
) -> Message:
    """A message with every field present, so handlers never need ``.get``."""
    return {
        "type": type,
        "name": name,
        "fn": fn,
        "is_observed": is_observed,
        "args": args,
        "kwargs": {} if kwargs is None else kwargs,
        "value": value,
        "infer": {} if infer is None else infer,
        "scale": 1.0,
        "mask": None,
        "cond_indep_stack": (),
        "done": False,
        "stop": False,
        "continuation": None,
    }


def plate_batch_shape(msg: Message) -> Optional[Tuple[int, ...]]:
    """The batch shape a sample site's plates imply for its distribution.

    A batch size that is neither 1 nor the plate's size is an error that names
    the site, the plate, the dim and both sizes.
    """
    batch_shape = getattr(msg["fn"], "batch_shape", None)
    if batch_shape is None:
        return None
    target = list(batch_shape)
    for frame in msg["cond_indep_stack"]:
        if frame.dim is None or frame.size == -1:
            continue
        if -frame.dim > len(target):
            target = [1] * (-frame.dim - len(target)) + target
        actual = target[frame.dim]
        if actual != 1 and actual != frame.size:
            raise ValueError(
                f"Shape mismatch inside plate('{frame.name}') at site '{msg['name']}': "
                f"the plate has size {frame.size} at dim {frame.dim}, but the distribution's "
                f"batch_shape is {tuple(batch_shape)} (size {actual} at that dim). Fix: make "
                f"the parameters' size at dim {frame.dim} equal {frame.size} or 1, move the "
                "data dim with .permute()/.unsqueeze(), or declare event dims with .to_event()."
            )
        target[frame.dim] = frame.size
    return tuple(target)


def broadcast_site(msg: Message) -> None:
    """Expand ``msg["fn"]`` to its plates' batch shape, if the site needs it.

    Expansion is skipped when the site already holds a value (observed, replayed,
    conditioned) whose batch dims cover that shape: its log-prob broadcasts to the
    same tensor, without materializing the distribution's parameters at full size
    (e.g. a scalar ``scale`` over a million observations).
    """
    if msg["infer"].get("_subsample"):
        # A nested plate's subsample indices are not batched by the outer plates.
        return
    target = plate_batch_shape(msg)
    fn = msg["fn"]
    if target is None or target == tuple(fn.batch_shape):
        return
    value = msg["value"]
    if isinstance(value, torch.Tensor):
        value_batch = value.shape[: value.dim() - len(fn.event_shape)]
        if _broadcast_covers(value_batch, fn.batch_shape, target):
            return
    expanded = fn.expand(target)
    if getattr(fn, "has_rsample", None) != getattr(expanded, "has_rsample", None):
        expanded.has_rsample = fn.has_rsample
    msg["fn"] = expanded


def _broadcast_covers(a: tuple, b: tuple, target: tuple) -> bool:
    """Whether shapes ``a`` and ``b`` broadcast together to exactly ``target``."""
    n = max(len(a), len(b))
    if n < len(target):
        return False
    for i in range(1, n + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        size = x if y == 1 else y
        if (x != 1 and y != 1 and x != y) or size != (target[-i] if i <= len(target) else 1):
            return False
    return True


def default_process_message(msg: Message) -> None:
    """The effect when no handler supplied a value: broadcast to the plates, call ``fn``."""
    if msg["cond_indep_stack"] and msg["type"] == "sample":
        broadcast_site(msg)
    if msg["done"] or msg["is_observed"] or msg["value"] is not None:
        msg["done"] = True
        return
    msg["value"] = msg["fn"](*msg["args"], **msg["kwargs"])
    msg["done"] = True


def apply_stack(msg: Message) -> Message:
    """Send ``msg`` through the active handlers and apply its effect.

    A handler that sets ``msg["stop"]`` hides the message from every handler
    outside it; only handlers that saw the message postprocess it.
    """
    stack = _STACK
    seen = 0
    for frame in reversed(stack):
        seen += 1
        frame._process_message(msg)
        if msg["stop"]:
            break
    default_process_message(msg)
    for frame in stack[len(stack) - seen :]:
        frame._postprocess_message(msg)
    continuation = msg["continuation"]
    if continuation is not None:
        continuation(msg)
    return msg


def effectful(fn: Optional[Callable] = None, type: Optional[str] = None) -> Callable:
    """Turn ``fn`` into a primitive whose calls are messages of ``type``.

    Outside any handler the function is simply called.
    """
    if fn is None:
        return functools.partial(effectful, type=type)

    @functools.wraps(fn)
    def _fn(*args, name=None, infer=None, obs=None, **kwargs):
        if not _STACK:
            return fn(*args, **kwargs) if obs is None else obs
        msg = new_message(
            type, name, fn, args, kwargs, value=obs, is_observed=obs is not None, infer=infer
        )
        return apply_stack(msg)["value"]

    return _fn


@effectful(type="get_mask")
def _get_mask():
    return None


def get_mask():
    """The mask of the enclosing ``poutine.mask`` contexts (None when there is none): each
    mask handler combines its mask into this message's value. Lets a model skip work (e.g.
    expensive likelihoods) that would be masked anyway.

    >>> import torch
    >>> from pyrolite import poutine
    >>> get_mask() is None
    True
    >>> with poutine.mask(mask=torch.tensor([True, False])):
    ...     get_mask()
    tensor([ True, False])
    """
    return _get_mask(infer={"_do_not_trace": True})


@effectful(type="get_plates")
def _get_plates():
    return ()


def get_plates() -> tuple:
    """The ``CondIndepStackFrame`` of each enclosing plate, outermost first (a plate
    hidden by ``block_plate`` is left out): each active plate adds its frame to this
    message's value.

    >>> import pyrolite
    >>> with pyrolite.plate("a", 2), pyrolite.plate("b", 3):
    ...     [(f.name, f.dim, f.size) for f in get_plates()]
    [('a', -1, 2), ('b', -2, 3)]
    """
    return _get_plates(infer={"_do_not_trace": True})
