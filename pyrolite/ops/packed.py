"""Packed tensors (as ``pyro.ops.packed``): batch dims named by one character each.

A packed tensor drops its size-1 batch dims and names the rest in ``._pyro_dims`` (a
string aligned with its shape), so tensors from different plates and enumeration dims
combine by name instead of by position. ``pack`` and ``unpack`` convert.
"""

import math
from typing import Dict, Optional, Union

import torch

Number = Union[int, float]


def _dims(value) -> str:
    return value._pyro_dims if isinstance(value, torch.Tensor) else ""


def _named(value: torch.Tensor, dims: str) -> torch.Tensor:
    value._pyro_dims = dims
    return value


def pack(value, dim_to_symbol: Dict[int, str]):
    """Drop the size-1 dims of ``value`` and name the others by ``dim_to_symbol``
    (negative dim -> character). Numbers pass through.

    >>> x = pack(torch.zeros(2, 1, 3), {-3: "a", -2: "b", -1: "c"})
    >>> x.shape, x._pyro_dims
    (torch.Size([2, 3]), 'ac')
    """
    if not isinstance(value, torch.Tensor):
        return value
    kept = [d for d in range(-value.dim(), 0) if value.shape[d] != 1]
    missing = [d for d in kept if d not in dim_to_symbol]
    if missing:
        allowed = ", ".join(str(d) for d in sorted(dim_to_symbol))
        raise ValueError(
            f"Invalid tensor shape.\n  Allowed dims: {allowed}\n  Actual shape: "
            f"{tuple(value.shape)}\n  Try adding shape assertions for your model's sample "
            "values and distribution parameters."
        )
    dims = "".join(dim_to_symbol[d] for d in kept)
    return _named(value.reshape([value.shape[d] for d in kept]), dims)


def unpack(value, symbol_to_dim: Dict[str, int]):
    """The inverse of :func:`pack`: each named dim put back at its position
    (``symbol_to_dim``: character -> negative dim), size 1 elsewhere.

    >>> x = torch.zeros(3, 2); x._pyro_dims = "ca"
    >>> unpack(x, {"a": -3, "c": -1}).shape
    torch.Size([2, 1, 3])
    """
    if not isinstance(value, torch.Tensor):
        return value
    dims = _dims(value)
    if not dims:
        return value
    order = sorted(range(len(dims)), key=lambda i: symbol_to_dim[dims[i]])
    value = value.permute(order)
    shape = [1] * -min(symbol_to_dim[c] for c in dims)
    for position, i in enumerate(order):
        shape[symbol_to_dim[dims[i]]] = value.shape[position]
    return value.reshape(shape)


def broadcast_all(*values: torch.Tensor, dims: Optional[str] = None):
    """``values`` permuted and expanded to the same named dims (sorted, unless ``dims``
    gives the order).

    >>> x = torch.zeros(2); x._pyro_dims = "b"
    >>> y = torch.zeros(3); y._pyro_dims = "a"
    >>> [(t.shape, t._pyro_dims) for t in broadcast_all(x, y)]
    [(torch.Size([3, 2]), 'ab'), (torch.Size([3, 2]), 'ab')]
    """
    sizes = {}
    for value in values:
        sizes.update(zip(_dims(value), value.shape))
    if dims is None:
        dims = "".join(sorted(sizes))
    shape = [sizes[d] for d in dims]
    result = []
    for value in values:
        own = _dims(value)
        missing = [d for d in dims if d not in own]
        # Size-1 placeholders for the missing dims, then one permute into ``dims`` order.
        padded = value.reshape(value.shape + (1,) * len(missing))
        names = own + "".join(missing)
        padded = padded.permute([names.index(d) for d in dims])
        result.append(_named(padded.expand(shape), dims))
    return tuple(result)


def gather(value: torch.Tensor, index: torch.Tensor, dim: str) -> torch.Tensor:
    """``value`` indexed along its named ``dim`` by the packed ``index`` (broadcasting
    over the other names); the result's dims are the remaining ones, sorted.

    >>> v = torch.tensor([[1.0, 2.0], [3.0, 4.0]]); v._pyro_dims = "ab"
    >>> i = torch.tensor([1, 0]); i._pyro_dims = "a"
    >>> g = gather(v, i, "b"); g, g._pyro_dims
    (tensor([2., 3.]), 'a')
    """
    if dim not in _dims(value):
        return value
    dims = "".join(sorted((set(_dims(value)) | set(_dims(index))) - {dim}))
    index_dims = dims + dim
    value, index = broadcast_all(value, index, dims=index_dims)
    result = value.gather(-1, index[..., :1].long().contiguous()).squeeze(-1)
    return _named(result, dims)


def mul(lhs, rhs):
    """Elementwise product of packed tensors (or numbers), broadcast by name.

    >>> x = torch.tensor([1.0, 2.0]); x._pyro_dims = "a"
    >>> y = torch.tensor([3.0, 4.0, 5.0]); y._pyro_dims = "b"
    >>> z = mul(x, y); z.shape, z._pyro_dims
    (torch.Size([2, 3]), 'ab')
    """
    if not isinstance(lhs, torch.Tensor) or not isinstance(rhs, torch.Tensor):
        result = lhs * rhs
        if isinstance(result, torch.Tensor):
            result._pyro_dims = _dims(lhs if isinstance(lhs, torch.Tensor) else rhs)
        return result
    lhs, rhs = broadcast_all(lhs, rhs)
    return _named(lhs * rhs, lhs._pyro_dims)


def scale_and_mask(tensor: torch.Tensor, scale: Union[Number, torch.Tensor] = 1.0, mask=None):
    """``tensor * scale`` with entries zeroed where the packed ``mask`` is False (a
    ``False`` mask zeroes everything); no work when ``scale`` is 1 and ``mask`` None/True.
    ``scale`` must be a number or a 0-dim tensor (as in Pyro).

    >>> x = torch.tensor([1.0, 2.0, 3.0]); x._pyro_dims = "a"
    >>> m = torch.tensor([True, False, True]); m._pyro_dims = "a"
    >>> scale_and_mask(x, 2.0, m)
    tensor([2., 0., 6.])
    """
    if isinstance(scale, torch.Tensor) and scale.dim():
        raise NotImplementedError("non-scalar scale is not supported")
    dims = _dims(tensor)
    if not (isinstance(scale, Number) and scale == 1):
        tensor = _named(tensor * scale, dims)
    if mask is None or mask is True:
        return tensor
    if mask is False:
        return _named(torch.zeros_like(tensor), dims)
    tensor, mask = broadcast_all(tensor, mask)
    return _named(tensor.masked_fill(~mask, 0.0), tensor._pyro_dims)


def neg(value):
    """``-value``, keeping the dim names."""
    if not isinstance(value, torch.Tensor):
        return -value
    return _named(-value, _dims(value))


def exp(value):
    """``exp(value)``, keeping the dim names (``math.exp`` semantics for numbers)."""
    if not isinstance(value, torch.Tensor):
        return math.exp(value)
    return _named(value.exp(), _dims(value))


def rename_equation(equation: str, *operands: torch.Tensor) -> str:
    """``equation`` with each input's letters renamed to its operand's ``_pyro_dims``
    (a letter seen in several inputs takes the last operand's name).

    >>> x = torch.zeros(2, 3); x._pyro_dims = "ca"
    >>> y = torch.zeros(3, 2); y._pyro_dims = "ac"
    >>> rename_equation("a,b->ab", x, y)
    'c,a->ca'
    """
    inputs = equation.split("->")[0].split(",")
    if len(inputs) != len(operands):
        raise ValueError(
            f"rename_equation: {equation!r} has {len(inputs)} inputs but {len(operands)} "
            "operands were given; pass one packed operand per input."
        )
    mapping = {}
    for term, operand in zip(inputs, operands):
        mapping.update(zip(term, _dims(operand)))
    return "".join(mapping.get(c, c) for c in equation)


__all__ = [
    "broadcast_all",
    "exp",
    "gather",
    "mul",
    "neg",
    "pack",
    "rename_equation",
    "scale_and_mask",
    "unpack",
]
