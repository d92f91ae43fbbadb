"""The ``torch_map`` opt_einsum backend (as ``pyro.ops.einsum.torch_map``): max-product in
log space over packed operands; its backward pass gives the contracted dims' maximizing
values (the joint MAP, Viterbi-style).

>>> import torch
>>> from pyrolite.ops.einsum import contract
>>> from pyrolite.ops.einsum.adjoint import backward, backward_result, require_backward
>>> x = torch.tensor([[0.0, 2.0], [1.0, 0.0]]); x._pyro_dims = "ab"; require_backward(x)
>>> z = contract("ab->", x, backend="pyrolite.ops.einsum.torch_map"); backward(z)
>>> float(z), backward_result(x).tolist()
(2.0, [0, 1])
"""

import torch

from .. import packed
from . import torch_log
from .adjoint import ChoiceEinsumBackward, log_joint, requires_backward
from .adjoint import transpose_named as transpose


def _argmax(logits: torch.Tensor) -> torch.Tensor:
    return logits.argmax(-1)


def einsum(equation: str, *operands: torch.Tensor) -> torch.Tensor:
    """Max over the contracted dims of the sum of packed operands; the result is packed,
    and carries a backward step (the maximizing values) when an operand requires it."""
    equation = packed.rename_equation(equation, *operands)
    inputs, output = equation.split("->")
    contract = "".join(sorted(set(inputs.replace(",", "")) - set(output)))
    total = log_joint(operands, output + contract)
    if contract:
        result = total.reshape(total.shape[: len(output)] + (-1,)).amax(-1)
    else:
        result = total + 0  # a fresh tensor: the names below must not land on an operand
    result._pyro_dims = output
    if any(requires_backward(x) for x in operands):
        result._pyro_backward = ChoiceEinsumBackward(output, operands, _argmax)
    return result


tensordot = torch_log.make_tensordot(einsum)

__all__ = ["einsum", "tensordot", "transpose"]
