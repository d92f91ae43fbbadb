"""Element-wise monotonic rational splines on ``[-bound, bound]`` (identity outside):
``monotonic_rational_spline`` (the one implementation, forward and inverse, linear and
quadratic), ``ConditionedSpline``, ``Spline``, ``ConditionalSpline`` and their helpers."""

from functools import partial
from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch.distributions import constraints
from torch.distributions.transforms import Transform

from pyrolite.distributions.transforms.conditional import ConditionalTransformModule
from pyrolite.distributions.transforms.module import TransformModule
from pyrolite.nn.dense_nn import DenseNN

SplineParams = Tuple[torch.Tensor, ...]


def _interior_knots(sizes: torch.Tensor, bound: float, min_size: float) -> torch.Tensor:
    """The ``K - 1`` interior knot positions in ``(-bound, bound)`` from normalized bin
    ``sizes`` (``(..., K)``, summing to one), each bin kept at least ``min_size`` of the
    range; the end knots are ``-bound`` and ``bound`` exactly."""
    count_bins = sizes.size(-1)
    # Knot j is -bound + 2 bound (j min_size + (1 - K min_size) (s_1 + ... + s_j)), written
    # as one scale and one offset of the cumulative sum (the full-size passes dominate).
    scale = 2 * bound * (1 - min_size * count_bins)
    j = torch.arange(1, count_bins, dtype=sizes.dtype, device=sizes.device)
    offset = 2 * bound * min_size * j - bound
    return torch.cumsum(sizes[..., :-1], dim=-1) * scale + offset


def monotonic_rational_spline(
    inputs: torch.Tensor,
    widths: torch.Tensor,
    heights: torch.Tensor,
    derivatives: torch.Tensor,
    lambdas: Optional[torch.Tensor] = None,
    inverse: bool = False,
    bound: float = 3.0,
    min_bin_width: float = 1e-3,
    min_bin_height: float = 1e-3,
    min_derivative: float = 1e-3,
    min_lambda: float = 0.025,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """A monotonic spline on ``[-bound, bound]`` and its element-wise log|dy/dx|.

    ``widths``, ``heights`` (``(..., K)``, each summing to one), ``derivatives``
    (``(..., K - 1)``, positive: the slopes at the interior knots) and, for the linear
    rational spline of Dolatabadi et al. (2020), ``lambdas`` (``(..., K)`` in ``(0, 1)``: where
    each bin's middle knot sits) broadcast against ``inputs[..., None]``. Without ``lambdas``
    it is the rational-quadratic spline of Durkan et al. (2019). The slope at ``±bound`` is
    ``1 - min_derivative`` (Pyro's convention) and the map is the identity outside, so it is
    a bijection of the real line. With ``inverse=True`` it returns ``x`` from ``y`` and
    log|dx/dy|.

    >>> k = torch.full((4,), 0.25)
    >>> y, log_det = monotonic_rational_spline(torch.tensor([-4.0, 0.0, 1.5]), k, k,
    ...                                        torch.ones(3), bound=3.0)
    >>> [round(v, 3) for v in y.tolist()], log_det.abs().max().item() < 1e-2
    ([-4.0, 0.0, 1.5], True)
    """
    inside = (inputs >= -bound) & (inputs <= bound)
    clamped = inputs.clamp(-bound, bound)
    count_bins = widths.size(-1)

    knots_x = _interior_knots(widths, bound, min_bin_width)
    knots_y = _interior_knots(heights, bound, min_bin_height)
    # Only the one bin each input falls in is needed: gather its ends and slopes and work on
    # input-sized tensors from there on.
    located = knots_y if inverse else knots_x
    # Counting knots at or below each input one knot at a time (as uint8) is several times
    # faster than a comparison reduced over a short trailing dim.
    if count_bins <= 256:
        count = torch.zeros_like(clamped, dtype=torch.uint8)
        for j in range(count_bins - 1):
            count = count + torch.ge(clamped, located[..., j]).view(torch.uint8)
    else:
        count = (clamped[..., None] >= located).sum(-1)
    bin_idx = count.long().unsqueeze(-1)
    batch = bin_idx.shape[:-1]
    lower = (bin_idx - 1).clamp(min=0)
    upper = bin_idx.clamp(max=count_bins - 2)
    # Float masks blended with lerp (exact at 0 and 1): torch.where is far slower on CPU,
    # and every value blended here is finite.
    first = (bin_idx.squeeze(-1) == 0).to(clamped.dtype)
    last = (bin_idx.squeeze(-1) == count_bins - 1).to(clamped.dtype)

    def select(params: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        params = params.expand(batch + params.shape[-1:])
        return params.gather(-1, index).squeeze(-1)

    def constant(value: float) -> torch.Tensor:
        return torch.tensor(value, dtype=clamped.dtype, device=clamped.device)

    def knot_pair(knots: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        if count_bins == 1:
            return torch.full_like(clamped, -bound), torch.full_like(clamped, bound)
        left = torch.lerp(select(knots, lower), constant(-bound), first)
        right = torch.lerp(select(knots, upper), constant(bound), last)
        return left, right

    x_k, x_k1 = knot_pair(knots_x)
    y_k, y_k1 = knot_pair(knots_y)
    w_k, h_k = x_k1 - x_k, y_k1 - y_k
    # Slope 1 - min_derivative at the ends (Pyro's convention): close to the identity tails'
    # slope of 1, so the density barely kinks there.
    end_slope = 1.0 - min_derivative
    if count_bins == 1:
        d_k = d_k1 = torch.full_like(clamped, end_slope)
    else:
        d_k = torch.lerp(min_derivative + select(derivatives, lower), constant(end_slope), first)
        d_k1 = torch.lerp(min_derivative + select(derivatives, upper), constant(end_slope), last)
    slope = h_k / w_k

    if lambdas is None:
        outputs, log_det = _rational_quadratic(
            clamped, inverse, x_k, w_k, y_k, h_k, d_k, d_k1, slope
        )
    else:
        lam = (1 - 2 * min_lambda) * select(lambdas, bin_idx) + min_lambda
        outputs, log_det = _linear_rational(
            clamped, inverse, x_k, w_k, y_k, h_k, d_k, d_k1, slope, lam
        )
    # log_det is finite (the spline ran on clamped inputs), so a product masks it cheaply;
    # the outputs need where, since inputs may be infinite.
    return torch.where(inside, outputs, inputs), log_det * inside.to(log_det.dtype)


def _rational_quadratic(v, inverse, x_k, w_k, y_k, h_k, d_k, d_k1, slope):
    # Durkan et al. (2019), eqs. 4-8; the inverse solves the bin's quadratic in theta with
    # the cancellation-free root 2c / (-b - sqrt(b^2 - 4ac)).
    curvature = d_k + d_k1 - 2 * slope
    if inverse:
        dy = v - y_k
        a = h_k * (slope - d_k) + dy * curvature
        b = h_k * d_k - dy * curvature
        c = -slope * dy
        discriminant = (b.pow(2) - 4 * a * c).clamp(min=0.0)
        theta = (2 * c) / (-b - torch.sqrt(discriminant))
        out = theta * w_k + x_k
    else:
        theta = (v - x_k) / w_k
    theta_1m = theta * (1 - theta)
    denominator = slope + curvature * theta_1m
    if not inverse:
        out = y_k + h_k * (slope * theta.pow(2) + d_k * theta_1m) / denominator
    numerator = slope.pow(2) * (
        d_k1 * theta.pow(2) + 2 * slope * theta_1m + d_k * (1 - theta).pow(2)
    )
    log_det = torch.log(numerator) - 2 * torch.log(denominator)
    return out, -log_det if inverse else log_det


def _linear_rational(v, inverse, x_k, w_k, y_k, h_k, d_k, d_k1, slope, lam):
    # Dolatabadi et al. (2020), Alg. 1: each bin is two linear-rational pieces meeting at
    # relative position lam, with weights (1, w_m, w_b) chosen for C1 continuity.
    w_b = torch.sqrt(d_k / d_k1)
    w_m = (lam * d_k + (1 - lam) * w_b * d_k1) / slope
    y_b = y_k + h_k
    y_m = ((1 - lam) * y_k + lam * w_b * y_b) / ((1 - lam) + lam * w_b)
    if inverse:
        left = v <= y_m
        phi_left = lam * (y_k - v) / ((y_k - v) + w_m * (v - y_m))
        phi_right = (w_m * (y_m - v) + lam * w_b * (v - y_b)) / (w_m * (y_m - v) + w_b * (v - y_b))
        phi = torch.where(left, phi_left, phi_right)
        out = x_k + phi * w_k
    else:
        phi = (v - x_k) / w_k
        left = phi <= lam
    den_left = (lam - phi) + w_m * phi
    den_right = w_m * (1 - phi) + w_b * (phi - lam)
    if not inverse:
        out_left = (y_k * (lam - phi) + w_m * y_m * phi) / den_left
        out_right = (w_m * y_m * (1 - phi) + w_b * y_b * (phi - lam)) / den_right
        out = torch.where(left, out_left, out_right)
    deriv_left = w_m * lam * (y_m - y_k) / den_left.pow(2)
    deriv_right = w_m * w_b * (1 - lam) * (y_b - y_m) / den_right.pow(2)
    log_det = torch.log(torch.where(left, deriv_left, deriv_right)) - torch.log(w_k)
    return out, -log_det if inverse else log_det


def _normalize(
    widths: torch.Tensor,
    heights: torch.Tensor,
    derivatives: torch.Tensor,
    lambdas: Optional[torch.Tensor],
) -> SplineParams:
    """Unconstrained spline parameters to the ones ``monotonic_rational_spline`` takes."""
    params = (F.softmax(widths, dim=-1), F.softmax(heights, dim=-1), F.softplus(derivatives))
    if lambdas is None:
        return params
    return params + (torch.sigmoid(lambdas),)


class ConditionedSpline(Transform):
    """The element-wise spline with given (normalized) parameters, or a callable that returns
    them; ``order`` is ``"linear"`` (parameters ``widths, heights, derivatives, lambdas``) or
    ``"quadratic"`` (no ``lambdas``).

    >>> k = torch.full((2, 4), 0.25)
    >>> t = ConditionedSpline((k, k, torch.ones(2, 3)), order="quadratic")
    >>> [round(v, 3) for v in t(torch.tensor([[0.5, 4.0]]))[0].tolist()]
    [0.5, 4.0]
    """

    domain = constraints.real
    codomain = constraints.real
    bijective = True

    def __init__(
        self,
        params: Union[SplineParams, Callable[[], SplineParams]],
        bound: float = 3.0,
        order: str = "linear",
    ) -> None:
        super().__init__(cache_size=1)
        if order not in ("linear", "quadratic"):
            raise ValueError(f"Spline: order must be 'linear' or 'quadratic', got {order!r}")
        self._params = params
        self.bound = bound
        self.order = order
        self._cache_log_detJ = None

    def spline_op(
        self, v: torch.Tensor, inverse: bool = False
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(output, log|d output / d v|)`` of the spline (its inverse when ``inverse``),
        without touching the cache."""
        params = self._params() if callable(self._params) else self._params
        widths, heights, derivatives = params[:3]
        lambdas = params[3] if self.order == "linear" else None
        return monotonic_rational_spline(
            v, widths, heights, derivatives, lambdas, inverse=inverse, bound=self.bound
        )

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        y, log_det = self.spline_op(x, inverse=False)
        self._cache_log_detJ = log_det
        return y

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        x, log_det = self.spline_op(y, inverse=True)
        self._cache_log_detJ = -log_det
        return x

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x_old, y_old = self._cached_x_y
        if self._cache_log_detJ is not None and x is x_old and y is y_old:
            return self._cache_log_detJ
        return self.spline_op(x, inverse=False)[1]


class Spline(ConditionedSpline, TransformModule):
    """A learnable element-wise monotonic spline over ``input_dim`` coordinates (Durkan et
    al. 2019; Dolatabadi et al. 2020): ``count_bins`` bins on ``[-bound, bound]``, identity
    outside. Parameters: ``unnormalized_widths``, ``unnormalized_heights`` (``(input_dim,
    count_bins)``), ``unnormalized_derivatives`` (``(input_dim, count_bins - 1)``) and, for
    ``order="linear"``, ``unnormalized_lambdas``.

    >>> t = Spline(2, count_bins=4)
    >>> x = torch.tensor([[0.3, -5.0]])
    >>> y = t(x)
    >>> t.log_abs_det_jacobian(x, y).shape, float(y[0, 1])
    (torch.Size([1, 2]), -5.0)
    """

    def __init__(
        self, input_dim: int, count_bins: int = 8, bound: float = 3.0, order: str = "linear"
    ) -> None:
        super().__init__(self._params, bound=bound, order=order)
        self.input_dim = input_dim
        self.count_bins = count_bins
        self.unnormalized_widths = torch.nn.Parameter(torch.randn(input_dim, count_bins))
        self.unnormalized_heights = torch.nn.Parameter(torch.randn(input_dim, count_bins))
        self.unnormalized_derivatives = torch.nn.Parameter(torch.randn(input_dim, count_bins - 1))
        if order == "linear":
            self.unnormalized_lambdas = torch.nn.Parameter(torch.rand(input_dim, count_bins))

    def _params(self) -> SplineParams:
        lambdas = self.unnormalized_lambdas if self.order == "linear" else None
        return _normalize(
            self.unnormalized_widths,
            self.unnormalized_heights,
            self.unnormalized_derivatives,
            lambdas,
        )


class ConditionalSpline(ConditionalTransformModule):
    """An element-wise spline whose parameters ``nn(context)`` computes: ``nn`` returns
    unnormalized widths, heights, derivatives (and lambdas for ``order="linear"``), each of
    shape ``batch + (input_dim * count_bins,)`` (``count_bins - 1`` for derivatives).

    >>> from pyrolite.nn.dense_nn import DenseNN
    >>> nn = DenseNN(3, [16], param_dims=[2 * 4, 2 * 4, 2 * 3, 2 * 4])
    >>> t = ConditionalSpline(nn, 2, 4).condition(torch.randn(5, 3))
    >>> t(torch.randn(5, 2)).shape
    torch.Size([5, 2])
    """

    domain = constraints.real
    codomain = constraints.real
    bijective = True
    event_dim = 0

    def __init__(
        self,
        nn: Callable,
        input_dim: int,
        count_bins: int,
        bound: float = 3.0,
        order: str = "linear",
    ) -> None:
        super().__init__()
        self.nn = nn
        self.input_dim = input_dim
        self.count_bins = count_bins
        self.bound = bound
        self.order = order

    def _params(self, context: torch.Tensor) -> SplineParams:
        outputs = self.nn(context)
        shapes = [self.count_bins, self.count_bins, self.count_bins - 1, self.count_bins]
        shaped = [
            p.reshape(p.shape[:-1] + (self.input_dim, k))
            for p, k in zip(outputs, shapes[: len(outputs)])
        ]
        return _normalize_for_order(shaped, self.order)

    def condition(self, context: torch.Tensor) -> ConditionedSpline:
        return ConditionedSpline(partial(self._params, context), bound=self.bound, order=self.order)


def _normalize_for_order(params: Sequence[torch.Tensor], order: str) -> SplineParams:
    expected = 4 if order == "linear" else 3
    if len(params) != expected:
        raise ValueError(
            f"a {order} spline needs {expected} parameter tensors from its network "
            f"(widths, heights, derivatives{', lambdas' if order == 'linear' else ''}), "
            f"got {len(params)}"
        )
    return _normalize(params[0], params[1], params[2], params[3] if order == "linear" else None)


def spline_param_dims(count_bins: int, order: str = "linear") -> List[int]:
    """Per-coordinate parameter counts a spline network must output for ``order``.

    >>> spline_param_dims(8), spline_param_dims(8, "quadratic")
    ([8, 8, 7, 8], [8, 8, 7])
    """
    dims = [count_bins, count_bins, count_bins - 1]
    return dims + [count_bins] if order == "linear" else dims


def spline(input_dim: int, **kwargs) -> Spline:
    """A :class:`Spline` over ``input_dim`` coordinates (``kwargs`` go to it).

    >>> [p.shape for p in spline(2, count_bins=4).parameters()]
    [torch.Size([2, 4]), torch.Size([2, 4]), torch.Size([2, 3]), torch.Size([2, 4])]
    """
    return Spline(input_dim, **kwargs)


def conditional_spline(
    input_dim: int,
    context_dim: int,
    hidden_dims: Optional[List[int]] = None,
    count_bins: int = 8,
    bound: float = 3.0,
    order: str = "linear",
) -> ConditionalSpline:
    """A :class:`ConditionalSpline` over a new ``DenseNN`` reading the context, with hidden
    layers ``hidden_dims`` (default ``[10 * input_dim, 10 * input_dim]``).

    >>> t = conditional_spline(2, 3)
    >>> t.condition(torch.zeros(3))(torch.zeros(4, 2)).shape
    torch.Size([4, 2])
    """
    if hidden_dims is None:
        hidden_dims = [input_dim * 10, input_dim * 10]
    param_dims = [input_dim * k for k in spline_param_dims(count_bins, order)]
    nn = DenseNN(context_dim, hidden_dims, param_dims=param_dims)
    return ConditionalSpline(nn, input_dim, count_bins, bound=bound, order=order)
