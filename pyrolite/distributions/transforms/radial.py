"""Radial flow (Rezende & Mohamed, 2015): ``y = x + beta (x - x0) / (alpha + |x - x0|)``, as
``Radial`` (learnable), ``ConditionalRadial`` (parameters from a hypernet) and helpers."""

from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch.distributions.transforms import Transform

from pyrolite.distributions import constraints
from pyrolite.distributions.transforms.conditional import ConditionalTransformModule
from pyrolite.distributions.transforms.module import TransformModule
from pyrolite.distributions.transforms.planar import _ForwardWithLogDet
from pyrolite.nn.dense_nn import DenseNN


class ConditionedRadial(_ForwardWithLogDet, Transform):
    """A radial transform with fixed ``(x0, alpha_prime, beta_prime)``."""

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self, params: Optional[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = None):
        super().__init__(cache_size=1)
        self._fixed_params = params

    def _params(self) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self._fixed_params

    def _forward_and_log_det(self, x):
        x0, alpha_prime, beta_prime = self._params()
        # alpha > 0 and beta >= -alpha keep the map invertible.
        alpha = F.softplus(alpha_prime)
        beta = F.softplus(beta_prime) - alpha
        diff = x - x0
        r = torch.linalg.vector_norm(diff, dim=-1, keepdim=True)
        h = 1 / (alpha + r)
        beta_h = beta * h
        # (d - 1) directions scale by 1 + beta h; the radial one also by beta h'(r) r.
        radial = torch.log1p(beta_h - beta_h * h * r)
        log_det = ((x.size(-1) - 1) * torch.log1p(beta_h) + radial).squeeze(-1)
        return torch.addcmul(x, beta_h, diff), log_det


class Radial(ConditionedRadial, TransformModule):
    """Radial flow with learnable ``x0`` (``input_dim``,), ``alpha_prime`` and
    ``beta_prime`` (1,). Only values from the latest forward call invert.

    >>> flow = Radial(3)
    >>> x = torch.randn(5, 3)
    >>> flow(x).shape, flow.log_abs_det_jacobian(x, flow(x)).shape
    (torch.Size([5, 3]), torch.Size([5]))
    """

    def __init__(self, input_dim: int):
        super().__init__()
        self.x0 = torch.nn.Parameter(torch.empty(input_dim))
        self.alpha_prime = torch.nn.Parameter(torch.empty(1))
        self.beta_prime = torch.nn.Parameter(torch.empty(1))
        self.input_dim = input_dim
        self.reset_parameters()

    def _params(self):
        return self.x0, self.alpha_prime, self.beta_prime

    def reset_parameters(self) -> None:
        stdv = self.x0.size(0) ** -0.5
        with torch.no_grad():
            for p in (self.alpha_prime, self.beta_prime, self.x0):
                p.uniform_(-stdv, stdv)


class ConditionalRadial(ConditionalTransformModule):
    """Radial flow whose ``(x0, alpha_prime, beta_prime)`` are ``nn(context)``
    (``param_dims=[d, 1, 1]``).

    >>> flow = conditional_radial(3, context_dim=2)
    >>> flow.condition(torch.randn(2))(torch.randn(5, 3)).shape
    torch.Size([5, 3])
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self, nn: torch.nn.Module):
        super().__init__()
        self.nn = nn

    def condition(self, context: torch.Tensor) -> ConditionedRadial:
        return ConditionedRadial(self.nn(context))


def radial(input_dim: int) -> Radial:
    """A :class:`Radial` flow on vectors of size ``input_dim``.

    >>> radial(4).x0.shape
    torch.Size([4])
    """
    return Radial(input_dim)


def conditional_radial(
    input_dim: int, context_dim: int, hidden_dims: Optional[List[int]] = None
) -> ConditionalRadial:
    """A :class:`ConditionalRadial` with a :class:`~pyrolite.nn.dense_nn.DenseNN` hypernet
    (hidden layers default to ``[10 * input_dim, 10 * input_dim]``).

    >>> conditional_radial(4, 2).nn.param_dims
    [4, 1, 1]
    """
    if hidden_dims is None:
        hidden_dims = [input_dim * 10, input_dim * 10]
    nn = DenseNN(context_dim, hidden_dims, param_dims=[input_dim, 1, 1])
    return ConditionalRadial(nn)
