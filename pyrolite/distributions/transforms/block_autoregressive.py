"""Block neural autoregressive flows (De Cao et al. 2019): ``MaskedBlockLinear`` (a linear
layer with block-triangular, weight-normalized weights), ``BlockAutoregressive`` and the
``block_autoregressive`` helper."""

import math
from typing import List

import torch
import torch.nn.functional as F
from torch.distributions import constraints

from pyrolite.distributions.transforms.module import TransformModule
from pyrolite.distributions.transforms.neural_autoregressive import (
    _ACTIVATIONS,
    activation_log_derivative,
)


def log_matrix_product(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """``log(exp(A) @ exp(B))`` computed stably: the product of matrices held as logs.

    >>> A = torch.zeros(1, 2, 3)
    >>> log_matrix_product(A, torch.zeros(1, 3, 1)).exp().tolist()
    [[[3.0], [3.0]]]
    """
    return torch.logsumexp(A.unsqueeze(-1) + B.unsqueeze(-3), dim=-2)


class MaskedBlockLinear(torch.nn.Module):
    """A linear layer from ``in_features`` to ``out_features`` made of ``dim`` x ``dim``
    blocks: positive (``exp``) blocks on the diagonal, free blocks below, zeros above, and
    each row rescaled to norm ``exp(_diag_weight)``. ``forward(x)`` takes ``x`` of shape
    ``batch + (in_features, 1)`` and returns the output and the log of the diagonal blocks,
    shape ``(dim, out_features // dim, in_features // dim)``.

    >>> layer = MaskedBlockLinear(2, 4, 2)
    >>> y, log_diag = layer(torch.randn(3, 2, 1))
    >>> y.shape, log_diag.shape
    (torch.Size([3, 4]), torch.Size([2, 2, 1]))
    """

    def __init__(self, in_features: int, out_features: int, dim: int, bias: bool = True):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.dim = dim
        in_block, out_block = in_features // dim, out_features // dim

        weight = torch.zeros(out_features, in_features)
        for i in range(dim):
            rows = slice(i * out_block, (i + 1) * out_block)
            weight[rows, : (i + 1) * in_block] = torch.nn.init.xavier_uniform_(
                torch.empty(out_block, (i + 1) * in_block)
            )
        self._weight = torch.nn.Parameter(weight)
        self._diag_weight = torch.nn.Parameter(
            torch.nn.init.uniform_(torch.empty(out_features, 1)).log()
        )
        self.bias = (
            torch.nn.Parameter(
                torch.nn.init.uniform_(
                    torch.empty(out_features),
                    -1 / math.sqrt(out_features),
                    1 / math.sqrt(out_features),
                )
            )
            if bias
            else 0
        )

        mask_d = torch.block_diag(*[torch.ones(out_block, in_block)] * dim)
        mask_o = torch.ones(out_features, in_features)
        for i in range(dim):
            mask_o[i * out_block : (i + 1) * out_block, i * in_block :] = 0
        self.register_buffer("mask_d", mask_d)
        self.register_buffer("mask_o", mask_o)

    def get_weights(self):
        """``(weight, log of its diagonal blocks)`` after masking and weight normalization."""
        w = torch.exp(self._weight) * self.mask_d + self._weight * self.mask_o
        w_squared_norm = (w**2).sum(-1, keepdim=True)
        w = self._diag_weight.exp() * w / w_squared_norm.sqrt()
        log_w = self._diag_weight + self._weight - 0.5 * torch.log(w_squared_norm)
        in_block, out_block = self.in_features // self.dim, self.out_features // self.dim
        blocks = log_w.reshape(self.dim, out_block, self.dim, in_block)
        diagonal = torch.arange(self.dim)
        return w, blocks[diagonal, :, diagonal, :]

    def forward(self, x: torch.Tensor):
        w, log_diag = self.get_weights()
        return (torch.matmul(w, x) + self.bias.unsqueeze(-1)).squeeze(-1), log_diag


class BlockAutoregressive(TransformModule):
    """A block neural autoregressive flow: a network of :class:`MaskedBlockLinear` layers
    ``input_dim -> h_1 * input_dim -> ... -> input_dim`` (``hidden_factors``) with the
    monotone ``activation`` between them; its Jacobian is lower triangular with positive
    diagonal, and ``log|det|`` comes from multiplying the diagonal blocks in log space.
    ``residual`` is ``None``, ``"normal"`` (``y = x + f(x)``) or ``"gated"`` (``y = g x
    + (1 - g) f(x)`` with ``g = sigmoid(gate)`` learnt).

    There is no closed-form inverse: ``inv`` works only for the ``y`` of the latest forward
    (cached) and raises ``KeyError`` otherwise.

    >>> t = BlockAutoregressive(3, hidden_factors=[4])
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
        self,
        input_dim: int,
        # Pyro's default, kept so signatures match; never mutated.
        hidden_factors: List[int] = [8, 8],  # noqa: B006
        activation: str = "tanh",
        residual: str = None,
    ) -> None:
        super().__init__(cache_size=1)
        if any(h < 1 for h in hidden_factors):
            raise ValueError(f"Hidden factors must be at least 1, got {hidden_factors}")
        if residual not in (None, "normal", "gated"):
            raise ValueError(f'Invalid value {residual} for keyword argument "residual"')
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f'Invalid activation function "{activation}": choose one of {sorted(_ACTIVATIONS)}'
            )
        self.T = _ACTIVATIONS[activation]()
        self.residual = residual
        self.input_dim = input_dim
        sizes = [input_dim] + [input_dim * h for h in hidden_factors] + [input_dim]
        self.layers = torch.nn.ModuleList(
            MaskedBlockLinear(n_in, n_out, dim=input_dim)
            for n_in, n_out in zip(sizes[:-1], sizes[1:])
        )
        if residual == "gated":
            self.gate = torch.nn.Parameter(torch.nn.init.normal_(torch.empty(1)))
        self._cached_logDetJ = None

    @property
    def event_dim(self) -> int:
        return 1

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        y, self._cached_logDetJ = self._forward(x)
        return y

    def _forward(self, x: torch.Tensor):
        """``y`` and log|det dy/dx|."""
        h = x
        log_jac = None  # log of the diagonal Jacobian blocks, batch + (dim, units, 1)
        for i, layer in enumerate(self.layers):
            h, log_diag = layer(h.unsqueeze(-1))
            log_jac = log_diag if log_jac is None else log_matrix_product(log_diag, log_jac)
            if i < len(self.layers) - 1:
                pre = h
                h = self.T(pre)
                log_act = activation_log_derivative(self.T, pre, h)
                log_jac = log_jac + log_act.reshape(pre.shape[:-1] + (self.input_dim, -1, 1))
        log_jac = log_jac.reshape(log_jac.shape[:-3] + (self.input_dim,))
        log_jac = log_jac.expand(x.shape)
        if self.residual == "normal":
            y, log_jac = x + h, F.softplus(log_jac)
        elif self.residual == "gated":
            gate = torch.sigmoid(self.gate)
            y = gate * x + (1 - gate) * h
            log_jac = torch.log(gate + (1 - gate) * log_jac.exp())
        else:
            y = h
        return y, log_jac.sum(-1)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        raise KeyError(
            "BlockAutoregressive object expected to find key in intermediates cache but "
            "didn't: it has no closed-form inverse, so inv(y) works only for the y returned "
            "by its latest forward call (cache_size=1)"
        )

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x_old, y_old = self._cached_x_y
        if self._cached_logDetJ is not None and x is x_old and y is y_old:
            return self._cached_logDetJ
        return self._forward(x)[1]


def block_autoregressive(input_dim: int, **kwargs) -> BlockAutoregressive:
    """A :class:`BlockAutoregressive` over ``input_dim`` coordinates (``kwargs`` go to it).

    >>> [p.shape for p in block_autoregressive(2, hidden_factors=[3]).parameters()][:3]
    [torch.Size([6, 2]), torch.Size([6, 1]), torch.Size([6])]
    """
    return BlockAutoregressive(input_dim, **kwargs)
