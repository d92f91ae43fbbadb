"""Gamma-scaled Gaussian factors: the joint density of a Gamma scale ``s`` and Gaussians whose
precision is multiplied by ``s`` (Student-t models), in information form. The quadratic part
in ``x`` is :class:`~pyrolite.ops.gaussian.Gaussian`'s, so its block algebra is reused; only
the constant terms, which scale with ``s``, are kept differently, and ``s`` integrates out last.
"""

from typing import Optional, Tuple

import torch

from pyrolite.ops.gaussian import (
    LOG_2PI,
    InfoFormFactor,
    condition_blocks,
    linear_gaussian_parts,
    marginalize_blocks,
    tensordot_blocks,
    tree_levels,
)


class GammaGaussian(InfoFormFactor):
    """``log_normalizer + (alpha - 1) log s - beta s + s (info_vec @ x - x @ precision @ x / 2)``
    over a scale ``s > 0`` and ``x`` in R^n.

    Shapes: ``log_normalizer``, ``alpha`` and ``beta`` ``(...)``, ``info_vec`` ``(..., n)``,
    ``precision`` ``(..., n, n)``. With ``n = 0`` it is an unnormalized Gamma(alpha, beta)
    density over ``s``.

    >>> g = gamma_to_gamma_gaussian(torch.tensor(3.0), torch.tensor(2.0))
    >>> round(float(g.event_logsumexp()), 4)  # a normalized Gamma density
    0.0
    """

    _fields = ("log_normalizer", "info_vec", "precision", "alpha", "beta")
    _event_dims = (0, 1, 2, 0, 0)

    def __init__(
        self,
        log_normalizer: torch.Tensor,
        info_vec: torch.Tensor,
        precision: torch.Tensor,
        alpha: torch.Tensor,
        beta: torch.Tensor,
    ):
        if info_vec.dim() < 1 or precision.shape[-2:] != info_vec.shape[-1:] * 2:
            raise ValueError(
                f"GammaGaussian: info_vec of shape {tuple(info_vec.shape)} and precision of "
                f"shape {tuple(precision.shape)} disagree: expected (..., n) and (..., n, n)."
            )
        self.log_normalizer = log_normalizer
        self.info_vec = info_vec
        self.precision = precision
        self.alpha = alpha
        self.beta = beta

    def dim(self) -> int:
        return self.info_vec.size(-1)

    def __repr__(self) -> str:
        return f"GammaGaussian(batch_shape={tuple(self.batch_shape)}, dim={self.dim()})"

    def event_pad(self, left: int = 0, right: int = 0) -> "GammaGaussian":
        """The same density, flat in ``left`` new leading and ``right`` new trailing dims."""
        info_vec = torch.nn.functional.pad(self.info_vec, (left, right))
        precision = torch.nn.functional.pad(self.precision, (left, right, left, right))
        return GammaGaussian(self.log_normalizer, info_vec, precision, self.alpha, self.beta)

    def __add__(self, other: "GammaGaussian") -> "GammaGaussian":
        """The product of densities sharing the same scale ``s``."""
        if not isinstance(other, GammaGaussian):
            return NotImplemented
        if other.dim() != self.dim():
            raise ValueError(
                f"GammaGaussian + GammaGaussian: dims {self.dim()} and {other.dim()} differ; "
                "event_pad one of them first."
            )
        return GammaGaussian(
            self.log_normalizer + other.log_normalizer,
            self.info_vec + other.info_vec,
            self.precision + other.precision,
            self.alpha + other.alpha - 1,
            self.beta + other.beta,
        )

    def condition(self, value: torch.Tensor) -> "GammaGaussian":
        """Fix the rightmost ``value.size(-1)`` dims of ``x`` to ``value``."""
        keep = self.dim() - value.size(-1)
        info_vec, precision, constant = condition_blocks(
            self.info_vec, self.precision, value, slice(0, keep), slice(keep, None)
        )
        return GammaGaussian(
            self.log_normalizer, info_vec, precision, self.alpha, self.beta - constant
        )

    def marginalize(self, left: int = 0, right: int = 0) -> "GammaGaussian":
        """Integrate out the ``left`` leftmost and ``right`` rightmost dims of ``x``."""
        n = self.dim()
        drop = list(range(left)) + list(range(n - right, n))
        precision, info_vec, half_quad, half_logdet = marginalize_blocks(
            self.info_vec, self.precision, list(range(left, n - right)), drop
        )
        return GammaGaussian(
            self.log_normalizer + 0.5 * len(drop) * LOG_2PI - half_logdet,
            info_vec,
            precision,
            self.alpha - 0.5 * len(drop),
            self.beta - half_quad,
        )

    def event_logsumexp(self) -> torch.Tensor:
        """``log`` of the integral over all of ``x`` and over ``s``."""
        g = self.marginalize(left=self.dim())
        return g.log_normalizer + g.alpha.lgamma() - g.alpha * g.beta.log()

    def gamma_and_mvn(self) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The normalized form as ``(concentration, rate, loc, precision)``: ``s`` is
        Gamma(concentration, rate) and ``x`` given ``s`` is Normal(loc, (s precision)^-1)."""
        chol = torch.linalg.cholesky(self.precision)
        loc = torch.cholesky_solve(self.info_vec.unsqueeze(-1), chol).squeeze(-1)
        concentration = self.alpha - 0.5 * self.dim()
        rate = self.beta - 0.5 * (loc * self.info_vec).sum(-1)
        return concentration, rate, loc, self.precision


def gamma_to_gamma_gaussian(concentration: torch.Tensor, rate: torch.Tensor) -> GammaGaussian:
    """A normalized Gamma(concentration, rate) density over ``s`` as a dim-0 GammaGaussian."""
    concentration, rate = torch.broadcast_tensors(
        torch.as_tensor(concentration), torch.as_tensor(rate)
    )
    info_vec = concentration.new_zeros(concentration.shape + (0,))
    precision = concentration.new_zeros(concentration.shape + (0, 0))
    log_normalizer = concentration * rate.log() - concentration.lgamma()
    return GammaGaussian(log_normalizer, info_vec, precision, concentration, rate)


def matrix_and_mvn_to_gamma_gaussian(
    matrix: Optional[torch.Tensor], dist: torch.distributions.Distribution
) -> GammaGaussian:
    """The density of ``y = x @ matrix + noise`` (``y = noise`` when ``matrix`` is None)
    where ``noise`` is ``dist`` with its precision multiplied by ``s``: a GammaGaussian over
    ``(x, y)`` (over ``y``), normalized over ``y`` for each ``s``.

    >>> from pyrolite.distributions import MultivariateNormal
    >>> g = matrix_and_mvn_to_gamma_gaussian(None, MultivariateNormal(torch.zeros(2), torch.eye(2)))
    >>> g.alpha  # the noise's s^(n/2) normalizer
    tensor(2.)
    """
    info_vec, precision, log_normalizer, half_quad = linear_gaussian_parts(matrix, dist)
    y_dim = dist.event_shape[-1]
    alpha = torch.full_like(log_normalizer, 1.0 + 0.5 * y_dim)
    return GammaGaussian(log_normalizer, info_vec, precision, alpha, half_quad)


def gamma_gaussian_tensordot(x: GammaGaussian, y: GammaGaussian, dims: int) -> GammaGaussian:
    """Integrate out the ``dims`` dims shared by ``x`` (its rightmost) and ``y`` (its
    leftmost) from their product: over ``(a, b)`` and ``(b, c)``, a GammaGaussian over
    ``(a, c)``."""
    precision, info_vec, half_quad, half_logdet = tensordot_blocks(
        x.info_vec, x.precision, y.info_vec, y.precision, dims
    )
    return GammaGaussian(
        x.log_normalizer + y.log_normalizer + 0.5 * dims * LOG_2PI - half_logdet,
        info_vec,
        precision,
        x.alpha + y.alpha - 1 - 0.5 * dims,
        x.beta + y.beta - half_quad,
    )


def sequential_gamma_gaussian_tensordot(factors: GammaGaussian) -> GammaGaussian:
    """Contract a chain ``(..., T)`` of factors over ``(x[t-1], x[t])`` into one ``(...)``
    over ``(x[-1], x[T-1])`` by a pairwise tree, as
    :func:`~pyrolite.ops.gaussian.sequential_gaussian_tensordot` does."""
    if factors.dim() % 2:
        raise ValueError(
            f"sequential_gamma_gaussian_tensordot: a factor over (old, new) has an even dim, "
            f"got {factors.dim()}."
        )
    state_dim = factors.dim() // 2
    levels = tree_levels(factors, lambda x, y: gamma_gaussian_tensordot(x, y, state_dim))
    return levels[-1].time_select(0)


__all__ = [
    "GammaGaussian",
    "gamma_gaussian_tensordot",
    "gamma_to_gamma_gaussian",
    "matrix_and_mvn_to_gamma_gaussian",
    "sequential_gamma_gaussian_tensordot",
]
