"""``SimplexToOrderedTransform``: probabilities of ``K`` ordered categories to the ``K - 1``
cut points of an ordinal (cumulative logit) model, ``anchor + logit(cumsum(p))``."""

from typing import Optional

import torch
from torch.distributions.transforms import Transform

from pyrolite.distributions import constraints


class SimplexToOrderedTransform(Transform):
    """``y_k = anchor_point + logit(p_0 + ... + p_k)`` for ``k < K - 1``; the inverse takes
    differences of ``sigmoid(y - anchor_point)``. It drops the (determined) last
    probability, so it is not bijective; ``log_abs_det_jacobian`` is that of the map from
    ``p_0, ..., p_{K-2}`` to ``y``: ``-sum log(c (1 - c))`` with ``c`` the cumulative sums.
    (Pyro 1.9 evaluates it at ``sigmoid(y)`` instead, which differs when the anchor is not 0.)

    >>> t = SimplexToOrderedTransform()
    >>> [round(float(v), 4) for v in t(torch.tensor([0.2, 0.3, 0.5]))]
    [-1.3863, 0.0]
    """

    domain = constraints.simplex
    codomain = constraints.ordered_vector
    bijective = False

    def __init__(self, anchor_point: Optional[torch.Tensor] = None):
        super().__init__()
        self.anchor_point = torch.tensor(0.0) if anchor_point is None else anchor_point

    def __eq__(self, other):
        return isinstance(other, SimplexToOrderedTransform) and torch.equal(
            torch.as_tensor(self.anchor_point), torch.as_tensor(other.anchor_point)
        )

    def _cumulative(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., :-1].cumsum(-1).clamp(0, 1)

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        return torch.logit(self._cumulative(x)) + self.anchor_point

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        cumulative = torch.sigmoid(y - self.anchor_point)
        zero = cumulative.new_zeros(cumulative.shape[:-1] + (1,))
        one = cumulative.new_ones(cumulative.shape[:-1] + (1,))
        return torch.cat([cumulative, one], -1) - torch.cat([zero, cumulative], -1)

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # The cumulative sum has unit determinant; logit' (c) = 1 / (c (1 - c)).
        cumulative = self._cumulative(x)
        return -(torch.log(cumulative) + torch.log1p(-cumulative)).sum(-1)

    def forward_shape(self, shape):
        return shape[:-1] + (shape[-1] - 1,)

    def inverse_shape(self, shape):
        return shape[:-1] + (shape[-1] + 1,)
