"""``LowerCholeskyAffine``: ``y = loc + L x`` for a lower-triangular ``L`` with positive
diagonal (a full-covariance affine map with a cheap inverse)."""

import torch
from torch.distributions.transforms import Transform

from pyrolite.distributions import constraints


class LowerCholeskyAffine(Transform):
    """``y = loc + scale_tril @ x``; the inverse is a triangular solve.

    >>> t = LowerCholeskyAffine(torch.zeros(2), torch.tensor([[2.0, 0.0], [1.0, 1.0]]))
    >>> t(torch.tensor([1.0, 1.0])), round(float(t.log_abs_det_jacobian(None, None)), 4)
    (tensor([2., 2.]), 0.6931)
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self, loc: torch.Tensor, scale_tril: torch.Tensor, cache_size: int = 0):
        super().__init__(cache_size=cache_size)
        self.loc = loc
        self.scale_tril = scale_tril

    def with_cache(self, cache_size: int = 1) -> "LowerCholeskyAffine":
        if cache_size == self._cache_size:
            return self
        return LowerCholeskyAffine(self.loc, self.scale_tril, cache_size=cache_size)

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        return (self.scale_tril @ x.unsqueeze(-1)).squeeze(-1) + self.loc

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        rhs = (y - self.loc).unsqueeze(-1)
        return torch.linalg.solve_triangular(self.scale_tril, rhs, upper=False).squeeze(-1)

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        log_det = self.scale_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        batch = () if x is None else x.shape[:-1]
        return log_det.expand(torch.broadcast_shapes(batch, log_det.shape))
