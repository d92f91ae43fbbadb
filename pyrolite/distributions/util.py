"""Shape and weighting helpers shared by distributions, traces and estimators."""

from typing import Optional, Sequence, Union

import torch

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
