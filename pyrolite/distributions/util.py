"""Shape and weighting helpers shared by distributions, traces and estimators."""

from typing import Optional, Sequence, Union

import torch

Scale = Union[float, torch.Tensor]


def broadcast_shape(*shapes: Sequence[int], strict: bool = False) -> torch.Size:
    """Broadcast shapes right-aligned, as torch does; ``strict`` forbids size-1 stretching.

    >>> broadcast_shape((3, 1), (4,))
    torch.Size([3, 4])
    """
    reversed_shape = []
    for shape in shapes:
        for i, size in enumerate(reversed(shape)):
            if i >= len(reversed_shape):
                reversed_shape.append(size)
            elif reversed_shape[i] == 1 and not strict:
                reversed_shape[i] = size
            elif reversed_shape[i] != size and (size != 1 or strict):
                raise ValueError(
                    "shape mismatch: objects cannot be broadcast to a single shape: {}".format(
                        " vs ".join(map(str, shapes))
                    )
                )
    return torch.Size(reversed(reversed_shape))


def sum_rightmost(value: torch.Tensor, dim: int) -> torch.Tensor:
    """Sum out the ``dim`` rightmost dims (all but ``-dim`` leftmost if negative).

    >>> sum_rightmost(torch.ones(2, 3, 4), 2)
    tensor([12., 12.])
    """
    if not isinstance(value, torch.Tensor) or dim == 0:
        return value
    if dim < 0:
        dim += value.dim()
    if dim == 0:
        return value
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
