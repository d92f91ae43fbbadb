"""Spline coupling flows: ``SplineCoupling`` (the first ``split_dim`` coordinates go
through a learnable spline, the rest through splines whose parameters a hypernet computes
from the first ones) and the ``spline_coupling`` helper."""

from typing import Callable, List, Optional, Tuple

import torch
from torch.distributions import constraints

from pyrolite.distributions.transforms.module import TransformModule
from pyrolite.distributions.transforms.spline import (
    ConditionalSpline,
    Spline,
    spline_param_dims,
)
from pyrolite.nn.dense_nn import DenseNN


class SplineCoupling(TransformModule):
    """The coupling spline flow of Durkan et al. (2019) along the last dim.

    ``y1 = g(x1)`` with ``g`` a learnable element-wise :class:`Spline` (the identity when
    ``identity=True``) and ``y2 = h_{x1}(x2)`` with the splines' parameters from
    ``hypernet(x1)``, which returns the unnormalized widths, heights, derivatives (and lambdas
    for ``order="linear"``) flattened over the ``input_dim - split_dim`` upper coordinates.
    Forward and inverse are one hypernet pass each.

    >>> from pyrolite.nn.dense_nn import DenseNN
    >>> _ = torch.manual_seed(0)
    >>> t = SplineCoupling(3, 1, DenseNN(1, [10], param_dims=[2 * 4, 2 * 4, 2 * 3, 2 * 4]), 4)
    >>> x = torch.randn(5, 3)
    >>> y = t(x)
    >>> t.log_abs_det_jacobian(x, y).shape, bool(torch.allclose(t.inv(y.clone()), x, atol=1e-3))
    (torch.Size([5]), True)
    """

    domain = constraints.independent(constraints.real, 1)
    codomain = constraints.independent(constraints.real, 1)
    bijective = True

    def __init__(
        self,
        input_dim: int,
        split_dim: int,
        hypernet: Callable,
        count_bins: int = 8,
        bound: float = 3.0,
        order: str = "linear",
        identity: bool = False,
    ) -> None:
        super().__init__(cache_size=1)
        self.split_dim = split_dim
        self.lower_spline = Spline(split_dim, count_bins, bound, order)
        self.upper_spline = ConditionalSpline(
            hypernet, input_dim - split_dim, count_bins, bound, order
        )
        self.identity = identity
        self._cache_log_detJ = None

    @property
    def event_dim(self) -> int:
        return 1

    def _halves(self, v: torch.Tensor, inverse: bool) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(output, log|det dy/dx|)``: x -> y, or y -> x when ``inverse``."""
        v1, v2 = v[..., : self.split_dim], v[..., self.split_dim :]
        if self.identity:
            out1, log_det1 = v1, torch.zeros((), dtype=v.dtype, device=v.device)
        else:
            out1, log_det1 = self.lower_spline.spline_op(v1, inverse=inverse)
            log_det1 = log_det1.sum(-1)
        # The upper splines are conditioned on x1 (the lower input), both ways.
        x1 = out1 if inverse else v1
        out2, log_det2 = self.upper_spline.condition(x1).spline_op(v2, inverse=inverse)
        log_det = log_det1 + log_det2.sum(-1)
        # spline_op's inverse log|det| is log|dx/dy|; the cache holds log|dy/dx|.
        return torch.cat([out1, out2], dim=-1), -log_det if inverse else log_det

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        y, self._cache_log_detJ = self._halves(x, inverse=False)
        return y

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        x, self._cache_log_detJ = self._halves(y, inverse=True)
        return x

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x_old, y_old = self._cached_x_y
        if self._cache_log_detJ is not None and x is x_old and y is y_old:
            return self._cache_log_detJ
        return self._halves(x, inverse=False)[1]


def spline_coupling(
    input_dim: int,
    split_dim: Optional[int] = None,
    hidden_dims: Optional[List[int]] = None,
    count_bins: int = 8,
    bound: float = 3.0,
) -> SplineCoupling:
    """A linear-rational :class:`SplineCoupling` over a new ``DenseNN``: ``split_dim``
    defaults to ``input_dim // 2`` and ``hidden_dims`` to ``[10 * input_dim] * 2``.

    >>> spline_coupling(4, count_bins=4).upper_spline.nn.layers[-1].out_features
    30
    """
    if split_dim is None:
        split_dim = input_dim // 2
    if hidden_dims is None:
        hidden_dims = [input_dim * 10, input_dim * 10]
    param_dims = [(input_dim - split_dim) * k for k in spline_param_dims(count_bins)]
    hypernet = DenseNN(split_dim, hidden_dims, param_dims)
    return SplineCoupling(input_dim, split_dim, hypernet, count_bins=count_bins, bound=bound)
