"""MultivariateNormal variants whose ``rsample`` keeps the usual draw ``loc + scale_tril @ eps``
but backpropagates other unbiased pathwise gradients: optimal-transport (OMT) gradients,
and reparameterized gradients plus a learned control variate (AVF)."""

import torch
from torch.distributions import constraints

from pyrolite.distributions.torch import MultivariateNormal


def _sum_to_shape(grad: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Sum ``grad`` over the leading and broadcast dims it has beyond ``shape``."""
    extra = grad.dim() - len(shape)
    if extra > 0:
        grad = grad.sum(tuple(range(extra)))
    dims = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(dims, keepdim=True) if dims else grad


class _OMTSample(torch.autograd.Function):
    """``z = loc + L eps`` whose gradient in ``L`` follows the optimal transport map.

    A change ``dL`` changes the covariance by ``dC = dL L^T + L dL^T``; the optimal transport
    velocity is ``v(z) = S (z - loc)`` with ``S`` symmetric solving ``S C + C S = dC``. Its
    adjoint, for an upstream gradient ``g``, is ``2 W L`` where ``W`` solves the same
    Lyapunov equation with ``sym(sum g (z - loc)^T)`` on the right; an eigendecomposition of
    ``C`` solves it (the O(D^3) cost).
    """

    @staticmethod
    def forward(ctx, loc, scale_tril, eps):
        centered = (scale_tril @ eps.unsqueeze(-1)).squeeze(-1)
        ctx.save_for_backward(scale_tril, centered)
        ctx.loc_shape = loc.shape
        return loc + centered

    @staticmethod
    def backward(ctx, grad):
        scale_tril, centered = ctx.saved_tensors
        grad_loc = _sum_to_shape(grad, ctx.loc_shape)
        outer = grad.unsqueeze(-1) * centered.unsqueeze(-2)
        outer = _sum_to_shape(outer, scale_tril.shape)
        outer = 0.5 * (outer + outer.mT)
        cov = scale_tril @ scale_tril.mT
        eigvals, eigvecs = torch.linalg.eigh(cov)
        rotated = eigvecs.mT @ outer @ eigvecs
        rotated = rotated / (eigvals.unsqueeze(-1) + eigvals.unsqueeze(-2))
        w = eigvecs @ rotated @ eigvecs.mT
        grad_scale_tril = (2 * w @ scale_tril).tril()
        return grad_loc, grad_scale_tril, None


class OMTMultivariateNormal(MultivariateNormal):
    """:class:`MultivariateNormal` with optimal mass transport gradients of ``rsample`` in
    both ``loc`` and ``scale_tril`` (lower variance than the reparameterization gradient
    in many problems; the ``scale_tril`` gradient costs O(D^3)). Samples are the usual ones.

    >>> loc = torch.zeros(2, requires_grad=True)
    >>> scale_tril = torch.eye(2).requires_grad_()
    >>> d = OMTMultivariateNormal(loc, scale_tril)
    >>> z = d.rsample((100,))
    >>> z.pow(2).sum().backward()
    >>> loc.grad.shape, scale_tril.grad.triu(1).abs().sum().item()
    (torch.Size([2]), 0.0)
    """

    arg_constraints = {"loc": constraints.real, "scale_tril": constraints.lower_triangular}

    def __init__(self, loc: torch.Tensor, scale_tril: torch.Tensor):
        if loc.dim() != 1:
            raise ValueError(
                f"OMTMultivariateNormal loc must be one-dimensional, got shape {tuple(loc.shape)}."
            )
        super().__init__(loc, scale_tril=scale_tril)

    def rsample(self, sample_shape=()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        eps = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        return _OMTSample.apply(self.loc, self.scale_tril, eps)


class _AVFSample(torch.autograd.Function):
    """``z = loc + L eps`` whose gradient in ``L`` adds a learned divergence-free velocity
    field to the reparameterization gradient, and which gives ``control_var`` the gradient
    of that estimator's squared norm, so that an optimizer adapts it to lower the variance.

    For the entry ``L_ij`` the field is ``L A_ij eps`` with ``A_ij = sum_l a_li (e_j b_l^T -
    b_l e_j^T)`` antisymmetric, where ``(a, b) = control_var``. Antisymmetric linear fields
    preserve the standard normal (``div(phi A eps) = phi (tr A - eps^T A eps) = 0``), so the
    estimator ``g_i eps_j + (L^T g)^T A_ij eps`` stays unbiased for every ``control_var``.
    """

    @staticmethod
    def forward(ctx, loc, scale_tril, control_var, eps):
        centered = (scale_tril @ eps.unsqueeze(-1)).squeeze(-1)
        ctx.save_for_backward(scale_tril, control_var, eps)
        ctx.loc_shape = loc.shape
        return loc + centered

    @staticmethod
    def backward(ctx, grad):
        scale_tril, control_var, eps = ctx.saved_tensors
        grad_loc = _sum_to_shape(grad, ctx.loc_shape)
        flat_grad = grad.reshape(-1, grad.shape[-1])
        flat_eps = eps.reshape(-1, eps.shape[-1])
        whitened_grad = flat_grad @ scale_tril.detach()  # rows are (L^T g)^T
        with torch.enable_grad():
            cv = control_var.detach().requires_grad_()
            a, b = cv[0], cv[1]
            # R_lj = sum_n (b_l . eps_n) h_nj - (h_n . b_l) eps_nj, then a^T R.
            r = (flat_eps @ b.mT).mT @ whitened_grad - (whitened_grad @ b.mT).mT @ flat_eps
            grad_scale_tril = (flat_grad.mT @ flat_eps + a.mT @ r).tril()
            # The estimator's mean does not depend on control_var, so its expected squared
            # norm is the variance plus a constant: that is what control_var descends.
            (grad_cv,) = torch.autograd.grad(grad_scale_tril.pow(2).sum(), cv)
        return grad_loc, grad_scale_tril.detach(), grad_cv, None


class AVFMultivariateNormal(MultivariateNormal):
    """:class:`MultivariateNormal` whose ``rsample`` gradient in ``scale_tril`` adds an
    adaptive velocity field control variate parameterized by ``control_var`` (shape
    ``(2, L, D)``, any ``L >= 1``). Backpropagating through a sample also gives
    ``control_var`` a gradient that lowers the variance of the ``scale_tril`` gradient,
    so ``control_var`` is learned alongside ``loc`` and ``scale_tril``.

    >>> D = 2
    >>> scale_tril = torch.eye(D).requires_grad_()
    >>> control_var = torch.full((2, 1, D), 0.1, requires_grad=True)
    >>> d = AVFMultivariateNormal(torch.zeros(D), scale_tril, control_var)
    >>> d.rsample((10,)).pow(2).sum().backward()
    >>> scale_tril.grad.shape, control_var.grad.shape
    (torch.Size([2, 2]), torch.Size([2, 1, 2]))
    """

    arg_constraints = {
        "loc": constraints.real,
        "scale_tril": constraints.lower_triangular,
        "control_var": constraints.real,
    }

    def __init__(self, loc: torch.Tensor, scale_tril: torch.Tensor, control_var: torch.Tensor):
        if loc.dim() != 1:
            raise ValueError(
                f"AVFMultivariateNormal loc must be one-dimensional, got shape {tuple(loc.shape)}."
            )
        if control_var.dim() != 3 or control_var.size(0) != 2 or control_var.size(2) != loc.size(0):
            raise ValueError(
                "control_var should be of size 2 x L x D, where D is the dimension of the "
                f"location parameter loc; got {tuple(control_var.shape)} for D = {loc.size(0)}."
            )
        self.control_var = control_var
        super().__init__(loc, scale_tril=scale_tril)

    def rsample(self, sample_shape=()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        eps = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        return _AVFSample.apply(self.loc, self.scale_tril, self.control_var, eps)
