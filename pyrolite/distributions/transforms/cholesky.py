"""Transforms onto triangular (Cholesky-factor) matrices."""

import torch
from torch.distributions.transforms import Transform

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
