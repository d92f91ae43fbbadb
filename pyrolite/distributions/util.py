"""Shape and weighting helpers shared by distributions, traces and estimators."""

import copy
import functools
import warnings
import weakref
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import torch
import torch.distributions.utils

Scale = Union[float, torch.Tensor]


def broadcast_shape(*shapes: Sequence[int], strict: bool = False) -> torch.Size:
    """The shape that tensors of the given ``shapes`` broadcast to (``torch.broadcast_shapes``).

    With ``strict=True`` a shape may only gain leading dims: its right-aligned sizes
    must equal the others', so a size-1 dim is never stretched. Either way a
    mismatch raises ``ValueError``, naming the dim, the two shapes and the fix.

    >>> broadcast_shape((3, 1), (4,))
    torch.Size([3, 4])
    >>> broadcast_shape((2, 3), (3,), strict=True)
    torch.Size([2, 3])
    """
    # Pure Python: torch.broadcast_shapes costs ~30 us a call, and distributions call this
    # on every step (expand under vectorized particles, compact parameters).
    out: list = []
    for shape in shapes:
        extra = len(shape) - len(out)
        if extra > 0:
            out[:0] = [None] * extra
        offset = len(out) - len(shape)
        for i, size in enumerate(shape):
            current = out[offset + i]
            if current is None or (current == 1 and not strict):
                out[offset + i] = size
            elif size != current and (strict or size != 1):
                _raise_mismatch(shapes, strict)
    return torch.Size([1 if size is None else size for size in out])


def _raise_mismatch(shapes: Sequence[Sequence[int]], strict: bool) -> None:
    mismatch = _first_mismatch(shapes, strict)
    if mismatch is not None:
        dim, a, b = mismatch
        sizes = f"sizes {a[dim]} and {b[dim]} at dim {dim}"
        if strict:
            raise ValueError(
                f"broadcast_shape(strict=True): shapes {a} and {b} differ ({sizes}); strict "
                "broadcasting may prepend dims but never stretches a size-1 dim. Fix: make "
                f"the sizes at dim {dim} equal (e.g. with .expand()), or pass strict=False."
            )
        raise ValueError(
            f"broadcast_shape: shapes {a} and {b} cannot be broadcast ({sizes}). Fix: make "
            f"the sizes at dim {dim} equal, or make one of them 1 (e.g. with .unsqueeze())."
        )
    raise AssertionError(f"broadcast_shape: no mismatch found in {shapes}")  # unreachable


def _first_mismatch(shapes: Sequence[Sequence[int]], strict: bool):
    """``(dim, shape_a, shape_b)`` at the rightmost dim where two shapes clash, else None."""
    for dim in range(-1, -max(map(len, shapes), default=0) - 1, -1):
        fixed = None  # the first shape that pins this dim's size
        for shape in shapes:
            if len(shape) < -dim or (shape[dim] == 1 and not strict):
                continue
            if fixed is None:
                fixed = shape
            elif shape[dim] != fixed[dim]:
                return dim, tuple(fixed), tuple(shape)
    return None


def sum_rightmost(value: torch.Tensor, dim: int) -> torch.Tensor:
    """Sum out the ``dim`` rightmost dims (all but ``-dim`` leftmost if negative).

    >>> sum_rightmost(torch.ones(2, 3, 4), 2)
    tensor([12., 12.])
    >>> sum_rightmost(torch.ones(2, 3, 4), float("inf"))  # more dims than it has: all
    tensor(24.)
    """
    if not isinstance(value, torch.Tensor) or dim == 0:
        return value
    if dim < 0:
        dim += value.dim()
    if dim == 0:
        return value
    if dim >= value.dim():
        return value.sum()
    return value.reshape(value.shape[: value.dim() - dim] + (-1,)).sum(-1)


def scale_and_mask(
    tensor: torch.Tensor, scale: Scale = 1.0, mask: Optional[Union[bool, torch.Tensor]] = None
) -> torch.Tensor:
    """Multiply by ``scale`` and zero out where ``mask`` is False.

    Masked entries become exactly 0 even where ``tensor`` is -inf or NaN, so a masked
    observation outside the support cannot poison a loss.

    >>> scale_and_mask(torch.tensor([1.0, float("-inf")]), 2.0, torch.tensor([True, False]))
    tensor([2., 0.])
    """
    if isinstance(mask, bool):
        if not mask:
            return torch.zeros_like(tensor) if isinstance(tensor, torch.Tensor) else 0.0
        mask = None
    if mask is not None:
        tensor = torch.where(mask, tensor, tensor.new_zeros(()))
    if not (isinstance(scale, (int, float)) and scale == 1.0):
        tensor = tensor * scale
    return tensor


def is_identically_zero(x) -> bool:
    return isinstance(x, (int, float)) and x == 0


def is_identically_one(x) -> bool:
    return isinstance(x, (int, float)) and x == 1


def at_enum_dim(values: torch.Tensor, dim: int, batch_shape, event_shape=()) -> torch.Tensor:
    """``values`` of shape ``(K,) + batch_shape + event_shape`` (``batch_shape`` None: an
    unexpanded support, ``(K, 1, ..., 1) + event_shape``) with K moved to batch dim ``dim``
    (negative, counted from the right of the batch dims): how enumeration lays out a
    site's values.

    >>> at_enum_dim(torch.arange(3), -3, None).shape
    torch.Size([3, 1, 1])
    >>> at_enum_dim(torch.zeros(3, 4, 1), -1, (4, 1)).shape  # a recycled dim: K replaces it
    torch.Size([4, 3])
    """
    size = values.shape[0]
    event_shape = tuple(event_shape)
    if batch_shape is None:
        batch_shape = ()
        values = values.reshape((size,) + event_shape)
    batch = len(batch_shape)
    if -dim > batch:
        return values.reshape(
            (size,) + (1,) * (-dim - 1 - batch) + tuple(batch_shape) + event_shape
        )
    # The dim lies inside the batch shape (a dim enumeration recycled): the batch has size 1
    # there (a site cannot depend on the dim's former holder); K takes its place.
    position = batch + dim
    return values.squeeze(1 + position).movedim(0, position)


def enum_shape(size: int, dim: int, batch_shape) -> tuple:
    """The batch shape of ``at_enum_dim`` of ``size`` values over ``batch_shape``."""
    batch_shape = tuple(batch_shape)
    if -dim > len(batch_shape):
        return (size,) + (1,) * (-dim - 1 - len(batch_shape)) + batch_shape
    position = len(batch_shape) + dim
    return batch_shape[:position] + (size,) + batch_shape[position + 1 :]


def compact_view(t: torch.Tensor) -> torch.Tensor:
    """``t`` without the dims it is only expanded along (stride 0: size 1 there instead), so
    elementwise work on it is not repeated; ``.expand`` the result back where needed."""
    if 0 not in t.stride():
        return t
    for d, (size, stride) in enumerate(zip(t.shape, t.stride())):
        if stride == 0 and size > 1:
            t = t.narrow(d, 0, 1)
    return t


def check_observation(name: str, fn, obs: torch.Tensor, *args, **kwargs) -> None:
    """Errors that name the site for observations a distribution cannot score: a bool
    tensor where the log-prob needs numbers, a tensor on another device than the
    distribution's parameters. Cheap: a dtype compare and a look at one parameter."""
    if obs.dtype is torch.bool:
        _check_bool_observation(name, fn, obs, *args, **kwargs)
    if obs.dim() == 0 and obs.device.type == "cpu":
        return  # a CPU scalar mixes with tensors on any device
    device = param_device(fn)
    if device is not None and device != obs.device:
        raise RuntimeError(
            f"at site '{name}', the observation is on device {obs.device} but the parameters "
            f"of {type(fn).__name__} are on device {device}. Move one to the other, e.g. "
            f"obs=data.to('{device}')."
        )


def param_device(fn) -> Optional[torch.device]:
    """The device of a distribution's first batched tensor parameter (looking through
    ``base_dist`` wrappers), or None. Reads attributes already set: no lazy property
    (``probs`` from ``logits``...) is computed."""
    for _ in range(8):
        attributes = getattr(fn, "__dict__", None)
        if attributes is None:
            return None
        for value in attributes.values():
            if isinstance(value, torch.Tensor) and value.dim() > 0:
                return value.device
        fn = attributes.get("base_dist")
    return None


def _check_bool_observation(name: str, fn, obs: torch.Tensor, *args, **kwargs) -> None:
    # Only bool observations pay for this probe; torch scores some of them (Categorical
    # casts to long) and fails on others (Bernoulli, Binomial: ``1 - value``).
    try:
        with torch.no_grad():
            fn.log_prob(obs, *args, **kwargs)
    except (RuntimeError, TypeError) as e:
        raise TypeError(
            f"at site '{name}', the observation is a bool tensor (shape {tuple(obs.shape)}), "
            f"which {type(fn).__name__}.log_prob cannot score ({e}). Pass numbers instead: "
            "obs=data.float()."
        ) from e


# --- Pyro's public helpers (``pyro.distributions.util``) ------------------------------------

logsumexp = torch.logsumexp
log_sum_exp = torch.logsumexp
broadcast_all = torch.distributions.utils.broadcast_all

_DISTRIBUTION_VALIDATION = __debug__


def enable_validation(is_validate: bool = True) -> None:
    """Turn torch.distributions' argument and support checks on or off (Pyro's
    ``pyro.distributions.enable_validation``; ``pyrolite.enable_validation`` also calls it).

    >>> enable_validation(False); is_validation_enabled()
    False
    >>> enable_validation(True); is_validation_enabled()
    True
    """
    global _DISTRIBUTION_VALIDATION
    _DISTRIBUTION_VALIDATION = bool(is_validate)
    torch.distributions.Distribution.set_default_validate_args(_DISTRIBUTION_VALIDATION)


def is_validation_enabled() -> bool:
    """Whether distributions check their arguments and ``log_prob`` values."""
    return _DISTRIBUTION_VALIDATION


@contextmanager
def validation_enabled(is_validate: bool = True) -> Iterator[None]:
    """Context manager: distribution validation on (or off) inside, restored afterwards."""
    saved = _DISTRIBUTION_VALIDATION
    enable_validation(is_validate)
    try:
        yield
    finally:
        enable_validation(saved)


def sum_leftmost(value: torch.Tensor, dim: int) -> torch.Tensor:
    """Sum out the ``dim`` leftmost dims (all but the ``-dim`` rightmost if negative).

    >>> sum_leftmost(torch.ones(2, 3, 4), 2)
    tensor([6., 6., 6., 6.])
    >>> sum_leftmost(torch.ones(2, 3, 4), -1).shape
    torch.Size([4])
    """
    if not isinstance(value, torch.Tensor):
        return value
    if dim < 0:
        dim += value.dim()
    if dim <= 0:
        return value
    return value.reshape((-1,) + value.shape[dim:]).sum(0)


def eye_like(value: torch.Tensor, m: int, n: Optional[int] = None) -> torch.Tensor:
    """An ``m x n`` identity (``n = m`` by default) with ``value``'s dtype and device.

    >>> eye_like(torch.zeros((), dtype=torch.float64), 2, 3)
    tensor([[1., 0., 0.],
            [0., 1., 0.]], dtype=torch.float64)
    """
    return torch.eye(m, m if n is None else n, dtype=value.dtype, device=value.device)


def scalar_like(prototype: torch.Tensor, fill_value: float) -> torch.Tensor:
    """A 0-dim tensor holding ``fill_value``, with ``prototype``'s dtype and device.

    >>> scalar_like(torch.zeros(3, dtype=torch.float64), 2.5)
    tensor(2.5000, dtype=torch.float64)
    """
    return torch.tensor(fill_value, dtype=prototype.dtype, device=prototype.device)


def gather(value: torch.Tensor, index: torch.Tensor, dim: int) -> torch.Tensor:
    """``value.gather(dim, index)`` with every other dim of ``value`` and ``index``
    broadcast against each other.

    >>> gather(torch.arange(6.0).reshape(3, 2), torch.tensor([[1]]), -1)
    tensor([[1.],
            [3.],
            [5.]])
    """
    ndim = max(value.dim(), index.dim())
    value = value.reshape((1,) * (ndim - value.dim()) + value.shape)
    index = index.reshape((1,) * (ndim - index.dim()) + index.shape)
    dim = dim % ndim
    shape = list(broadcast_shape(_unit_at(value.shape, dim), _unit_at(index.shape, dim)))
    value = value.expand(shape[:dim] + [value.size(dim)] + shape[dim + 1 :])
    index = index.expand(shape[:dim] + [index.size(dim)] + shape[dim + 1 :])
    return value.gather(dim, index.long())


def _unit_at(shape: Sequence[int], dim: int) -> tuple:
    return tuple(shape[:dim]) + (1,) + tuple(shape[dim + 1 :])


def deep_to(obj: Any, *args, **kwargs) -> Any:
    """A deep copy of ``obj`` with every tensor and module moved by ``.to(*args, **kwargs)``.

    Modules are first moved in place (``nn.Module.to``'s behaviour), then copied.

    >>> deep_to({"a": [torch.ones(1)]}, torch.float64)["a"][0].dtype
    torch.float64
    """
    memo = {}
    for value in _walk(obj):
        if isinstance(value, torch.nn.Module):
            value.to(*args, **kwargs)
        elif isinstance(value, torch.Tensor):
            memo[id(value)] = value.to(*args, **kwargs)
    return copy.deepcopy(obj, memo)


def detach(obj: Any) -> Any:
    """A deep copy of ``obj`` with every tensor detached.

    >>> detach({"a": [torch.ones(1, requires_grad=True)]})["a"][0].requires_grad
    False
    """
    memo = {id(v): v.detach() for v in _walk(obj) if isinstance(v, torch.Tensor)}
    return copy.deepcopy(obj, memo)


def _walk(obj: Any, seen: Optional[set] = None) -> Iterator[Any]:
    """Every object reachable from ``obj`` through containers, attributes and modules."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    yield obj
    if isinstance(obj, torch.Tensor):
        return
    if isinstance(obj, dict):
        children = list(obj.keys()) + list(obj.values())
    elif isinstance(obj, (list, tuple, set, frozenset)):
        children = list(obj)
    elif hasattr(obj, "__dict__") and not isinstance(obj, type):
        children = list(vars(obj).values())
    else:
        children = []
    for child in children:
        yield from _walk(child, seen)


def copy_docs_from(source_class: type, full_text: bool = False) -> Callable[[type], type]:
    """Class decorator: give the class and each of its methods without a docstring the
    docstring of ``source_class``'s same-named member (with ``full_text``, only the
    class's own; otherwise prefixed by where it came from).

    >>> class A:
    ...     def f(self):
    ...         "Does f."
    >>> @copy_docs_from(A)
    ... class B(A):
    ...     def f(self):
    ...         pass
    >>> B.f.__doc__
    'Does f.'
    """

    def decorator(destin_class: type) -> type:
        if not destin_class.__doc__:
            doc = source_class.__doc__ or ""
            if not full_text:
                doc = f"Copied from :class:`{source_class.__name__}`.\n\n{doc}"
            destin_class.__doc__ = doc
        for name, method in vars(destin_class).items():
            source = getattr(source_class, name, None)
            if callable(method) and not getattr(method, "__doc__", None) and source is not None:
                try:
                    method.__doc__ = source.__doc__
                except AttributeError:  # e.g. a builtin slot wrapper
                    pass
        return destin_class

    return decorator


def weakmethod(fn: Callable) -> Callable:
    """Bind a method weakly: ``obj.method`` holds only a weak reference to ``obj``, so
    storing it as a callback on ``obj`` makes no reference cycle.

    >>> class Foo:
    ...     @weakmethod
    ...     def hello(self):
    ...         return "hi"
    >>> foo = Foo()
    >>> foo.hello()
    'hi'
    """

    class _WeakMethod:
        def __get__(self, obj, obj_type=None):
            if obj is None:
                return fn
            ref = weakref.ref(obj)

            @functools.wraps(fn)
            def bound(*args, **kwargs):
                instance = ref()
                if instance is None:
                    raise AttributeError(f"{fn.__name__}: its object no longer exists")
                return fn(instance, *args, **kwargs)

            return bound

    return _WeakMethod()


@contextmanager
def ignore_jit_warnings(filter=None):
    """While a ``torch.jit.trace`` runs, silence its ``TracerWarning`` s (only those whose
    message matches an entry of ``filter``: a message regex, or ``(message, category)``).
    Outside tracing it installs no filter, so ordinary warnings are never hidden.

    >>> with ignore_jit_warnings():
    ...     torch.ones(2).tolist()
    [1.0, 1.0]
    """
    if not torch.jit.is_tracing():
        yield
        return
    with warnings.catch_warnings():
        if filter is None:
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        else:
            for entry in filter:
                message, category = (
                    (entry, torch.jit.TracerWarning) if isinstance(entry, str) else entry
                )
                warnings.filterwarnings("ignore", message=message, category=category)
        yield


def torch_jit_script_if_tracing(fn: Callable) -> Callable:
    """``fn``, compiled with ``torch.jit.script`` the first time it is called while
    tracing (so traced callers keep its data-dependent control flow)."""
    scripted = []

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if not torch.jit.is_tracing():
            return fn(*args, **kwargs)
        if not scripted:
            scripted.append(torch.jit.script(fn))
        return scripted[0](*args, **kwargs)

    return wrapper
