"""Normal, HalfNormal, LogNormal and Beta that keep their parameters as given.

torch broadcasts a distribution's parameters against each other on construction, turns Python
numbers into tensors, builds HalfNormal/LogNormal as a TransformedDistribution around a second
Normal and Beta as a Dirichlet over stacked concentrations. In an SVI step every site builds a
fresh distribution, so that bookkeeping is paid per site per step, and broadcast parameters
make ``log(scale)`` and the backward of ``/ scale`` run at full data size. These classes store
the parameters compactly (a scalar ``scale`` next to a million-element ``loc`` stays a scalar;
a Python number stays a number and enters the arithmetic as a constant, the way a hand-written
log-density does: ``Beta(10.0, 10.0)``'s normalizer is computed in Python) and build the
broadcast tensors, the base distribution and the transforms only when something asks for them.

They subclass torch's classes, so ``isinstance`` checks, the parameter attributes, ``mean``,
``variance``, ``cdf``, ``icdf``, ``entropy``, KL registrations and validation behave as in
torch. Draws come from the same random stream as torch's Normal family; Beta draws
X / (X + Y) with X, Y ~ Gamma (torch's C++ gamma gradient) instead of torch's Python-level
Dirichlet autograd function.
"""

import math
import numbers
from typing import Tuple

import torch
from torch.distributions.transforms import AbsTransform, ExpTransform
from torch.distributions.utils import _standard_normal, broadcast_all, lazy_property

from pyrolite.distributions.torch_distribution import (
    TorchDistributionMixin,
    copy_forced_has_rsample,
)
from pyrolite.distributions.util import broadcast_shape

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
_LOG_2 = math.log(2.0)
_Tensor = torch.Tensor


def _as_param(value):
    """A tensor or a real Python number, as given; anything else the way torch converts it."""
    if isinstance(value, (_Tensor, numbers.Real)) and not isinstance(value, bool):
        return value
    (value,) = broadcast_all(value)  # raises torch's error for unsupported types
    return value


def _shape(value) -> torch.Size:
    return value.shape if isinstance(value, _Tensor) else torch.Size()


def _log(value):
    return value.log() if isinstance(value, _Tensor) else math.log(value)


def _lgamma(value):
    return value.lgamma() if isinstance(value, _Tensor) else math.lgamma(value)


def _normal_log_density(value, loc, scale):
    """``-z^2/2 - log(scale) - log(2 pi)/2`` with ``z = (value - loc) / scale``."""
    z = (value - loc) / scale if isinstance(loc, _Tensor) or loc != 0 else value / scale
    return z.square().mul(-0.5) - (_log(scale) + _HALF_LOG_2PI)


class _CompactParams(TorchDistributionMixin):
    """Stores the parameters named in ``_param_names`` compactly, as ``_<name>``.

    The public attribute of each parameter is its tensor broadcast to ``batch_shape``, built on
    access (the validation checks and torch's generic methods read them; the hot paths --
    ``rsample`` and ``log_prob`` -- use the compact values).
    """

    _param_names: Tuple[str, ...] = ()
    _expand_class: type  # the class whose constructor ``expand`` calls

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:  # subclasses that only change flags keep their base's
            cls._expand_class = cls

    def _init_params(self, values, validate_args) -> None:
        shape = torch.Size()
        for name, value in zip(self._param_names, values):
            value = _as_param(value)
            self.__dict__["_" + name] = value
            param_shape = _shape(value)
            if param_shape and param_shape != shape:  # a scalar never changes the shape
                shape = broadcast_shape(shape, param_shape) if shape else param_shape
        torch.distributions.Distribution.__init__(self, shape, validate_args=validate_args)

    def __repr__(self) -> str:
        parts = []
        for name in self._param_names:
            value = self.__dict__["_" + name]
            if isinstance(value, _Tensor) and value.numel() != 1:
                value = value.size()
            parts.append(f"{name}: {value}")
        return f"{type(self).__name__}({', '.join(parts)})"

    def _like(self):
        for name in self._param_names:
            value = self.__dict__["_" + name]
            if isinstance(value, _Tensor):
                return value
        return None

    def _dtype_device(self):
        like = self._like()
        if like is None or not like.is_floating_point():
            return torch.get_default_dtype(), (like.device if like is not None else None)
        return like.dtype, like.device

    def _broadcast_param(self, name: str) -> _Tensor:
        value = self.__dict__["_" + name]
        if not isinstance(value, _Tensor):
            dtype, device = self._dtype_device()
            value = torch.tensor(value, dtype=dtype, device=device)
        return value if value.shape == self._batch_shape else value.expand(self._batch_shape)

    def _covers(self, value: _Tensor) -> bool:
        """Whether ``value``'s trailing dims are the batch shape (its log-prob has its shape)."""
        batch = self._batch_shape
        return value.shape[max(0, value.dim() - len(batch)) :] == batch

    def _full_shape(self, value: _Tensor, log_prob: _Tensor) -> _Tensor:
        """``log_prob`` broadcast to ``value``'s shape and the batch shape, as torch returns it
        (compact params may leave batch dims out when ``value`` does not have them)."""
        if self._covers(value):
            return log_prob
        shape = broadcast_shape(value.shape, self._batch_shape)
        return log_prob if log_prob.shape == shape else log_prob.expand(shape)

    def _standard_normal(self, sample_shape) -> _Tensor:
        dtype, device = self._dtype_device()
        return _standard_normal(self._extended_shape(sample_shape), dtype=dtype, device=device)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        try:
            compatible = broadcast_shape(self._batch_shape, batch_shape) == batch_shape
        except ValueError:
            compatible = False
        if not compatible:
            raise RuntimeError(
                f"{type(self).__name__} with batch shape {tuple(self._batch_shape)} cannot be "
                f"expanded to {tuple(batch_shape)}."
            )
        params = [self.__dict__["_" + name] for name in self._param_names]
        if _instance is None and type(self).__init__ is self._expand_class.__init__:
            # A constructor call, not __new__: torch.compile traces it on every torch version.
            new = type(self)(*params, validate_args=False)
        else:
            new = self._get_checked_instance(self._expand_class, _instance)
            for name, value in zip(self._param_names, params):
                new.__dict__["_" + name] = value
        torch.distributions.Distribution.__init__(new, batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return copy_forced_has_rsample(self, new)


def _param_property(name: str, doc: str) -> property:
    def fget(self):
        return self._broadcast_param(name)

    def fset(self, value):
        self.__dict__["_" + name] = _as_param(value)

    return property(fget, fset, doc=doc)


class _LocScale(_CompactParams):
    """Compact ``loc`` and ``scale`` (Normal, LogNormal)."""

    _param_names = ("loc", "scale")
    loc = _param_property("loc", "``loc``, broadcast to ``batch_shape``.")
    scale = _param_property("scale", "``scale``, broadcast to ``batch_shape``.")

    def __init__(self, loc, scale, validate_args=None):
        self._init_params((loc, scale), validate_args)


class Normal(_LocScale, torch.distributions.Normal):
    """``torch.distributions.Normal`` with compact parameters (see the module docstring)."""

    def rsample(self, sample_shape=()):
        return self._loc + self._standard_normal(sample_shape) * self._scale

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return self._full_shape(value, _normal_log_density(value, self._loc, self._scale))

    def _log_prob_sum(self, value, keep: Tuple[int, ...] = ()):
        """``log_prob(value)`` summed over every dim but ``keep``, without the per-element
        log-density.

        With ``d = value - loc``, the sum is ``-sum(d^2 / (2 scale^2)) - sum(log scale) -
        n log(2 pi) / 2``; where ``scale`` is shared along some summed dims (a single scale,
        or one per particle), ``d^2`` is first summed along them, so only ``d``, ``d^2`` and
        a sum run at full size (two full-size ops backward instead of seven). ``keep``
        (negative batch dims, ascending) are left out of the sum: the result has their
        sizes, in order (RenyiELBO keeps the particle dim). None where that saves nothing
        (a ``scale`` per element) or does not apply (``value - loc`` does not cover the
        batch shape: the log-prob broadcasts further).
        """
        if not isinstance(value, _Tensor):
            return None
        loc, scale = self._loc, self._scale
        diff = value - loc if isinstance(loc, _Tensor) or loc != 0 else value
        if not self._covers(diff):
            return None
        if keep and diff.dim() < -keep[0]:
            diff = diff.reshape((1,) * (-keep[0] - diff.dim()) + tuple(diff.shape))
        summed = tuple([d for d in range(-diff.dim(), 0) if d not in keep])
        squares = diff.square()
        if not isinstance(scale, _Tensor):
            per_entry = diff.numel() // max(1, math.prod([diff.shape[d] for d in keep]))
            if summed:
                squares = squares.sum(summed)
            return squares * (-0.5 / scale**2) - per_entry * (math.log(scale) + _HALF_LOG_2PI)
        if scale.numel() == diff.numel() or scale.dim() > diff.dim():
            return None
        # scale's shape, aligned right against diff's: sum d^2 along the dims it is shared in
        shape = (1,) * (diff.dim() - scale.dim()) + tuple(scale.shape)
        shared = tuple([d for d in summed if shape[d] == 1 and diff.shape[d] != 1])
        if shared:
            squares = squares.sum(shared, keepdim=True)
        scale = scale.reshape(shape)
        weighted = squares * scale.reciprocal().square()
        log_terms = scale.log() + _HALF_LOG_2PI
        if summed:
            weighted, log_terms = weighted.sum(summed), log_terms.sum(summed)
        repeats = math.prod([diff.shape[d] for d in shared])  # entries each scale stands for
        return weighted * -0.5 - log_terms * repeats


class HalfNormal(_CompactParams, torch.distributions.HalfNormal):
    """``torch.distributions.HalfNormal`` with a compact ``scale`` and its base Normal built
    only when a generic TransformedDistribution method needs it."""

    _param_names = ("scale",)
    scale = _param_property("scale", "The scale, broadcast to ``batch_shape``.")

    def __init__(self, scale, validate_args=None):
        self._init_params((scale,), validate_args)

    @lazy_property
    def base_dist(self):
        return Normal(0.0, self.scale, validate_args=False)

    @lazy_property
    def transforms(self):
        return [AbsTransform()]

    def rsample(self, sample_shape=()):
        return (self._standard_normal(sample_shape) * self._scale).abs()

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        log_prob = _normal_log_density(value, 0.0, self._scale) + _LOG_2
        log_prob = torch.where(value >= 0, log_prob, -math.inf)
        return self._full_shape(value, log_prob)


class LogNormal(_LocScale, torch.distributions.LogNormal):
    """``torch.distributions.LogNormal`` with compact parameters: ``exp`` of a Normal draw,
    scored in closed form, its base Normal and transform built only on demand."""

    @lazy_property
    def base_dist(self):
        return Normal(self._loc, self._scale, validate_args=False).expand(self._batch_shape)

    @lazy_property
    def transforms(self):
        return [ExpTransform()]

    def rsample(self, sample_shape=()):
        return (self._loc + self._standard_normal(sample_shape) * self._scale).exp()

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        log_value = value.log()
        return self._full_shape(
            value, _normal_log_density(log_value, self._loc, self._scale) - log_value
        )


class Beta(_CompactParams, torch.distributions.Beta):
    """``torch.distributions.Beta`` with its two concentrations kept as given.

    torch stores them stacked in a Dirichlet, so every use adds stack and select nodes to the
    autograd graph; here the Dirichlet is built only if a generic method needs it.
    """

    _param_names = ("concentration1", "concentration0")
    concentration1 = _param_property("concentration1", "alpha, broadcast to ``batch_shape``.")
    concentration0 = _param_property("concentration0", "beta, broadcast to ``batch_shape``.")

    def __init__(self, concentration1, concentration0, validate_args=None):
        self._init_params((concentration1, concentration0), validate_args)

    @lazy_property
    def _dirichlet(self):
        stacked = torch.stack([self.concentration1, self.concentration0], -1)
        return torch.distributions.Dirichlet(stacked, validate_args=False)

    def rsample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        a, b = self.concentration1, self.concentration0
        if a.shape != shape:
            a, b = a.expand(shape), b.expand(shape)
        x, y = torch._standard_gamma(a), torch._standard_gamma(b)
        finfo = torch.finfo(x.dtype)
        return (x / (x + y)).clamp(min=finfo.tiny, max=1 - finfo.eps)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        a, b = self._concentration1, self._concentration0
        log_beta = _lgamma(a) + _lgamma(b) - _lgamma(a + b)
        log_prob = torch.xlogy(a - 1, value) + torch.xlogy(b - 1, torch.rsub(value, 1))
        return self._full_shape(value, log_prob - log_beta)
