"""Auxiliary-variable reparameterizers of ``Stable`` sites: ``LatentStableReparam``,
``SymmetricStableReparam`` and ``StableReparam`` (the last two make observed stable
sites conditionally Normal, so inference needs no stable density)."""

import math

import torch

from ... import primitives as pyro
from ...distributions.delta import Delta
from ...distributions.stable import Stable, chambers_mallows_stuck_s0
from ...distributions.torch import Exponential, Normal, Uniform
from .reparam import Reparam

_HALF_PI = 0.5 * math.pi
_UNIT_TOL = 1e-6


def _standard_stable(a, b, u, e) -> torch.Tensor:
    """The Chambers-Mallows-Stuck map from ``u ~ Uniform(-pi/2, pi/2)`` and
    ``e ~ Exponential(1)`` to the standard S0 stable law ``(a, b)``, as ``Stable.rsample``."""
    u = u.clamp(-_HALF_PI + 1e-7, _HALF_PI - 1e-7)
    log_e = e.log()
    log_cos_u = u.cos().log()
    unit = (a - 1).abs() < _UNIT_TOL
    z = chambers_mallows_stuck_s0(u, log_e, log_cos_u, torch.where(unit, 0.5, a), b)
    if bool(unit.any()):
        bu = _HALF_PI + b * u
        one = bu * u.tan() - b * (math.log(_HALF_PI) + log_e + log_cos_u - bu.log())
        z = torch.where(unit, one / _HALF_PI, z)
    return z


def _unwrap_stable(reparam: Reparam, name: str, fn, who: str):
    fn, event_dim = reparam._unwrap(fn)
    if type(fn) is not Stable and not isinstance(fn, Stable):
        raise TypeError(f"{who} at site '{name}' needs a Stable distribution, got {type(fn)}")
    return fn, event_dim


def _noise(reparam: Reparam, name: str, proto: torch.Tensor, shape, event_dim: int):
    """Draw the parameter-free ``{name}_uniform``, ``{name}_exponential`` pair."""
    zero = proto.new_zeros(())
    uniform = Uniform(zero - _HALF_PI, zero + _HALF_PI).expand(shape)
    u = pyro.sample(f"{name}_uniform", reparam._wrap(uniform, event_dim))
    exponential = Exponential(zero + 1).expand(shape)
    e = pyro.sample(f"{name}_exponential", reparam._wrap(exponential, event_dim))
    return u, e


def _sub_gaussian_scale(a, u, e) -> torch.Tensor:
    """``sqrt(A)`` times the Normal's std, with ``A ~ S(a/2, 1)`` totally skewed (S coords),
    so that ``Normal(0, 1) * scale`` is the standard symmetric S0 stable law ``a``."""
    half = 0.5 * a
    z = _standard_stable(half, torch.ones_like(a), u, e) + torch.tan(_HALF_PI * half)
    scale = z.clamp(min=0).sqrt() * torch.cos(0.5 * _HALF_PI * a).pow(a.reciprocal())
    return (scale * math.sqrt(2)).clamp(min=torch.finfo(scale.dtype).tiny)


class LatentStableReparam(Reparam):
    """Replace a latent ``x ~ Stable(...)`` by ``x_uniform ~ Uniform(-pi/2, pi/2)``,
    ``x_exponential ~ Exponential(1)`` and ``x`` their Chambers-Mallows-Stuck image.

    >>> import torch, pyrolite
    >>> from pyrolite import poutine
    >>> from pyrolite.poutine.reparam_messenger import ReparamMessenger
    >>> def model():
    ...     return pyrolite.sample("x", Stable(2.0, 0.0))
    >>> with ReparamMessenger({"x": LatentStableReparam()}):
    ...     with poutine.condition(data={"x_uniform": torch.tensor(0.0)}):
    ...         x = model()
    >>> x
    tensor(0.)
    """

    def apply(self, msg):
        name, fn = msg["name"], msg["fn"]
        if msg["is_observed"]:
            raise NotImplementedError(
                f"LatentStableReparam at site '{name}' cannot reparameterize an observed "
                "site; use StableReparam (or SymmetricStableReparam) instead."
            )
        fn, event_dim = _unwrap_stable(self, name, fn, "LatentStableReparam")
        u, e = _noise(self, name, fn.loc, fn.batch_shape, event_dim)
        z = _standard_stable(fn.stability, fn.skew, u, e)
        value = fn.s0_loc() + fn.scale * z
        new_fn = Delta(value, event_dim=event_dim).mask(False)
        return {"fn": new_fn, "value": value, "is_observed": True}


class SymmetricStableReparam(Reparam):
    """Replace ``x ~ Stable(a, 0, scale, loc)`` by ``x_uniform``, ``x_exponential`` (which
    give a totally skewed ``A ~ S(a/2, 1)``) and ``x ~ Normal(loc, scale sqrt(2 A)
    cos(pi a / 4)^(1/a))``: for latent or observed sites of skew 0.

    >>> import torch, pyrolite
    >>> from pyrolite import poutine
    >>> from pyrolite.poutine.reparam_messenger import ReparamMessenger
    >>> def model():
    ...     return pyrolite.sample("x", Stable(1.5, 0.0), obs=torch.tensor(0.3))
    >>> tr = poutine.trace(ReparamMessenger({"x": SymmetricStableReparam()})(model)).get_trace()
    >>> type(tr.nodes["x"]["fn"]).__name__, tr.nodes["x"]["is_observed"]
    ('Normal', True)
    """

    def apply(self, msg):
        name, fn = msg["name"], msg["fn"]
        fn, event_dim = _unwrap_stable(self, name, fn, "SymmetricStableReparam")
        if not bool((fn.skew == 0).all()):
            raise ValueError(
                f"SymmetricStableReparam at site '{name}' needs skew == 0, got skew with "
                f"values in [{float(fn.skew.min())}, {float(fn.skew.max())}]; use "
                "StableReparam for skewed sites."
            )
        u, e = _noise(self, name, fn.loc, fn.batch_shape, event_dim)
        scale = fn.scale * _sub_gaussian_scale(fn.stability, u, e)
        new_fn = self._wrap(Normal(fn.s0_loc(), scale), event_dim)
        return {"fn": new_fn, "value": msg["value"], "is_observed": msg["is_observed"]}


def _skew_shift(a, skew_abs, t_scale) -> torch.Tensor:
    """``tan(pi a / 2) (|b|^(1/a) - |b|)``, continued to its limit ``2/pi |b| log|b|`` at
    ``a = 1`` (the S0 shift between a skewed sum and its totally skewed part)."""
    near_one = (a - 1).abs() < 1e-3
    safe_a = torch.where(near_one, 0.5, a)
    shift = torch.tan(_HALF_PI * safe_a) * (t_scale - skew_abs)
    limit = 2 / math.pi * skew_abs * skew_abs.log()
    return torch.where(near_one, limit, shift)


class StableReparam(Reparam):
    """Replace ``x ~ Stable(a, b, scale, loc)`` by four auxiliary sites ``x_z_uniform``,
    ``x_z_exponential`` (a totally skewed ``Z ~ S(a/2, 1)``), ``x_t_uniform``,
    ``x_t_exponential`` (a totally skewed ``T ~ S0(a, 1)``) and ``x`` Normal given them:
    ``X = S + T`` with ``S`` symmetric, ``S = G sqrt(Z) ...``. For latent or observed sites.

    >>> import torch, pyrolite
    >>> from pyrolite import poutine
    >>> from pyrolite.poutine.reparam_messenger import ReparamMessenger
    >>> def model():
    ...     return pyrolite.sample("x", Stable(1.5, 0.5), obs=torch.tensor(0.3))
    >>> tr = poutine.trace(ReparamMessenger({"x": StableReparam()})(model)).get_trace()
    >>> [n for n in tr.nodes if tr.nodes[n]["type"] == "sample"]
    ['x_z_uniform', 'x_z_exponential', 'x_t_uniform', 'x_t_exponential', 'x']
    """

    def apply(self, msg):
        name, fn = msg["name"], msg["fn"]
        fn, event_dim = _unwrap_stable(self, name, fn, "StableReparam")
        a, b = fn.stability, fn.skew
        shape = fn.batch_shape
        z_u, z_e = _noise(self, f"{name}_z", fn.loc, shape, event_dim)
        t_u, t_e = _noise(self, f"{name}_t", fn.loc, shape, event_dim)
        eps = 1e-6
        skew_abs = b.abs().clamp(min=eps, max=1 - eps)
        a_inv = a.reciprocal()
        t_scale = skew_abs.pow(a_inv)
        s_scale = (1 - skew_abs).pow(a_inv)
        t = _standard_stable(a, torch.ones_like(a), t_u, t_e)
        shift = _skew_shift(a, skew_abs, t_scale)
        loc = fn.s0_loc() + fn.scale * b.sign() * (t_scale * t + shift)
        scale = fn.scale * s_scale * _sub_gaussian_scale(a, z_u, z_e)
        new_fn = self._wrap(Normal(loc, scale), event_dim)
        return {"fn": new_fn, "value": msg["value"], "is_observed": msg["is_observed"]}
