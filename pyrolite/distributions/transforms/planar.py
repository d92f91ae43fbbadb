"""Planar flow (Rezende & Mohamed, 2015): ``y = x + u' tanh(w.x + b)``, as ``Planar``
(learnable), ``ConditionalPlanar`` (parameters from a hypernet) and their helpers."""

from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch.distributions.transforms import Transform

from pyrolite.distributions import constraints
from pyrolite.distributions.transforms.conditional import ConditionalTransformModule
from pyrolite.distributions.transforms.module import TransformModule
from pyrolite.nn.dense_nn import DenseNN

_NO_INVERSE = (
    "{} has no closed-form inverse: only the output of its latest forward call (cached) can "
    "be inverted; sample through the transform instead of scoring external values"
)


class _ForwardWithLogDet:
    """Mixin for flows without a closed-form inverse whose log-det falls out of the forward
    pass: subclasses define ``_forward_and_log_det(x) -> (y, log_det)``. The log-det of the
    latest forward call is kept for the (usual) ``log_abs_det_jacobian(x, y)`` that follows,
    and only the latest output can be inverted (torch's ``cache_size=1``)."""

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        y, log_det = self._forward_and_log_det(x)
        self._cached_log_det = x, log_det
        return y

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        raise KeyError(_NO_INVERSE.format(type(self).__name__))

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        cached_x, log_det = getattr(self, "_cached_log_det", (None, None))
        # Only while torch's (x, y) cache holds x too, so clear_cache() drops both.
        if x is cached_x and self._cached_x_y[0] is x:
            return log_det
        return self._forward_and_log_det(x)[1]


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Inner product over the last dim, kept as a trailing dim of size 1 (batched matmul)."""
    return (a.unsqueeze(-2) @ b.unsqueeze(-1)).squeeze(-1)


class ConditionedPlanar(_ForwardWithLogDet, Transform):
    """A planar transform with fixed ``(bias, u, w)`` (what ``ConditionalPlanar`` returns)."""

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self, params: Optional[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = None):
        super().__init__(cache_size=1)
        self._fixed_params = params

    def _params(self) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self._fixed_params

    def _u_hat_w_bias(self):
        bias, u, w = self._params()
        # Reparametrize u so that w.u_hat >= -1, which keeps the map invertible.
        wu = _dot(w, u)
        u_hat = u + (F.softplus(wu) - 1 - wu) * w / _dot(w, w)
        return u_hat, w, bias

    def _forward_and_log_det(self, x):
        u_hat, w, bias = self._u_hat_w_bias()
        tanh = torch.tanh(_dot(x, w) + bias)
        # det(I + u_hat psi^T) = 1 + psi.u_hat with psi = tanh'(w.x + b) w.
        log_det = torch.log(torch.abs(1 + (1 - tanh.square()) * _dot(w, u_hat))).squeeze(-1)
        return x + u_hat * tanh, log_det


class Planar(ConditionedPlanar, TransformModule):
    """Planar flow with learnable ``bias`` (1,), ``u`` and ``w`` (``input_dim``,).

    Its inverse has no closed form: only values from the latest forward call invert.

    >>> flow = Planar(3)
    >>> x = torch.randn(5, 3)
    >>> flow(x).shape, flow.log_abs_det_jacobian(x, flow(x)).shape
    (torch.Size([5, 3]), torch.Size([5]))
    """

    def __init__(self, input_dim: int):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.empty(1))
        self.u = torch.nn.Parameter(torch.empty(input_dim))
        self.w = torch.nn.Parameter(torch.empty(input_dim))
        self.input_dim = input_dim
        self.reset_parameters()

    def _params(self):
        return self.bias, self.u, self.w

    def reset_parameters(self) -> None:
        stdv = self.input_dim**-0.5
        with torch.no_grad():
            self.w.uniform_(-stdv, stdv)
            self.u.uniform_(-stdv, stdv)
            self.bias.zero_()


class ConditionalPlanar(ConditionalTransformModule):
    """Planar flow whose ``(bias, u, w)`` are ``nn(context)`` (``param_dims=[1, d, d]``).

    >>> flow = conditional_planar(3, context_dim=2)
    >>> flow.condition(torch.randn(2))(torch.randn(5, 3)).shape
    torch.Size([5, 3])
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self, nn: torch.nn.Module):
        super().__init__()
        self.nn = nn

    def condition(self, context: torch.Tensor) -> ConditionedPlanar:
        params = self.nn(context)
        return ConditionedPlanar(params)


def planar(input_dim: int) -> Planar:
    """A :class:`Planar` flow on vectors of size ``input_dim``.

    >>> planar(4).u.shape
    torch.Size([4])
    """
    return Planar(input_dim)


def conditional_planar(
    input_dim: int, context_dim: int, hidden_dims: Optional[List[int]] = None
) -> ConditionalPlanar:
    """A :class:`ConditionalPlanar` with a :class:`~pyrolite.nn.dense_nn.DenseNN` hypernet
    (hidden layers default to ``[10 * input_dim, 10 * input_dim]``).

    >>> conditional_planar(4, 2).nn.param_dims
    [1, 4, 4]
    """
    if hidden_dims is None:
        hidden_dims = [input_dim * 10, input_dim * 10]
    nn = DenseNN(context_dim, hidden_dims, param_dims=[1, input_dim, input_dim])
    return ConditionalPlanar(nn)
