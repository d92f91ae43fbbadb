"""ExtendedBinomial and ExtendedBetaBinomial: their Binomial / BetaBinomial laws with the
logical support widened to all integers and ``total_count`` to any integer. Mass still sits
on ``[0, total_count]``; every other integer (and every value when ``total_count < 0``) has
``log_prob`` -inf instead of a validation error.
"""

import torch
import torch.nn.functional as F
from torch.distributions import constraints

from pyrolite.distributions.conjugate import BetaBinomial, beta_binomial_log_prob
from pyrolite.distributions.constraints import integer
from pyrolite.distributions.torch import Binomial


def _outside_to_neg_inf(log_prob_fn, value: torch.Tensor, total_count: torch.Tensor):
    """``log_prob_fn(value, n)`` on ``[0, n]`` and -inf elsewhere. Both are clamped into the
    numerical support first, so no lgamma of a negative argument leaks a nan (or a nan
    gradient) through the masked-out branch."""
    n = total_count.clamp(min=0)
    inside = (value >= 0) & (value <= total_count)
    log_prob = log_prob_fn(value.clamp(min=0).minimum(n), n)
    return log_prob.masked_fill(~inside, -float("inf"))


class ExtendedBinomial(Binomial):
    """A Binomial whose ``log_prob`` is defined on every integer (-inf outside
    ``[0, total_count]``) and whose ``total_count`` may be any integer.

    >>> d = ExtendedBinomial(torch.tensor([4.0, -1.0]), torch.tensor(0.5))
    >>> d.log_prob(torch.tensor([5.0, 0.0])).tolist()
    [-inf, -inf]
    >>> round(float(d.log_prob(torch.tensor([2.0, 0.0]))[0].exp()), 4)
    0.375
    """

    arg_constraints = {
        "total_count": integer,
        "probs": constraints.unit_interval,
        "logits": constraints.real,
    }
    support = integer

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        logits = self.logits

        def binomial(k, n):
            # k * logits - n * softplus(logits): k log p + (n - k) log(1 - p), stably.
            coefficient = (n + 1).lgamma() - (k + 1).lgamma() - (n - k + 1).lgamma()
            return coefficient + k * logits - n * F.softplus(logits)

        return _outside_to_neg_inf(binomial, value, self.total_count)


class ExtendedBetaBinomial(BetaBinomial):
    """A BetaBinomial whose ``log_prob`` is defined on every integer (-inf outside
    ``[0, total_count]``) and whose ``total_count`` may be any integer.

    >>> d = ExtendedBetaBinomial(torch.tensor(1.0), torch.tensor(1.0), torch.tensor([3.0, -2.0]))
    >>> d.log_prob(torch.tensor([1.0, 0.0])).exp().tolist()
    [0.25, 0.0]
    """

    arg_constraints = {
        "concentration1": constraints.positive,
        "concentration0": constraints.positive,
        "total_count": integer,
    }
    support = integer

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        a, b = self.concentration1, self.concentration0
        return _outside_to_neg_inf(
            lambda k, n: beta_binomial_log_prob(k, n, a, b), value, self.total_count
        )
