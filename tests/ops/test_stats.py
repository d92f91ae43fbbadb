"""pyrolite.ops.stats: analytic values (quantiles, ESS of iid draws, AR(1) autocorrelation,
WAIC of a known likelihood, GPD fit) and agreement with Pyro's ``pyro.ops.stats``."""

import math

import pytest
import torch

from pyrolite.ops import stats


def _ar1(phi: float, shape, dtype=torch.float64) -> torch.Tensor:
    """Stationary AR(1) draws along the last dim: x_t = sum_k phi^k e_(t-k), truncated where
    phi^k < 1e-12 (a convolution instead of a Python loop)."""
    lags = int(math.log(1e-12) / math.log(phi)) + 1
    kernel = phi ** torch.arange(lags, dtype=dtype).flip(0)
    noise = torch.randn(shape[:-1] + (shape[-1] + lags - 1,), dtype=dtype)
    flat = noise.reshape(-1, 1, noise.size(-1))
    return torch.nn.functional.conv1d(flat, kernel.reshape(1, 1, -1)).reshape(shape)


def _pyro_stats():
    return pytest.importorskip("pyro.ops.stats")


# --- analytic ----------------------------------------------------------------------------


def test_quantile_of_evenly_spaced_sample_is_linear():
    x = torch.arange(101.0)[torch.randperm(101)]
    q = stats.quantile(x, [0.0, 0.25, 0.333, 1.0])
    assert torch.allclose(q, torch.tensor([0.0, 25.0, 33.3, 100.0]), atol=1e-4)
    assert stats.quantile(x, 0.5).shape == ()


def test_quantile_puts_probs_at_dim():
    x = torch.randn(7, 3, 5)
    assert stats.quantile(x, [0.1, 0.5], dim=1).shape == (7, 2, 5)
    assert stats.quantile(x, 0.3, dim=1).shape == (7, 5)


def test_pi_and_hpdi_of_normal_draws():
    x = torch.randn(200000)
    lo, hi = stats.pi(x, 0.95)
    # 5 SE of a sample quantile near 1.96: sqrt(p(1-p)/n)/phi(1.96) ~ 0.0012
    assert abs(float(lo) + 1.96) < 0.01 and abs(float(hi) - 1.96) < 0.01
    lo, hi = stats.hpdi(x, 0.95)  # symmetric density: HPDI = central interval
    assert abs(float(lo) + 1.96) < 0.02 and abs(float(hi) - 1.96) < 0.02


def test_hpdi_of_exponential_starts_at_zero():
    x = torch.distributions.Exponential(1.0).sample((100000,))
    lo, hi = stats.hpdi(x, 0.9)
    assert float(lo) < 0.001 and abs(float(hi) - math.log(10.0)) < 0.05


def test_weighed_quantile_equal_weights_match_quantile():
    x = torch.randn(4, 51)
    probs = torch.tensor([0.1, 0.5, 0.9])
    got = stats.weighed_quantile(x, probs, torch.zeros(51), dim=-1)
    assert torch.allclose(got, stats.quantile(x, probs, dim=-1), atol=1e-5)


def test_weighed_quantile_docstring_values():
    x = torch.tensor([[10.0, 50.0, 40.0], [20.0, 30.0, 0.0]])
    w = torch.tensor([0.4, 0.5, 0.1]).log()
    got = stats.weighed_quantile(x, torch.tensor([0.2, 0.8]), w, -1)
    assert torch.allclose(got, torch.tensor([[40.4, 47.6], [9.0, 26.4]]), atol=1e-4)


def test_autocorrelation_of_ar1_is_geometric():
    phi, n = 0.7, 100000
    x = _ar1(phi, (n,))
    rho = stats.autocorrelation(x)[:5]
    # SE of a lag-k autocorrelation ~ sqrt((1 + phi^2) / (1 - phi^2) / n) ~ 0.005
    assert torch.allclose(rho, phi ** torch.arange(5.0, dtype=torch.float64), atol=0.025)
    acov = stats.autocovariance(x)
    assert abs(float(acov[0]) - 1 / (1 - phi**2)) < 0.1


def test_autocorrelation_of_period_two_sequence():
    rho = stats.autocorrelation(torch.tensor([1.0, 2.0, 1.0, 2.0]))
    assert torch.allclose(rho, torch.tensor([1.0, -1.0, 1.0, -1.0]), atol=1e-6)


def test_ess_of_iid_draws_is_about_n():
    x = torch.randn(4, 2000, 3)
    ess = stats.effective_sample_size(x)
    # the ESS estimator's relative sd for iid draws is a few percent at N=8000
    assert ((ess / 8000 - 1).abs() < 0.15).all()


def test_ess_of_ar1_chains_matches_theory():
    phi = 0.9
    x = _ar1(phi, (4, 5000))
    expected = 20000 * (1 - phi) / (1 + phi)  # N / (1 + 2 sum phi^k)
    assert abs(float(stats.effective_sample_size(x)) / expected - 1) < 0.2


def test_gelman_rubin_near_one_for_mixed_chains_and_large_for_separated():
    x = torch.randn(4, 1000)
    assert abs(float(stats.gelman_rubin(x)) - 1) < 0.01
    assert abs(float(stats.split_gelman_rubin(x)) - 1) < 0.01
    assert float(stats.gelman_rubin(x + torch.arange(4.0)[:, None] * 3)) > 2
    drifting = torch.randn(1, 1000) + torch.linspace(0, 5, 1000)
    assert float(stats.split_gelman_rubin(drifting)) > 1.5


def test_gelman_rubin_needs_two_chains():
    with pytest.raises(ValueError, match="2 chains"):
        stats.gelman_rubin(torch.randn(1, 10))


def test_crps_of_a_single_sample_is_absolute_error():
    pred, truth = torch.randn(1, 5), torch.randn(5)
    assert torch.allclose(stats.crps_empirical(pred, truth), (pred[0] - truth).abs())


def test_crps_matches_quadratic_formula():
    pred, truth = torch.randn(30, 4), torch.randn(4)
    naive = (pred - truth).abs().mean(0) - (pred - pred.unsqueeze(1)).abs().mean([0, 1]) / 2
    assert torch.allclose(stats.crps_empirical(pred, truth), naive, atol=1e-5)


def test_crps_of_normal_forecast_at_its_mean():
    pred = torch.randn(100000)
    # closed form for N(0, 1) at 0: E|X| - E|X - X'| / 2 = sqrt(2/pi) - 1/sqrt(pi)
    expected = math.sqrt(2 / math.pi) - 1 / math.sqrt(math.pi)
    assert abs(float(stats.crps_empirical(pred, torch.tensor(0.0))) - expected) < 0.01


def test_energy_score_univariate_equals_crps():
    pred, truth = torch.randn(40, 3), torch.randn(3)
    es = stats.energy_score_empirical(pred.T.unsqueeze(-1), truth.unsqueeze(-1))
    assert torch.allclose(es, stats.crps_empirical(pred, truth), atol=1e-5)
    batched = stats.energy_score_empirical(pred.T.unsqueeze(-1), truth.unsqueeze(-1), 7)
    assert torch.allclose(batched, es, atol=1e-5)


def test_waic_of_constant_likelihood():
    # every draw gives the same log-likelihood: lppd = sum ll, p_waic = 0
    ll = torch.tensor([-1.0, -2.0, -0.5]).expand(50, 3)
    w, p = stats.waic(ll)
    assert abs(float(w) - 7.0) < 1e-5 and abs(float(p)) < 1e-6
    w_point, p_point = stats.waic(ll, pointwise=True)
    assert torch.allclose(w_point, torch.tensor([2.0, 4.0, 1.0]))


def test_waic_of_known_model():
    # y ~ N(theta, 1) with theta ~ N(m, s^2) draws: closed-form lppd and p_waic per point
    m, s, y = 0.3, 0.5, torch.tensor([0.0, 1.0, -1.0], dtype=torch.float64)
    theta = m + s * torch.randn(400000, 1, dtype=torch.float64)
    ll = torch.distributions.Normal(theta, 1.0).log_prob(y)
    w, p = stats.waic(ll, pointwise=True)
    lppd = torch.distributions.Normal(m, math.sqrt(1 + s**2)).log_prob(y)
    # Var_theta[-(y - theta)^2 / 2] for theta ~ N(m, s^2)
    d = y - m
    p_exact = d**2 * s**2 + s**4 / 2
    assert torch.allclose(p, p_exact, atol=0.01)
    assert torch.allclose(w, -2 * (lppd - p_exact), atol=0.03)


def test_fit_generalized_pareto_recovers_parameters():
    k, sigma = 0.5, 2.0
    u = torch.rand(20000, dtype=torch.float64)
    x = sigma / k * ((1 - u) ** -k - 1)  # GPD inverse CDF
    k_hat, sigma_hat = stats.fit_generalized_pareto(x)
    assert abs(k_hat - k) < 0.05 and abs(sigma_hat / sigma - 1) < 0.05


def test_next_fast_len():
    assert [stats.next_fast_len(n) for n in (1, 7, 11, 97, 121)] == [1, 8, 12, 100, 125]


def test_resample_draws_distinct_slices_without_replacement():
    x = torch.arange(20.0).reshape(2, 10)
    got = stats.resample(x, 10, dim=1)
    assert sorted(got[0].tolist()) == list(range(10))
    assert torch.equal(got[1], got[0] + 10)


# --- against Pyro ------------------------------------------------------------------------


def _close(a, b, atol=1e-5):
    if isinstance(a, tuple):
        for u, v in zip(a, b):
            _close(u, v, atol)
        return
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    assert a.shape == b.shape
    assert torch.allclose(a.double(), b.double(), atol=atol, rtol=1e-5)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_quantiles_intervals_and_autocorrelation_match_pyro(dim):
    P = _pyro_stats()
    x = torch.randn(4, 50, 3, dtype=torch.float64).cumsum(1)
    for probs in ([0.1, 0.5, 0.97], 0.3):
        _close(stats.quantile(x, probs, dim), P.quantile(x, probs, dim))
    for prob in (0.5, 0.9, 0.99):
        _close(stats.hpdi(x, prob, dim), P.hpdi(x, prob, dim))
        _close(stats.pi(x, prob, dim), P.pi(x, prob, dim))
    lw = torch.randn(x.shape[dim], dtype=torch.float64)
    probs = torch.tensor([0.0, 0.1, 0.5, 0.97, 1.0], dtype=torch.float64)
    _close(stats.weighed_quantile(x, probs, lw, dim), P.weighed_quantile(x, probs, lw, dim))
    _close(stats.autocorrelation(x, dim), P.autocorrelation(x, dim))
    _close(stats.autocovariance(x, dim), P.autocovariance(x, dim))


@pytest.mark.parametrize("chain_dim,sample_dim", [(0, 1), (1, 0), (0, 2), (2, 1)])
@pytest.mark.parametrize("num_samples", [50, 51])
def test_mcmc_diagnostics_match_pyro(chain_dim, sample_dim, num_samples):
    P = _pyro_stats()
    x = torch.randn(4, num_samples, 6, dtype=torch.float64).cumsum(1).movedim(1, sample_dim)
    x = x.movedim(0, chain_dim) if chain_dim != 0 else x
    for name in ("effective_sample_size", "gelman_rubin", "split_gelman_rubin"):
        _close(
            getattr(stats, name)(x, chain_dim, sample_dim),
            getattr(P, name)(x, chain_dim, sample_dim),
        )


def test_scores_waic_gpd_and_resample_match_pyro():
    P = _pyro_stats()
    pred, truth = torch.randn(10, 4, 2), torch.randn(4, 2)
    _close(stats.crps_empirical(pred, truth), P.crps_empirical(pred, truth))
    _close(stats.crps_empirical(pred[:1], truth), P.crps_empirical(pred[:1], truth))
    for p_shape, t_shape in [((3, 10, 4), (3, 1, 4)), ((3, 10, 4), (3, 4)), ((10, 4), (4,))]:
        a, b = torch.randn(p_shape), torch.randn(t_shape)
        _close(stats.energy_score_empirical(a, b), P.energy_score_empirical(a, b))
        _close(stats.energy_score_empirical(a, b, 3), P.energy_score_empirical(a, b, 3))
    ll, lw = torch.randn(100, 6), torch.randn(100)
    _close(stats.waic(ll), P.waic(ll))
    _close(stats.waic(ll, lw, True), P.waic(ll, lw, True))
    _close(stats.waic(ll.T, lw, dim=1), P.waic(ll.T, lw, dim=1))
    for x in (torch.distributions.Pareto(1.0, 2.0).sample((1000,)) - 1, torch.rand(300)):
        _close(stats.fit_generalized_pareto(x), P.fit_generalized_pareto(x))
    assert [stats.next_fast_len(n) for n in range(1, 300)] == [
        P.next_fast_len(n) for n in range(1, 300)
    ]
    x = torch.randn(3, 20)
    for replacement in (False, True):
        torch.manual_seed(3)
        expected = P.resample(x, 7, dim=1, replacement=replacement)
        torch.manual_seed(3)
        _close(stats.resample(x, 7, dim=1, replacement=replacement), expected)
    assert stats.rfft is P.rfft and stats.irfft is P.irfft
