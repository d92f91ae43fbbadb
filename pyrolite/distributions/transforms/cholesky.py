"""Transforms onto triangular (Cholesky-factor) matrices: ``UnitLowerCholeskyTransform``,
``CholeskyTransform``, ``CorrMatrixCholeskyTransform``, ``SoftplusLowerCholeskyTransform`` and
the deprecated alias ``CorrLCholeskyTransform``."""

import math
import warnings

import torch
import torch.nn.functional as F
from torch.distributions.transforms import CorrCholeskyTransform, Transform

from pyrolite.distributions import constraints


class UnitLowerCholeskyTransform(Transform):
    """Keep the strictly lower triangle of a square matrix and put ones on the diagonal.

    >>> UnitLowerCholeskyTransform()(torch.full((2, 2), 3.0))
    tensor([[1., 0.],
            [3., 1.]])
    """

    domain = constraints.independent(constraints.real, 2)
    codomain = constraints.unit_lower_cholesky

    def __eq__(self, other):
        return isinstance(other, UnitLowerCholeskyTransform)

    def _call(self, x):
        return x.tril(-1) + torch.eye(x.size(-1), dtype=x.dtype, device=x.device)

    def _inverse(self, y):
        return y.tril(-1)

    def log_abs_det_jacobian(self, x, y):
        return x.new_zeros(x.shape[:-2])


def _diag_log_weights(n: int, offset: int, like: torch.Tensor) -> torch.Tensor:
    # Weights (n - i - offset) of log L_ii in the log-Jacobians below.
    return torch.arange(n - offset, -offset, -1, dtype=like.dtype, device=like.device)


class CholeskyTransform(Transform):
    """Positive definite matrix ``P`` to its lower Cholesky factor ``L`` (``P = L L^T``).

    ``log_abs_det_jacobian`` is that of the map on the lower triangles (the free
    coordinates of both): ``-n log 2 - sum_i (n - i) log L_ii`` (``i`` from 0).

    >>> P = torch.tensor([[4.0, 2.0], [2.0, 2.0]])
    >>> CholeskyTransform()(P)
    tensor([[2., 0.],
            [1., 1.]])
    """

    domain = constraints.positive_definite
    codomain = constraints.lower_cholesky
    bijective = True

    def __init__(self, cache_size: int = 0) -> None:
        super().__init__(cache_size=cache_size)

    def __eq__(self, other):
        return isinstance(other, CholeskyTransform)

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.cholesky(x)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y @ y.mT

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        n = y.size(-1)
        log_diag = y.diagonal(dim1=-2, dim2=-1).log()
        return -n * math.log(2) - (_diag_log_weights(n, 0, log_diag) * log_diag).sum(-1)


class CorrMatrixCholeskyTransform(CholeskyTransform):
    """Correlation matrix to its lower Cholesky factor (rows of unit norm).

    ``log_abs_det_jacobian`` is that of the map on the strictly lower triangles:
    ``-sum_i (n - 1 - i) log L_ii``.

    >>> C = torch.tensor([[1.0, 0.6], [0.6, 1.0]])
    >>> CorrMatrixCholeskyTransform()(C)
    tensor([[1.0000, 0.0000],
            [0.6000, 0.8000]])
    """

    domain = constraints.corr_matrix
    codomain = constraints.corr_cholesky

    def __eq__(self, other):
        return isinstance(other, CorrMatrixCholeskyTransform)

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        n = y.size(-1)
        log_diag = y.diagonal(dim1=-2, dim2=-1).log()
        return -(_diag_log_weights(n, 1, log_diag) * log_diag).sum(-1)


class CorrLCholeskyTransform(CorrCholeskyTransform):
    """Deprecated name of torch's ``CorrCholeskyTransform`` (warns ``FutureWarning``).

    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     CorrLCholeskyTransform()(torch.zeros(1))
    tensor([[1., 0.],
            [0., 1.]])
    """

    def __init__(self, cache_size: int = 0):
        warnings.warn(
            "class CorrLCholeskyTransform is deprecated in favor of CorrCholeskyTransform.",
            FutureWarning,
        )
        super().__init__(cache_size=cache_size)


class SoftplusLowerCholeskyTransform(Transform):
    """Square matrix to a lower Cholesky factor: keep the strictly lower triangle and put
    ``softplus`` of the diagonal on the diagonal (the upper triangle is dropped, so it is
    not bijective and has no log-Jacobian); the transform for ``softplus_lower_cholesky``.

    >>> SoftplusLowerCholeskyTransform()(torch.zeros(2, 2))
    tensor([[0.6931, 0.0000],
            [0.0000, 0.6931]])
    """

    domain = constraints.independent(constraints.real, 2)
    codomain = constraints.lower_cholesky

    def __init__(self, cache_size: int = 0) -> None:
        super().__init__(cache_size=cache_size)

    def __eq__(self, other):
        return isinstance(other, SoftplusLowerCholeskyTransform)

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        diag = F.softplus(x.diagonal(dim1=-2, dim2=-1))
        return x.tril(-1) + diag.diag_embed()

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        diag = y.diagonal(dim1=-2, dim2=-1)
        # softplus^-1(d) = log(expm1(d)), written to stay finite for large d.
        return y.tril(-1) + (diag + torch.log(-torch.expm1(-diag))).diag_embed()
