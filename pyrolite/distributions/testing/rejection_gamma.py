"""Gamma, Dirichlet and Beta families sampled by rejection (Marsaglia and Tsang), with the
shape-augmentation trick of Naesseth et al. (2017): reparameterized samplers whose
``score_parts`` carry the acceptance correction, for testing rejection-sampling VI."""

import math

import torch
from torch.distributions import constraints

from pyrolite.distributions.rejector import Rejector
from pyrolite.distributions.score_parts import ScoreParts
from pyrolite.distributions.torch import Beta, Dirichlet, Gamma, Normal


class RejectionStandardGamma(Rejector):
    """``Gamma(concentration, 1)`` by Marsaglia and Tsang's rejection sampler: the proposal
    is ``d (1 + c eps)^3`` with ``eps ~ Normal(0, 1)``, ``d = concentration - 1/3`` and
    ``c = 1 / sqrt(9 d)``. Assumes ``concentration >= 1`` (no boosting).

    >>> g = RejectionStandardGamma(torch.tensor([2.0, 3.0]))
    >>> [round(v, 4) for v in g.log_prob(torch.tensor([1.0, 1.0])).tolist()]
    [-1.0, -1.6931]
    """

    arg_constraints = {"concentration": constraints.positive}
    support = constraints.positive

    def __init__(self, concentration: torch.Tensor):
        concentration = torch.as_tensor(concentration)
        if concentration.dtype not in (torch.float32, torch.float64):
            concentration = concentration.float()
        self.concentration = concentration
        self._standard_gamma = Gamma(concentration, concentration.new_ones(concentration.shape))
        self._d = concentration - 1.0 / 3.0
        self._c = 1.0 / torch.sqrt(9.0 * self._d)
        # log of the total acceptance probability: q(x) a(x) / p(x), a constant in x.
        log_scale = (
            torch.lgamma(concentration)
            + self._d
            - self._d * self._d.log()
            + self._d.log() / 6.0
            - 0.5 * math.log(2 * math.pi)
        )
        super().__init__(
            self.propose,
            self.log_prob_accept,
            log_scale,
            batch_shape=concentration.shape,
            event_shape=(),
        )

    def expand(self, batch_shape, _instance=None) -> "RejectionStandardGamma":
        return RejectionStandardGamma(self.concentration.expand(torch.Size(batch_shape)))

    def propose(self, sample_shape=()) -> torch.Tensor:
        """A proposal ``d (1 + c eps)^3``, reparameterized in ``concentration``."""
        eps = torch.randn(
            torch.Size(sample_shape) + self.batch_shape,
            dtype=self.concentration.dtype,
            device=self.concentration.device,
        )
        # eps <= -1/c would give a non-positive proposal, whose acceptance is 0: redraw it.
        eps = torch.where(eps * self._c > -1, eps, torch.zeros_like(eps))
        return self._d * (1 + self._c * eps).pow(3)

    def _eps(self, x: torch.Tensor) -> torch.Tensor:
        return ((x / self._d).pow(1.0 / 3.0) - 1) / self._c

    def propose_log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Density of the proposal at ``value``: the Normal density of ``eps`` over
        ``|d value / d eps| = 3 c d (1 + c eps)^2``."""
        eps = self._eps(value)
        jacobian = 3 * self._c * self._d * (1 + self._c * eps).pow(2)
        return Normal(0.0, 1.0).log_prob(eps) - jacobian.log()

    def log_prob_accept(self, value: torch.Tensor) -> torch.Tensor:
        """Log acceptance probability ``eps^2 / 2 + d - value + d log(value / d)`` (<= 0)."""
        eps = self._eps(value)
        log_accept = 0.5 * eps.square() + self._d - value + self._d * (value / self._d).log()
        return torch.where(value > 0, log_accept.clamp(max=0.0), torch.full_like(value, -math.inf))

    def _propose_log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return self.propose_log_prob(value)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return self._standard_gamma.log_prob(value)


class RejectionGamma(Gamma):
    """``Gamma(concentration, rate)`` drawn by :class:`RejectionStandardGamma` (needs
    ``concentration >= 1``), with the rejection sampler's score term.

    >>> g = RejectionGamma(torch.tensor(2.0), torch.tensor(3.0))
    >>> round(float(g.log_prob(torch.tensor(1.0))), 4)
    -0.8028
    """

    has_rsample = True

    def __init__(self, concentration, rate, validate_args=None):
        super().__init__(concentration, rate, validate_args=validate_args)
        self._standard_gamma = RejectionStandardGamma(self.concentration)

    def expand(self, batch_shape, _instance=None) -> "RejectionGamma":
        batch_shape = torch.Size(batch_shape)
        return RejectionGamma(self.concentration.expand(batch_shape), self.rate.expand(batch_shape))

    def rsample(self, sample_shape=()) -> torch.Tensor:
        return self._standard_gamma.rsample(sample_shape) / self.rate

    def score_parts(self, value: torch.Tensor) -> ScoreParts:
        log_prob = self.log_prob(value)
        standard = self._standard_gamma.score_parts(value * self.rate)
        return ScoreParts(log_prob, standard.score_function, log_prob)


class ShapeAugmentedGamma(Gamma):
    """``Gamma(concentration, rate)`` for any ``concentration > 0``: draw the boosted
    ``Gamma(concentration + boost)`` by rejection and shrink it by ``prod_i u_i ** (1 /
    (concentration + i))`` with uniform ``u_i`` (Naesseth et al. 2017).

    ``score_parts`` needs the boosted draw behind ``value``, so it accepts only the value
    returned by this instance's latest ``rsample``.

    >>> g = ShapeAugmentedGamma(torch.tensor(0.5), torch.tensor(3.0))
    >>> x = g.rsample()
    >>> bool(torch.isfinite(g.score_parts(x).score_function))
    True
    """

    has_rsample = True

    def __init__(self, concentration, rate, boost: int = 1, validate_args=None):
        if boost < 0:
            raise ValueError(f"ShapeAugmentedGamma: boost must be >= 0, got {boost}")
        super().__init__(concentration, rate, validate_args=validate_args)
        self._boost = boost
        self._rejection_gamma = RejectionGamma(self.concentration + boost, self.rate)
        self._unboost_x_cache = None, None

    def expand(self, batch_shape, _instance=None) -> "ShapeAugmentedGamma":
        batch_shape = torch.Size(batch_shape)
        return ShapeAugmentedGamma(
            self.concentration.expand(batch_shape), self.rate.expand(batch_shape), self._boost
        )

    def rsample(self, sample_shape=()) -> torch.Tensor:
        boosted = self._rejection_gamma.rsample(sample_shape)
        x = boosted
        for i in range(self._boost):
            u = torch.rand(x.shape, dtype=x.dtype, device=x.device)
            x = x * u.pow(1.0 / (i + self.concentration))
        self._unboost_x_cache = boosted, x
        return x

    def score_parts(self, value: torch.Tensor) -> ScoreParts:
        boosted, x = self._unboost_x_cache
        if value is not x:
            raise ValueError(
                "ShapeAugmentedGamma.score_parts needs the boosted draw behind its value: pass "
                "the tensor this distribution's latest rsample() returned."
            )
        log_prob = self.log_prob(value)
        score = self._rejection_gamma.score_parts(boosted).score_function
        return ScoreParts(log_prob, score, log_prob)


class ShapeAugmentedDirichlet(Dirichlet):
    """``Dirichlet(concentration)`` as normalized :class:`ShapeAugmentedGamma` draws.

    >>> round(ShapeAugmentedDirichlet(torch.ones(3)).rsample().sum().item(), 4)
    1.0
    """

    has_rsample = True

    def __init__(self, concentration, boost: int = 1, validate_args=None):
        super().__init__(concentration, validate_args=validate_args)
        self._boost = boost
        self._gamma = ShapeAugmentedGamma(concentration, torch.ones_like(concentration), boost)

    def expand(self, batch_shape, _instance=None) -> "ShapeAugmentedDirichlet":
        shape = torch.Size(batch_shape) + self.event_shape
        return ShapeAugmentedDirichlet(self.concentration.expand(shape), self._boost)

    def rsample(self, sample_shape=()) -> torch.Tensor:
        gammas = self._gamma.rsample(sample_shape)
        return gammas / gammas.sum(-1, True)


class ShapeAugmentedBeta(Beta):
    """``Beta(concentration1, concentration0)`` as ``g1 / (g1 + g0)`` with
    :class:`ShapeAugmentedGamma` draws.

    >>> x = ShapeAugmentedBeta(torch.tensor(2.0), torch.tensor(3.0)).rsample((5,))
    >>> bool(((x > 0) & (x < 1)).all())
    True
    """

    has_rsample = True

    def __init__(self, concentration1, concentration0, boost: int = 1, validate_args=None):
        super().__init__(concentration1, concentration0, validate_args=validate_args)
        self._boost = boost
        alpha_beta = torch.stack([self.concentration1, self.concentration0], -1)
        self._gamma = ShapeAugmentedGamma(alpha_beta, torch.ones_like(alpha_beta), boost)

    def expand(self, batch_shape, _instance=None) -> "ShapeAugmentedBeta":
        batch_shape = torch.Size(batch_shape)
        return ShapeAugmentedBeta(
            self.concentration1.expand(batch_shape),
            self.concentration0.expand(batch_shape),
            self._boost,
        )

    def rsample(self, sample_shape=()) -> torch.Tensor:
        gammas = self._gamma.rsample(sample_shape)
        return gammas[..., 0] / gammas.sum(-1)
