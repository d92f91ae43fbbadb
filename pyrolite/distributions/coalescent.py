"""Kingman's coalescent given irregularly sampled leaves: CoalescentTimes (constant rate),
CoalescentTimesWithRate (piecewise-constant rate on a unit time grid) and
CoalescentRateLikelihood (the same likelihood split into one term per grid cell).

Time runs forward, so coalescences happen before (below) the leaves they join.
"""

import math
from typing import Optional, Union

import torch
from torch.distributions import constraints

from pyrolite.distributions.expanded import expand_by_wrapping
from pyrolite.distributions.torch_distribution import TorchDistribution, copy_forced_has_rsample
from pyrolite.distributions.util import broadcast_shape


def _lineage_walk(leaf_times: torch.Tensor, coal_times: torch.Tensor):
    """Walk back in time through the merged events.

    Returns the events' times in decreasing order ``(..., 2n-1)``, a float mask of the
    coalescences among them, and the number of lineages just above and just below each
    event (a coalescence at the same time as a leaf happens above that leaf, so the leaf
    cannot take part in it).
    """
    batch = broadcast_shape(leaf_times.shape[:-1], coal_times.shape[:-1])
    leaf_times = leaf_times.expand(batch + leaf_times.shape[-1:])
    coal_times = coal_times.expand(batch + coal_times.shape[-1:])
    times = torch.cat([coal_times, leaf_times], -1)
    num_coal = coal_times.size(-1)
    step = times.new_ones(times.size(-1))  # +1 lineage at a leaf, -1 at a coalescence
    step[:num_coal] = -1
    # A stable sort keeps coalescences (placed first) ahead of leaves at equal times.
    order = times.detach().sort(dim=-1, descending=True, stable=True).indices
    times = times.gather(-1, order)
    step = step[order]
    below = step.cumsum(-1)
    above = below - step
    is_coal = (1 - step) / 2
    return times, is_coal, above, below


class _WalkCache:
    """The value-only counts of :func:`_sorted_walk_counts` for the latest value: held
    with a reference to that value and keyed on its (and the leaves') identity and
    ``_version``, so an in-place change or a new tensor recomputes. The counts carry no
    gradient; everything differentiable is rebuilt from them on each call."""

    def __init__(self):
        self.key = None
        self.counts = None
        self.binomials = None
        self.support_ok = None

    def holds(self, leaf_times: torch.Tensor, coal_times: torch.Tensor) -> bool:
        key = (coal_times, coal_times._version, leaf_times, leaf_times._version)
        return self.key is not None and all(
            a is b if torch.is_tensor(a) else a == b for a, b in zip(self.key, key)
        )

    def get(self, leaf_times: torch.Tensor, coal_times: torch.Tensor):
        if self.holds(leaf_times, coal_times):
            return self.counts
        self.counts = _sorted_walk_counts(leaf_times, coal_times)
        self.binomials = self.support_ok = None
        self.key = (coal_times, coal_times._version, leaf_times, leaf_times._version)
        return self.counts

    def log_binomials(self, dtype: torch.dtype) -> torch.Tensor:
        """``sum_i log C(k_i, 2)`` over the coalescences of the latest value."""
        if self.binomials is None or self.binomials.dtype != dtype:
            k = self.counts[0].to(dtype)
            self.binomials = (k * (k - 1)).clamp(min=2).log().sum(-1) - k.size(-1) * math.log(2)
        return self.binomials


def _sorted_walk_counts(leaf_times: torch.Tensor, coal_times: torch.Tensor):
    """For coalescence times sorted ascending, without sorting the merged events: the
    lineages above each coalescence and the number of leaves at or before each
    coalescence's time, both ``(..., n-1)``.

    Coalescence i has above it the leaves strictly later than it, less the ``n - 2 - i``
    later coalescences (ties reorder equal events, which changes neither the multiset of
    counts nor the exposure).
    """
    with torch.no_grad():
        leaves = leaf_times.sort(-1).values
        if leaves.dim() == 1:
            leaves_up_to = torch.bucketize(coal_times, leaves, right=True)
        else:
            batch = broadcast_shape(leaves.shape[:-1], coal_times.shape[:-1])
            leaves_up_to = torch.searchsorted(
                leaves.expand(batch + leaves.shape[-1:]).contiguous(),
                coal_times.expand(batch + coal_times.shape[-1:]).contiguous(),
                right=True,
            )
        num_coal = coal_times.size(-1)
        # leaf count less the later coalescences, minus the leaves at or before.
        later = torch.arange(num_coal - 1 - leaf_times.size(-1), -1 - leaf_times.size(-1), -1)
        above = (later.to(coal_times.device) + leaves_up_to).neg_()
        return above, leaves_up_to


def _sorted_walk_exposure(leaf_times, coal_times, above, leaves_up_to) -> torch.Tensor:
    """``integral of C(k(t), 2) dt``, summed by parts: ``sum_leaves t * k_above -
    sum_coals t * (k_above - 1)``, each event changing ``C(k, 2)`` by ``k`` or ``1 - k``.
    A leaf has above it the leaves before it in descending order, less the coalescences
    at or after its time; summed over leaves, that coalescence term is, per coalescence,
    the total time of the leaves at or before it (a prefix sum of the sorted leaves)."""
    ascending = leaf_times.sort(-1).values
    num_leaves = leaf_times.size(-1)
    rank = torch.arange(num_leaves - 1, -1, -1, dtype=leaf_times.dtype, device=leaf_times.device)
    prefix = torch.nn.functional.pad(ascending.cumsum(-1), (1, 0))
    batch = broadcast_shape(prefix.shape[:-1], leaves_up_to.shape[:-1])
    index = leaves_up_to.expand(batch + leaves_up_to.shape[-1:])
    covered = prefix.expand(batch + prefix.shape[-1:]).gather(-1, index)
    leaves = (ascending * rank).sum(-1) - covered.sum(-1)
    return leaves - (coal_times * (above - 1)).sum(-1)


def _log_pairs(lineages: torch.Tensor, num_leaves: int) -> torch.Tensor:
    """``log C(k, 2)`` (0 where k < 2) by table lookup: k takes at most n + 1 values."""
    k = torch.arange(num_leaves + 1, dtype=lineages.dtype, device=lineages.device)
    table = (k * (k - 1) / 2).clamp(min=1).log()
    return table[lineages.long().clamp(0, num_leaves)]


def _coalescent_terms(leaf_times: torch.Tensor, coal_times: torch.Tensor, num_bins: int):
    """Sufficient statistics of the likelihood per rate cell, each ``(..., num_bins)``:
    the number of coalescences, their summed ``log C(k, 2)``, and the exposure
    ``integral of C(k(t), 2) dt``. Cell b spans ``[b, b+1]``; the first cell extends to
    -inf and the last to +inf."""
    times, is_coal, above, below = _lineage_walk(leaf_times, coal_times)
    log_binomial = _log_pairs(above, leaf_times.size(-1)) * is_coal
    upper, lower = times[..., :-1], times[..., 1:]
    pairs = below[..., :-1] * (below[..., :-1] - 1) / 2
    if num_bins == 1:
        counts = is_coal.sum(-1, keepdim=True)
        binomials = log_binomial.sum(-1, keepdim=True)
        exposure = (pairs * (upper - lower)).sum(-1, keepdim=True)
        return counts, binomials, exposure
    cell = times.detach().floor().clamp(0, num_bins - 1).long()
    zeros = times.new_zeros(times.shape[:-1] + (num_bins,))
    counts = zeros.scatter_add(-1, cell, is_coal)  # leaves add 0 to their cell
    binomials = zeros.scatter_add(-1, cell, log_binomial)
    edges = torch.arange(num_bins + 1, dtype=times.dtype, device=times.device)
    lo, hi = edges[:-1].clone(), edges[1:].clone()
    lo[0], hi[-1] = -float("inf"), float("inf")
    overlap = (
        torch.minimum(upper.unsqueeze(-1), hi) - torch.maximum(lower.unsqueeze(-1), lo)
    ).clamp(min=0)
    exposure = (pairs.unsqueeze(-2) @ overlap).squeeze(-2)
    return counts, binomials, exposure


def _log_likelihood_piecewise(leaf_times, coal_times, rate_grid: torch.Tensor) -> torch.Tensor:
    """The log-likelihood under a piecewise-constant rate without per-cell statistics:
    the exposure is ``sum C(k, 2) (Lambda(upper) - Lambda(lower))`` over the intervals
    between events, with ``Lambda`` the (piecewise-linear) integrated rate."""
    times, is_coal, above, below = _lineage_walk(leaf_times, coal_times)
    num_bins = rate_grid.size(-1)
    batch = broadcast_shape(times.shape[:-1], rate_grid.shape[:-1])
    times, is_coal = (
        times.expand(batch + times.shape[-1:]),
        is_coal.expand(batch + times.shape[-1:]),
    )
    cell = times.detach().floor().clamp(0, num_bins - 1).long()
    log_rate_at = rate_grid.log().expand(batch + (num_bins,)).gather(-1, cell)
    rate = rate_grid.expand(batch + (num_bins,))
    # Lambda(t) = sum_{j<b} rate_j + rate_b (t - b) for t in cell b (Lambda(0) = 0).
    integrated_before = rate.cumsum(-1) - rate
    rate_at = rate.gather(-1, cell)
    integrated = integrated_before.gather(-1, cell) + rate_at * (times - cell.to(times.dtype))
    pairs = below[..., :-1] * (below[..., :-1] - 1) / 2
    exposure = (pairs * (integrated[..., :-1] - integrated[..., 1:])).sum(-1)
    merges = (is_coal * (_log_pairs(above, leaf_times.size(-1)) + log_rate_at)).sum(-1)
    return merges - exposure


class _CoalescentTimesConstraint(constraints.Constraint):
    """Sorted coalescence times each with at least two lineages above it to merge."""

    event_dim = 1

    def __init__(self, leaf_times: torch.Tensor, cache: Optional[_WalkCache] = None):
        self.leaf_times = leaf_times
        self.cache = _WalkCache() if cache is None else cache

    def check(self, value: torch.Tensor) -> torch.Tensor:
        if self.cache.holds(self.leaf_times, value) and self.cache.support_ok is not None:
            return self.cache.support_ok
        sorted_ok = (value[..., 1:] >= value[..., :-1]).all(-1)
        if not bool(sorted_ok.all()):
            _, is_coal, above, _ = _lineage_walk(self.leaf_times, value)
            return sorted_ok & ((above >= 2) | (is_coal == 0)).all(-1)
        above, _ = self.cache.get(self.leaf_times, value)
        self.cache.support_ok = (above >= 2).all(-1)
        return self.cache.support_ok


class CoalescentTimes(TorchDistribution):
    """Sorted coalescence times of a binary phylogeny over leaves sampled at ``leaf_times``
    (any real numbers, any order, duplicates allowed), under a constant pairwise
    coalescence ``rate``.

    A value has ``leaf_times.size(-1) - 1`` times, sorted ascending; with k lineages
    the next merge back in time comes at rate ``rate * k (k - 1) / 2``.

    >>> d = CoalescentTimes(torch.zeros(3))
    >>> round(float(d.log_prob(torch.tensor([-1.0, -0.5]))), 4), d.sample((4,)).shape
    (-0.9014, torch.Size([4, 2]))
    """

    arg_constraints = {"leaf_times": constraints.real, "rate": constraints.positive}
    expand = expand_by_wrapping

    def __init__(
        self,
        leaf_times: torch.Tensor,
        rate: Union[float, torch.Tensor] = 1.0,
        *,
        validate_args=None,
    ):
        if not torch.is_tensor(rate):
            rate = torch.as_tensor(rate, dtype=leaf_times.dtype, device=leaf_times.device)
        self.leaf_times = leaf_times
        self.rate = rate
        batch_shape = broadcast_shape(leaf_times.shape[:-1], rate.shape)
        event_shape = torch.Size([leaf_times.size(-1) - 1])
        # log_prob, and its support check, reuse the walk for a repeated value.
        self._walk_cache = _WalkCache()
        super().__init__(batch_shape, event_shape, validate_args=validate_args)

    @constraints.dependent_property
    def support(self):
        return _CoalescentTimesConstraint(self.leaf_times, self._walk_cache)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        # The support makes value sorted; the walk then needs no sort of the merged events.
        above, leaves_up_to = self._walk_cache.get(self.leaf_times, value)
        exposure = _sorted_walk_exposure(self.leaf_times, value, above, leaves_up_to)
        binomials = self._walk_cache.log_binomials(value.dtype)
        return above.size(-1) * self.rate.log() + binomials - self.rate * exposure

    @torch.no_grad()
    def sample(self, sample_shape=()) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape
        num_leaves = self.leaf_times.size(-1)
        leaves = self.leaf_times.expand(shape + (num_leaves,)).sort(-1, descending=True).values
        rate = self.rate.expand(shape)
        out = leaves.new_empty(shape + (num_leaves,))  # one spare slot takes no-op writes
        time = leaves[..., 0]
        lineages = torch.ones(shape, dtype=torch.long, device=leaves.device)
        next_leaf = torch.ones_like(lineages)
        merged = torch.zeros_like(lineages)
        for _ in range(2 * num_leaves - 2):  # each step adds a leaf or merges two lineages
            pairs = (lineages * (lineages - 1) // 2).to(leaves.dtype)
            wait = torch.empty_like(time).exponential_() / (rate * pairs)
            candidate = time - wait  # -inf when fewer than two lineages
            leaf_time = torch.cat([leaves, leaves.new_full(shape + (1,), -float("inf"))], -1)
            leaf_time = leaf_time.gather(-1, next_leaf.unsqueeze(-1)).squeeze(-1)
            merge = candidate > leaf_time
            slot = torch.where(merge, merged, num_leaves - 1)
            out.scatter_(-1, slot.unsqueeze(-1), candidate.unsqueeze(-1))
            time = torch.where(merge, candidate, leaf_time)
            lineages = lineages + torch.where(merge, -1, 1)
            merged = merged + merge.long()
            next_leaf = next_leaf + (~merge).long()
        return out[..., : num_leaves - 1].flip(-1)


class CoalescentTimesWithRate(TorchDistribution):
    """Coalescence times as in :class:`CoalescentTimes`, under a pairwise rate that is
    piecewise constant on the cells ``(-inf, 1], [1, 2], ..., [T-1, inf)`` of
    ``rate_grid`` (``T = rate_grid.size(-1)``). It has ``log_prob`` but no sampler.

    >>> d = CoalescentTimesWithRate(torch.tensor([2.5, 2.5]), torch.tensor([1.0, 2.0, 0.5]))
    >>> round(float(d.log_prob(torch.tensor([0.5]))), 4)
    -2.75
    """

    arg_constraints = {"leaf_times": constraints.real, "rate_grid": constraints.positive}

    def __init__(self, leaf_times: torch.Tensor, rate_grid: torch.Tensor, *, validate_args=None):
        self.leaf_times = leaf_times
        self.rate_grid = rate_grid
        batch_shape = broadcast_shape(leaf_times.shape[:-1], rate_grid.shape[:-1])
        event_shape = torch.Size([leaf_times.size(-1) - 1])
        super().__init__(batch_shape, event_shape, validate_args=validate_args)

    @property
    def duration(self) -> int:
        return self.rate_grid.size(-1)

    @constraints.dependent_property
    def support(self):
        return _CoalescentTimesConstraint(self.leaf_times)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(CoalescentTimesWithRate, _instance)
        batch_shape = torch.Size(batch_shape)
        new.leaf_times = self.leaf_times.expand(batch_shape + self.leaf_times.shape[-1:])
        new.rate_grid = self.rate_grid.expand(batch_shape + (self.duration,))
        super(CoalescentTimesWithRate, new).__init__(
            batch_shape, self.event_shape, validate_args=False
        )
        new._validate_args = self._validate_args
        return copy_forced_has_rsample(self, new)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return _log_likelihood_piecewise(self.leaf_times, value, self.rate_grid)


class CoalescentRateLikelihood:
    """The likelihood of :class:`CoalescentTimesWithRate` as one term per rate cell, so
    the cells of ``rate_grid`` can sit in a plate or a sequential (markov) loop.

    Not a distribution: ``likelihood(rate_grid)`` returns the ``(..., duration)`` terms
    (their sum is ``CoalescentTimesWithRate(leaf_times, rate_grid).log_prob(coal_times)``)
    and ``likelihood(rate_grid[..., t], t)`` the term of cell ``t`` alone.

    >>> like = CoalescentRateLikelihood(torch.tensor([2.5, 2.5]), torch.tensor([0.5]), 3)
    >>> like(torch.tensor([1.0, 2.0, 0.5]))
    tensor([-0.5000, -2.0000, -0.2500])
    """

    def __init__(
        self,
        leaf_times: torch.Tensor,
        coal_times: torch.Tensor,
        duration: int,
        *,
        validate_args=None,
    ):
        if validate_args is None:
            validate_args = torch.distributions.Distribution._validate_args
        if validate_args:
            ok = _CoalescentTimesConstraint(leaf_times).check(coal_times)
            if not bool(ok.all()):
                raise ValueError(
                    "CoalescentRateLikelihood: coal_times must be sorted ascending and each "
                    "must have at least two lineages above it to merge; got "
                    f"{coal_times} for leaf_times {leaf_times}"
                )
        self.duration = duration
        self._counts, self._binomials, self._exposure = _coalescent_terms(
            leaf_times, coal_times, duration
        )

    def __call__(self, rate_grid: torch.Tensor, t: Union[int, slice] = slice(None)):
        counts = self._counts[..., t]
        binomials = self._binomials[..., t]
        exposure = self._exposure[..., t]
        return counts * rate_grid.log() + binomials - rate_grid * exposure
