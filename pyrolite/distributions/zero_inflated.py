"""Zero-inflated families: a base distribution whose value is replaced by 0 with probability
``gate``. ZeroInflatedDistribution wraps any univariate base; ZeroInflatedPoisson and
ZeroInflatedNegativeBinomial build their base from its parameters.
"""

from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch.distributions import constraints
from torch.distributions.utils import lazy_property, logits_to_probs, probs_to_logits

from pyrolite.distributions.torch import NegativeBinomial, Poisson
from pyrolite.distributions.torch_distribution import TorchDistribution
from pyrolite.distributions.util import broadcast_shape

_Number = Union[float, torch.Tensor]


class ZeroInflatedDistribution(TorchDistribution):
    """``base_dist`` with extra mass at zero: 0 with probability ``gate``, a draw from
    ``base_dist`` otherwise. Give exactly one of ``gate`` or ``gate_logits``.

    >>> from pyrolite.distributions.torch import Poisson
    >>> d = ZeroInflatedDistribution(Poisson(torch.tensor(2.0)), gate=torch.tensor(0.25))
    >>> float(d.mean), round(float(d.log_prob(torch.tensor(0.0)).exp()), 4)
    (1.5, 0.3515)
    """

    arg_constraints = {"gate": constraints.unit_interval, "gate_logits": constraints.real}

    def __init__(
        self,
        base_dist: torch.distributions.Distribution,
        *,
        gate: Optional[torch.Tensor] = None,
        gate_logits: Optional[torch.Tensor] = None,
        validate_args=None,
    ):
        if (gate is None) == (gate_logits is None):
            raise ValueError(
                "Either `gate` or `gate_logits` must be specified, but not both: pass "
                "gate=<probability of an extra zero> or gate_logits=<its log-odds>."
            )
        if base_dist.event_shape:
            raise ValueError(
                "ZeroInflatedDistribution expected empty base_dist.event_shape but got "
                f"{base_dist.event_shape}; wrap a univariate distribution and call "
                ".to_event() on the result instead."
            )
        gate_param = gate if gate is not None else gate_logits
        if not isinstance(gate_param, torch.Tensor):
            gate_param = torch.tensor(gate_param, dtype=torch.get_default_dtype())
        if gate is not None:
            self.gate = gate_param
        else:
            self.gate_logits = gate_param
        batch_shape = broadcast_shape(gate_param.shape, base_dist.batch_shape)
        if base_dist.batch_shape != batch_shape:
            base_dist = base_dist.expand(batch_shape)
        self.base_dist = base_dist
        super().__init__(batch_shape, validate_args=validate_args)

    @constraints.dependent_property
    def support(self):
        return self.base_dist.support

    @lazy_property
    def gate(self) -> torch.Tensor:
        return logits_to_probs(self.gate_logits, is_binary=True)

    @lazy_property
    def gate_logits(self) -> torch.Tensor:
        return probs_to_logits(self.gate, is_binary=True)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        base_log_prob = self.base_dist.log_prob(value)
        if "gate" in self.__dict__:
            gate = self.gate
            nonzero = (-gate).log1p() + base_log_prob
            zero = (gate + nonzero.exp()).log()
        else:
            # In log-odds l: log(gate) = logsigmoid(l), log(1 - gate) = log(gate) - l, and
            # log(gate + (1 - gate) p) = log(gate) + softplus(log p - l): stable where gate
            # itself would round to 0 or 1.
            logits = self.gate_logits
            log_gate = F.logsigmoid(logits)
            shifted = base_log_prob - logits
            nonzero = log_gate + shifted
            zero = log_gate + F.softplus(shifted)
        return torch.where(value == 0, zero, nonzero)

    def sample(self, sample_shape=()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        with torch.no_grad():
            inflated = torch.bernoulli(self.gate.expand(shape)).bool()
            samples = self.base_dist.sample(sample_shape)
            return samples.masked_fill(inflated, 0)

    @property
    def mean(self) -> torch.Tensor:
        return (1 - self.gate) * self.base_dist.mean

    @property
    def variance(self) -> torch.Tensor:
        base_mean = self.base_dist.mean
        keep = 1 - self.gate
        return keep * (base_mean.pow(2) + self.base_dist.variance) - (keep * base_mean).pow(2)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(ZeroInflatedDistribution, _instance)
        batch_shape = torch.Size(batch_shape)
        if "gate" in self.__dict__:
            new.gate = self.gate.expand(batch_shape)
        else:
            new.gate_logits = self.gate_logits.expand(batch_shape)
        new.base_dist = self.base_dist.expand(batch_shape)
        TorchDistribution.__init__(new, batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new


class ZeroInflatedPoisson(ZeroInflatedDistribution):
    """Poisson(``rate``) counts with extra zeros (probability ``gate``, or log-odds
    ``gate_logits``).

    >>> d = ZeroInflatedPoisson(torch.tensor(2.0), gate=torch.tensor(0.25))
    >>> float(d.mean), round(float(d.variance), 4)
    (1.5, 2.25)
    """

    arg_constraints = {
        "rate": constraints.positive,
        "gate": constraints.unit_interval,
        "gate_logits": constraints.real,
    }
    support = constraints.nonnegative_integer

    def __init__(
        self,
        rate: _Number,
        *,
        gate: Optional[torch.Tensor] = None,
        gate_logits: Optional[torch.Tensor] = None,
        validate_args=None,
    ):
        base_dist = Poisson(rate=rate, validate_args=False)
        base_dist._validate_args = validate_args
        super().__init__(base_dist, gate=gate, gate_logits=gate_logits, validate_args=validate_args)

    @property
    def rate(self) -> torch.Tensor:
        return self.base_dist.rate

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(ZeroInflatedPoisson, _instance)
        return super().expand(batch_shape, _instance=new)


class ZeroInflatedNegativeBinomial(ZeroInflatedDistribution):
    """NegativeBinomial(``total_count``, ``probs`` or ``logits``) counts with extra zeros
    (probability ``gate``, or log-odds ``gate_logits``).

    >>> d = ZeroInflatedNegativeBinomial(2.0, probs=torch.tensor(0.5), gate=torch.tensor(0.5))
    >>> float(d.mean), round(float(d.log_prob(torch.tensor(0.0)).exp()), 4)
    (1.0, 0.625)
    """

    arg_constraints = {
        "total_count": constraints.greater_than_eq(0),
        "probs": constraints.half_open_interval(0.0, 1.0),
        "logits": constraints.real,
        "gate": constraints.unit_interval,
        "gate_logits": constraints.real,
    }
    support = constraints.nonnegative_integer

    def __init__(
        self,
        total_count: _Number,
        *,
        probs: Optional[torch.Tensor] = None,
        logits: Optional[torch.Tensor] = None,
        gate: Optional[torch.Tensor] = None,
        gate_logits: Optional[torch.Tensor] = None,
        validate_args=None,
    ):
        base_dist = NegativeBinomial(
            total_count=total_count, probs=probs, logits=logits, validate_args=False
        )
        base_dist._validate_args = validate_args
        super().__init__(base_dist, gate=gate, gate_logits=gate_logits, validate_args=validate_args)

    @property
    def total_count(self) -> torch.Tensor:
        return self.base_dist.total_count

    @property
    def probs(self) -> torch.Tensor:
        return self.base_dist.probs

    @property
    def logits(self) -> torch.Tensor:
        return self.base_dist.logits

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(ZeroInflatedNegativeBinomial, _instance)
        return super().expand(batch_shape, _instance=new)
