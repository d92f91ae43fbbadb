"""Compound count families: GammaPoisson, BetaBinomial and DirichletMultinomial.

Each is the marginal of a conjugate pair (a Gamma rate for a Poisson, a Beta probability for a
Binomial, Dirichlet probabilities for a Multinomial), with the mixing variable integrated out
in closed form; ``sample`` draws the mixing variable first, then the count.
"""

import numbers
from typing import Tuple, Union

import torch
from torch.distributions import constraints
from torch.distributions.utils import broadcast_all

from pyrolite.distributions.torch import Beta, Dirichlet, Gamma, Multinomial
from pyrolite.distributions.torch_distribution import TorchDistribution
from pyrolite.distributions.util import broadcast_shape

_Number = Union[float, torch.Tensor]


def beta_binomial_log_prob(
    value: torch.Tensor, total_count: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor
) -> torch.Tensor:
    """``log C(n, k) + log B(k + a, n - k + b) - log B(a, b)``, the BetaBinomial pmf at
    ``value = k`` (exact: no approximation of the Beta functions), shared with
    ExtendedBetaBinomial."""
    n, k = total_count, value
    return (
        (n + 1).lgamma()
        - (k + 1).lgamma()
        - (n - k + 1).lgamma()
        + (k + alpha).lgamma()
        + (n - k + beta).lgamma()
        - (n + alpha + beta).lgamma()
        + (alpha + beta).lgamma()
        - alpha.lgamma()
        - beta.lgamma()
    )


def _homogeneous_count(total_count: torch.Tensor, what: str) -> int:
    """The one value of ``total_count``, or NotImplementedError naming ``what`` needs it."""
    n_max = int(total_count.max())
    if int(total_count.min()) != n_max:
        raise NotImplementedError(
            f"Inhomogeneous total count not supported by `{what}`: total_count ranges over "
            f"[{int(total_count.min())}, {n_max}]; build one distribution per total_count."
        )
    return n_max


class GammaPoisson(TorchDistribution):
    """Poisson counts whose rate is Gamma(``concentration``, ``rate``) distributed.

    The same law as ``NegativeBinomial(total_count=concentration, probs=1 / (1 + rate))``.

    >>> d = GammaPoisson(torch.tensor(2.0), torch.tensor(0.5))
    >>> float(d.mean), float(d.variance), round(float(d.log_prob(torch.tensor(3.0))), 4)
    (4.0, 12.0, -2.0273)
    """

    arg_constraints = {"concentration": constraints.positive, "rate": constraints.positive}
    support = constraints.nonnegative_integer

    def __init__(self, concentration: _Number, rate: _Number, validate_args=None):
        concentration, rate = broadcast_all(concentration, rate)
        self._gamma = Gamma(concentration, rate, validate_args=False)
        super().__init__(self._gamma.batch_shape, validate_args=validate_args)

    @property
    def concentration(self) -> torch.Tensor:
        return self._gamma.concentration

    @property
    def rate(self) -> torch.Tensor:
        return self._gamma.rate

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(GammaPoisson, _instance)
        batch_shape = torch.Size(batch_shape)
        new._gamma = self._gamma.expand(batch_shape)
        super(GammaPoisson, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def sample(self, sample_shape=()) -> torch.Tensor:
        with torch.no_grad():
            rate = self._gamma.sample(sample_shape)
            return torch.poisson(rate)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        c, r = self.concentration, self.rate
        return (
            (value + c).lgamma()
            - c.lgamma()
            - (value + 1).lgamma()
            + c * r.log()
            - (c + value) * r.log1p()
        )

    @property
    def mean(self) -> torch.Tensor:
        return self.concentration / self.rate

    @property
    def variance(self) -> torch.Tensor:
        return self.concentration / self.rate.pow(2) * (1 + self.rate)


class BetaBinomial(TorchDistribution):
    """Binomial counts of ``total_count`` trials whose success probability is
    Beta(``concentration1``, ``concentration0``) distributed.

    >>> d = BetaBinomial(torch.tensor(2.0), torch.tensor(3.0), total_count=4)
    >>> support = d.enumerate_support()
    >>> support.tolist(), round(float(d.log_prob(support).exp().sum()), 4)
    ([0.0, 1.0, 2.0, 3.0, 4.0], 1.0)
    """

    arg_constraints = {
        "concentration1": constraints.positive,
        "concentration0": constraints.positive,
        "total_count": constraints.nonnegative_integer,
    }
    has_enumerate_support = True
    # Pyro's log_prob can trade exactness for speed above this tolerance; 0 means exact,
    # and this implementation is always exact.
    approx_log_prob_tol = 0.0

    def __init__(
        self,
        concentration1: _Number,
        concentration0: _Number,
        total_count: Union[int, torch.Tensor] = 1,
        validate_args=None,
    ):
        concentration1, concentration0, total_count = broadcast_all(
            concentration1, concentration0, total_count
        )
        self._beta = Beta(concentration1, concentration0, validate_args=False)
        self.total_count = total_count
        super().__init__(self._beta.batch_shape, validate_args=validate_args)

    @constraints.dependent_property(is_discrete=True, event_dim=0)
    def support(self):
        return constraints.integer_interval(0, self.total_count)

    @property
    def concentration1(self) -> torch.Tensor:
        return self._beta.concentration1

    @property
    def concentration0(self) -> torch.Tensor:
        return self._beta.concentration0

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(BetaBinomial, _instance)
        batch_shape = torch.Size(batch_shape)
        new._beta = self._beta.expand(batch_shape)
        new.total_count = self.total_count.expand(batch_shape)
        TorchDistribution.__init__(new, batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def sample(self, sample_shape=()) -> torch.Tensor:
        with torch.no_grad():
            probs = self._beta.sample(sample_shape)
            return torch.binomial(self.total_count.expand(probs.shape), probs)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return beta_binomial_log_prob(
            value, self.total_count, self.concentration1, self.concentration0
        )

    @property
    def mean(self) -> torch.Tensor:
        return self.total_count * self.concentration1 / (self.concentration1 + self.concentration0)

    @property
    def variance(self) -> torch.Tensor:
        a, b, n = self.concentration1, self.concentration0, self.total_count
        ab = a + b
        return n * a * b * (ab + n) / (ab.pow(2) * (ab + 1))

    def enumerate_support(self, expand: bool = True) -> torch.Tensor:
        n = _homogeneous_count(self.total_count, "enumerate_support")
        values = torch.arange(
            1 + n, dtype=self.concentration1.dtype, device=self.total_count.device
        )
        values = values.view((-1,) + (1,) * len(self.batch_shape))
        if expand:
            values = values.expand((-1,) + self.batch_shape)
        return values


class DirichletMultinomial(TorchDistribution):
    """Multinomial counts of ``total_count`` trials over ``concentration.shape[-1]`` classes
    whose class probabilities are Dirichlet(``concentration``) distributed.

    ``is_sparse=True`` computes ``log_prob`` from the nonzero counts only, which is faster
    when most counts are zero; the value is the same.

    >>> d = DirichletMultinomial(torch.tensor([1.0, 2.0, 3.0]), total_count=5)
    >>> d.event_shape, round(float(d.log_prob(torch.tensor([1.0, 1.0, 3.0]))), 4)
    (torch.Size([3]), -2.5337)
    """

    arg_constraints = {
        "concentration": constraints.independent(constraints.positive, 1),
        "total_count": constraints.nonnegative_integer,
    }

    def __init__(
        self,
        concentration: torch.Tensor,
        total_count: Union[int, torch.Tensor] = 1,
        is_sparse: bool = False,
        validate_args=None,
    ):
        batch_shape = concentration.shape[:-1]
        event_shape = concentration.shape[-1:]
        if isinstance(total_count, numbers.Number):
            total_count = concentration.new_tensor(total_count)
        else:
            batch_shape = broadcast_shape(batch_shape, total_count.shape)
            concentration = concentration.expand(batch_shape + event_shape)
            total_count = total_count.expand(batch_shape)
        self._dirichlet = Dirichlet(concentration, validate_args=False)
        self.total_count = total_count
        self.is_sparse = is_sparse
        super().__init__(batch_shape, event_shape, validate_args=validate_args)

    @constraints.dependent_property(is_discrete=True, event_dim=1)
    def support(self):
        return constraints.multinomial(self.total_count)

    @property
    def concentration(self) -> torch.Tensor:
        return self._dirichlet.concentration

    @staticmethod
    def infer_shapes(concentration, total_count=()) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
        """``(batch_shape, event_shape)`` for parameters of the given shapes."""
        batch_shape = broadcast_shape(concentration[:-1], total_count)
        return tuple(batch_shape), tuple(concentration[-1:])

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(DirichletMultinomial, _instance)
        batch_shape = torch.Size(batch_shape)
        new._dirichlet = self._dirichlet.expand(batch_shape)
        new.total_count = self.total_count.expand(batch_shape)
        new.is_sparse = self.is_sparse
        TorchDistribution.__init__(new, batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def sample(self, sample_shape=()) -> torch.Tensor:
        n = _homogeneous_count(self.total_count, "sample")
        with torch.no_grad():
            probs = self._dirichlet.sample(sample_shape)
            return Multinomial(n, probs, validate_args=False).sample()

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        alpha = self.concentration
        alpha_sum = alpha.sum(-1)
        n = value.sum(-1)
        log_norm = alpha_sum.lgamma() + (n + 1).lgamma() - (n + alpha_sum).lgamma()
        if self.is_sparse:
            return log_norm + self._sparse_class_terms(value, alpha)
        terms = (value + alpha).lgamma() - alpha.lgamma() - (value + 1).lgamma()
        return log_norm + terms.sum(-1)

    @staticmethod
    def _sparse_class_terms(value: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """``sum_i lgamma(x_i + a_i) - lgamma(a_i) - lgamma(x_i + 1)`` over the nonzero
        ``x_i`` only: each term is exactly 0 where ``x_i == 0``."""
        value, alpha = torch.broadcast_tensors(value, alpha)
        flat_value = value.reshape(-1, value.size(-1))
        flat_alpha = alpha.reshape(-1, alpha.size(-1))
        rows, cols = flat_value.nonzero(as_tuple=True)
        x, a = flat_value[rows, cols], flat_alpha[rows, cols]
        terms = (x + a).lgamma() - a.lgamma() - (x + 1).lgamma()
        sums = value.new_zeros(flat_value.size(0)).index_add(0, rows, terms)
        return sums.reshape(value.shape[:-1])

    @property
    def mean(self) -> torch.Tensor:
        alpha = self.concentration
        return alpha * (self.total_count / alpha.sum(-1)).unsqueeze(-1)

    @property
    def variance(self) -> torch.Tensor:
        alpha = self.concentration
        alpha_sum = alpha.sum(-1, keepdim=True)
        n = self.total_count.unsqueeze(-1)
        probs = alpha / alpha_sum
        return n * probs * (1 - probs) * (n + alpha_sum) / (1 + alpha_sum)
