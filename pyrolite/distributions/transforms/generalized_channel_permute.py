"""Generalized channel permutation (Glow's invertible 1x1 convolution, Kingma & Dhariwal,
2018): images ``(..., C, H, W)`` mix channels by ``W = P L U``; plain, conditional, helpers."""

from typing import List, Optional

import torch
from torch.distributions.transforms import Transform

from pyrolite.distributions import constraints
from pyrolite.distributions.transforms.conditional import ConditionalTransformModule
from pyrolite.distributions.transforms.module import TransformModule
from pyrolite.nn.dense_nn import DenseNN


def _permutation_matrix(channels: int, permutation: Optional[torch.Tensor]) -> torch.Tensor:
    if permutation is None:
        permutation = torch.randperm(channels)
    permutation = torch.as_tensor(permutation, dtype=torch.long)
    if permutation.shape != (channels,):
        raise ValueError(
            f"permutation must be a LongTensor of shape ({channels},) (one entry per channel),"
            f" got shape {tuple(permutation.shape)}"
        )
    return torch.eye(channels)[permutation]


class ConditionedGeneralizedChannelPermute(Transform):
    """Channel mixing by a fixed ``permutation`` matrix ``P`` and packed ``LU`` factors
    (unit lower ``L`` below the diagonal, upper ``U`` on and above it)."""

    domain = constraints.independent(constraints.real, 3)
    codomain = constraints.independent(constraints.real, 3)
    bijective = True

    def __init__(
        self, permutation: Optional[torch.Tensor] = None, LU: Optional[torch.Tensor] = None
    ):
        super().__init__(cache_size=1)
        # The module subclass registers these as a buffer and a parameter instead.
        if permutation is not None:
            self.permutation = permutation
        if LU is not None:
            self.LU = LU

    def _factors(self):
        LU = self.LU
        eye = torch.eye(LU.size(-1), dtype=LU.dtype, device=LU.device)
        return self.permutation.to(LU.dtype), LU.tril(-1) + eye, LU.triu()

    @staticmethod
    def _mix(matrix, x):
        flat = x.reshape(x.shape[:-2] + (x.size(-2) * x.size(-1),))
        return (matrix @ flat).reshape(x.shape[:-3] + (-1,) + x.shape[-2:])

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        P, L, U = self._factors()
        return self._mix(P @ L @ U, x)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        P, L, U = self._factors()
        flat = y.reshape(y.shape[:-2] + (y.size(-2) * y.size(-1),))
        flat = P.transpose(-1, -2) @ flat
        flat = torch.linalg.solve_triangular(L, flat, upper=False, unitriangular=True)
        flat = torch.linalg.solve_triangular(U, flat, upper=True)
        return flat.reshape(flat.shape[:-2] + y.shape[-3:])

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # The same C x C matrix acts on each of the H * W pixels.
        pixels = x.size(-2) * x.size(-1)
        log_det = self.LU.diagonal(dim1=-2, dim2=-1).abs().log().sum(-1) * pixels
        return log_det.expand(torch.broadcast_shapes(log_det.shape, x.shape[:-3]))


class GeneralizedChannelPermute(ConditionedGeneralizedChannelPermute, TransformModule):
    """Invertible 1x1 convolution on ``(..., channels, H, W)`` images with learnable
    ``LU`` and a fixed ``permutation`` buffer (a permutation matrix); both start from the LU
    factorization of a random orthogonal matrix unless ``permutation`` (a LongTensor) is given.

    >>> flow = GeneralizedChannelPermute(channels=3)
    >>> x = torch.randn(2, 3, 4, 4)
    >>> flow(x).shape, flow.log_abs_det_jacobian(x, flow(x)).shape
    (torch.Size([2, 3, 4, 4]), torch.Size([2]))
    """

    def __init__(self, channels: int = 3, permutation: Optional[torch.Tensor] = None):
        super().__init__()
        W = torch.linalg.qr(torch.randn(channels, channels))[0]
        P, L, U = torch.linalg.lu(W)
        if permutation is not None:
            P = _permutation_matrix(channels, permutation)
        self.register_buffer("permutation", P)
        self.LU = torch.nn.Parameter(L.tril(-1) + U)


class ConditionalGeneralizedChannelPermute(ConditionalTransformModule):
    """Channel permutation whose packed ``LU`` is ``nn(context)`` reshaped to
    ``(..., channels, channels)``; ``permutation`` is a fixed buffer (random by default).

    >>> flow = conditional_generalized_channel_permute(context_dim=2, channels=3)
    >>> flow.condition(torch.randn(2))(torch.randn(5, 3, 4, 4)).shape
    torch.Size([5, 3, 4, 4])
    """

    domain = constraints.independent(constraints.real, 3)
    codomain = constraints.independent(constraints.real, 3)
    bijective = True

    def __init__(
        self, nn: torch.nn.Module, channels: int = 3, permutation: Optional[torch.Tensor] = None
    ):
        super().__init__()
        self.nn = nn
        self.channels = channels
        self.register_buffer("permutation", _permutation_matrix(channels, permutation))

    def condition(self, context: torch.Tensor) -> ConditionedGeneralizedChannelPermute:
        LU = self.nn(context)
        LU = LU.reshape(LU.shape[:-1] + (self.channels, self.channels))
        return ConditionedGeneralizedChannelPermute(self.permutation, LU)


def generalized_channel_permute(**kwargs) -> GeneralizedChannelPermute:
    """A :class:`GeneralizedChannelPermute`; keyword arguments pass through.

    >>> generalized_channel_permute(channels=4).LU.shape
    torch.Size([4, 4])
    """
    return GeneralizedChannelPermute(**kwargs)


def conditional_generalized_channel_permute(
    context_dim: int, channels: int = 3, hidden_dims: Optional[List[int]] = None
) -> ConditionalGeneralizedChannelPermute:
    """A :class:`ConditionalGeneralizedChannelPermute` with a
    :class:`~pyrolite.nn.dense_nn.DenseNN` hypernet (hidden layers default to
    ``[10 * channels, 10 * channels]``).

    >>> conditional_generalized_channel_permute(2, channels=3).nn.param_dims
    [9]
    """
    if hidden_dims is None:
        hidden_dims = [channels * 10, channels * 10]
    nn = DenseNN(context_dim, hidden_dims, param_dims=[channels * channels])
    return ConditionalGeneralizedChannelPermute(nn, channels=channels)
