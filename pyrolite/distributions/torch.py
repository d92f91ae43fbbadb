"""Every ``torch.distributions`` family, subclassed with :class:`TorchDistributionMixin`.

Each wrapper adds no ``__init__`` and no validation, so construction costs exactly what
torch's does; ``isinstance(pyrolite.distributions.Normal(0, 1), torch.distributions.Normal)``
holds, and torch's ``expand`` returns the wrapper class because it builds new instances
with ``type(self)``.
"""

import inspect
import math
from typing import Optional

import torch
from torch.distributions.utils import probs_to_logits

from pyrolite.distributions import compact
from pyrolite.distributions.distribution import ForceableHasRsample
from pyrolite.distributions.torch_distribution import (
    TorchDistributionMixin,
    copy_forced_has_rsample,
)
from pyrolite.distributions.util import at_enum_dim, compact_view, enum_shape


def _wrap(torch_cls: type, **methods) -> type:
    """Subclass ``torch_cls`` with the mixin (plus ``methods``), keeping ``has_rsample_``
    overrides on expand."""
    name = torch_cls.__name__
    torch_expand = torch_cls.expand

    def expand(self, batch_shape, _instance=None):
        return copy_forced_has_rsample(self, torch_expand(self, batch_shape, _instance))

    namespace = {
        "__module__": __name__,
        "__qualname__": name,
        "__doc__": f"``torch.distributions.{name}`` with Pyro's mixin methods.",
        "expand": expand,
        **methods,
    }
    # torch computes has_rsample with a property on some classes; keep it overridable.
    torch_has_rsample = inspect.getattr_static(torch_cls, "has_rsample")
    if isinstance(torch_has_rsample, property):
        namespace["has_rsample"] = ForceableHasRsample(torch_has_rsample.fget)
    return type(name, (torch_cls, TorchDistributionMixin), namespace)


def _bernoulli_log_prob(self, value):
    """For a Bernoulli built from ``probs`` that needs a gradient: ``x log p + (1 - x)
    log(1 - p)`` directly (torch converts probs to clamped logits first: three more autograd
    nodes). Without a gradient, torch's one fused kernel on the logits, which it caches on
    the instance, is faster."""
    probs = self.__dict__.get("probs")
    if (
        probs is None
        or self._param is not probs
        or not (probs.requires_grad and torch.is_grad_enabled())
        or "logits" in self.__dict__
    ):
        return torch.distributions.Bernoulli.log_prob(self, value)
    if self._validate_args:
        self._validate_sample(value)
    return torch.xlogy(value, probs) + torch.xlogy(torch.rsub(value, 1), torch.rsub(probs, 1))


def _bernoulli_log_prob_sum(self, value, keep=()):
    """``log_prob(value)`` summed over every dim but ``keep`` (negative, ascending), for a
    Bernoulli built from ``probs``, without the per-element log-density: along the summed
    dims where ``probs`` is shared, the ones are counted first, so ``x log p + (1 - x)
    log(1 - p)`` runs at ``probs``' size, not the data's. The result has the kept dims'
    sizes, in order. None where that saves nothing or does not apply."""
    probs = self.__dict__.get("probs")
    if probs is None or self._param is not probs or not isinstance(value, torch.Tensor):
        return None
    width = max(value.dim(), probs.dim(), -keep[0] if keep else 0)
    value_shape = (1,) * (width - value.dim()) + tuple(value.shape)
    probs_shape = (1,) * (width - probs.dim()) + tuple(probs.shape)
    summed = tuple([d for d in range(-width, 0) if d not in keep])
    shared = tuple([d for d in summed if probs_shape[d] == 1 and value_shape[d] != 1])
    if not shared:
        return None
    counts = value.reshape(value_shape).sum(shared, keepdim=True)
    trials = math.prod([value_shape[d] for d in shared])
    probs = probs.reshape(probs_shape)
    log_prob = torch.xlogy(counts, probs) + torch.xlogy(trials - counts, torch.rsub(probs, 1))
    return log_prob.sum(summed)


Bernoulli = _wrap(
    torch.distributions.Bernoulli,
    log_prob=_bernoulli_log_prob,
    _log_prob_sum=_bernoulli_log_prob_sum,
)


Beta = compact.Beta
Binomial = _wrap(torch.distributions.Binomial)


def _categorical_support_log_prob(self, dim: int) -> torch.Tensor:
    """``log_prob(enumerate_support(expand=False))`` with the support laid out at batch
    dim ``dim``: the normalized logits moved there, computed once per distinct row (a
    distribution expanded over plates repeats its rows) instead of by a gather over the
    broadcast of support and logits."""
    if "logits" in self.__dict__:
        logits = compact_view(self.logits)
    else:
        logits = probs_to_logits(compact_view(self.probs))
    values = at_enum_dim(logits.movedim(-1, 0), dim, tuple(logits.shape[:-1]))
    return values.expand(enum_shape(self._num_events, dim, tuple(self.batch_shape)))


Categorical = _wrap(torch.distributions.Categorical, support_log_prob=_categorical_support_log_prob)
Cauchy = _wrap(torch.distributions.Cauchy)
Chi2 = _wrap(torch.distributions.Chi2)
ContinuousBernoulli = _wrap(torch.distributions.ContinuousBernoulli)
Dirichlet = _wrap(torch.distributions.Dirichlet)
Exponential = _wrap(torch.distributions.Exponential)
ExponentialFamily = _wrap(torch.distributions.ExponentialFamily)
FisherSnedecor = _wrap(torch.distributions.FisherSnedecor)
Gamma = _wrap(torch.distributions.Gamma)
GeneralizedPareto = _wrap(torch.distributions.GeneralizedPareto)


def _geometric_log_prob(self, value):
    """``x log(1 - p) + log p`` with ``1 - p`` kept at least ``eps`` (Pyro's values: finite
    at ``p = 1``), instead of torch's clone and masked write of ``p``."""
    if self._validate_args:
        self._validate_sample(value)
    probs = self.probs
    eps = torch.finfo(probs.dtype).eps
    return value * probs.clamp(max=1 - eps).neg().log1p() + probs.log()


Geometric = _wrap(torch.distributions.Geometric, log_prob=_geometric_log_prob)
Gumbel = _wrap(torch.distributions.Gumbel)
HalfCauchy = _wrap(torch.distributions.HalfCauchy)
HalfNormal = compact.HalfNormal
InverseGamma = _wrap(torch.distributions.InverseGamma)
Kumaraswamy = _wrap(torch.distributions.Kumaraswamy)
LKJCholesky = _wrap(torch.distributions.LKJCholesky)
Laplace = _wrap(torch.distributions.Laplace)


LogNormal = compact.LogNormal
LogisticNormal = _wrap(torch.distributions.LogisticNormal)


class LowRankMultivariateNormal(_wrap(torch.distributions.LowRankMultivariateNormal)):
    """``torch.distributions.LowRankMultivariateNormal`` whose capacitance
    ``I + W.T @ inv(D) @ W`` is factored by ``torch.linalg.cholesky_ex`` when validation
    is off: ``torch.linalg.cholesky`` reads its error flag on the host, a CUDA sync on
    every construction (every step of ``AutoLowRankMultivariateNormal``). The capacitance
    is positive definite for every positive ``D``; with validation on torch's checking
    factorization is kept.
    """

    def __init__(self, loc, cov_factor, cov_diag, validate_args=None):
        if loc.dim() < 1:
            raise ValueError("loc must be at least one-dimensional.")
        event_shape = loc.shape[-1:]
        if cov_factor.dim() < 2:
            raise ValueError(
                "cov_factor must be at least two-dimensional, "
                "with optional leading batch dimensions"
            )
        if cov_factor.shape[-2:-1] != event_shape:
            raise ValueError(
                f"cov_factor must be a batch of matrices with shape {event_shape[0]} x m"
            )
        if cov_diag.shape[-1:] != event_shape:
            raise ValueError(f"cov_diag must be a batch of vectors with shape {event_shape}")
        try:
            loc_, self.cov_factor, cov_diag_ = torch.broadcast_tensors(
                loc.unsqueeze(-1), cov_factor, cov_diag.unsqueeze(-1)
            )
        except RuntimeError as e:
            raise ValueError(
                f"Incompatible batch shapes: loc {loc.shape}, cov_factor {cov_factor.shape}, "
                f"cov_diag {cov_diag.shape}"
            ) from e
        self.loc, self.cov_diag = loc_[..., 0], cov_diag_[..., 0]
        self._unbroadcasted_cov_factor = cov_factor
        self._unbroadcasted_cov_diag = cov_diag
        validate = (
            validate_args
            if validate_args is not None
            else torch.distributions.Distribution._validate_args
        )
        wt_dinv = cov_factor.mT / cov_diag.unsqueeze(-2)
        capacitance = torch.matmul(wt_dinv, cov_factor)
        m = cov_factor.size(-1)
        capacitance = capacitance + torch.eye(m, dtype=capacitance.dtype, device=capacitance.device)
        if validate:
            self._capacitance_tril = torch.linalg.cholesky(capacitance)
        else:
            self._capacitance_tril = torch.linalg.cholesky_ex(capacitance).L
        torch.distributions.Distribution.__init__(
            self, self.loc.shape[:-1], event_shape, validate_args=validate_args
        )

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(LowRankMultivariateNormal, _instance)
        return super().expand(batch_shape, new)


MixtureSameFamily = _wrap(torch.distributions.MixtureSameFamily)
Multinomial = _wrap(torch.distributions.Multinomial)
MultivariateNormal = _wrap(torch.distributions.MultivariateNormal)
NegativeBinomial = _wrap(torch.distributions.NegativeBinomial)
Normal = compact.Normal
OneHotCategorical = _wrap(torch.distributions.OneHotCategorical)
OneHotCategoricalStraightThrough = _wrap(torch.distributions.OneHotCategoricalStraightThrough)
Pareto = _wrap(torch.distributions.Pareto)
Poisson = _wrap(torch.distributions.Poisson)
RelaxedBernoulli = _wrap(torch.distributions.RelaxedBernoulli)
RelaxedOneHotCategorical = _wrap(torch.distributions.RelaxedOneHotCategorical)
StudentT = _wrap(torch.distributions.StudentT)
TransformedDistribution = _wrap(torch.distributions.TransformedDistribution)
Uniform = _wrap(torch.distributions.Uniform)
VonMises = _wrap(torch.distributions.VonMises)
Weibull = _wrap(torch.distributions.Weibull)
Wishart = _wrap(torch.distributions.Wishart)


def _independent_to_event(self, reinterpreted_batch_ndims: Optional[int] = None):
    """Reinterpret more batch dims (or, if negative, fewer) by merging into one Independent.

    >>> d = Independent(Normal(torch.zeros(2, 3), 1.0), 1).to_event(1)
    >>> d.reinterpreted_batch_ndims, type(d.base_dist).__name__
    (2, 'Normal')
    """
    if reinterpreted_batch_ndims is None:
        reinterpreted_batch_ndims = len(self.batch_shape)
    if reinterpreted_batch_ndims == 0:
        return self
    total = self.reinterpreted_batch_ndims + reinterpreted_batch_ndims
    if total < 0:
        raise ValueError(
            f"to_event({reinterpreted_batch_ndims}) would give back more event dims than "
            f"the {self.reinterpreted_batch_ndims} this Independent reinterprets."
        )
    if total == 0:
        return self.base_dist
    return copy_forced_has_rsample(self, Independent(self.base_dist, total))


def _independent_expand(self, batch_shape, _instance=None):
    """torch's ``Independent.expand``, by a constructor call rather than ``__new__`` (which
    torch.compile cannot trace on older torch versions)."""
    if _instance is not None or type(self) is not Independent:
        return copy_forced_has_rsample(
            self, torch.distributions.Independent.expand(self, batch_shape, _instance)
        )
    batch_shape = torch.Size(batch_shape)
    event = self.event_shape[: self.reinterpreted_batch_ndims]
    base = self.base_dist.expand(batch_shape + event)
    new = Independent(base, self.reinterpreted_batch_ndims, validate_args=False)
    new._validate_args = self._validate_args
    return copy_forced_has_rsample(self, new)


def _independent_log_prob(self, value):
    """The base log-prob summed over the reinterpreted dims in one ``sum`` (torch reshapes
    first: one more autograd node per site)."""
    log_prob = self.base_dist.log_prob(value)
    n = self.reinterpreted_batch_ndims
    if n == 0:
        return log_prob
    return log_prob.sum(-1) if n == 1 else log_prob.sum(tuple(range(-n, 0)))


def _independent_log_prob_sum(self, value, keep=()):
    """The base distribution's fast ``log_prob(value)`` sum over all dims but ``keep``
    (batch dims: the base's are further left by the reinterpreted dims), where it has one."""
    fast = getattr(self.base_dist, "_log_prob_sum", None)
    if fast is None:
        return None
    n = self.reinterpreted_batch_ndims
    return fast(value, tuple([d - n for d in keep])) if keep else fast(value)


Independent = _wrap(
    torch.distributions.Independent,
    to_event=_independent_to_event,
    expand=_independent_expand,
    log_prob=_independent_log_prob,
    _log_prob_sum=_independent_log_prob_sum,
)
TorchDistributionMixin.independent_class = Independent
