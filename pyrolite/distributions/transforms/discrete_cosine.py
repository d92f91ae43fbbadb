"""``DiscreteCosineTransform``: the orthonormal DCT-II along one dim, optionally reweighting
frequencies by ``(2k + 1) ** smooth`` (normalized to keep the volume)."""

import torch
from torch.distributions.transforms import Transform

from pyrolite.distributions import constraints
from pyrolite.ops.tensor_utils import dct, idct


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
        self._weights = {}

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

    def _weight(self, n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """Frequency ``k``'s weight ``(2k + 1) ** smooth`` over their geometric mean (cached)."""
        key = (n, dtype, device)
        if key not in self._weights:
            log_weight = self.smooth * torch.log(
                2 * torch.arange(n, dtype=dtype, device=device) + 1
            )
            self._weights[key] = (log_weight - log_weight.mean()).exp()
        return self._weights[key]

    def _frequency_weight(self, x: torch.Tensor) -> torch.Tensor:
        weight = self._weight(x.size(self.dim), x.dtype, x.device)
        return weight.reshape((-1,) + (1,) * (-1 - self.dim))

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        y = dct(x, self.dim)
        return y if self.smooth == 0 else y * self._frequency_weight(y)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        if self.smooth != 0:
            y = y / self._frequency_weight(y)
        return idct(y, self.dim)

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
