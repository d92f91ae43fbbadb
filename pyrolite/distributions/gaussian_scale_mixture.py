"""GaussianScaleMixture: a zero-mean mixture of diagonal Normals that differ only in scale,
with pathwise gradients from its one-dimensional radial CDF."""

import math
from typing import Sequence

import torch
from torch.distributions import constraints

from pyrolite.distributions.diag_normal_mixture import mixture_log_prob
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
        shape = torch.Size(sample_shape)
        num_samples = math.prod(shape)
        with torch.no_grad():
            probs = self.component_logits.softmax(-1)
            component = torch.multinomial(probs, max(1, num_samples), replacement=True)
            radius = self.component_scale.index_select(0, component[:num_samples])
            noise = torch.randn(shape + (self.dim,), dtype=radius.dtype, device=radius.device)
            standard = noise * radius.reshape(shape + (1,))
        if self.component_logits.requires_grad or self.component_scale.requires_grad:
            standard = _RadialRsample.apply(self.component_logits, self.component_scale, standard)
        # coord_scale enters pathwise: x / coord_scale does not depend on it.
        return self.coord_scale * standard


class _RadialRsample(torch.autograd.Function):
    """Identity on the standardized draw ``y = x / coord_scale``; the backward pass moves
    ``y`` along its own direction, holding fixed the CDF of its radius ``r = |y|``,
    ``F(r) = sum_k pi_k P(D/2, r**2 / (2 s_k**2))`` (P the regularized lower incomplete
    gamma), so ``dr/dtheta = -(dF/dtheta) / (dF/dr)``: one scalar equation per draw
    instead of the D-dimensional Rosenblatt solve of a general mixture."""

    @staticmethod
    def forward(ctx, logits, component_scale, y):
        ctx.save_for_backward(logits, component_scale, y)
        return y.view_as(y)

    @staticmethod
    def backward(ctx, grad_y):
        logits, scale, y = ctx.saved_tensors
        need_logits, need_scale = ctx.needs_input_grad[:2]
        half_dim = 0.5 * y.size(-1)
        squared_radius = (y * y).sum(-1, keepdim=True)
        # Cotangent on r (times r): grad_y . dy/dr with dy/dr = y / r.
        grad_r_times_r = (grad_y * y).sum(-1, keepdim=True)
        z = squared_radius / (2 * scale * scale)  # (..., K)
        log_pi = logits.log_softmax(-1)
        # log of pi_k * r * (density of r under component k), up to a constant in k.
        log_q = log_pi + half_dim * z.log() - z
        responsibility = log_q.softmax(-1)
        grad_scale = grad_logits = None
        if need_scale:
            # dr/ds_k = (r / s_k) * responsibility_k.
            grad_scale = (grad_r_times_r * responsibility).flatten(0, -2).sum(0) / scale
        if need_logits:
            # dr/dlogit_j = -pi_j (P_j - F) / f(r), f(r) = sum_k q_k / r the radial density.
            cdf = torch.special.gammainc(squared_radius.new_tensor(half_dim), z)
            pi = log_pi.exp()
            excess = cdf - (pi * cdf).sum(-1, keepdim=True)
            log_density_times_r = (log_q.logsumexp(-1, keepdim=True) + math.log(2)) - math.lgamma(
                half_dim
            )
            weight = grad_r_times_r * (-log_density_times_r).exp()
            grad_logits = -pi * (weight * excess).flatten(0, -2).sum(0)
        return grad_logits, grad_scale, None
