"""Neural autoregressive flows (deep sigmoidal flows, Huang et al. 2018):
``NeuralAutoregressive``, its conditional form and the helpers; the monotone activations
they (and the block flows) may use are named in ``_ACTIVATIONS``."""

import math
from functools import partial
from typing import Callable, List, Optional

import torch
import torch.nn.functional as F
from torch.distributions import constraints
from torch.distributions.transforms import SigmoidTransform, TanhTransform, Transform

from pyrolite.distributions.transforms.basic import ELUTransform, LeakyReLUTransform
from pyrolite.distributions.transforms.conditional import ConditionalTransformModule
from pyrolite.distributions.transforms.module import TransformModule
from pyrolite.nn.auto_reg_nn import AutoRegressiveNN, ConditionalAutoRegressiveNN

_ACTIVATIONS = {
    "ELU": ELUTransform,
    "LeakyReLU": LeakyReLUTransform,
    "sigmoid": SigmoidTransform,
    "tanh": TanhTransform,
}


def activation_log_derivative(T: Transform, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``log T'(x)`` for a monotone activation ``T`` with ``y = T(x)``.

    Sigmoid and tanh use ``log sigmoid'(x) = -|x| - 2 log1p(exp(-|x|))`` (and its tanh
    analogue): as stable as torch's softplus forms and several times cheaper, which matters
    because the neural flows evaluate it on every hidden unit.

    >>> x = torch.tensor([-30.0, 0.0, 2.0])
    >>> t = SigmoidTransform()
    >>> bool(torch.allclose(activation_log_derivative(t, x, t(x)), t.log_abs_det_jacobian(x, t(x))))
    True
    """
    if isinstance(T, SigmoidTransform):
        a = x.abs()
        return -a - 2 * torch.log1p(torch.exp(-a))
    if isinstance(T, TanhTransform):
        a = 2 * x.abs()
        return math.log(4.0) - a - 2 * torch.log1p(torch.exp(-a))
    return T.log_abs_det_jacobian(x, y)


class NeuralAutoregressive(TransformModule):
    """The deep sigmoidal flow ``y_i = T^-1( sum_j w_ij T(a_ij x_i + b_ij) )`` (Huang et al.
    2018), with ``T`` the monotone ``activation`` (``"sigmoid"``, ``"tanh"``, ``"ELU"`` or
    ``"LeakyReLU"``) and, for each coordinate, ``hidden_units`` positive slopes ``a``,
    convex weights ``w`` and offsets ``b`` from ``autoregressive_nn(x)`` (three outputs of
    shape ``batch + (hidden_units, input_dim)``: pre-softplus ``a``, pre-softmax ``w``, ``b``).

    There is no closed-form inverse: ``inv`` works only for the ``y`` of the latest forward
    (cached) and raises ``NotImplementedError`` otherwise.

    >>> from pyrolite.nn.auto_reg_nn import AutoRegressiveNN
    >>> t = NeuralAutoregressive(AutoRegressiveNN(3, [10], param_dims=[8, 8, 8]), 8)
    >>> x = torch.randn(5, 3)
    >>> y = t(x)
    >>> t.log_abs_det_jacobian(x, y).shape, t.inv(y) is x
    (torch.Size([5]), True)
    """

    domain = constraints.independent(constraints.real, 1)
    codomain = constraints.independent(constraints.real, 1)
    bijective = True
    autoregressive = True

    def __init__(
        self, autoregressive_nn: Callable, hidden_units: int = 16, activation: str = "sigmoid"
    ) -> None:
        super().__init__(cache_size=1)
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f'Invalid activation function "{activation}": choose one of {sorted(_ACTIVATIONS)}'
            )
        self.arn = autoregressive_nn
        self.hidden_units = hidden_units
        self.T = _ACTIVATIONS[activation]()
        self._cached_intermediates = None

    @property
    def event_dim(self) -> int:
        return 1

    def _forward(self, x: torch.Tensor):
        """``y`` and the intermediates its log|det| needs."""
        A, W_pre, b = self.arn(x)
        A = F.softplus(A)
        C = A * x.unsqueeze(-2) + b
        T_C = self.T(C)
        log_W = F.log_softmax(W_pre, dim=-2)
        D = (log_W.exp() * T_C).sum(dim=-2)
        y = self.T.inv(D)
        log_dy_dD = -activation_log_derivative(self.T, y, D)
        return y, (log_dy_dD, A, log_W, C, T_C)

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        y, self._cached_intermediates = self._forward(x)
        return y

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(
            "NeuralAutoregressive has no closed-form inverse: inv(y) works only for the y "
            "returned by its latest forward call (cache_size=1)"
        )

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x_old, y_old = self._cached_x_y
        if self._cached_intermediates is not None and x is x_old and y is y_old:
            intermediates = self._cached_intermediates
        else:
            intermediates = self._forward(x)[1]
        log_dy_dD, A, log_W, C, T_C = intermediates
        # dy/dx = sum_j w_j a_j T'(C_j) / T'(y), summed in log space for stability.
        log_dD_dx = torch.logsumexp(
            log_W + torch.log(A) + activation_log_derivative(self.T, C, T_C), dim=-2
        )
        return (log_dD_dx + log_dy_dD).sum(-1)


class ConditionalNeuralAutoregressive(ConditionalTransformModule):
    """:class:`NeuralAutoregressive` whose network also reads a context:
    ``condition(context)`` returns the ``NeuralAutoregressive`` at that context.

    >>> t = conditional_neural_autoregressive(3, 2, width=4)
    >>> t.condition(torch.randn(2))(torch.randn(5, 3)).shape
    torch.Size([5, 3])
    """

    domain = constraints.independent(constraints.real, 1)
    codomain = constraints.independent(constraints.real, 1)
    bijective = True
    event_dim = 1

    def __init__(self, autoregressive_nn: Callable, **kwargs) -> None:
        super().__init__()
        self.nn = autoregressive_nn
        self.kwargs = kwargs

    def condition(self, context: torch.Tensor) -> NeuralAutoregressive:
        return NeuralAutoregressive(partial(self.nn, context=context), **self.kwargs)


def neural_autoregressive(
    input_dim: int,
    hidden_dims: Optional[List[int]] = None,
    activation: str = "sigmoid",
    width: int = 16,
) -> NeuralAutoregressive:
    """A :class:`NeuralAutoregressive` with ``width`` hidden units per coordinate over a new
    ``AutoRegressiveNN`` with hidden layers ``hidden_dims`` (default ``[3 * input_dim + 1]``).

    >>> neural_autoregressive(2, width=4).arn.layers[-1].out_features
    24
    """
    if hidden_dims is None:
        hidden_dims = [3 * input_dim + 1]
    arn = AutoRegressiveNN(input_dim, hidden_dims, param_dims=[width] * 3)
    return NeuralAutoregressive(arn, hidden_units=width, activation=activation)


def conditional_neural_autoregressive(
    input_dim: int,
    context_dim: int,
    hidden_dims: Optional[List[int]] = None,
    activation: str = "sigmoid",
    width: int = 16,
) -> ConditionalNeuralAutoregressive:
    """A :class:`ConditionalNeuralAutoregressive` over a new ``ConditionalAutoRegressiveNN``
    (defaults as :func:`neural_autoregressive`).

    >>> t = conditional_neural_autoregressive(2, 3)
    >>> t.condition(torch.zeros(3))(torch.zeros(4, 2)).shape
    torch.Size([4, 2])
    """
    if hidden_dims is None:
        hidden_dims = [3 * input_dim + 1]
    arn = ConditionalAutoRegressiveNN(input_dim, context_dim, hidden_dims, param_dims=[width] * 3)
    return ConditionalNeuralAutoregressive(arn, hidden_units=width, activation=activation)
