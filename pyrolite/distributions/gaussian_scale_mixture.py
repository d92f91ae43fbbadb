"""GaussianScaleMixture: a zero-mean mixture of diagonal Normals that differ only in scale."""

from typing import Sequence

import torch
from torch.distributions import constraints

from pyrolite.distributions.diag_normal_mixture import mixture_log_prob, mixture_rsample
from pyrolite.distributions.expanded import expand_by_wrapping
from pyrolite.distributions.torch_distribution import TorchDistribution


class GaussianScaleMixture(TorchDistribution):
    """Mixture of K zero-mean D-dimensional Normals; component k has the diagonal scale
    ``component_scale[k] * coord_scale``.

    ``coord_scale`` has shape ``(D,)``, ``component_logits`` and ``component_scale`` shape
    ``(K,)``; batched parameters are not supported (as in Pyro), but ``log_prob`` takes a
    batch of values. ``rsample`` gives pathwise gradients for all three parameters.

    >>> d = GaussianScaleMixture(torch.ones(2), torch.zeros(2), torch.tensor([1.0, 2.0]))
    >>> d.rsample((5,)).shape, round(float(d.log_prob(torch.zeros(2))), 4)
    (torch.Size([5, 2]), -2.3079)
    """

    arg_constraints = {
        "component_scale": constraints.positive,
        "coord_scale": constraints.positive,
        "component_logits": constraints.real,
    }
    support = constraints.real_vector
    has_rsample = True
    expand = expand_by_wrapping

    def __init__(
        self,
        coord_scale: torch.Tensor,
        component_logits: torch.Tensor,
        component_scale: torch.Tensor,
    ):
        if coord_scale.dim() != 1 or component_logits.dim() != 1:
            raise ValueError(
                "GaussianScaleMixture does not support batched parameters: coord_scale must "
                f"have shape (D,) and component_logits (K,), got {tuple(coord_scale.shape)} and "
                f"{tuple(component_logits.shape)}; use expand() for a batch of copies."
            )
        if component_scale.shape != component_logits.shape:
            raise ValueError(
                f"GaussianScaleMixture: component_scale must have shape "
                f"{tuple(component_logits.shape)} like component_logits, got "
                f"{tuple(component_scale.shape)}"
            )
        self.coord_scale = coord_scale
        self.component_logits = component_logits
        self.component_scale = component_scale
        self.dim = coord_scale.size(0)
        super().__init__(torch.Size(), coord_scale.shape)

    def _scales(self) -> torch.Tensor:
        return self.component_scale.unsqueeze(-1) * self.coord_scale

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        locs = value.new_zeros(())
        return mixture_log_prob(locs, self._scales(), self.component_logits, value)

    def rsample(self, sample_shape: Sequence[int] = ()) -> torch.Tensor:
        scales = self._scales()
        return mixture_rsample(scales.new_zeros(()), scales, self.component_logits, sample_shape)
