"""Householder flow (Tomczak & Welling, 2016): a product of ``count_transforms`` reflections
``x - 2 u (u.x)``, volume preserving; ``Householder``, ``ConditionalHouseholder``, helpers."""

import warnings
from typing import List, Optional

import torch
from torch.distributions.transforms import Transform

from pyrolite.distributions import constraints
from pyrolite.distributions.transforms.conditional import ConditionalTransformModule
from pyrolite.distributions.transforms.module import TransformModule
from pyrolite.nn.dense_nn import DenseNN


def _check_count(input_dim: int, count_transforms: int) -> None:
    if count_transforms < 1:
        raise ValueError(f"Number of Householder transforms, {count_transforms}, is less than 1!")
    if count_transforms > input_dim:
        warnings.warn(
            f"Number of Householder transforms, {count_transforms}, is greater than input "
            f"dimension {input_dim}, which is an over-parametrization!"
        )


class ConditionedHouseholder(Transform):
    """Householder reflections with fixed (unnormalized) vectors ``u_unnormed``
    of shape ``(..., count_transforms, input_dim)``."""

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True
    volume_preserving = True

    def __init__(self, input_dim: int, u_unnormed: Optional[torch.Tensor] = None):
        super().__init__(cache_size=1)
        self.input_dim = input_dim
        self._fixed_u_unnormed = u_unnormed

    def _u_unnormed(self) -> torch.Tensor:
        return self._fixed_u_unnormed

    def u(self) -> torch.Tensor:
        """The unit reflection vectors, shape ``(..., count_transforms, input_dim)``."""
        u_unnormed = self._u_unnormed()
        return u_unnormed / u_unnormed.norm(dim=-1, keepdim=True)

    @staticmethod
    def _reflect(x, u):
        return x - 2 * (x * u).sum(-1, keepdim=True) * u

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        u = self.u()
        for i in range(u.size(-2)):
            x = self._reflect(x, u[..., i, :])
        return x

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        u = self.u()
        for i in reversed(range(u.size(-2))):
            y = self._reflect(y, u[..., i, :])
        return y

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(x.shape[:-1])


class Householder(ConditionedHouseholder, TransformModule):
    """Householder flow with learnable ``u_unnormed`` of shape
    ``(count_transforms, input_dim)``; reflections apply in row order.

    >>> flow = Householder(3, count_transforms=2)
    >>> x = torch.randn(5, 3)
    >>> bool(torch.allclose(flow.inv(flow(x).clone()), x, atol=1e-6))
    True
    """

    def __init__(self, input_dim: int, count_transforms: int = 1):
        super().__init__(input_dim)
        _check_count(input_dim, count_transforms)
        self.u_unnormed = torch.nn.Parameter(torch.empty(count_transforms, input_dim))
        self.reset_parameters()

    def _u_unnormed(self):
        return self.u_unnormed

    def reset_parameters(self) -> None:
        stdv = self.u_unnormed.size(-1) ** -0.5
        with torch.no_grad():
            self.u_unnormed.uniform_(-stdv, stdv)


class ConditionalHouseholder(ConditionalTransformModule):
    """Householder flow whose reflection vectors are ``nn(context)``
    (``param_dims=[input_dim] * count_transforms``).

    >>> flow = conditional_householder(3, context_dim=2, count_transforms=2)
    >>> flow.condition(torch.randn(2))(torch.randn(5, 3)).shape
    torch.Size([5, 3])
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self, input_dim: int, nn: torch.nn.Module, count_transforms: int = 1):
        super().__init__()
        _check_count(input_dim, count_transforms)
        self.nn = nn
        self.input_dim = input_dim
        self.count_transforms = count_transforms

    def condition(self, context: torch.Tensor) -> ConditionedHouseholder:
        out = self.nn(context)
        if isinstance(out, torch.Tensor):
            out = (out,)
        return ConditionedHouseholder(self.input_dim, torch.stack(out, dim=-2))


def householder(input_dim: int, count_transforms: Optional[int] = None) -> Householder:
    """A :class:`Householder` flow; ``count_transforms`` defaults to ``input_dim // 2 + 1``
    (Pyro's choice).

    >>> householder(6).u_unnormed.shape
    torch.Size([4, 6])
    """
    if count_transforms is None:
        count_transforms = input_dim // 2 + 1
    return Householder(input_dim, count_transforms=count_transforms)


def conditional_householder(
    input_dim: int,
    context_dim: int,
    hidden_dims: Optional[List[int]] = None,
    count_transforms: int = 1,
) -> ConditionalHouseholder:
    """A :class:`ConditionalHouseholder` with a :class:`~pyrolite.nn.dense_nn.DenseNN`
    hypernet (hidden layers default to ``[10 * input_dim, 10 * input_dim]``).

    >>> conditional_householder(4, 2, count_transforms=2).nn.param_dims
    [4, 4]
    """
    if hidden_dims is None:
        hidden_dims = [input_dim * 10, input_dim * 10]
    nn = DenseNN(context_dim, hidden_dims, param_dims=[input_dim] * count_transforms)
    return ConditionalHouseholder(input_dim, nn, count_transforms)
