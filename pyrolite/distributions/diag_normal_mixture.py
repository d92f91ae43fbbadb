"""Mixtures of diagonal Normals with pathwise (reparameterized) gradients for every parameter.

A mixture sample picks a component, which is not differentiable; the gradient comes instead
from the implicit function theorem applied to the mixture's sequential conditional CDFs
(the Rosenblatt transform), which covers the mixture weights too. :func:`mixture_rsample`
owns that estimator; :class:`GaussianScaleMixture` reuses it.
"""

import math
from typing import Sequence

import torch
from torch.distributions import constraints

from pyrolite.distributions.torch_distribution import TorchDistribution, copy_forced_has_rsample

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def mixture_log_prob(
    locs: torch.Tensor, scales: torch.Tensor, logits: torch.Tensor, value: torch.Tensor
) -> torch.Tensor:
    """``log sum_k softmax(logits)_k N(value; locs_k, diag(scales_k^2))``.

    ``locs`` and ``scales`` broadcast to ``(..., K, D)``, ``logits`` to ``(..., K)`` and
    ``value`` to ``(..., D)``.

    >>> round(float(mixture_log_prob(torch.zeros(1, 2), torch.ones(1, 2), torch.zeros(1),
    ...                              torch.zeros(2))), 4)
    -1.8379
    """
    z = (value.unsqueeze(-2) - locs) / scales
    # Everything that does not depend on the value stays on the parameters' (small)
    # shape; the per-draw work is one squared distance per component.
    dim = z.size(-1)
    log_norm = scales.log().sum(-1) if scales.size(-1) == dim else dim * scales.log().squeeze(-1)
    offset = logits.log_softmax(-1) - log_norm - dim * _HALF_LOG_2PI
    return torch.logsumexp(offset - 0.5 * (z * z).sum(-1), -1)


def _conditional_cdfs(locs, scales, logits, x):
    """``u_i = P(X_i <= x_i | X_<i = x_<i)`` for each coordinate i, shape ``x.shape``.

    Also returns what the backward pass needs: the posterior component weights given the
    preceding coordinates ``w (..., K, D)``, the component CDFs ``cdf`` and log-densities
    ``log_pdf`` per coordinate, and the standardized values ``z``.
    """
    z = (x.unsqueeze(-2) - locs) / scales
    log_pdf = -0.5 * z * z - scales.log() - _HALF_LOG_2PI
    # Weights given x_<i: prior log-weights plus the exclusive cumulative log-likelihood.
    preceding = log_pdf.cumsum(-1) - log_pdf
    w = (logits.log_softmax(-1).unsqueeze(-1) + preceding).softmax(-2)
    cdf = torch.special.ndtr(z)
    return (w * cdf).sum(-2), w, cdf, log_pdf, z


class _RosenblattRsample(torch.autograd.Function):
    """Identity on the sample ``x`` in the forward pass; the backward pass returns the
    gradients of ``x`` held at fixed conditional-CDF values ``u(x; params)``:
    ``dx/dparams = -(du/dx)^{-1} du/dparams``, with ``du/dx`` lower-triangular."""

    @staticmethod
    def forward(ctx, locs, scales, logits, x):
        ctx.save_for_backward(locs, scales, logits, x)
        ctx.scales_shape = scales.shape
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_x):
        locs, scales, logits, x = ctx.saved_tensors
        needs = ctx.needs_input_grad[:3]
        if not any(needs):
            return None, None, None, None
        u, w, cdf, log_pdf, z = _conditional_cdfs(locs, scales, logits, x)
        scales = scales.expand_as(z)
        pdf = log_pdf.exp()
        # du_i/dx_i is the conditional density; du_i/dx_m (m < i) comes through the
        # weights: sum_k w_ki (cdf_ki - u_i) dlog N_km/dx_m.
        spread = w * (cdf - u.unsqueeze(-2))
        jac = spread.transpose(-1, -2) @ (-z / scales)  # only its strict lower part is used
        density = (w * pdf).sum(-2)
        jac.diagonal(dim1=-2, dim2=-1).copy_(density.clamp(min=torch.finfo(x.dtype).tiny))
        cotangent = -_solve_transposed_lower(jac, grad_x).unsqueeze(-2)  # on u, (..., 1, D)
        # Backpropagate the cotangent through u = sum_k w_ki cdf_ki by hand:
        # through the weights' softmax (over k) into their logits h_ki = log pi_k + C_ki,
        # with C_ki = sum_{m<i} log N_km, and through each cdf_ki into z_ki.
        grad_h = cotangent * spread
        grad_log_pdf = grad_h.sum(-1, keepdim=True) - grad_h.cumsum(-1)  # sum over i > m
        grad_z = cotangent * w * pdf * scales - z * grad_log_pdf  # dcdf/dz = pdf * scale
        grad_locs = -grad_z / scales
        grad_scales = -(grad_z * z + grad_log_pdf) / scales
        grad_log_pi = grad_h.sum(-1)
        grad_logits = grad_log_pi - logits.softmax(-1) * grad_log_pi.sum(-1, keepdim=True)
        grads = (grad_locs, grad_scales, grad_logits)
        shapes = (locs.shape, ctx.scales_shape, logits.shape)
        return tuple(
            _sum_to(g, shape) if need else None for g, shape, need in zip(grads, shapes, needs)
        ) + (None,)


def _sum_to(grad: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Sum ``grad`` over the dims that broadcasting added or stretched to reach it."""
    lead = grad.dim() - len(shape)
    grad = grad.sum(tuple(range(lead))) if lead else grad
    dims = tuple(i for i, size in enumerate(shape) if size == 1 and grad.size(i) != 1)
    return grad.sum(dims, keepdim=True) if dims else grad


def _solve_transposed_lower(jac: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """Solve ``jac^T lam = rhs`` for lower-triangular ``jac`` (..., D, D), by back
    substitution over D (small), which beats a batched triangular solve on many small
    systems."""
    dim = rhs.size(-1)
    lam = torch.empty_like(rhs)
    for i in range(dim - 1, -1, -1):
        partial = rhs[..., i]
        if i + 1 < dim:
            partial = partial - (jac[..., i + 1 :, i] * lam[..., i + 1 :]).sum(-1)
        lam[..., i] = partial / jac[..., i, i]
    return lam


def mixture_rsample(
    locs: torch.Tensor,
    scales: torch.Tensor,
    logits: torch.Tensor,
    shape: Sequence[int],
) -> torch.Tensor:
    """A reparameterized draw of shape ``shape + (D,)`` from the diagonal-Normal mixture
    (``locs``, ``scales`` broadcastable to ``(..., K, D)``, ``logits`` to ``(..., K)``).

    The value is drawn exactly (component, then Normal noise); gradients to all three
    parameters are the implicit-reparameterization ones of the Rosenblatt transform, which
    are unbiased for any integrand.
    """
    shape = torch.Size(shape)
    num_components, dim = torch.broadcast_shapes(locs.shape, scales.shape)[-2:]
    with torch.no_grad():
        probs = logits.softmax(-1)
        if logits.dim() <= 1 and locs.dim() <= 2 and scales.dim() <= 2:
            # Unbatched parameters (the common case): one multinomial draw and one
            # index_select of the stacked (loc, scale) rows beat per-draw gathers.
            component = torch.multinomial(probs, max(1, math.prod(shape)), replacement=True)
            table = torch.cat(
                [locs.expand(num_components, dim), scales.expand(num_components, dim)], -1
            )
            picked = table.index_select(0, component[: math.prod(shape)]).reshape(
                shape + (2 * dim,)
            )
            loc, scale = picked.split(dim, -1)
        else:
            u = torch.rand(shape + (1,), dtype=probs.dtype, device=probs.device)
            component = (u > probs.cumsum(-1)).sum(-1).clamp(max=num_components - 1)
            loc = _gather_component(locs, component, shape, num_components, dim)
            scale = _gather_component(scales, component, shape, num_components, dim)
        noise = torch.randn(shape + (dim,), dtype=loc.dtype, device=loc.device)
        x = torch.addcmul(loc, scale, noise)
    if not (locs.requires_grad or scales.requires_grad or logits.requires_grad):
        return x
    return _RosenblattRsample.apply(locs, scales, logits, x)


def _gather_component(param: torch.Tensor, component: torch.Tensor, shape, k: int, dim: int):
    """``param[..., component, :]`` for each draw, ``param`` broadcastable to (..., K, D)."""
    index = component[..., None, None].expand(shape + (1, dim))
    return param.expand(shape + (k, dim)).gather(-2, index).squeeze(-2)


def _check_shapes(name: str, locs, coord_scale, component_logits, scale_shape):
    if locs.dim() < 2:
        raise ValueError(f"{name}: locs must have shape (..., K, D), got {tuple(locs.shape)}")
    if coord_scale.shape != scale_shape:
        raise ValueError(
            f"{name}: coord_scale must have shape {tuple(scale_shape)} to match locs "
            f"{tuple(locs.shape)}, got {tuple(coord_scale.shape)}"
        )
    if component_logits.shape != locs.shape[:-1]:
        raise ValueError(
            f"{name}: component_logits must have shape {tuple(locs.shape[:-1])} (locs' "
            f"shape without D), got {tuple(component_logits.shape)}"
        )


class MixtureOfDiagNormals(TorchDistribution):
    """Mixture of K D-dimensional Normals, each with its own mean and diagonal scale.

    ``locs`` and ``coord_scale`` have shape ``(..., K, D)``, ``component_logits`` shape
    ``(..., K)`` (softmax weights); the batch shape is ``locs.shape[:-2]``. ``rsample``
    gives pathwise gradients for all three parameters (see :func:`mixture_rsample`).

    >>> d = MixtureOfDiagNormals(torch.zeros(2, 3), torch.ones(2, 3), torch.zeros(2))
    >>> d.rsample((4,)).shape, round(float(d.log_prob(torch.zeros(3))), 4)
    (torch.Size([4, 3]), -2.7568)
    """

    arg_constraints = {
        "locs": constraints.real,
        "coord_scale": constraints.positive,
        "component_logits": constraints.real,
    }
    support = constraints.real_vector
    has_rsample = True

    def __init__(
        self, locs: torch.Tensor, coord_scale: torch.Tensor, component_logits: torch.Tensor
    ):
        _check_shapes(type(self).__name__, locs, coord_scale, component_logits, locs.shape)
        self.locs = locs
        self.coord_scale = coord_scale
        self.component_logits = component_logits
        self.dim = locs.size(-1)
        super().__init__(locs.shape[:-2], locs.shape[-1:])

    def _scales(self) -> torch.Tensor:
        return self.coord_scale

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(type(self), _instance)
        batch_shape = torch.Size(batch_shape)
        num_components = self.component_logits.size(-1)
        new.locs = self.locs.expand(batch_shape + (num_components, self.dim))
        new.coord_scale = self.coord_scale.expand(
            batch_shape + self.coord_scale.shape[len(self.batch_shape) :]
        )
        new.component_logits = self.component_logits.expand(batch_shape + (num_components,))
        new.dim = self.dim
        super(MixtureOfDiagNormals, new).__init__(
            batch_shape, self.event_shape, validate_args=False
        )
        new._validate_args = self._validate_args
        return copy_forced_has_rsample(self, new)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return mixture_log_prob(self.locs, self._scales(), self.component_logits, value)

    def rsample(self, sample_shape: Sequence[int] = ()) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape
        return mixture_rsample(self.locs, self._scales(), self.component_logits, shape)


class MixtureOfDiagNormalsSharedCovariance(MixtureOfDiagNormals):
    """Mixture of K D-dimensional Normals with their own means and one shared diagonal scale.

    ``locs`` has shape ``(..., K, D)``, ``coord_scale`` shape ``(..., D)`` and
    ``component_logits`` shape ``(..., K)``.

    >>> d = MixtureOfDiagNormalsSharedCovariance(torch.zeros(2, 3), torch.ones(3), torch.zeros(2))
    >>> d.rsample((4,)).shape, round(float(d.log_prob(torch.zeros(3))), 4)
    (torch.Size([4, 3]), -2.7568)
    """

    def __init__(
        self, locs: torch.Tensor, coord_scale: torch.Tensor, component_logits: torch.Tensor
    ):
        scale_shape = locs.shape[:-2] + locs.shape[-1:]
        _check_shapes(type(self).__name__, locs, coord_scale, component_logits, scale_shape)
        self.locs = locs
        self.coord_scale = coord_scale
        self.component_logits = component_logits
        self.dim = locs.size(-1)
        TorchDistribution.__init__(self, locs.shape[:-2], locs.shape[-1:])

    def _scales(self) -> torch.Tensor:
        return self.coord_scale.unsqueeze(-2)
