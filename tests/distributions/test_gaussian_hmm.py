"""GaussianHMM, GammaGaussianHMM, GaussianMRF, LinearHMM and IndependentHMM against dense
multivariate normals over all T * obs_dim values built by hand, a sequential Kalman filter,
numerical integration over the Gamma scale, and sampling moments; no Pyro needed."""

import math

import pytest
import torch

from pyrolite.distributions.gaussian_hmm import (
    GammaGaussianHMM,
    GaussianHMM,
    GaussianMRF,
    IndependentHMM,
    LinearHMM,
)
from pyrolite.distributions.torch import (
    Gamma,
    Independent,
    LogNormal,
    MultivariateNormal,
    Normal,
    StudentT,
)
from pyrolite.ops.gaussian import (
    Gaussian,
    gaussian_tensordot,
    mvn_to_gaussian,
    sequential_gaussian_tensordot,
)

F64 = torch.float64


def random_mvn(event, *batch, generator=None):
    scale = torch.randn(batch + (event, event), dtype=F64).tril(-1) * 0.3
    scale = scale + torch.diag_embed(0.5 + torch.rand(batch + (event,), dtype=F64))
    return MultivariateNormal(torch.randn(batch + (event,), dtype=F64), scale_tril=scale)


def random_parts(hidden, obs, steps, batch=()):
    """(initial_dist, transition_matrix, transition_dist, observation_matrix,
    observation_dist), all heterogeneous in time."""
    return (
        random_mvn(hidden, *batch),
        0.5 * torch.randn(batch + (steps, hidden, hidden), dtype=F64),
        random_mvn(hidden, *batch, steps),
        torch.randn(batch + (steps, hidden, obs), dtype=F64),
        random_mvn(obs, *batch, steps),
    )


def dense_joint(parts, steps):
    """Mean and covariance of ``(z[0..T-1], x[0..T-1])`` flattened (states first), built by
    unrolling the model as a linear map of its independent sources (z[-1], the transition
    noises, the observation noises)."""
    init, trans_matrix, trans_dist, obs_matrix, obs_dist = parts
    hidden, obs = trans_matrix.size(-1), obs_matrix.size(-1)
    trans_matrix = trans_matrix.expand(steps, hidden, hidden)
    obs_matrix = obs_matrix.expand(steps, hidden, obs)
    trans_dist = trans_dist.expand((steps,))
    obs_dist = obs_dist.expand((steps,))
    sources = hidden + steps * (hidden + obs)
    means = [init.loc] + list(trans_dist.loc) + list(obs_dist.loc)
    covs = [init.covariance_matrix] + list(trans_dist.covariance_matrix)
    covs += list(obs_dist.covariance_matrix)
    source_mean = torch.cat(means)
    source_cov = torch.block_diag(*covs)

    def unit(start, size):
        coef = torch.zeros(sources, size, dtype=F64)
        coef[start : start + size] = torch.eye(size, dtype=F64)
        return coef

    state = unit(0, hidden)
    state_columns, obs_columns = [], []
    for t in range(steps):
        state = state @ trans_matrix[t] + unit(hidden + t * hidden, hidden)
        state_columns.append(state)
        obs_columns.append(state @ obs_matrix[t] + unit(hidden + steps * hidden + t * obs, obs))
    coef = torch.cat(state_columns + obs_columns, -1)
    return source_mean @ coef, coef.T @ source_cov @ coef


def dense_linear_gaussian(parts, steps):
    """Mean ``(T * obs_dim,)`` and covariance of the observations, flattened."""
    mean, cov = dense_joint(parts, steps)
    n_z = steps * parts[1].size(-1)
    return mean[n_z:], cov[n_z:, n_z:]


def dense_log_prob(parts, value):
    steps = value.size(-2)
    mean, cov = dense_linear_gaussian(parts, steps)
    return MultivariateNormal(mean, cov).log_prob(value.reshape(value.shape[:-2] + (-1,)))


def kalman_filter(parts, value):
    """Textbook sequential Kalman filter (column vectors): the final state's mean and
    covariance, and the log likelihood from the innovations."""
    init, trans_matrix, trans_dist, obs_matrix, obs_dist = parts
    mean, cov = init.loc, init.covariance_matrix
    log_lik = torch.zeros((), dtype=F64)
    for t in range(value.size(-2)):
        F = trans_matrix[t].T
        Hm = obs_matrix[t].T
        mean = F @ mean + trans_dist.loc[t]
        cov = F @ cov @ F.T + trans_dist.covariance_matrix[t]
        predicted = Hm @ mean + obs_dist.loc[t]
        innovation_cov = Hm @ cov @ Hm.T + obs_dist.covariance_matrix[t]
        log_lik = log_lik + MultivariateNormal(predicted, innovation_cov).log_prob(value[t])
        gain = cov @ Hm.T @ torch.linalg.inv(innovation_cov)
        mean = mean + gain @ (value[t] - predicted)
        cov = cov - gain @ Hm @ cov
    return mean, cov, log_lik


# ----------------------------------------------------------------------------- Gaussian ops


def test_gaussian_tensordot_matches_dense_marginalization():
    x = mvn_to_gaussian(random_mvn(5))
    y = mvn_to_gaussian(random_mvn(4))
    # x over (a: 3, b: 2), y over (b: 2, c: 2); joint over (a, b, c) integrated over b.
    joint = x.event_pad(right=2) + y.event_pad(left=3)
    keep = [0, 1, 2, 5, 6]
    order = keep + [3, 4]
    permuted = Gaussian(
        joint.log_normalizer, joint.info_vec[order], joint.precision[order][:, order]
    )
    expected = permuted.marginalize(right=2)
    result = gaussian_tensordot(x, y, 2)
    torch.testing.assert_close(result.precision, expected.precision)
    torch.testing.assert_close(result.info_vec, expected.info_vec)
    torch.testing.assert_close(result.log_normalizer, expected.log_normalizer)


@pytest.mark.parametrize("steps", [1, 2, 5, 8])
def test_sequential_gaussian_tensordot_equals_left_to_right_loop(steps):
    factors = [mvn_to_gaussian(random_mvn(4, 3)) for _ in range(steps)]
    stacked = Gaussian.time_cat(
        [
            Gaussian(
                f.log_normalizer[..., None], f.info_vec[..., None, :], f.precision[..., None, :, :]
            )
            for f in factors
        ]
    )
    result = sequential_gaussian_tensordot(stacked)
    expected = factors[0]
    for factor in factors[1:]:
        expected = gaussian_tensordot(expected, factor, 2)
    torch.testing.assert_close(result.precision, expected.precision)
    torch.testing.assert_close(result.info_vec, expected.info_vec)
    torch.testing.assert_close(result.log_normalizer, expected.log_normalizer)


def test_mvn_to_gaussian_log_density_equals_mvn_log_prob():
    mvn = random_mvn(3, 2)
    value = torch.randn(4, 2, 3, dtype=F64)
    torch.testing.assert_close(mvn_to_gaussian(mvn).log_density(value), mvn.log_prob(value))
    diag = Normal(torch.randn(3, dtype=F64), torch.rand(3, dtype=F64) + 0.5).to_event(1)
    torch.testing.assert_close(mvn_to_gaussian(diag).log_density(value), diag.log_prob(value))


# ----------------------------------------------------------------------------- GaussianHMM


@pytest.mark.parametrize("steps", [1, 2, 3, 7])
def test_gaussian_hmm_log_prob_equals_dense_mvn(steps):
    parts = random_parts(3, 2, steps)
    value = torch.randn(4, steps, 2, dtype=F64)
    hmm = GaussianHMM(*parts)
    assert hmm.batch_shape == () and hmm.event_shape == (steps, 2)
    torch.testing.assert_close(hmm.log_prob(value), dense_log_prob(parts, value))


def test_gaussian_hmm_homogeneous_scores_any_length_and_diagonal_noise():
    hidden, obs = 2, 3
    init = random_mvn(hidden)
    matrix = 0.5 * torch.randn(hidden, hidden, dtype=F64)
    trans = random_mvn(hidden)
    obs_matrix = torch.randn(hidden, obs, dtype=F64)
    obs_dist = Normal(torch.randn(obs, dtype=F64), torch.rand(obs, dtype=F64) + 0.5).to_event(1)
    hmm = GaussianHMM(init, matrix, trans, obs_matrix, obs_dist)
    assert hmm.event_shape == (1, obs) and hmm.duration is None
    as_mvn = MultivariateNormal(obs_dist.base_dist.loc, torch.diag(obs_dist.base_dist.scale**2))
    for steps in [1, 4, 6]:
        value = torch.randn(steps, obs, dtype=F64)
        dense_parts = (init, matrix, trans.expand((steps,)), obs_matrix, as_mvn.expand((steps,)))
        torch.testing.assert_close(hmm.log_prob(value), dense_log_prob(dense_parts, value))


def test_gaussian_hmm_batched_log_prob_and_expand():
    parts = random_parts(2, 2, 4, batch=(3,))
    value = torch.randn(5, 1, 4, 2, dtype=F64)
    hmm = GaussianHMM(*parts)
    assert hmm.batch_shape == (3,)
    result = hmm.log_prob(value)
    assert result.shape == (5, 3)
    for b in range(3):
        sub = (
            MultivariateNormal(parts[0].loc[b], parts[0].covariance_matrix[b]),
            parts[1][b],
            MultivariateNormal(parts[2].loc[b], parts[2].covariance_matrix[b]),
            parts[3][b],
            MultivariateNormal(parts[4].loc[b], parts[4].covariance_matrix[b]),
        )
        torch.testing.assert_close(result[:, b], dense_log_prob(sub, value[:, 0]))
    expanded = hmm.expand([2, 3])
    assert expanded.batch_shape == (2, 3) and expanded.event_shape == (4, 2)
    single = torch.randn(4, 2, dtype=F64)
    torch.testing.assert_close(expanded.log_prob(single), hmm.log_prob(single).expand(2, 3))


def test_gaussian_hmm_filter_equals_sequential_kalman_filter():
    parts = random_parts(3, 2, 6)
    value = torch.randn(6, 2, dtype=F64)
    hmm = GaussianHMM(*parts)
    mean, cov, log_lik = kalman_filter(parts, value)
    posterior = hmm.filter(value)
    assert isinstance(posterior, MultivariateNormal)
    torch.testing.assert_close(posterior.loc, mean)
    torch.testing.assert_close(posterior.covariance_matrix, cov)
    torch.testing.assert_close(hmm.log_prob(value), log_lik)


def test_gaussian_hmm_log_prob_gradient_equals_dense_gradient():
    parts = random_parts(2, 2, 5)
    matrix = parts[1].clone().requires_grad_()
    loc = parts[4].loc.clone().requires_grad_()
    obs_dist = MultivariateNormal(loc, scale_tril=parts[4].scale_tril)
    value = torch.randn(5, 2, dtype=F64)
    grads = torch.autograd.grad(
        GaussianHMM(parts[0], matrix, parts[2], parts[3], obs_dist).log_prob(value), [matrix, loc]
    )
    dense = dense_log_prob((parts[0], matrix, parts[2], parts[3], obs_dist), value)
    expected = torch.autograd.grad(dense, [matrix, loc])
    for g, e in zip(grads, expected):
        torch.testing.assert_close(g, e)


def _assert_moments(samples, mean, cov, num_se=5.0):
    """Sample mean and covariance within ``num_se`` standard errors of ``mean``, ``cov``."""
    n = samples.size(0)
    var = cov.diagonal()
    mean_se = (var / n).sqrt()
    assert ((samples.mean(0) - mean).abs() < num_se * mean_se).all()
    centered = samples - mean
    sample_cov = centered.T @ centered / n
    cov_se = ((var[:, None] * var[None, :] + cov**2) / n).sqrt()
    assert ((sample_cov - cov).abs() < num_se * cov_se).all()


def test_gaussian_hmm_rsample_moments_equal_dense_mvn():
    steps = 5  # odd: the pairwise tree carries a factor up a level
    parts = random_parts(2, 2, steps)
    hmm = GaussianHMM(*parts)
    samples = hmm.rsample([20000])
    assert samples.shape == (20000, steps, 2)
    mean, cov = dense_linear_gaussian(parts, steps)
    _assert_moments(samples.reshape(20000, -1), mean, cov)


def test_gaussian_hmm_rsample_is_reparameterized():
    parts = random_parts(2, 1, 3)
    loc = parts[0].loc.clone().requires_grad_()
    init = MultivariateNormal(loc, scale_tril=parts[0].scale_tril)
    hmm = GaussianHMM(init, *parts[1:])
    (grad,) = torch.autograd.grad(hmm.rsample([10]).sum(), [loc])
    # x is linear in z[-1] with no noise dependence on loc: d sum(x) / d loc is exact.
    mean_grad = torch.autograd.functional.jacobian(
        lambda m: dense_linear_gaussian(
            (MultivariateNormal(m, scale_tril=parts[0].scale_tril), *parts[1:]), 3
        )[0].sum(),
        parts[0].loc,
    )
    torch.testing.assert_close(grad, 10 * mean_grad)


def test_gaussian_hmm_homogeneous_rsample_needs_duration():
    parts = random_parts(2, 2, 1)
    with pytest.raises(ValueError, match="duration"):
        GaussianHMM(*parts).rsample()
    assert GaussianHMM(*parts, duration=4).rsample([3]).shape == (3, 4, 2)
    with pytest.raises(ValueError, match="duration=6"):
        GaussianHMM(*random_parts(2, 2, 6), duration=4)


def test_gaussian_hmm_rsample_posterior_moments_equal_dense_conditional():
    steps, hidden, obs = 3, 2, 2
    parts = random_parts(hidden, obs, steps)
    value = torch.randn(steps, obs, dtype=F64)
    samples = GaussianHMM(*parts).rsample_posterior(value, [20000])
    assert samples.shape == (20000, steps, hidden)
    mean, cov = dense_joint(parts, steps)
    z, x = slice(0, steps * hidden), slice(steps * hidden, None)
    gain = cov[z, x] @ torch.linalg.inv(cov[x, x])
    post_mean = mean[z] + gain @ (value.reshape(-1) - mean[x])
    post_cov = cov[z, z] - gain @ cov[x, z]
    _assert_moments(samples.reshape(20000, -1), post_mean, post_cov)


def test_gaussian_hmm_conjugate_update_fuses_a_gaussian_likelihood():
    steps = 3
    parts = random_parts(2, 2, steps)
    hmm = GaussianHMM(*parts)
    other = Independent(random_mvn(2, steps), 1)
    updated, log_normalizer = hmm.conjugate_update(other)
    assert updated.event_shape == (steps, 2)
    value = torch.randn(4, steps, 2, dtype=F64)
    torch.testing.assert_close(
        updated.log_prob(value) + log_normalizer, hmm.log_prob(value) + other.log_prob(value)
    )
    # log Z = log of the integral of f g = log N(other's mean; f's mean, f's cov + g's cov).
    mean, cov = dense_linear_gaussian(parts, steps)
    g_cov = torch.block_diag(*other.base_dist.covariance_matrix)
    g_mean = other.base_dist.loc.reshape(-1)
    torch.testing.assert_close(
        log_normalizer, MultivariateNormal(mean, cov + g_cov).log_prob(g_mean)
    )
    # Its samples follow the normalized product.
    post_cov = torch.linalg.inv(torch.linalg.inv(cov) + torch.linalg.inv(g_cov))
    post_mean = post_cov @ (torch.linalg.solve(cov, mean) + torch.linalg.solve(g_cov, g_mean))
    _assert_moments(updated.rsample([20000]).reshape(20000, -1), post_mean, post_cov)


def test_gaussian_hmm_conjugate_update_with_diagonal_normal_likelihood():
    parts = random_parts(2, 2, 4)
    hmm = GaussianHMM(*parts)
    other = Normal(torch.randn(3, 4, 2, dtype=F64), 1.5).to_event(2)
    updated, log_normalizer = hmm.conjugate_update(other)
    assert updated.batch_shape == (3,) and log_normalizer.shape == (3,)
    value = torch.randn(4, 2, dtype=F64)
    torch.testing.assert_close(
        updated.log_prob(value) + log_normalizer, hmm.log_prob(value) + other.log_prob(value)
    )


def _first(mvn, steps):
    return MultivariateNormal(mvn.loc[:steps], scale_tril=mvn.scale_tril[:steps])


@pytest.mark.parametrize("heterogeneous", [True, False])
def test_gaussian_hmm_prefix_condition_is_the_conditional_density(heterogeneous):
    steps = 6
    parts = random_parts(2, 2, steps if heterogeneous else 1)
    hmm = GaussianHMM(*parts, duration=steps)
    value = torch.randn(3, steps, 2, dtype=F64)
    future = hmm.prefix_condition(value[:, :4])
    assert future.batch_shape == (3,) and future.event_shape == (2, 2)
    full = hmm.log_prob(value)
    past = (
        GaussianHMM(*parts, duration=4)
        if not heterogeneous
        else GaussianHMM(
            parts[0], parts[1][:4], _first(parts[2], 4), parts[3][:4], _first(parts[4], 4)
        )
    )
    torch.testing.assert_close(future.log_prob(value[:, 4:]), full - past.log_prob(value[:, :4]))


def test_gaussian_hmm_validates_value_and_parts():
    hmm = GaussianHMM(*random_parts(2, 2, 4))
    with pytest.raises(ValueError, match="does not fit"):
        hmm.log_prob(torch.randn(3, 2, dtype=F64))
    with pytest.raises(ValueError, match="does not fit"):
        hmm.log_prob(torch.randn(4, 3, dtype=F64))
    with pytest.raises(ValueError, match="support"):
        hmm.log_prob(torch.full((4, 2), math.nan, dtype=F64))
    parts = random_parts(2, 2, 4)
    with pytest.raises(ValueError, match="observation_matrix"):
        GaussianHMM(parts[0], parts[1], parts[2], torch.randn(4, 3, 2, dtype=F64), parts[4])
    with pytest.raises(ValueError, match="do not broadcast"):
        GaussianHMM(parts[0], parts[1], parts[2], parts[3], random_mvn(2, 3))
    with pytest.raises(ValueError, match="MultivariateNormal or an Independent"):
        GaussianHMM(
            parts[0],
            parts[1],
            parts[2],
            parts[3],
            StudentT(3.0, torch.zeros(4, 2, dtype=F64)).to_event(1),
        )


# ----------------------------------------------------------------------------- GaussianMRF


def test_gaussian_mrf_log_prob_equals_dense_normalized_field():
    hidden, obs, steps = 2, 2, 4
    init = random_mvn(hidden)
    trans = random_mvn(2 * hidden, steps)
    observation = random_mvn(hidden + obs, steps)
    mrf = GaussianMRF(init, trans, observation)
    assert mrf.event_shape == (steps, obs)
    # Joint precision and info over (z[-1], z[0..T-1], x[0..T-1]) from the factors.
    n_z = (steps + 1) * hidden
    n = n_z + steps * obs
    precision = torch.zeros(n, n, dtype=F64)
    info = torch.zeros(n, dtype=F64)

    def add(dist, index):
        g = mvn_to_gaussian(dist)
        precision[index[:, None], index[None, :]] += g.precision
        info[index] += g.info_vec

    add(init, torch.arange(hidden))
    for t in range(steps):
        z_old = torch.arange(t * hidden, (t + 1) * hidden)
        add(
            MultivariateNormal(trans.loc[t], trans.covariance_matrix[t]),
            torch.cat([z_old, z_old + hidden]),
        )
        x_t = torch.arange(n_z + t * obs, n_z + (t + 1) * obs)
        add(
            MultivariateNormal(observation.loc[t], observation.covariance_matrix[t]),
            torch.cat([z_old + hidden, x_t]),
        )
    z, x = slice(0, n_z), slice(n_z, n)
    solve = torch.linalg.solve(precision[z, z], torch.cat([precision[z, x], info[z, None]], -1))
    x_precision = precision[x, x] - precision[x, z] @ solve[:, :-1]
    x_info = info[x] - precision[x, z] @ solve[:, -1]
    x_cov = torch.linalg.inv(x_precision)
    dense = MultivariateNormal(x_cov @ x_info, x_cov)
    value = torch.randn(5, steps, obs, dtype=F64)
    torch.testing.assert_close(mrf.log_prob(value), dense.log_prob(value.reshape(5, -1)))
    assert mrf.expand([3]).log_prob(value[0]).shape == (3,)


def test_gaussian_mrf_of_a_gaussian_hmm_equals_the_hmm():
    # With conditional factors (x | z and z[t] | z[t-1]) the field is the HMM: build the
    # joint factors as MultivariateNormals with an infinitesimally broad "parent" marginal.
    parts = random_parts(1, 1, 3)
    hmm = GaussianHMM(*parts)
    value = torch.randn(3, 1, dtype=F64)
    init, a, trans, b, obs = parts
    broad = 1e6

    def joint(matrix, noise):
        cov = torch.zeros(noise.batch_shape + (2, 2), dtype=F64)
        cov[..., 0, 0] = broad
        cov[..., 0, 1] = cov[..., 1, 0] = broad * matrix[..., 0, 0]
        cov[..., 1, 1] = broad * matrix[..., 0, 0] ** 2 + noise.covariance_matrix[..., 0, 0]
        loc = torch.stack([torch.zeros_like(noise.loc[..., 0]), noise.loc[..., 0]], -1)
        return MultivariateNormal(loc, cov)

    mrf = GaussianMRF(init, joint(a, trans), joint(b, obs))
    torch.testing.assert_close(mrf.log_prob(value), hmm.log_prob(value), rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------- IndependentHMM


def test_independent_hmm_log_prob_is_sum_of_channels_and_samples_transpose():
    channels, steps = 3, 4
    parts = random_parts(2, 1, steps, batch=(channels,))
    base = GaussianHMM(*parts)
    hmm = IndependentHMM(base)
    assert hmm.batch_shape == () and hmm.event_shape == (steps, channels)
    assert hmm.has_rsample and hmm.duration == steps
    value = torch.randn(5, steps, channels, dtype=F64)
    expected = 0
    for c in range(channels):
        sub = (
            MultivariateNormal(parts[0].loc[c], parts[0].covariance_matrix[c]),
            parts[1][c],
            MultivariateNormal(parts[2].loc[c], parts[2].covariance_matrix[c]),
            parts[3][c],
            MultivariateNormal(parts[4].loc[c], parts[4].covariance_matrix[c]),
        )
        expected = expected + GaussianHMM(*sub).log_prob(value[..., c : c + 1])
    torch.testing.assert_close(hmm.log_prob(value), expected)
    torch.manual_seed(3)
    samples = hmm.rsample([2])
    torch.manual_seed(3)
    torch.testing.assert_close(samples, base.rsample([2]).squeeze(-1).transpose(-1, -2))
    assert hmm.expand([6]).rsample().shape == (6, steps, channels)
    with pytest.raises(ValueError, match="event_shape"):
        IndependentHMM(GaussianHMM(*random_parts(2, 2, steps)))


# ----------------------------------------------------------------------------- GammaGaussianHMM


def _gamma_gaussian_parts(steps):
    return (Gamma(torch.tensor(2.5, dtype=F64), torch.tensor(1.5, dtype=F64)),) + random_parts(
        2, 1, steps
    )


def test_gamma_gaussian_hmm_log_prob_equals_integral_over_scale():
    steps = 2
    scale_dist, *parts = _gamma_gaussian_parts(steps)
    hmm = GammaGaussianHMM(scale_dist, *parts)
    value = torch.randn(3, steps, 1, dtype=F64)
    mean, cov = dense_linear_gaussian(parts, steps)
    # Every noise precision times s: the observations' covariance is cov / s.
    log_s = torch.linspace(-12.0, 5.0, 20001, dtype=F64)
    s = log_s.exp()
    integrand = (
        scale_dist.log_prob(s)
        + log_s  # ds = s dlog s
        + MultivariateNormal(mean, cov.expand(len(s), -1, -1) / s[:, None, None]).log_prob(
            value.reshape(3, 1, -1)
        )
    )
    expected = torch.logsumexp(integrand, -1) + math.log(log_s[1] - log_s[0])
    torch.testing.assert_close(hmm.log_prob(value), expected, rtol=1e-6, atol=1e-6)


def test_gamma_gaussian_hmm_filter_is_the_conjugate_posterior():
    steps = 3
    scale_dist, *parts = _gamma_gaussian_parts(steps)
    value = torch.randn(steps, 1, dtype=F64)
    scale, state = GammaGaussianHMM(scale_dist, *parts).filter(value)
    mean, cov = dense_linear_gaussian(parts, steps)
    residual = value.reshape(-1) - mean
    torch.testing.assert_close(scale.concentration, scale_dist.concentration + steps / 2)
    torch.testing.assert_close(
        scale.rate, scale_dist.rate + 0.5 * residual @ torch.linalg.solve(cov, residual)
    )
    # Given s the state's posterior is the Kalman filter's with covariance / s.
    kf_mean, kf_cov, _ = kalman_filter(parts, value)
    torch.testing.assert_close(state.loc, kf_mean)
    torch.testing.assert_close(state.covariance_matrix, kf_cov)


def test_gamma_gaussian_hmm_shapes_and_no_sampler():
    scale_dist, *parts = _gamma_gaussian_parts(4)
    hmm = GammaGaussianHMM(scale_dist, *parts)
    assert not hmm.has_rsample and hmm.event_shape == (4, 1)
    assert hmm.expand([2]).log_prob(torch.randn(3, 1, 4, 1, dtype=F64)).shape == (3, 2)
    with pytest.raises(NotImplementedError):
        hmm.sample()


# ----------------------------------------------------------------------------- LinearHMM


def test_linear_hmm_gaussian_rsample_moments_equal_dense_mvn_and_no_log_prob():
    steps = 5
    parts = random_parts(2, 2, steps)
    hmm = LinearHMM(*parts)
    assert hmm.event_shape == (steps, 2) and hmm.has_rsample
    samples = hmm.rsample([20000])
    mean, cov = dense_linear_gaussian(parts, steps)
    _assert_moments(samples.reshape(20000, -1), mean, cov)
    with pytest.raises(NotImplementedError, match="LinearHMM.log_prob"):
        hmm.log_prob(samples[0])


def test_linear_hmm_heavy_tailed_and_transformed_observations():
    steps = 7
    init = StudentT(4.0, torch.zeros(2, dtype=F64), 1.0).to_event(1)
    trans = StudentT(4.0, torch.zeros(steps, 2, dtype=F64), 0.5).to_event(1)
    matrix = 0.5 * torch.randn(2, 2, dtype=F64)
    obs_matrix = torch.randn(2, 1, dtype=F64)
    obs = LogNormal(torch.zeros(1, dtype=F64), 0.3).to_event(1)
    hmm = LinearHMM(init, matrix, trans, obs_matrix, obs)
    assert hmm.support.check(torch.ones(steps, 1)).all()
    assert not hmm.support.check(-torch.ones(steps, 1)).all()
    torch.manual_seed(0)
    samples = hmm.rsample([4])
    assert (samples > 0).all()
    # Same draws by a left-to-right loop over the same noise stream.
    torch.manual_seed(0)
    z = init.rsample([4])
    eps = trans.rsample([4])
    noise = obs.base_dist.base_dist.expand((steps, 1)).rsample([4])
    expected = []
    for t in range(steps):
        z = z @ matrix + eps[:, t]
        expected.append((z @ obs_matrix + noise[:, t]).exp())
    torch.testing.assert_close(samples, torch.stack(expected, 1))
    assert hmm.expand([3]).rsample([2]).shape == (2, 3, steps, 1)


# ----------------------------------------------------------------------------- doctest-like


def test_filter_prior_continues_the_series():
    # filter(x[:t]) as initial_dist of an HMM over x[t:] scores x[t:] given x[:t].
    parts = random_parts(2, 2, 1)
    hmm = GaussianHMM(*parts)
    value = torch.randn(5, 2, dtype=F64)
    continued = GaussianHMM(hmm.filter(value[:3]), *parts[1:])
    torch.testing.assert_close(
        continued.log_prob(value[3:]), hmm.log_prob(value) - hmm.log_prob(value[:3])
    )


def _batch_element(parts, b):
    init, trans_matrix, trans_dist, obs_matrix, obs_dist = parts
    return (
        MultivariateNormal(init.loc[b], init.covariance_matrix[b]),
        trans_matrix[b],
        MultivariateNormal(trans_dist.loc[b], trans_dist.covariance_matrix[b]),
        obs_matrix[b],
        MultivariateNormal(obs_dist.loc[b], obs_dist.covariance_matrix[b]),
    )


@pytest.mark.parametrize("family", [GaussianHMM, LinearHMM])
def test_batched_rsample_moments_equal_dense_mvn_per_batch_element(family):
    parts = random_parts(2, 2, 5, batch=(3,))
    samples = family(*parts).rsample([20000])
    assert samples.shape == (20000, 3, 5, 2)
    for b in range(3):
        mean, cov = dense_linear_gaussian(_batch_element(parts, b), 5)
        _assert_moments(samples[:, b].reshape(20000, -1), mean, cov)
