"""The ``torch_log`` opt_einsum backend (as ``pyro.ops.einsum.torch_log``): einsum in log
space. Operands are log-values; the result is the log of the sum of products of their
exps, computed as an ordinary einsum of ``exp(x - max)`` so it stays finite.

>>> import torch
>>> x, y = torch.randn(2, 3), torch.randn(3)
>>> torch.allclose(einsum("ab,b->a", x, y), (x + y).logsumexp(-1))
True
"""

from typing import Callable, Sequence, Union

import opt_einsum
import torch


def _parse(equation: str):
    inputs, output = equation.replace(" ", "").split("->")
    return inputs.split(","), output


def einsum(equation: str, *operands: torch.Tensor) -> torch.Tensor:
    """``log(torch.einsum(equation, *exp(operands)))``, stable for large or ``-inf`` logs."""
    inputs, output = _parse(equation)
    shifted, total_shift = [], 0.0
    for spec, x in zip(inputs, operands):
        # Shift each operand by its max over the dims summed out, kept per output dim, so
        # that no output entry underflows to exp(-big) = 0.
        reduce = [i for i, d in enumerate(spec) if d not in output]
        if len(set(spec)) != len(spec) or x.numel() == 0:
            reduce = list(range(x.dim()))
        shift = x.detach()
        if reduce:
            shift = shift.amax(reduce, keepdim=True)
        shift = torch.where(torch.isfinite(shift), shift, torch.zeros_like(shift))
        shifted.append((x - shift).exp())
        kept = "".join(d for i, d in enumerate(spec) if i not in reduce)
        shift = shift.reshape([s for i, s in enumerate(shift.shape) if i not in reduce])
        # Lay the shift out along the output's dims (size 1 where it has none).
        order = sorted(range(len(kept)), key=lambda i: output.index(kept[i]))
        shift = shift.permute(order).reshape(
            [shift.shape[kept.index(d)] if d in kept else 1 for d in output]
        )
        total_shift = total_shift + shift
    result = torch.einsum(equation, *shifted).log()
    return result + total_shift


def make_tensordot(einsum_fn: Callable) -> Callable:
    """A ``tensordot(x, y, axes)`` that runs through ``einsum_fn`` (so one backend's
    einsum serves opt_einsum's BLAS-style pairwise calls too)."""

    def tensordot(x: torch.Tensor, y: torch.Tensor, axes: Union[int, Sequence] = 2):
        if isinstance(axes, int):
            x_axes = list(range(x.dim() - axes, x.dim()))
            y_axes = list(range(axes))
        else:
            x_axes, y_axes = [list(a) if not isinstance(a, int) else [a] for a in axes]
        x_axes = [a % x.dim() for a in x_axes]
        y_axes = [a % y.dim() for a in y_axes]
        x_symbols = [opt_einsum.get_symbol(i) for i in range(x.dim())]
        y_symbols = [opt_einsum.get_symbol(x.dim() + i) for i in range(y.dim())]
        for i, j in zip(x_axes, y_axes):
            y_symbols[j] = x_symbols[i]
        output = [s for i, s in enumerate(x_symbols) if i not in x_axes]
        output += [s for j, s in enumerate(y_symbols) if j not in y_axes]
        equation = "".join(x_symbols) + "," + "".join(y_symbols) + "->" + "".join(output)
        return einsum_fn(equation, x, y)

    return tensordot


tensordot = make_tensordot(einsum)


def transpose(a: torch.Tensor, axes: Sequence[int]) -> torch.Tensor:
    """``a.permute(axes)``."""
    return a.permute(axes)


__all__ = ["einsum", "make_tensordot", "tensordot", "transpose"]
