"""Indexing that reads the same under batching and enumeration.

``vindex`` / ``Vindex`` do *vectorized* indexing: index tensors broadcast together (and
with the indexed tensor's batch dims, written ``...``) into the result's leading dims,
while sliced dims stay on the right. So ``Vindex(probs)[x]`` picks a row of a transition
matrix whether ``x`` is a number, a batch, or carries an enumeration dim far to the left:

>>> import torch
>>> probs = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
>>> x = torch.arange(2).reshape(2, 1, 1)  # an enumerated state in dim -3
>>> Vindex(probs)[x].shape
torch.Size([2, 1, 1, 2])
>>> Vindex(probs)[x][1, 0, 0]
tensor([0.2000, 0.8000])

``index`` / ``Index`` are ordinary ``tensor[key]`` with nested key tuples flattened.
"""

from typing import Any, List, Tuple

import torch

from ..distributions.util import broadcast_shape

__all__ = ["Index", "Vindex", "index", "vindex"]


def index(tensor: torch.Tensor, args: Any) -> torch.Tensor:
    """``tensor[args]`` where ``args`` may nest tuples, as built by code that composes keys.

    Nested tuples are flattened and consecutive ``Ellipsis`` merged, so a key part
    ``t = (Ellipsis, None)`` (meaning "unsqueeze on the right") composes as
    ``index(x, (Ellipsis, t))`` where ``x[..., t]`` would fail.

    >>> x = torch.zeros(2, 3)
    >>> index(x, (Ellipsis, (Ellipsis, None))).shape
    torch.Size([2, 3, 1])
    >>> index(x, ((1,), (slice(None),))).shape
    torch.Size([3])
    """
    if not isinstance(args, tuple):
        return tensor[args]
    flat: List[Any] = []
    for arg in _leaves(args):
        if not (arg is Ellipsis and flat and flat[-1] is Ellipsis):
            flat.append(arg)
    return tensor[tuple(flat)]


_INTEGER_DTYPES = frozenset(
    (torch.int64, torch.int32, torch.int16, torch.int8)
)  # not uint8: torch reads a uint8 index as a mask


def _plain_index(arg) -> bool:
    if isinstance(arg, torch.Tensor):
        return arg.dtype in _INTEGER_DTYPES and arg.dim() > 0
    return isinstance(arg, int) and not isinstance(arg, bool)


def _leaves(args: tuple):
    for arg in args:
        if isinstance(arg, tuple):
            yield from _leaves(arg)
        else:
            yield arg


def vindex(tensor: torch.Tensor, args: Any) -> torch.Tensor:
    """Vectorized indexing: index tensors broadcast into the result's left dims.

    ``args`` (a tuple, or one arg) holds integers, integer tensors (or lists / arrays of
    integers), slices, ``None`` and at most one ``Ellipsis``, which must come first.

    * Without a leading ``Ellipsis`` the tensor has no batch dims; args index its dims
      from the left, and dims left over on the right count as ``:``.
    * With a leading ``Ellipsis`` the args index the tensor's rightmost dims; the dims
      to their left are batch dims, which broadcast with the index tensors.
    * The result's shape is ``broadcast(batch_shape, *index_shapes) + sliced_sizes``:
      integers and index tensors remove their dim, each slice keeps the dims it selects,
      in order, on the right, and ``None`` inserts a size-1 dim there.

    When no index tensor has a dim this equals ``tensor[args]``. Slices may be any
    positive-step slice (Pyro refuses a non-``:`` slice before an index tensor, or after
    a leading ``Ellipsis``). Boolean masks are refused: a mask's result shape depends on
    its values, so it cannot broadcast.

    >>> x = torch.arange(24.0).reshape(2, 3, 4)
    >>> i = torch.tensor([[0], [1]])  # shape (2, 1)
    >>> j = torch.tensor([3, 2, 1])  # shape (3,)
    >>> Vindex(x)[i, :, j].shape  # broadcast((2, 1), (3,)) + (3,)
    torch.Size([2, 3, 3])
    >>> Vindex(x)[i, :, j][1, 0].tolist() == x[1, :, 3].tolist()
    True
    >>> Vindex(x)[..., j].shape  # batch (2, 3) broadcast with (3,)
    torch.Size([2, 3])
    """
    key = args if isinstance(args, tuple) else (args,)
    if len(key) <= tensor.dim() and all(map(_plain_index, key)):
        # Only integers and integer tensors, from the left: torch's advanced indexing puts
        # their broadcast shape first and keeps the rest, as vindex does (HMM code's
        # ``Vindex(probs)[x]``, once per time step: this path costs one indexing op).
        try:
            return tensor[key]
        except IndexError:
            pass  # the general path below names what is wrong
    shape = tuple(tensor.shape)
    has_batch = bool(key) and key[0] is Ellipsis
    event_args = list(key[1:] if has_batch else key)
    for position, arg in enumerate(event_args, start=int(has_batch)):
        if arg is Ellipsis:
            raise NotImplementedError(
                f"vindex: Ellipsis at position {position} of the key; it may only come first, "
                "where it stands for the batch dims of the indexed tensor"
            )
    n_indexed = sum(arg is not None for arg in event_args)
    if n_indexed > tensor.dim():
        raise IndexError(
            f"vindex: the key indexes {n_indexed} dims but the tensor of shape {shape} has "
            f"{tensor.dim()}; drop args or index a larger tensor"
        )
    if not has_batch:
        event_args += [slice(None)] * (tensor.dim() - n_indexed)
        n_indexed = tensor.dim()
    n_batch = tensor.dim() - n_indexed

    # None becomes a size-1 dim of the tensor, taken whole by a slice.
    for k, arg in enumerate(event_args):
        if arg is None:
            tensor = tensor.unsqueeze(n_batch + k)
            event_args[k] = slice(None)
    indices = [
        arg
        if isinstance(arg, slice)
        else _index_tensor(arg, shape, tensor.device, position=k + int(has_batch))
        for k, arg in enumerate(event_args)
    ]
    batch_shape = shape[:n_batch]
    index_shapes = [tuple(i.shape) for i in indices if isinstance(i, torch.Tensor)]
    try:
        broadcast_shape(batch_shape, *index_shapes)
    except ValueError:
        raise IndexError(
            f"vindex: index shapes {index_shapes} do not broadcast together with the batch "
            f"shape {batch_shape} of the tensor of shape {shape}; give each index its own "
            "dim (e.g. shape (K, 1) against (M,)) or a size-1 dim"
        ) from None

    is_slice = [isinstance(i, slice) for i in indices]
    if n_batch == 0 and is_slice == sorted(is_slice):
        # Every slice after every index and no batch dims: torch's own advanced indexing
        # already puts the broadcast index dims first (the usual ``Vindex(probs)[x]``).
        return tensor[tuple(indices)]
    return _gather(tensor, n_batch, indices)


def _gather(tensor: torch.Tensor, n_batch: int, indices: List[Any]) -> torch.Tensor:
    """vindex for any layout: every dim of ``tensor`` gets an index tensor, placed so that
    the batch dims and index tensors broadcast on the left and each slice's positions
    walk their own dim on the right, in order."""
    n_sliced = sum(isinstance(i, slice) for i in indices)
    device = tensor.device
    # Batch dims are right-aligned against the index shapes; a size-1 batch dim gives
    # index 0, which broadcasts.
    gather = [
        torch.arange(size, device=device).reshape((-1,) + (1,) * (n_batch - 1 - b + n_sliced))
        for b, size in enumerate(tensor.shape[:n_batch])
    ]
    sliced_seen = 0
    for dim, i in enumerate(indices, start=n_batch):
        if isinstance(i, slice):
            sliced_seen += 1
            kept = torch.arange(tensor.size(dim), device=device)[i]
            gather.append(kept.reshape((-1,) + (1,) * (n_sliced - sliced_seen)))
        else:
            gather.append(i.reshape(i.shape + (1,) * n_sliced))
    return tensor[tuple(gather)]


def _index_tensor(
    arg: Any, shape: Tuple[int, ...], device: torch.device, position: int
) -> torch.Tensor:
    """One integer-like index arg as a long tensor on the indexed tensor's device."""
    try:
        idx = arg if isinstance(arg, torch.Tensor) else torch.as_tensor(arg)
    except (TypeError, ValueError, RuntimeError):
        idx = None
    if idx is None:
        problem = (
            f"is {arg!r} of type {type(arg).__name__}; use an integer, an integer tensor, "
            "a slice, None, or a leading Ellipsis"
        )
    elif idx.dtype == torch.bool:
        problem = (
            "is a boolean mask; vindex takes integer indices only "
            "(use mask.nonzero() or torch.where)"
        )
    elif idx.is_floating_point() or idx.is_complex():
        problem = (
            f"has dtype {idx.dtype} (shape {tuple(idx.shape)}); index with an integer tensor, "
            "e.g. arg.long()"
        )
    else:
        return idx.to(device=device, dtype=torch.long)
    raise IndexError(
        f"vindex: arg {position} of the key, indexing a tensor of shape {shape}, {problem}"
    )


class Index:
    """``Index(x)[args]`` is ``index(x, args)``.

    >>> Index(torch.zeros(2, 3))[..., (Ellipsis, None)].shape
    torch.Size([2, 3, 1])
    """

    def __init__(self, tensor: torch.Tensor):
        self._tensor = tensor

    def __getitem__(self, args: Any) -> torch.Tensor:
        return index(self._tensor, args)


class Vindex:
    """``Vindex(x)[args]`` is ``vindex(x, args)``: write ``Vindex(x)[..., i, :, j]``
    rather than ``vindex(x, (Ellipsis, i, slice(None), j))``.

    >>> probs = torch.rand(5, 3, 3)  # a batch of 5 transition matrices
    >>> x = torch.zeros(3, 1, dtype=torch.long)  # states enumerated in dim -2
    >>> Vindex(probs)[..., x, :].shape  # broadcast((5,), (3, 1)) + (3,)
    torch.Size([3, 5, 3])
    """

    def __init__(self, tensor: torch.Tensor):
        self._tensor = tensor

    def __getitem__(self, args: Any) -> torch.Tensor:
        return vindex(self._tensor, args)
