"""The ``torch_sample`` opt_einsum backend (as ``pyro.ops.einsum.torch_sample``): log-space
einsum of packed operands whose backward pass draws the contracted dims from the exact
posterior of the factor graph (forward-filter backward-sample).

>>> import torch
>>> from pyrolite.ops.einsum import contract
>>> from pyrolite.ops.einsum.adjoint import backward, backward_result, require_backward
>>> x = torch.tensor([[0.0, -1e9], [-1e9, 0.0]]); x._pyro_dims = "ab"; require_backward(x)
>>> y = torch.tensor([-1e9, 0.0]); y._pyro_dims = "b"
>>> z = contract("ab,b->", x, y, backend="pyrolite.ops.einsum.torch_sample"); backward(z)
>>> backward_result(x).tolist(), backward_result(x)._pyro_sample_dims
([1, 1], 'ab')
"""

import torch

from .. import packed
from . import torch_log
from .adjoint import ChoiceEinsumBackward, requires_backward
from .adjoint import transpose_named as transpose


def _draw(logits: torch.Tensor) -> torch.Tensor:
    # Gumbel-max: one pass, no normalization, and -inf logits are never drawn.
    uniform = torch.rand_like(logits).clamp_(min=torch.finfo(logits.dtype).tiny)
    return (logits - uniform.log().neg().log()).argmax(-1)


def einsum(equation: str, *operands: torch.Tensor) -> torch.Tensor:
    """Log-space einsum of packed operands; the result is packed, and carries a backward
    step (a joint draw of the contracted dims) when an operand requires backward."""
    equation = packed.rename_equation(equation, *operands)
    output = equation.split("->")[1]
    result = torch_log.einsum(equation, *operands)
    result._pyro_dims = output
    if any(requires_backward(x) for x in operands):
        result._pyro_backward = ChoiceEinsumBackward(output, operands, _draw)
    return result


tensordot = torch_log.make_tensordot(einsum)

__all__ = ["einsum", "tensordot", "transpose"]
