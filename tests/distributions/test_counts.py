"""Count and overdispersion families checked against closed forms: each pmf sums to 1 over
its support, its mean and variance equal the moments of that pmf, samples reproduce them,
and each family reduces to its simpler relative where it should."""

import itertools
import math

import pytest
import torch

from pyrolite.distributions.conjugate import BetaBinomial, DirichletMultinomial, GammaPoisson
from pyrolite.distributions.extended import ExtendedBetaBinomial, ExtendedBinomial
from pyrolite.distributions.log_normal_negative_binomial import LogNormalNegativeBinomial
from pyrolite.distributions.torch import Binomial, NegativeBinomial, Normal, Poisson
from pyrolite.distributions.zero_inflated import (
    ZeroInflatedDistribution,
    ZeroInflatedNegativeBinomial,
    ZeroInflatedPoisson,
)

T = torch.tensor
# Truncation of the infinite supports: the tails beyond are below 1e-12 for these params.
GRID = torch.arange(400.0, dtype=torch.float64).unsqueeze(-1)


def _pmf_moments(d, grid=GRID):
    """Total mass, mean and variance of ``d`` computed from its pmf on ``grid``."""
    p = d.log_prob(grid).exp()
    total = p.sum(0)
    mean = (grid * p).sum(0)
    return total, mean, (grid.pow(2) * p).sum(0) - mean.pow(2)


UNIVARIATE = {
    "GammaPoisson": lambda: GammaPoisson(T([0.5, 3.0, 8.0]), T([0.4, 1.0, 2.5])),
    "BetaBinomial": lambda: BetaBinomial(T([0.5, 3.0, 8.0]), T([2.0, 1.0, 0.3]), 12),
    "ZeroInflatedPoisson": lambda: ZeroInflatedPoisson(T([0.5, 3.0, 8.0]), gate=T([0.1, 0.5, 0.9])),
    "ZeroInflatedPoissonLogits": lambda: ZeroInflatedPoisson(
        T([0.5, 3.0, 8.0]), gate_logits=T([-3.0, 0.0, 2.0])
    ),
    "ZeroInflatedNegativeBinomial": lambda: ZeroInflatedNegativeBinomial(
        T([1.0, 4.0, 0.5]), logits=T([0.5, -1.0, 1.0]), gate=T(0.3)
    ),
    "ExtendedBetaBinomial": lambda: ExtendedBetaBinomial(
        T([0.5, 3.0]), T([2.0, 1.0]), T([7.0, 3.0])
    ),
    "ExtendedBinomial": lambda: ExtendedBinomial(T([7.0, 3.0]), T([0.3, 0.8])),
    "LogNormalNegativeBinomial": lambda: LogNormalNegativeBinomial(
        T([3.0, 10.0]), T([0.2, -1.0]), T([0.3, 0.6]), num_quad_points=20
    ),
}


@pytest.mark.parametrize("name", list(UNIVARIATE))
def test_pmf_sums_to_one_and_has_the_declared_moments(name, float64):
    d = UNIVARIATE[name]()
    grid = d.enumerate_support(expand=False) if name == "BetaBinomial" else GRID
    total, mean, variance = _pmf_moments(d, grid)
    torch.testing.assert_close(total, torch.ones_like(total), rtol=0, atol=1e-8)
    if name == "LogNormalNegativeBinomial":
        # The quadrature pmf is approximate; its moments approach the exact ones.
        torch.testing.assert_close(mean, d.mean, rtol=2e-3, atol=0)
        torch.testing.assert_close(variance, d.variance, rtol=2e-2, atol=0)
        return
    torch.testing.assert_close(mean, d.mean, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(variance, d.variance, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("name", list(UNIVARIATE))
def test_sample_mean_within_five_standard_errors(name):
    d = UNIVARIATE[name]()
    n = 20000
    samples = d.sample((n,))
    assert samples.shape == (n,) + d.batch_shape
    assert d.support.check(samples).all()
    standard_error = (d.variance / n).sqrt()
    assert ((samples.mean(0) - d.mean).abs() <= 5 * standard_error).all()


def test_gamma_poisson_is_negative_binomial():
    concentration, rate = T([0.5, 3.0]), T([0.4, 2.5])
    k = T([[0.0, 0.0], [3.0, 7.0]])
    nb = NegativeBinomial(concentration, probs=1 / (1 + rate))
    torch.testing.assert_close(GammaPoisson(concentration, rate).log_prob(k), nb.log_prob(k))


def test_beta_binomial_enumerates_its_support_with_unit_mass():
    d = BetaBinomial(T([0.5, 2.0, 3.0]), T([1.0, 0.5, 3.0]), 6)
    support = d.enumerate_support()
    assert support.shape == (7, 3)
    torch.testing.assert_close(support[:, 1], torch.arange(7.0))
    assert d.enumerate_support(expand=False).shape == (7, 1)
    mass = d.log_prob(support).exp().sum(0)
    torch.testing.assert_close(mass, torch.ones(3))


def test_beta_binomial_with_uniform_beta_is_uniform_on_counts():
    d = BetaBinomial(T(1.0), T(1.0), 4)
    torch.testing.assert_close(d.log_prob(torch.arange(5.0)).exp(), torch.full((5,), 0.2))


def test_dirichlet_multinomial_sums_to_one_over_all_compositions(float64):
    concentration = T([[0.5, 2.0, 1.5], [3.0, 0.2, 0.7]])
    n = 6
    rows = [c for c in itertools.product(range(n + 1), repeat=3) if sum(c) == n]
    values = torch.tensor(rows, dtype=torch.float64).unsqueeze(1)  # (compositions, 1, 3)
    for is_sparse in (False, True):
        d = DirichletMultinomial(concentration, n, is_sparse=is_sparse)
        p = d.log_prob(values).exp()
        torch.testing.assert_close(p.sum(0), torch.ones(2, dtype=torch.float64))
        mean = (values * p.unsqueeze(-1)).sum(0)
        variance = (values.pow(2) * p.unsqueeze(-1)).sum(0) - mean.pow(2)
        torch.testing.assert_close(mean, d.mean)
        torch.testing.assert_close(variance, d.variance)


def test_dirichlet_multinomial_sparse_log_prob_equals_dense():
    concentration = torch.rand(4, 5) + 0.1
    value = torch.distributions.Multinomial(7, torch.ones(5)).sample((3, 4))
    value[0] = 0
    value[0, :, 2] = 7
    dense = DirichletMultinomial(concentration, 7).log_prob(value)
    sparse = DirichletMultinomial(concentration, 7, is_sparse=True).log_prob(value)
    torch.testing.assert_close(sparse, dense)


def test_dirichlet_multinomial_sample_moments():
    d = DirichletMultinomial(T([0.5, 2.0, 1.5]), 10)
    n = 20000
    samples = d.sample((n,))
    assert (samples.sum(-1) == 10).all()
    standard_error = (d.variance / n).sqrt()
    assert ((samples.mean(0) - d.mean).abs() <= 5 * standard_error).all()


def test_zero_inflated_with_zero_gate_is_the_base():
    k = T([[0.0, 0.0], [2.0, 5.0]])
    rate = T([0.5, 3.0])
    d = ZeroInflatedPoisson(rate, gate=T(0.0))
    torch.testing.assert_close(d.log_prob(k), Poisson(rate).log_prob(k))
    g = ZeroInflatedPoisson(rate, gate_logits=T(-30.0))
    torch.testing.assert_close(g.log_prob(k), Poisson(rate).log_prob(k), rtol=0, atol=1e-6)


def test_zero_inflated_mass_at_zero_adds_the_gate():
    gate = T([0.2, 0.6])
    base = ZeroInflatedDistribution(Poisson(T(1.5)), gate=gate)
    assert base.batch_shape == (2,)
    p0 = base.log_prob(T(0.0)).exp()
    torch.testing.assert_close(p0, gate + (1 - gate) * math.exp(-1.5))
    # gate and gate_logits parameterize the same law.
    by_logits = ZeroInflatedDistribution(Poisson(T(1.5)), gate_logits=gate.logit())
    torch.testing.assert_close(
        by_logits.log_prob(T([[0.0], [3.0]])), base.log_prob(T([[0.0], [3.0]]))
    )
    torch.testing.assert_close(by_logits.gate, gate)


def test_zero_inflated_rejects_a_multivariate_base():
    with pytest.raises(ValueError, match="event_shape"):
        ZeroInflatedDistribution(Normal(torch.zeros(2), 1.0).to_event(1), gate=T(0.5))


def test_extended_families_equal_the_ordinary_ones_inside_the_support():
    k = T([[0.0, 2.0], [3.0, 1.0]])
    n, probs = T([3.0, 4.0]), T([0.3, 0.6])
    torch.testing.assert_close(
        ExtendedBinomial(n, probs).log_prob(k), Binomial(n, probs).log_prob(k)
    )
    a, b = T([0.5, 2.0]), T([1.5, 0.7])
    torch.testing.assert_close(
        ExtendedBetaBinomial(a, b, n).log_prob(k), BetaBinomial(a, b, n).log_prob(k)
    )


def test_extended_families_give_minus_inf_outside_with_finite_gradients():
    n = T([3.0, -2.0, 0.0])
    probs = T([0.3, 0.6, 0.5], requires_grad=True)
    k = T([[-1.0, 0.0, 0.0], [4.0, -2.0, 1.0]])
    log_prob = ExtendedBinomial(n, probs).log_prob(k)
    assert log_prob[0, 2] == 0.0  # total_count 0 puts all mass on 0
    mask = torch.tensor([[True, True, False], [True, True, True]])
    assert (log_prob[mask] == -math.inf).all()
    a = T([0.5, 2.0, 1.0], requires_grad=True)
    lp = ExtendedBetaBinomial(a, T(1.0), n).log_prob(k)
    assert (lp[mask] == -math.inf).all() and lp[0, 2] == 0.0
    (log_prob[0, 2] + lp[0, 2]).backward()
    assert torch.isfinite(probs.grad).all() and torch.isfinite(a.grad).all()


def test_extended_family_with_negative_validation_accepts_all_integers():
    d = ExtendedBinomial(T(-3.0), T(0.5), validate_args=True)
    assert d.log_prob(T(-3.0)) == -math.inf
    with pytest.raises(ValueError, match="support"):
        d.log_prob(T(0.5))


def test_log_normal_negative_binomial_quadrature_converges_to_the_integral(float64):
    """Against the mixture integral over the logit noise by a fine trapezoid rule."""
    total_count, logits, scale = T(3.0), T(0.2), T(0.8)
    eps = torch.linspace(-10, 10, 20001, dtype=torch.float64) * scale
    weights = Normal(0.0, scale).log_prob(eps).exp() * (eps[1] - eps[0])
    k = T([0.0, 1.0, 4.0, 20.0]).unsqueeze(-1)
    nb = NegativeBinomial(total_count, logits=logits + eps)
    exact = (nb.log_prob(k).exp() * weights).sum(-1).log()
    approx = LogNormalNegativeBinomial(total_count, logits, scale, num_quad_points=40).log_prob(
        k[:, 0]
    )
    torch.testing.assert_close(approx, exact, rtol=1e-6, atol=1e-8)
    coarse = LogNormalNegativeBinomial(total_count, logits, scale, num_quad_points=2).log_prob(
        k[:, 0]
    )
    assert ((coarse - exact).abs() > 1e-4).any()  # the point count matters


def test_log_normal_negative_binomial_without_noise_is_negative_binomial():
    k = T([0.0, 3.0, 11.0])
    d = LogNormalNegativeBinomial(T(2.5), T(0.3), T(1e-6))
    nb = NegativeBinomial(T(2.5), logits=T(0.3))
    torch.testing.assert_close(d.log_prob(k), nb.log_prob(k))


def test_log_normal_negative_binomial_rejects_no_quadrature_points():
    with pytest.raises(ValueError, match="num_quad_points"):
        LogNormalNegativeBinomial(T(2.0), T(0.0), T(0.5), num_quad_points=0)


@pytest.mark.parametrize(
    "build",
    [
        lambda: GammaPoisson(T([1.0, 2.0]), T(3.0)),
        lambda: BetaBinomial(T([1.0, 2.0]), T(3.0), 4),
        lambda: DirichletMultinomial(torch.ones(2, 3), 4),
        lambda: ZeroInflatedPoisson(T([1.0, 2.0]), gate=T(0.3)),
        lambda: ZeroInflatedNegativeBinomial(T([1.0, 2.0]), probs=T(0.3), gate_logits=T(0.1)),
        lambda: ExtendedBinomial(T([1.0, 2.0]), T(0.3)),
        lambda: ExtendedBetaBinomial(T([1.0, 2.0]), T(3.0), 4),
        lambda: LogNormalNegativeBinomial(T([1.0, 2.0]), T(0.3), T(0.5)),
    ],
)
def test_expand_keeps_the_class_and_repeats_log_prob(build):
    d = build()
    e = d.expand((3,) + d.batch_shape)
    assert type(e) is type(d) and e.batch_shape == (3,) + d.batch_shape
    value = d.sample()
    torch.testing.assert_close(e.log_prob(value), d.log_prob(value).expand(e.batch_shape))
    assert e.sample((5,)).shape == (5, 3) + d.batch_shape + d.event_shape
