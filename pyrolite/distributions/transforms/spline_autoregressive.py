"""Autoregressive spline flows: ``SplineAutoregressive`` (each coordinate's spline
parameters come from a MADE network of the coordinates before it), its conditional form and
the ``spline_autoregressive`` helpers."""

from functools import partial
from typing import Callable, List, Optional

import torch
from torch.distributions import constraints

from pyrolite.distributions.transforms.conditional import ConditionalTransformModule
from pyrolite.distributions.transforms.module import TransformModule
from pyrolite.distributions.transforms.spline import (
    ConditionalSpline,
    ConditionedSpline,
    _normalize_for_order,
    spline_param_dims,
)
from pyrolite.nn.auto_reg_nn import AutoRegressiveNN, ConditionalAutoRegressiveNN


class SplineAutoregressive(TransformModule):
    """An autoregressive spline flow (Durkan et al. 2019; Dolatabadi et al. 2020).

    ``autoregressive_nn`` maps ``x`` to unnormalized spline parameters of shapes
    ``batch + (count_bins, input_dim)`` (``count_bins - 1`` for the derivatives; lambdas
    only for ``order="linear"``), as an ``AutoRegressiveNN`` with ``param_dims =
    [K, K, K - 1, K]`` does; coordinate ``i`` then goes through its own spline, whose
    parameters depend on the coordinates before ``i`` only. The forward is one network pass;
    the inverse takes ``input_dim`` (or none for the ``y`` of the latest forward, cached).

    >>> from pyrolite.nn.auto_reg_nn import AutoRegressiveNN
    >>> _ = torch.manual_seed(0)
    >>> t = SplineAutoregressive(3, AutoRegressiveNN(3, [12], param_dims=[4, 4, 3, 4]), 4)
    >>> x = torch.randn(5, 3)
    >>> y = t(x)
    >>> t.log_abs_det_jacobian(x, y).shape, bool(torch.allclose(t.inv(y.clone()), x, atol=1e-3))
    (torch.Size([5]), True)
    """

    domain = constraints.independent(constraints.real, 1)
    codomain = constraints.independent(constraints.real, 1)
    bijective = True
    autoregressive = True

    def __init__(
        self,
        input_dim: int,
        autoregressive_nn: Callable,
        count_bins: int = 8,
        bound: float = 3.0,
        order: str = "linear",
    ) -> None:
        super().__init__(cache_size=1)
        self.arn = autoregressive_nn
        # Registered as a submodule too (sharing arn), so state_dicts carry both key sets.
        self.spline = ConditionalSpline(autoregressive_nn, input_dim, count_bins, bound, order)
        self._cache_log_detJ = None

    @property
    def event_dim(self) -> int:
        return 1

    def _spline_at(self, x: torch.Tensor) -> ConditionedSpline:
        params = [p.transpose(-1, -2) for p in self.spline.nn(x)]
        normalized = _normalize_for_order(params, self.spline.order)
        return ConditionedSpline(normalized, bound=self.spline.bound, order=self.spline.order)

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        y, self._cache_log_detJ = self._spline_at(x).spline_op(x)
        return y

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        # Coordinate i's spline needs x[:i] (in the network's order) only, so input_dim
        # fixed-point passes from zero invert exactly.
        x = torch.zeros_like(y)
        for _ in range(y.size(-1)):
            x, log_det_inverse = self._spline_at(x).spline_op(y, inverse=True)
        self._cache_log_detJ = -log_det_inverse
        return x

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x_old, y_old = self._cached_x_y
        if self._cache_log_detJ is not None and x is x_old and y is y_old:
            return self._cache_log_detJ.sum(-1)
        return self._spline_at(x).spline_op(x)[1].sum(-1)


class ConditionalSplineAutoregressive(ConditionalTransformModule):
    """:class:`SplineAutoregressive` whose network also reads a context:
    ``condition(context)`` returns the ``SplineAutoregressive`` at that context.

    >>> t = conditional_spline_autoregressive(3, 2, count_bins=4)
    >>> t.condition(torch.randn(2))(torch.randn(5, 3)).shape
    torch.Size([5, 3])
    """

    domain = constraints.independent(constraints.real, 1)
    codomain = constraints.independent(constraints.real, 1)
    bijective = True
    event_dim = 1

    def __init__(self, input_dim: int, autoregressive_nn: Callable, **kwargs) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.nn = autoregressive_nn
        self.kwargs = kwargs

    def condition(self, context: torch.Tensor) -> SplineAutoregressive:
        nn = partial(self.nn, context=context)
        return SplineAutoregressive(self.input_dim, nn, **self.kwargs)


def spline_autoregressive(
    input_dim: int,
    hidden_dims: Optional[List[int]] = None,
    count_bins: int = 8,
    bound: float = 3.0,
    order: str = "linear",
) -> SplineAutoregressive:
    """A :class:`SplineAutoregressive` over a new ``AutoRegressiveNN`` with hidden layers
    ``hidden_dims`` (default ``[10 * input_dim, 10 * input_dim]``).

    >>> spline_autoregressive(2, count_bins=4).arn.layers[-1].out_features
    30
    """
    if hidden_dims is None:
        hidden_dims = [input_dim * 10, input_dim * 10]
    param_dims = spline_param_dims(count_bins, order)
    arn = AutoRegressiveNN(input_dim, hidden_dims, param_dims=param_dims)
    return SplineAutoregressive(input_dim, arn, count_bins=count_bins, bound=bound, order=order)


def conditional_spline_autoregressive(
    input_dim: int,
    context_dim: int,
    hidden_dims: Optional[List[int]] = None,
    count_bins: int = 8,
    bound: float = 3.0,
    order: str = "linear",
) -> ConditionalSplineAutoregressive:
    """A :class:`ConditionalSplineAutoregressive` over a new ``ConditionalAutoRegressiveNN``
    (defaults as :func:`spline_autoregressive`).

    >>> t = conditional_spline_autoregressive(2, 3)
    >>> t.condition(torch.zeros(3))(torch.zeros(4, 2)).shape
    torch.Size([4, 2])
    """
    if hidden_dims is None:
        hidden_dims = [input_dim * 10, input_dim * 10]
    param_dims = spline_param_dims(count_bins, order)
    arn = ConditionalAutoRegressiveNN(input_dim, context_dim, hidden_dims, param_dims=param_dims)
    return ConditionalSplineAutoregressive(
        input_dim, arn, count_bins=count_bins, bound=bound, order=order
    )
