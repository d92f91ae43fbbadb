"""``DiscreteCosineTransform``: the orthonormal DCT-II along one dim, optionally reweighting
frequencies by ``(2k + 1) ** smooth`` (normalized to keep the volume)."""

import math

import torch
from torch.distributions.transforms import Transform

from pyrolite.distributions import constraints


def _dct_matrix(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    k = torch.arange(n, dtype=dtype, device=device)
    # Row k: sqrt(2 / n) cos(pi k (2 j + 1) / (2 n)), row 0 scaled by 1/sqrt(2).
    matrix = torch.cos(math.pi / (2 * n) * torch.outer(k, 2 * k + 1)) * math.sqrt(2.0 / n)
    matrix[0] = matrix[0] / math.sqrt(2.0)
    return matrix


class DiscreteCosineTransform(Transform):
    """Orthonormal DCT-II along ``dim`` (negative; it sets ``event_dim = -dim``), the
    output's frequency ``k`` then scaled by ``(2k + 1) ** smooth`` divided by their
    geometric mean, so ``log_abs_det_jacobian`` is 0. ``smooth > 0`` makes the inverse
    (the prior's side) smoother.

    >>> t = DiscreteCosineTransform()
    >>> [round(float(v), 4) for v in t(torch.tensor([1.0, 2.0, 4.0]))]
    [4.0415, -2.1213, 0.4082]
    """

    bijective = True

    def __init__(self, dim: int = -1, smooth: float = 0.0, cache_size: int = 0):
        if dim >= 0:
            raise ValueError(f"dim must be negative (counted from the right), got {dim}")
        super().__init__(cache_size=cache_size)
        self.dim = dim
        self.smooth = float(smooth)
        self._matrices = {}

    @constraints.dependent_property(is_discrete=False)
    def domain(self):
        return constraints.independent(constraints.real, -self.dim)

    @constraints.dependent_property(is_discrete=False)
    def codomain(self):
        return constraints.independent(constraints.real, -self.dim)

    def __eq__(self, other):
        return type(self) is type(other) and self.dim == other.dim and self.smooth == other.smooth

    def with_cache(self, cache_size: int = 1) -> "DiscreteCosineTransform":
        if cache_size == self._cache_size:
            return self
        return DiscreteCosineTransform(self.dim, self.smooth, cache_size=cache_size)

    def _matrix(self, n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """The (n, n) matrix ``y = M x``: DCT rows times the frequency weights (cached)."""
        key = (n, dtype, device)
        if key not in self._matrices:
            matrix = _dct_matrix(n, dtype, device)
            if self.smooth != 0:
                log_weight = self.smooth * torch.log(
                    2 * torch.arange(n, dtype=dtype, device=device) + 1
                )
                matrix = matrix * (log_weight - log_weight.mean()).exp().unsqueeze(-1)
            self._matrices[key] = matrix
        return self._matrices[key]

    def _apply(self, x: torch.Tensor, inverse: bool) -> torch.Tensor:
        x = x.movedim(self.dim, -1)
        matrix = self._matrix(x.size(-1), x.dtype, x.device)
        if inverse:
            # DCT rows are orthonormal: M^-1 = D^T diag(1 / w).
            weight = matrix.norm(dim=-1)
            y = (x / weight) @ (matrix / weight.unsqueeze(-1))
        else:
            y = x @ matrix.T
        return y.movedim(-1, self.dim)

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        return self._apply(x, inverse=False)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        return self._apply(y, inverse=True)

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(x.shape[: x.dim() - self.event_dim])

    def forward_shape(self, shape):
        if len(shape) < self.event_dim:
            raise ValueError("Too few dimensions in input")
        return shape

    def inverse_shape(self, shape):
        if len(shape) < self.event_dim:
            raise ValueError("Too few dimensions in input")
        return shape
