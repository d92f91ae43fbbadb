"""Sample statistics for posterior checks, as Pyro's ``pyro.ops.stats``: quantiles and
intervals (plain and weighted), MCMC diagnostics (autocorrelation, ESS, R-hat), scoring
rules (CRPS, energy score), WAIC, a generalized-Pareto fit (for PSIS) and resampling."""

import math
import numbers
from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch

# Pyro exposes torch's real FFTs under these names.
rfft = torch.fft.rfft
irfft = torch.fft.irfft

Probs = Union[float, Sequence[float], torch.Tensor]


def _dim_last(input: torch.Tensor, dim: int) -> torch.Tensor:
    return input.movedim(dim, -1)


def resample(
    input: torch.Tensor, num_samples: int, dim: int = 0, replacement: bool = False
) -> torch.Tensor:
    """``num_samples`` slices of ``input`` drawn uniformly at random along ``dim``.

    >>> resample(torch.arange(10.0), 4).shape
    torch.Size([4])
    """
    weights = torch.ones(input.size(dim), device=input.device)
    indices = torch.multinomial(weights, num_samples, replacement)
    return input.index_select(dim, indices)


def _interpolate(sorted_input: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of ``sorted_input`` (sorted along its last dim) at fractional
    indices ``positions`` (broadcast to the leading dims)."""
    n = sorted_input.size(-1)
    below = positions.floor().long().clamp(0, n - 1)
    above = (below + 1).clamp(max=n - 1)
    frac = (positions - below).clamp(0.0, 1.0).to(sorted_input.dtype)
    lo = sorted_input.gather(-1, below)
    hi = sorted_input.gather(-1, above)
    return lo + frac * (hi - lo)


def quantile(input: torch.Tensor, probs: Probs, dim: int = 0) -> torch.Tensor:
    """Quantiles of ``input`` along ``dim`` at ``probs``, by linear interpolation between
    order statistics; the quantiles replace ``dim`` (squeezed away for a scalar ``probs``).

    >>> quantile(torch.arange(11.0), [0.1, 0.55])
    tensor([1.0000, 5.5000])
    """
    scalar = isinstance(probs, numbers.Number)
    probs = torch.as_tensor(probs, dtype=input.dtype, device=input.device).reshape(-1)
    sorted_input = _dim_last(input, dim).sort(-1).values
    positions = (probs * (sorted_input.size(-1) - 1)).expand(sorted_input.shape[:-1] + (-1,))
    out = _interpolate(sorted_input, positions).movedim(-1, dim)
    return out.squeeze(dim) if scalar else out


def weighed_quantile(
    input: torch.Tensor,
    probs: Union[List[float], Tuple[float, ...], torch.Tensor],
    log_weights: torch.Tensor,
    dim: int = 0,
) -> torch.Tensor:
    """Quantiles of weighted samples: as :func:`quantile`, with the i-th order statistic
    placed at its normalized cumulative weight (the first at 0, the last at 1).

    :param log_weights: one log weight per sample along ``dim`` (1-D), or the shape of
        ``input``.

    >>> input = torch.tensor([[10.0, 50.0, 40.0], [20.0, 30.0, 0.0]])
    >>> log_weights = torch.tensor([0.4, 0.5, 0.1]).log()
    >>> weighed_quantile(input, torch.tensor([0.2, 0.8]), log_weights, -1)
    tensor([[40.4000, 47.6000],
            [ 9.0000, 26.4000]])
    """
    probs = torch.as_tensor(probs, dtype=input.dtype, device=input.device).reshape(-1)
    x = _dim_last(input, dim)
    if log_weights.dim() == 1:
        if log_weights.numel() != x.size(-1):
            raise ValueError(
                f"weighed_quantile: log_weights has {log_weights.numel()} entries but input "
                f"has {x.size(-1)} samples along dim {dim}; pass one log weight per sample"
            )
        log_w = log_weights.expand(x.shape)
    else:
        log_w = _dim_last(log_weights, dim).expand(x.shape)
    sorted_x, order = x.sort(-1)
    weights = (log_w - log_w.logsumexp(-1, keepdim=True)).exp().gather(-1, order)
    first = weights[..., :1]
    cum = (weights.cumsum(-1) - first) / (1 - first)
    # the fractional index of each prob along the piecewise-linear cumulative weight
    upper = torch.searchsorted(cum.contiguous(), probs.expand(cum.shape[:-1] + (-1,)).contiguous())
    upper = upper.clamp(1, x.size(-1) - 1)
    c_lo, c_hi = cum.gather(-1, upper - 1), cum.gather(-1, upper)
    frac = ((probs - c_lo) / (c_hi - c_lo)).clamp(0.0, 1.0)
    positions = (upper - 1).to(x.dtype) + frac
    return _interpolate(sorted_x, positions).movedim(-1, dim)


def pi(input: torch.Tensor, prob: float, dim: int = 0) -> torch.Tensor:
    """The central interval holding ``prob`` of the mass (equal tails), stacked at ``dim``.

    >>> pi(torch.arange(11.0), 0.8)
    tensor([1., 9.])
    """
    return quantile(input, [(1 - prob) / 2, (1 + prob) / 2], dim=dim)


def hpdi(input: torch.Tensor, prob: float, dim: int = 0) -> torch.Tensor:
    """The narrowest interval holding ``prob`` of the samples, ``[low, high]`` at ``dim``.

    >>> hpdi(torch.tensor([0.0, 1.0, 1.1, 1.2, 5.0]), 0.5)
    tensor([1.0000, 1.2000])
    """
    sorted_x = _dim_last(input, dim).sort(-1).values
    n = sorted_x.size(-1)
    length = min(int(prob * n), n - 1)
    widths = sorted_x[..., length:] - sorted_x[..., : n - length]
    start = widths.argmin(-1, keepdim=True)
    low = sorted_x.gather(-1, start)
    high = sorted_x.gather(-1, start + length)
    return torch.cat([low, high], -1).movedim(-1, dim)


def next_fast_len(size: int) -> int:
    """The smallest ``n >= size`` whose only prime factors are 2, 3 and 5.

    >>> next_fast_len(97)
    100
    """
    if size < 0:
        raise ValueError(f"next_fast_len: size must be >= 0, got {size}")
    n = size
    while True:
        rest = n
        for p in (2, 3, 5):
            while rest > 1 and rest % p == 0:
                rest //= p
        if rest <= 1:
            return n
        n += 1


def autocorrelation(input: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Sample autocorrelation along ``dim`` at every lag (lag 0 is 1), computed by FFT;
    the lag-k sum of products is averaged over its ``n - k`` terms.

    >>> autocorrelation(torch.tensor([1.0, 2.0, 1.0, 2.0])).round(decimals=4).tolist()
    [1.0, -1.0, 1.0, -1.0]
    """
    x = _dim_last(input, dim)
    n = x.size(-1)
    m = next_fast_len(2 * n)  # zero padding to 2n turns the circular correlation linear
    centered = x - x.mean(-1, keepdim=True)
    freq = torch.fft.rfft(centered, n=m)
    lagged_sums = torch.fft.irfft(freq.real.square() + freq.imag.square(), n=m)[..., :n]
    # each lag averages over the n - lag pairs it has (Pyro's normalization)
    acov = lagged_sums / torch.arange(n, 0, -1, dtype=x.dtype, device=x.device)
    return (acov / acov[..., :1]).movedim(-1, dim)


def autocovariance(input: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Sample autocovariance along ``dim`` at every lag: :func:`autocorrelation` times the
    biased variance.

    >>> autocovariance(torch.tensor([1.0, 2.0, 1.0, 2.0]))
    tensor([ 0.2500, -0.2500,  0.2500, -0.2500])
    """
    var = input.var(dim, unbiased=False, keepdim=True)
    return autocorrelation(input, dim) * var


def _chains_samples(input: torch.Tensor, chain_dim: int, sample_dim: int) -> torch.Tensor:
    """``input`` with the chain dim first and the sample dim second."""
    if chain_dim % input.dim() == sample_dim % input.dim():
        raise ValueError(
            f"chain_dim ({chain_dim}) and sample_dim ({sample_dim}) must name different dims"
        )
    return input.movedim((chain_dim, sample_dim), (0, 1))


def _within_and_var_estimator(x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Within-chain variance W and the pooled estimator ``(N-1)/N W + B/N`` of x (C, N, ...)."""
    n = x.size(1)
    chain_var = x.var(1)
    within = chain_var.mean(0)
    # a single chain has no between-chain spread (torch's var of one value is nan)
    between_over_n = x.mean(1).var(0) if x.size(0) > 1 else torch.zeros_like(within)
    return within, (n - 1) / n * within + between_over_n


def gelman_rubin(input: torch.Tensor, chain_dim: int = 0, sample_dim: int = 1) -> torch.Tensor:
    """R-hat over chains (needs at least 2 chains of at least 2 samples).

    >>> chains = torch.stack([torch.zeros(4), torch.ones(4)]) + torch.tensor([0.0, 1, 0, 1])
    >>> round(float(gelman_rubin(chains)), 4)
    1.5
    """
    x = _chains_samples(input, chain_dim, sample_dim)
    if x.size(0) < 2 or x.size(1) < 2:
        raise ValueError(
            f"gelman_rubin needs >= 2 chains and >= 2 samples, got {x.size(0)} chains of "
            f"{x.size(1)} samples"
        )
    within, var_estimator = _within_and_var_estimator(x)
    return (var_estimator / within).sqrt()


def split_gelman_rubin(
    input: torch.Tensor, chain_dim: int = 0, sample_dim: int = 1
) -> torch.Tensor:
    """R-hat after splitting each chain into two halves (needs >= 4 samples per chain).

    >>> chain = torch.cat([torch.zeros(4), torch.ones(4)]) + torch.tensor([0.0, 1] * 4)
    >>> round(float(split_gelman_rubin(chain[None])), 4)
    1.5
    """
    x = _chains_samples(input, chain_dim, sample_dim)
    n = x.size(1)
    if n < 4:
        raise ValueError(f"split_gelman_rubin needs >= 4 samples per chain, got {n}")
    half = n // 2
    split = torch.cat([x[:, :half], x[:, n - half :]], 0)
    return gelman_rubin(split)


def effective_sample_size(
    input: torch.Tensor, chain_dim: int = 0, sample_dim: int = 1
) -> torch.Tensor:
    """Effective sample size over chains, Stan's estimator: pooled autocorrelations summed
    over Geyer's initial positive and monotone sequence.

    >>> x = torch.tensor([[0.0, 1, 2, 3, 0, 1, 2, 3], [3.0, 2, 1, 0, 3, 2, 1, 0]])
    >>> round(float(effective_sample_size(x)), 4)
    20.7407
    """
    x = _chains_samples(input, chain_dim, sample_dim)
    num_chains, n = x.size(0), x.size(1)
    gamma = autocovariance(x, dim=1).mean(0)  # (N, ...)
    within, var_estimator = _within_and_var_estimator(x)
    rho = 1 - (within - gamma) / var_estimator
    rho[0] = 1.0
    # Geyer: pair sums of consecutive lags; after the first pair, clipped at 0 and made
    # monotone (so the sum stops at the first negative pair)
    pairs = n // 2
    pair_sums = rho[: 2 * pairs].reshape((pairs, 2) + rho.shape[1:]).sum(1)
    tail = pair_sums[1:].clamp(min=0).cummin(0).values
    pair_sums = torch.cat([pair_sums[:1], tail], 0)
    tau = -1.0 + 2.0 * pair_sums.sum(0)
    return num_chains * n / tau


def crps_empirical(pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Negative CRPS of samples ``pred`` (samples first, then ``truth.shape``) at ``truth``:
    ``E|pred - truth| - E|pred - pred'| / 2``, computed in O(n log n) from sorted samples.

    >>> crps_empirical(torch.tensor([0.0, 1.0]), torch.tensor(0.0))
    tensor(0.2500)
    """
    if pred.shape[1:] != (1,) * (pred.dim() - truth.dim() - 1) + truth.shape:
        raise ValueError(
            f"crps_empirical: pred must have shape (num_samples,) + truth.shape, got "
            f"pred {tuple(pred.shape)} and truth {tuple(truth.shape)}"
        )
    n = pred.size(0)
    absolute_error = (pred - truth).abs().mean(0)
    if n == 1:
        return absolute_error
    pred = pred.sort(dim=0).values
    gaps = pred[1:] - pred[:-1]
    # gap i (between order stats i and i+1) is crossed by (i+1) * (n-1-i) ordered pairs
    counts = torch.arange(1, n, dtype=pred.dtype, device=pred.device)
    counts = (counts * counts.flip(0)).reshape((-1,) + (1,) * (pred.dim() - 1))
    return absolute_error - (gaps * counts).sum(0) / n**2


def energy_score_empirical(
    pred: torch.Tensor,
    truth: torch.Tensor,
    pred_batch_size: Optional[int] = None,
    cdist: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = torch.cdist,
) -> torch.Tensor:
    """Negative energy score of multivariate samples ``pred`` (``(..., num_samples, D)``) at
    ``truth`` (``(..., m, D)`` or ``(..., D)``): ``E|pred - truth| - E|pred - pred'| / 2``
    with Euclidean norms; the result has shape ``truth.shape[:-1]``.

    :param pred_batch_size: compute the pairwise term in chunks of this many samples.
    :param cdist: the pairwise Euclidean distance function.

    >>> energy_score_empirical(torch.tensor([[0.0, 0.0], [3.0, 4.0]]), torch.zeros(2))
    tensor(1.2500)
    """
    squeeze = truth.dim() == pred.dim() - 1
    if squeeze:
        truth = truth.unsqueeze(-2)
    if pred.shape[:-2] != truth.shape[:-2] or pred.shape[-1] != truth.shape[-1]:
        raise ValueError(
            f"energy_score_empirical: pred (..., n, D) {tuple(pred.shape)} and truth "
            f"(..., m, D) {tuple(truth.shape)} must agree except on the sample dim"
        )
    n = pred.size(-2)
    error = cdist(pred, truth).mean(-2)
    if pred_batch_size is None:
        spread = cdist(pred, pred).sum((-1, -2))
    else:
        spread = sum(
            cdist(pred[..., i : i + pred_batch_size, :], pred).sum((-1, -2))
            for i in range(0, n, pred_batch_size)
        )
    out = error - spread.unsqueeze(-1) / (2 * n * n)
    return out.squeeze(-1) if squeeze else out


def waic(
    input: torch.Tensor,
    log_weights: Optional[torch.Tensor] = None,
    pointwise: bool = False,
    dim: int = 0,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """WAIC and its effective number of parameters from log likelihoods ``input`` of
    samples along ``dim`` (optionally weighted by ``log_weights``); summed over data
    points unless ``pointwise``.

    >>> w, p = waic(torch.zeros(10, 3))
    >>> float(w), float(p)
    (0.0, 0.0)
    """
    if log_weights is None:
        log_weights = torch.zeros(input.size(dim), dtype=input.dtype, device=input.device)
    shape = [1] * input.dim()
    shape[dim] = -1
    log_weights = (log_weights - log_weights.logsumexp(0)).reshape(shape)
    weights = log_weights.exp()
    lpd = (input + log_weights).logsumexp(dim)
    mean = (weights * input).sum(dim, keepdim=True)
    p_waic = (weights * (input - mean).square()).sum(dim)
    # the unbiased correction of the (weighted) variance
    n = input.size(dim)
    p_waic = p_waic * n / (n - 1)
    elpd = lpd - p_waic
    waic_ = -2 * elpd
    if pointwise:
        return waic_, p_waic
    return waic_.sum(), p_waic.sum()


def fit_generalized_pareto(X: torch.Tensor) -> Tuple[float, float]:
    """Fit ``(k, sigma)`` of a generalized Pareto distribution to 1-D data ``X`` by the
    Zhang-Stephens posterior mean, with the weak prior on ``k`` of PSIS (Vehtari et al.).

    >>> X = torch.distributions.Exponential(1.0).icdf(torch.linspace(0.0005, 0.9995, 1000))
    >>> k, sigma = fit_generalized_pareto(X)
    >>> round(k, 2), round(sigma, 2)
    (0.01, 1.0)
    """
    if X.dim() != 1 or X.numel() < 2:
        raise ValueError(f"fit_generalized_pareto: X must be 1-D with >= 2 values, got {X.shape}")
    X = X.double().sort().values
    n = X.numel()
    m = 30 + int(math.sqrt(n))
    idx = torch.arange(1, m + 1, dtype=X.dtype)
    b = 1 - (m / (idx - 0.5)).sqrt()
    b = b / (3 * X[int(n / 4 + 0.5) - 1]) + 1 / X[-1]
    k = torch.log1p(-b[:, None] * X).mean(1)
    log_lik = n * (torch.log(-b / k) - k - 1)
    weights = torch.softmax(log_lik, 0)
    b_post = (b * weights).sum()
    k_post = torch.log1p(-b_post * X).mean()
    sigma = -k_post / b_post
    k_post = (n * k_post + 10 * 0.5) / (n + 10)
    return float(k_post), float(sigma)
