"""``Permute``: reorder the entries of one dim of the event (volume preserving), and the
``permute`` helper that draws a random order."""

from typing import Optional, Sequence, Union

import torch
from torch.distributions.transforms import Transform

from pyrolite.distributions import constraints


class Permute(Transform):
    """``y = x.index_select(dim, permutation)``; ``dim`` (negative) also sets ``event_dim``.

    >>> t = Permute(torch.tensor([2, 0, 1]))
    >>> t(torch.tensor([10.0, 20.0, 30.0]))
    tensor([30., 10., 20.])
    """

    bijective = True
    volume_preserving = True

    def __init__(self, permutation: torch.Tensor, *, dim: int = -1, cache_size: int = 1):
        super().__init__(cache_size=cache_size)
        if dim >= 0:
            raise ValueError(f"Permute: dim must be negative (counted from the right), got {dim}")
        self.permutation = permutation
        self.dim = dim

    @constraints.dependent_property(is_discrete=False)
    def domain(self):
        return constraints.independent(constraints.real, -self.dim)

    @constraints.dependent_property(is_discrete=False)
    def codomain(self):
        return constraints.independent(constraints.real, -self.dim)

    @property
    def inv_permutation(self) -> torch.Tensor:
        """The permutation that undoes ``permutation``."""
        result = torch.empty_like(self.permutation, dtype=torch.long)
        result[self.permutation] = torch.arange(
            self.permutation.size(0), dtype=torch.long, device=self.permutation.device
        )
        return result

    def with_cache(self, cache_size: int = 1) -> "Permute":
        if cache_size == self._cache_size:
            return self
        return Permute(self.permutation, dim=self.dim, cache_size=cache_size)

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        return x.index_select(self.dim, self.permutation)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y.index_select(self.dim, self.inv_permutation)

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.zeros(x.shape[: x.dim() - self.event_dim], dtype=x.dtype, device=x.device)


def permute(
    input_dim: Union[int, Sequence[int]],
    permutation: Optional[torch.Tensor] = None,
    dim: int = -1,
) -> Permute:
    """A :class:`Permute` of ``dim``; without ``permutation``, a random one
    (``torch.randperm``). For ``dim < -1``, ``input_dim`` is the event shape.

    >>> permute(4, torch.tensor([3, 2, 1, 0])).inv_permutation
    tensor([3, 2, 1, 0])
    """
    if dim < -1:
        if isinstance(input_dim, int) or len(input_dim) != -dim:
            raise ValueError(f"event shape {input_dim} must have same length as event_dim {-dim}")
        size = input_dim[0]
    elif isinstance(input_dim, int):
        size = input_dim
    elif len(input_dim) != 1:
        raise ValueError(f"event shape {tuple(input_dim)} must have same length as event_dim 1")
    else:
        size = input_dim[0]
    if permutation is None:
        permutation = torch.randperm(size)
    return Permute(permutation, dim=dim)
