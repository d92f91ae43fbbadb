"""``Normalize``: project vectors onto the unit p-norm sphere (not bijective); the
transform for Pyro's ``sphere`` constraint."""

import torch
from torch.distributions.transforms import Transform

from pyrolite.distributions import constraints


class Normalize(Transform):
    """``y = x / |x|_p``; the zero vector maps to ``(1, 0, ..., 0)``. ``inv`` returns ``y``
    (the point on the sphere) and there is no log-Jacobian (the map drops a dimension).

    >>> Normalize()(torch.tensor([3.0, 4.0]))
    tensor([0.6000, 0.8000])
    """

    domain = constraints.real_vector
    codomain = constraints.sphere
    bijective = False

    def __init__(self, p: float = 2, cache_size: int = 0):
        super().__init__(cache_size=cache_size)
        self.p = p

    def __eq__(self, other):
        return type(self) is type(other) and self.p == other.p

    def with_cache(self, cache_size: int = 1) -> "Normalize":
        if cache_size == self._cache_size:
            return self
        return Normalize(self.p, cache_size=cache_size)

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        norm = torch.linalg.vector_norm(x, ord=self.p, dim=-1, keepdim=True)
        y = x / norm.clamp(min=torch.finfo(x.dtype).tiny)
        # Any point of the sphere will do for 0; pick the first axis so y stays on it.
        first = y[..., :1] + (norm == 0).to(x.dtype)
        return torch.cat([first, y[..., 1:]], dim=-1)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y
