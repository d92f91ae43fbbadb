"""Levy alpha-stable distributions: ``Stable`` (Chambers-Mallows-Stuck reparameterized
sampler, ``log_prob`` by quadrature of Nolan's integral) and ``StableWithLogProb``."""

import math
from typing import Union

import numpy as np
import torch
from torch.distributions import constraints
from torch.distributions.utils import broadcast_all

from pyrolite.distributions.torch_distribution import TorchDistribution, copy_forced_has_rsample

# Below these distances from alpha = 1 (or beta = 0 at alpha = 1) the float64 formulas
# lose more digits than the limiting formula's error, so the limit is used.
_ALPHA_ONE_TOL = 1e-6
_BETA_ZERO_TOL = 1e-7
# Central-difference steps that give the stability = 1 formulas a stability gradient.
_UNIT_SLOPE_STEP = 1e-4
_UNIT_LOG_PROB_STEP = 1e-3

# Nolan's integrand is exp(s - exp(s)) in s = log u, with s monotone in the angle. Panels
# run between the angles (found by bisection) where s crosses these levels, which bracket
# all but e^-30 of the peak, and between uniform cuts of the range (s can plateau away from
# the peak); each panel gets Gauss-Legendre nodes.
_PANEL_LEVELS = (-30.0, -12.0, -5.0, -2.0, -0.5, 0.5, 1.5, 2.5, 3.5)
_UNIFORM_PANELS = 8
_NODES_PER_PANEL = 12
_BISECTION_STEPS = 34  # panel ends need not be exact: any partition is a valid quadrature
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(_NODES_PER_PANEL)
_TINY = 1e-300


def _log_positive(t: torch.Tensor) -> torch.Tensor:
    """Log of a factor that is positive in exact arithmetic but may round to zero or below
    within an ulp of the range's ends."""
    return t.clamp_min(_TINY).log()


class _NolanIntegrand:
    """``s(phi) = log u`` of Nolan's integral for the standard S0 density at ``x``, as a
    function of the angle ``phi`` from the lower end of the range ``(0, length)``.

    Inputs are float64, broadcast, and already reflected to the side where the formula
    holds (``x > zeta`` for alpha != 1, ``beta > 0`` for alpha = 1); ``unit`` marks
    alpha = 1, which has its own formula. The per-point constants are computed once here,
    not at every bisection step.
    """

    def __init__(self, x, alpha, beta, unit):
        self.unit = unit
        self.any_unit, self.all_unit = bool(unit.any()), bool(unit.all())
        a = torch.where(unit, 0.5, alpha)
        tan_half = torch.tan(0.5 * math.pi * a)
        self.a = a
        self.theta0 = torch.atan(beta * tan_half) / a
        self.gap = x + beta * tan_half
        self.exponent = a / (a - 1)
        # For alpha != 1, theta = phi - theta0 and cos(theta) = sin(length - phi).
        self.offset = self.exponent * self.gap.clamp_min(_TINY).log() + _log_positive(
            torch.cos(a * self.theta0)
        ) / (a - 1)
        self.length = torch.where(unit, math.pi, 0.5 * math.pi + self.theta0)
        if self.any_unit:
            # For alpha = 1, theta = phi - pi/2.
            self.b = torch.where(unit, beta, 1.0)
            self.unit_offset = -0.5 * math.pi * x / self.b + math.log(2 / math.pi)

    def unsqueeze(self) -> "_NolanIntegrand":
        """The same integrand with a trailing dim for the angles."""
        new = object.__new__(_NolanIntegrand)
        for key, value in self.__dict__.items():
            new.__dict__[key] = value.unsqueeze(-1) if isinstance(value, torch.Tensor) else value
        return new

    def __call__(self, phi: torch.Tensor) -> torch.Tensor:
        if self.all_unit:
            return self._unit(phi)
        log_cos_theta = _log_positive(torch.sin(self.length - phi))
        general = (
            self.offset
            + (self.exponent - 1) * log_cos_theta
            - self.exponent * _log_positive(torch.sin(self.a * phi))
            + _log_positive(torch.cos(self.theta0 + (self.a - 1) * phi))
        )
        if not self.any_unit:
            return general
        return torch.where(self.unit, self._unit(phi), general)

    def _unit(self, phi: torch.Tensor) -> torch.Tensor:
        sin_phi = torch.sin(phi).clamp_min(_TINY)
        shifted = 0.5 * math.pi + self.b * (phi - 0.5 * math.pi)
        return (
            self.unit_offset
            + _log_positive(shifted)
            - sin_phi.log()
            - shifted * torch.cos(phi) / (sin_phi * self.b)
        )


def _panel_nodes(integrand: _NolanIntegrand, increasing: torch.Tensor):
    """Quadrature angles and log weights (trailing dim), detached from the parameters:
    the integrand vanishes at the ends of the range, so moving them moves nothing."""
    with torch.no_grad():
        length = integrand.length.detach()
        levels = torch.tensor(_PANEL_LEVELS, dtype=length.dtype, device=length.device)
        shape = length.shape + levels.shape
        s_of = integrand.unsqueeze()
        direction = torch.where(increasing, 1.0, -1.0).unsqueeze(-1)
        lo = torch.zeros(shape, dtype=length.dtype, device=length.device)
        hi = length.unsqueeze(-1).expand(shape).contiguous()
        for _ in range(_BISECTION_STEPS):
            mid = 0.5 * (lo + hi)
            below = direction * (s_of(mid) - levels) < 0
            lo = torch.where(below, mid, lo)
            hi = torch.where(below, hi, mid)
        cuts = torch.linspace(0, 1, _UNIFORM_PANELS + 1, dtype=length.dtype, device=length.device)
        end = length.unsqueeze(-1)
        edges = torch.cat([0.5 * (lo + hi), end * cuts[1:-1]], dim=-1).sort(dim=-1).values
        edges = torch.cat([torch.zeros_like(end), edges, end], dim=-1)
        nodes = torch.tensor(_GL_NODES, dtype=length.dtype, device=length.device)
        weights = torch.tensor(_GL_WEIGHTS, dtype=length.dtype, device=length.device)
        half = 0.5 * (edges[..., 1:] - edges[..., :-1])
        phi = (edges[..., :-1] + half).unsqueeze(-1) + half.unsqueeze(-1) * nodes
        log_w = half.clamp_min(_TINY).log().unsqueeze(-1) + weights.log()
        return phi.flatten(-2), log_w.flatten(-2)


def _stable_log_density(x: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Log density of the standard S0 stable law (scale 1, loc 0), all inputs float64 and
    broadcast to one shape, differentiable in each of them."""
    x_in, beta_in = x, beta
    unit = (alpha - 1).abs() < _ALPHA_ONE_TOL
    cauchy = unit & (beta.abs() < _BETA_ZERO_TOL)
    gaussian = alpha == 2
    a = torch.where(unit, 0.5, alpha)
    tan_half = torch.tan(0.5 * math.pi * a)
    zeta = torch.where(unit, 0.0, -beta * tan_half)
    # Reflect to x > zeta (alpha != 1) or beta > 0 (alpha == 1): f(x; a, b) = f(-x; a, -b).
    flip = torch.where(unit, beta < 0, x < zeta)
    x = torch.where(flip, -x, x)
    beta = torch.where(flip, -beta, beta)
    beta = torch.where(cauchy, 1.0, beta)  # keeps the unused alpha = 1 branch finite
    integrand = _NolanIntegrand(x, alpha, beta, unit)
    empty = integrand.length < 1e-12  # alpha < 1, |beta| = 1: the side with no mass
    at_zeta = ~unit & (integrand.gap < 1e-9 * (1 + zeta.abs()))
    phi, log_w = _panel_nodes(integrand, unit | (alpha < 1))
    s_of = integrand.unsqueeze()
    # Nodes whose term underflows (or whose s is not finite) contribute nothing, but their
    # steep derivatives would turn the zero upstream gradient into NaN: they are evaluated
    # at a harmless angle instead and dropped.
    with torch.no_grad():
        s_plain = s_of(phi)
        dead = ~(s_plain.isfinite() & (s_plain - s_plain.exp() > -700.0))
        dead = dead & ~dead.all(-1, keepdim=True)
        harmless = phi.gather(-1, (log_w + s_plain - s_plain.exp()).argmax(-1, keepdim=True))
    s = s_of(torch.where(dead, harmless, phi))
    terms = torch.where(dead, -math.inf, log_w + s - s.exp())
    log_integral = torch.logsumexp(terms, dim=-1)
    general = (
        (a / (math.pi * (a - 1).abs())).log() - integrand.gap.clamp_min(_TINY).log() + log_integral
    )
    log_f = torch.where(unit, log_integral - (2 * beta).log(), general)
    at_zeta_value = (
        torch.lgamma(1 + 1 / a)
        + torch.cos(integrand.theta0).log()
        - math.log(math.pi)
        - torch.log1p(zeta.pow(2)) / (2 * a)
    )
    log_f = torch.where(at_zeta, at_zeta_value, log_f)
    log_f = torch.where(empty, -math.inf, log_f)
    log_f = torch.where(cauchy, -math.log(math.pi) - torch.log1p(x.pow(2)), log_f)
    if integrand.any_unit:
        # As in rsample: the stability = 1 density's stability gradient, by a central
        # difference of the general formula.
        with torch.no_grad():
            step = _UNIT_LOG_PROB_STEP
            x0, b0 = x_in.detach(), beta_in.detach()
            slope = (
                _stable_log_density(x0, torch.full_like(x0, 1 + step), b0)
                - _stable_log_density(x0, torch.full_like(x0, 1 - step), b0)
            ) / (2 * step)
        log_f = torch.where(unit, log_f + (alpha - alpha.detach()) * slope, log_f)
    normal = -0.25 * x.pow(2) - 0.5 * math.log(4 * math.pi)
    return torch.where(gaussian, normal, log_f)


def chambers_mallows_stuck_s0(u, log_w, log_cos_u, a, b):
    """Chambers-Mallows-Stuck draw of the standard S0 law (stability ``a != 1``) from
    ``u ~ Uniform(-pi/2, pi/2)`` and ``w ~ Exponential(1)``; the per-parameter constants
    are computed at the parameters' shape."""
    a = torch.as_tensor(a, dtype=u.dtype, device=u.device)
    skew_tan = b * torch.tan(0.5 * math.pi * a)
    inv_a = a.reciprocal()
    b_angle = torch.atan(skew_tan) * inv_a
    log_factor = torch.log1p(skew_tan.pow(2)) * (0.5 * inv_a)
    shifted_u = a * (u + b_angle)
    log_rest = (torch.cos(u - shifted_u).log() - log_w) * (inv_a - 1) - log_cos_u * inv_a
    return torch.sin(shifted_u) * (log_rest + log_factor).exp() - skew_tan


class Stable(TorchDistribution):
    """Levy alpha-stable distribution, in Nolan's S0 parameterization by default
    (continuous in all parameters; ``coords="S"`` gives the S parameterization of scipy,
    discontinuous at ``stability=1``).

    ``rsample`` is the reparameterized Chambers-Mallows-Stuck sampler. ``log_prob``
    integrates Nolan's formula numerically, as Pyro does: the integrand, of the form
    ``exp(s - e^s)``, is split at the angles (found by bisection) where ``s`` crosses nine
    levels and at eight uniform cuts, and each panel gets 12 Gauss-Legendre nodes, in
    float64. Against scipy's adaptive quadrature, where the log density is above -30 and
    ``|x| <= 100``, ``0.3 <= stability <= 1.99`` and any ``skew``, it agrees to 1e-5
    typically and 6e-4 at worst (stability near 2, x in the light shoulder); Pyro's agrees
    to about 1e-4, and 1e-2 near ``stability=1``. Within 1e-6 of ``stability=1`` the
    ``stability=1`` formula (the S0 limit) is used, with the stability gradient taken by a
    central difference; ``stability=2`` is the exact Normal. Far in the light tail of
    totally skewed laws (log density below about -30) both quadratures lose accuracy. On
    CPU it runs about 1.2-3x faster than Pyro's and is differentiable in all parameters.

    >>> d = Stable(torch.tensor(2.0), torch.tensor(0.0), scale=torch.tensor(1.5))
    >>> round(float(d.log_prob(torch.tensor(0.7))), 4)  # Normal(0, variance 2 * 1.5^2)
    -1.7254
    >>> d = Stable(torch.tensor(1.0), torch.tensor(0.0))
    >>> round(float(d.log_prob(torch.tensor(1.0))), 4)  # Cauchy
    -1.8379
    """

    arg_constraints = {
        "stability": constraints.interval(0, 2),
        "skew": constraints.interval(-1, 1),
        "scale": constraints.positive,
        "loc": constraints.real,
    }
    support = constraints.real
    has_rsample = True

    def __init__(
        self,
        stability: Union[torch.Tensor, float],
        skew: Union[torch.Tensor, float],
        scale: Union[torch.Tensor, float] = 1.0,
        loc: Union[torch.Tensor, float] = 0.0,
        coords: str = "S0",
        validate_args=None,
    ):
        if coords not in ("S", "S0"):
            raise ValueError(f'Stable: coords must be "S0" or "S", got {coords!r}.')
        self.stability, self.skew, self.scale, self.loc = broadcast_all(stability, skew, scale, loc)
        self.coords = coords
        super().__init__(self.loc.shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(Stable, _instance)
        batch_shape = torch.Size(batch_shape)
        for name in ("stability", "skew", "scale", "loc"):
            setattr(new, name, getattr(self, name).expand(batch_shape))
        new.coords = self.coords
        super(Stable, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return copy_forced_has_rsample(self, new)

    def s0_loc(self) -> torch.Tensor:
        """``loc`` in S0 coordinates (it differs from S's by a skew-dependent shift)."""
        if self.coords == "S0":
            return self.loc
        alpha, beta, scale = self.stability, self.skew, self.scale
        unit = (alpha - 1).abs() < _ALPHA_ONE_TOL
        tan_half = torch.tan(0.5 * math.pi * torch.where(unit, 0.5, alpha))
        shift = torch.where(unit, 2 / math.pi * beta * scale * scale.log(), beta * scale * tan_half)
        return self.loc + shift

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        dtype = torch.promote_types(value.dtype, self.loc.dtype)
        x = (value - self.s0_loc()) / self.scale
        x, alpha, beta = torch.broadcast_tensors(
            x.double(), self.stability.double(), self.skew.double()
        )
        log_f = _stable_log_density(x, alpha, beta)
        return log_f.to(dtype) - self.scale.log()

    def rsample(self, sample_shape=()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        dtype, device = self.loc.dtype, self.loc.device
        alpha, beta = self.stability, self.skew
        distance = (alpha - 1).abs()
        # The S0 shift cancels a term growing as 1 / (stability - 1): near 1 the draw is
        # computed in float64, and within _ALPHA_ONE_TOL by the stability = 1 formula.
        work = torch.float64 if bool((distance < 0.1).any()) else dtype
        unit = distance < _ALPHA_ONE_TOL
        any_unit = bool(unit.any())
        half_pi = 0.5 * math.pi
        u = torch.empty(shape, dtype=work, device=device).uniform_(-half_pi, half_pi)
        u = u.clamp(-half_pi + 1e-7, half_pi - 1e-7)
        log_w = torch.empty(shape, dtype=work, device=device).exponential_().log()
        log_cos_u = torch.cos(u).log()
        a = (torch.where(unit, 0.5, alpha) if any_unit else alpha).to(work)
        b = beta.to(work)
        z = chambers_mallows_stuck_s0(u, log_w, log_cos_u, a, b)
        if any_unit:
            bu = half_pi + b * u
            one = bu * torch.tan(u) - b * (math.log(half_pi) + log_w + log_cos_u - bu.log())
            # The stability = 1 formula has no stability gradient: borrow the derivative
            # of the general one by a central difference (its value is unchanged).
            with torch.no_grad():
                step = _UNIT_SLOPE_STEP
                slope = (
                    chambers_mallows_stuck_s0(u, log_w, log_cos_u, 1 + step, b)
                    - chambers_mallows_stuck_s0(u, log_w, log_cos_u, 1 - step, b)
                ) / (2 * step)
            alpha_w = alpha.to(work)
            one = one / half_pi + (alpha_w - alpha_w.detach()) * slope
            z = torch.where(unit, one, z)
        return self.s0_loc() + self.scale * z.to(dtype)

    @property
    def mean(self) -> torch.Tensor:
        tan_half = torch.tan(0.5 * math.pi * self.stability)
        mean = self.s0_loc() - self.skew * self.scale * tan_half
        return torch.where(self.stability > 1, mean, math.nan)

    @property
    def variance(self) -> torch.Tensor:
        return torch.where(self.stability == 2, 2 * self.scale.pow(2), math.inf)


class StableWithLogProb(Stable):
    """:class:`Stable` for inference by its ``log_prob``: Pyro's automatic reparameterizers
    leave this class alone (they rewrite plain ``Stable`` sites into auxiliary variables).

    >>> d = StableWithLogProb(torch.tensor(1.5), torch.tensor(0.5))
    >>> d.rsample((3,)).shape
    torch.Size([3])
    """

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(StableWithLogProb, _instance)
        return super().expand(batch_shape, new)
