"""The ``torch_marginal`` opt_einsum backend (as ``pyro.ops.einsum.torch_marginal``):
log-space einsum whose backward pass gives each marked operand the log-marginal of its
dims: the log of the sum, over every other dim, of the product of all factors.

Messages are positional (laid out like the tensor they are sent to). The message sent to
an operand is its marginal; an einsum step turns the marginal ``m`` of its result ``r``
into its operands' marginals with the outside factor ``m - r``.

>>> import torch
>>> from pyrolite.ops.einsum import contract
>>> from pyrolite.ops.einsum.adjoint import backward, backward_result, require_backward
>>> x, y = torch.zeros(2), torch.log(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
>>> require_backward(x)
>>> backward(contract("a,ab->", x, y, backend="pyrolite.ops.einsum.torch_marginal"))
>>> [round(v, 4) for v in backward_result(x).exp().tolist()]
[3.0, 7.0]
"""

import weakref
from typing import Sequence

import torch

from . import torch_log
from .adjoint import Backward, requires_backward
from .adjoint import transpose as transpose


class _MarginalEinsumBackward(Backward):
    def __init__(self, equation: str, operands: Sequence[torch.Tensor], result: torch.Tensor):
        self.equation, self.operands = equation, tuple(operands)
        # Weak: the result owns this step; a strong reference would be a cycle.
        self.result = weakref.ref(result)

    def process(self, message):
        inputs, output = self.equation.replace(" ", "").split("->")
        inputs = inputs.split(",")
        extra_specs, extra = [], []
        if message is not None:
            result = self.result()
            # The factor from outside this step: marginal / result, 0 where both vanish.
            outside = torch.where(result == -float("inf"), message, message - result)
            extra_specs, extra = [output], [outside]
        steps = []
        for i, operand in enumerate(self.operands):
            if not requires_backward(operand):
                continue
            equation = ",".join(inputs + extra_specs) + "->" + inputs[i]
            marginal = torch_log.einsum(equation, *self.operands, *extra)
            steps.append((operand._pyro_backward, marginal))
        return steps


def einsum(equation: str, *operands: torch.Tensor) -> torch.Tensor:
    """Log-space einsum; the result carries a backward step (the operands' marginals)
    when an operand requires backward."""
    result = torch_log.einsum(equation, *operands)
    if any(requires_backward(x) for x in operands):
        result._pyro_backward = _MarginalEinsumBackward(equation, operands, result)
    return result


tensordot = torch_log.make_tensordot(einsum)

__all__ = ["einsum", "tensordot", "transpose"]
