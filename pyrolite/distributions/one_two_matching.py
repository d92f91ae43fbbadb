"""OneTwoMatching: a random matching of 2N sources to N destinations, two sources each.

``p(v) ∝ exp(sum_s logits[s, v[s]])``. The normalizer is exact by dynamic programming over
how many sources each destination holds (``3**N`` states), or approximated by the Bethe
free energy after ``bp_iters`` rounds of belief propagation.
"""

import math
from typing import Optional, Sequence

import torch
from torch.distributions import constraints
from torch.distributions.utils import lazy_property

from pyrolite.distributions.expanded import expand_by_wrapping
from pyrolite.distributions.one_one_matching import (
    _check_logits,
    binary_entropy_of_logit,
    entropy_of_logits,
    exclusive_logsumexp,
    masked_logsumexp,
    shift_left,
    shift_right,
)
from pyrolite.distributions.torch_distribution import TorchDistribution

_MAX_EXACT_SIZE = 12  # 3**12 = 531441 states per source
# Up to this many sources per destination the pair sums use masked copies (n**3 entries).
_SMALL_PAIR_SIZE = 40
# Up to this many sources the odds messages' pair mask ((2N)**3 entries) stays small.
_MAX_ODDS_SOURCES = 64


class _OneTwoMatchingConstraint(constraints.Constraint):
    is_discrete = True
    event_dim = 1

    def __init__(self, num_destinations: int):
        self.num_destinations = num_destinations

    def check(self, value: torch.Tensor) -> torch.Tensor:
        in_range = ((value >= 0) & (value < self.num_destinations)).all(-1)
        clamped = value.clamp(0, self.num_destinations - 1)
        if self.num_destinations <= 31:
            # 2N powers of four below 4**N add up to the number with every base-4 digit
            # 2 only without carries, that is, only if each destination is hit twice.
            fours = torch.ones_like(clamped).bitwise_left_shift_(2 * clamped)
            return in_range & (fours.sum(-1) == 2 * (4**self.num_destinations - 1) // 3)
        counts = torch.zeros(
            value.shape[:-1] + (self.num_destinations,), dtype=torch.long, device=value.device
        ).scatter_add(-1, clamped, torch.ones_like(clamped))
        return in_range & (counts == 2).all(-1)


class _CountTable:
    """``table[c] = log sum over assignments of sources 0..|c|-1`` that leave destination
    d holding ``c_d`` sources (``c`` in base 3, ``|c|`` its digit sum), built layer by
    layer in ``|c|``; ``reduce`` is logsumexp (partition function, sampling) or max."""

    def __init__(self, logits: torch.Tensor, reduce: str):
        n = logits.size(-1)
        if n > _MAX_EXACT_SIZE:
            raise NotImplementedError(
                f"exact one-two matching computations need 3**N states; N={n} is too large. "
                "Pass bp_iters for an approximate log_prob."
            )
        self.logits = logits
        device = logits.device
        states = torch.arange(3**n, device=device)
        self.place = 3 ** torch.arange(n, device=device)
        digits = (states.unsqueeze(-1) // self.place) % 3  # (3**n, n)
        self.can_remove = digits >= 1
        self.removed = (states.unsqueeze(-1) - self.place).clamp(min=0)
        placed = digits.sum(-1)
        table = logits.new_full((3**n,), -float("inf"))
        table = table.index_put((torch.tensor([0], device=device),), logits.new_zeros(1))
        for source in range(logits.size(-2)):
            layer = (placed == source + 1).nonzero().squeeze(-1)
            candidates = self._scores(table, layer, source)
            best = candidates.logsumexp(-1) if reduce == "logsumexp" else candidates.amax(-1)
            table = table.index_put((layer,), best)
        self.table = table
        self.full = 3**n - 1

    def _scores(self, table: torch.Tensor, states: torch.Tensor, source: int) -> torch.Tensor:
        scores = self.logits[source] + table[self.removed[states]]
        return scores.masked_fill(~self.can_remove[states], -float("inf"))

    def step_scores(self, states: torch.Tensor, source: int) -> torch.Tensor:
        """Scores of giving ``source`` each destination, from count states ``states``
        (which hold sources 0..source)."""
        return self._scores(self.table, states, source)


def _enumerate(sources: list, num_destinations: int):
    """Pyro's order: the last destination takes a pair of the remaining sources, pairs in
    colexicographic order, and the rest are matched recursively (varying fastest)."""
    if num_destinations == 0:
        yield {}
        return
    for second in range(len(sources)):
        for first in range(second):
            pair = (sources[first], sources[second])
            rest = [s for s in sources if s not in pair]
            for assignment in _enumerate(rest, num_destinations - 1):
                yield {**assignment, pair[0]: num_destinations - 1, pair[1]: num_destinations - 1}


class OneTwoMatching(TorchDistribution):
    """Random matching of ``2 * N`` sources to ``N`` destinations: each source matches
    exactly one destination, each destination exactly two sources.

    A value is a long tensor ``v`` of shape ``(2 * N,)`` with ``log p(v) = sum_s
    logits[s, v[s]] - log Z`` (``logits`` of shape ``(2 * N, N)``). With ``bp_iters=None``
    ``log Z`` is exact (``O(3**N N^2)``); with ``bp_iters`` it is the Bethe approximation
    after that many rounds of belief propagation. ``sample`` and ``mode`` are exact.

    >>> d = OneTwoMatching(torch.zeros(4, 2))
    >>> d.enumerate_support().shape, round(float(d.log_prob(torch.tensor([0, 1, 1, 0]))), 4)
    (torch.Size([6, 4]), -1.7918)
    """

    arg_constraints = {"logits": constraints.real}
    has_enumerate_support = True
    expand = expand_by_wrapping

    def __init__(self, logits: torch.Tensor, *, bp_iters: Optional[int] = None, validate_args=None):
        self.num_destinations = _check_logits(type(self).__name__, logits, 2)
        self.num_sources = 2 * self.num_destinations
        self.logits = logits
        self.bp_iters = bp_iters
        super().__init__(torch.Size(), torch.Size([self.num_sources]), validate_args=validate_args)

    @constraints.dependent_property
    def support(self):
        return _OneTwoMatchingConstraint(self.num_destinations)

    @lazy_property
    def log_partition_function(self) -> torch.Tensor:
        """``log Z``: exact, or the Bethe approximation when ``bp_iters`` is set."""
        if self.bp_iters is None:
            return _CountTable(self.logits, "logsumexp").table[-1]
        return _bethe_log_partition_function(self.logits, self.bp_iters)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        n = self.num_destinations
        # A flat take beats two-tensor advanced indexing.
        flat = value + torch.arange(0, self.num_sources * n, n, device=value.device)
        return self.logits.take(flat).sum(-1) - self.log_partition_function

    def enumerate_support(self, expand: bool = True) -> torch.Tensor:
        """All ``(2N)! / 2**N`` matchings, in Pyro's order."""
        values = [
            [assignment[s] for s in range(self.num_sources)]
            for assignment in _enumerate(list(range(self.num_sources)), self.num_destinations)
        ]
        return torch.tensor(values, dtype=torch.long, device=self.logits.device).reshape(
            len(values), self.num_sources
        )

    @torch.no_grad()
    def sample(self, sample_shape: Sequence[int] = ()) -> torch.Tensor:
        """Exact draws: the last source picks first, weighted by the mass the remaining
        sources can still place, and so on back to source 0."""
        sample_shape = torch.Size(sample_shape)
        num_samples = math.prod(sample_shape)
        table = _CountTable(self.logits.detach(), "logsumexp")
        states = torch.full((num_samples,), table.full, device=self.logits.device)
        value = states.new_empty(num_samples, self.num_sources)
        for source in range(self.num_sources - 1, -1, -1):
            scores = table.step_scores(states, source)
            choice = torch.distributions.Categorical(logits=scores).sample()
            value[:, source] = choice
            states = states - table.place[choice]
        return value.reshape(sample_shape + self.event_shape)

    @torch.no_grad()
    def mode(self) -> torch.Tensor:
        """A maximum-probability matching."""
        table = _CountTable(self.logits.detach(), "max")
        state = torch.tensor([table.full], device=self.logits.device)
        value = state.new_empty(self.num_sources)
        for source in range(self.num_sources - 1, -1, -1):
            choice = table.step_scores(state, source).argmax(-1)
            value[source] = choice[0]
            state = state - table.place[choice]
        return value


def _exclusive_pair_logsumexp(x: torch.Tensor) -> torch.Tensor:
    """``log sum_{k<l; k,l != j} exp(x_k + x_l)`` for each j along the last dim: pairs
    both before j, both after j, or one on each side, from log-cumulative sums."""
    n = x.size(-1)
    if n <= _SMALL_PAIR_SIZE:
        # Every pair's log-weight, with pairs touching j masked out, in one logsumexp:
        # O(n**3) work per row but a few kernels instead of a dozen scans.
        first, second = torch.triu_indices(n, n, 1, device=x.device)
        pairs = x[..., first] + x[..., second]  # (..., n (n - 1) / 2)
        j = torch.arange(n, device=x.device).unsqueeze(-1)
        mask = x.new_zeros(n, first.numel()).masked_fill_(
            (first == j) | (second == j), -float("inf")
        )
        return masked_logsumexp(pairs.unsqueeze(-2), mask)
    # A finite floor instead of -inf: logcumsumexp's gradient is NaN at -inf inputs.
    floor = torch.finfo(x.dtype).min / 4
    one_before = shift_right(x.logcumsumexp(-1)).clamp(min=floor)
    one_after = shift_left(x.flip(-1).logcumsumexp(-1).flip(-1)).clamp(min=floor)
    two_before = shift_right((x + one_before).logcumsumexp(-1))
    two_after = shift_left((x + one_after).flip(-1).logcumsumexp(-1).flip(-1))
    return torch.stack([two_before, two_after, one_before + one_after]).logsumexp(0)


def _pair_entropy(x: torch.Tensor) -> torch.Tensor:
    """Entropy of the distribution over pairs ``k<l`` with probabilities ∝ exp(x_k + x_l)."""
    n = x.size(-1)
    k, l = torch.triu_indices(n, n, 1, device=x.device)
    return entropy_of_logits(x[..., k] + x[..., l], -1)


def _bethe_log_partition_function(logits: torch.Tensor, bp_iters: int) -> torch.Tensor:
    """Bethe approximation of ``log Z`` by loopy belief propagation.

    Edges are binary variables with unary log-potential ``logits``; each source is an
    exactly-one factor, each destination an exactly-two factor, whose message to an edge
    is ``log e1 - log e2`` of the other edges' odds (elementary symmetric sums).
    ``log Z_B = E[energy] + H(sources) + H(destination pairs) - H(edges)``.
    """
    if logits.size(-1) == 1:
        return logits.sum()  # one matching; empty exclusive sums would make messages inf
    # Messages as odds need ~8 kernels per iteration against ~40 in log space; they run in
    # float64, and if an odds under- or overflows (logits spread over ~700) the result is
    # not finite and the log-space messages take over.
    if logits.size(-2) <= _MAX_ODDS_SOURCES:
        wide = logits.to(torch.promote_types(logits.dtype, torch.float64))
        result = _bethe_free_energy(wide, *_odds_messages(wide, bp_iters)).to(logits.dtype)
        if bool(torch.isfinite(result)):
            return result
    return _bethe_free_energy(logits, *_log_messages(logits, bp_iters))


def _odds_messages(logits: torch.Tensor, bp_iters: int):
    """The log-odds messages of :func:`_log_messages`, iterated as odds: every exclusive
    sum (of single odds, and of products of two) is a product with a 0/1 matrix, a sum of
    positive terms, so nothing cancels."""
    num_sources, n = logits.shape
    shift = logits.detach().max()
    weight = (logits - shift).exp()
    others_dst = 1 - torch.eye(n, dtype=logits.dtype, device=logits.device)
    others_src = 1 - torch.eye(num_sources, dtype=logits.dtype, device=logits.device)
    # pair_mask[(k, l), j] = 1/2 where k != l and neither is j: unordered pairs without j.
    distinct = others_src.unsqueeze(-1) * others_src.unsqueeze(-2) * others_src.unsqueeze(0)
    pair_mask = 0.5 * distinct
    pair_mask = pair_mask.reshape(num_sources * num_sources, num_sources)
    odds_dst = torch.ones_like(weight)
    if bp_iters == 0:
        return torch.zeros_like(logits), torch.zeros_like(logits)
    for _ in range(bp_iters):
        odds_src = (weight * odds_dst).mm(others_dst).reciprocal()
        to_dst = (weight * odds_src).t()  # (N, 2N)
        singles = to_dst.mm(others_src)
        pairs = (to_dst.unsqueeze(-1) * to_dst.unsqueeze(-2)).reshape(n, -1).mm(pair_mask)
        odds_dst = (singles / pairs).t()
    return odds_src.log() - shift, odds_dst.log()


def _log_messages(logits: torch.Tensor, bp_iters: int):
    from_src = torch.zeros_like(logits)
    from_dst = torch.zeros_like(logits)
    for _ in range(bp_iters):
        from_src = -exclusive_logsumexp(logits + from_dst, -1)
        to_dst = (logits + from_src).t()  # (N, 2N)
        from_dst = (exclusive_logsumexp(to_dst, -1) - _exclusive_pair_logsumexp(to_dst)).t()
    return from_src, from_dst


def _bethe_free_energy(logits, from_src, from_dst):
    edge_logit = logits + from_src + from_dst
    energy = (torch.sigmoid(edge_logit) * logits).sum()
    source_entropy = entropy_of_logits(logits + from_dst, -1).sum()
    destination_entropy = _pair_entropy((logits + from_src).t()).sum()
    return energy + source_entropy + destination_entropy - binary_entropy_of_logit(edge_logit).sum()
