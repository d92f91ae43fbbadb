"""Sum-of-squares polynomial flows (Jaini et al. 2019): ``Polynomial`` and the
``polynomial`` helper."""

import math
from typing import Callable, List, Optional

import torch
from torch.distributions import constraints

from pyrolite.distributions.transforms.module import TransformModule
from pyrolite.nn.auto_reg_nn import AutoRegressiveNN


class Polynomial(TransformModule):
    """The autoregressive sum-of-squares polynomial bijection

    ``y_i = c_i + integral_0^{x_i} sum_k (sum_r a_{ikr} u^r)^2 du``

    with ``count_sum`` squared polynomials of degree ``count_degree`` whose coefficients
    ``autoregressive_nn(x)`` returns (shape ``batch + ((count_degree + 1) * count_sum,
    input_dim)``, sum-major) from the coordinates before ``i``; ``c`` is learnt. The
    derivative is a sum of squares, so the map is monotone.

    There is no closed-form inverse: ``inv`` works only for the ``y`` of the latest forward
    (cached) and raises ``KeyError`` otherwise.

    >>> from pyrolite.nn.auto_reg_nn import AutoRegressiveNN
    >>> t = Polynomial(AutoRegressiveNN(3, [10], param_dims=[3 * 3]), 3, 2, 3)
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
        self, autoregressive_nn: Callable, input_dim: int, count_degree: int, count_sum: int
    ) -> None:
        super().__init__(cache_size=1)
        self.arn = autoregressive_nn
        self.input_dim = input_dim
        self.count_degree = count_degree
        self.count_sum = count_sum
        self._cached_logDetJ = None

        self.c = torch.nn.Parameter(torch.empty(input_dim))
        bound = 1.0 / math.sqrt(input_dim)
        torch.nn.init.uniform_(self.c, -bound, bound)
        # x^(r + s + 1) / (r + s + 1) is the integral of the u^r * u^s term of a square.
        powers = torch.arange(1, count_degree + 2, dtype=torch.get_default_dtype())
        self.register_buffer("powers", powers)
        self.register_buffer("power_mask", powers[:, None] + powers[None, :] - 1)
        self.register_buffer("mask", 1 / self.power_mask)

    @property
    def event_dim(self) -> int:
        return 1

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        y, self._cached_logDetJ = self._forward(x)
        return y

    def _forward(self, x: torch.Tensor):
        """``y`` and log|det dy/dx|."""
        coeffs = self.arn(x)
        coeffs = coeffs.reshape(
            coeffs.shape[:-2] + (self.count_sum, self.count_degree + 1, self.input_dim)
        )
        # x^0 .. x^degree, batch + (degree + 1, dim)
        x_pow = x.unsqueeze(-2).pow(self.powers.unsqueeze(-1) - 1)
        # The squared polynomials at x give the derivative; their products with the
        # integrated monomials give y.
        poly = (coeffs * x_pow.unsqueeze(-3)).sum(-2)
        # 1e-8 keeps the log finite where every squared polynomial vanishes (as Pyro does).
        log_det = torch.log(poly.pow(2).sum(-2) + 1e-8).sum(-1)
        x_int = x.unsqueeze(-2).unsqueeze(-2).pow(
            self.power_mask.unsqueeze(-1)
        ) * self.mask.unsqueeze(-1)
        pairs = coeffs.unsqueeze(-2) * coeffs.unsqueeze(-3)  # batch + (sum, deg+1, deg+1, dim)
        y = (pairs * x_int.unsqueeze(-4)).sum((-4, -3, -2))
        return self.c + y, log_det

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        raise KeyError(
            "Polynomial object expected to find key in intermediates cache but didn't: it "
            "has no closed-form inverse, so inv(y) works only for the y returned by its "
            "latest forward call (cache_size=1)"
        )

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x_old, y_old = self._cached_x_y
        if self._cached_logDetJ is not None and x is x_old and y is y_old:
            return self._cached_logDetJ
        return self._forward(x)[1]


def polynomial(input_dim: int, hidden_dims: Optional[List[int]] = None) -> Polynomial:
    """A :class:`Polynomial` with 3 squared quartics per coordinate over a new
    ``AutoRegressiveNN`` with hidden layers ``hidden_dims`` (default ``[10 * input_dim]``).

    >>> polynomial(2).arn.layers[-1].out_features
    30
    """
    count_degree, count_sum = 4, 3
    if hidden_dims is None:
        hidden_dims = [input_dim * 10]
    arn = AutoRegressiveNN(input_dim, hidden_dims, param_dims=[(count_degree + 1) * count_sum])
    return Polynomial(arn, input_dim, count_degree, count_sum)
