"""OneOneMatching: a random perfect matching of N sources to N destinations.

``p(v) ∝ exp(sum_s logits[s, v[s]])``. The normalizer (a permanent) is exact by dynamic
programming over subsets of destinations (also used to sample and to find the mode), or
approximated by the Bethe free energy after ``bp_iters`` rounds of belief propagation.
"""

import itertools
import math
from typing import Optional, Sequence

import torch
from torch.distributions import constraints
from torch.distributions.utils import lazy_property

from pyrolite.distributions.expanded import expand_by_wrapping
from pyrolite.distributions.torch_distribution import TorchDistribution

# The subset tables hold 2**N entries per row; beyond this they stop fitting in memory.
_MAX_EXACT_SIZE = 20
# Up to this length exclusive sums use masked copies rather than prefix/suffix scans.
_SMALL_EXCLUSIVE_SIZE = 32


def shift_right(x: torch.Tensor) -> torch.Tensor:
    """``x`` moved one step right along the last dim, -inf entering on the left."""
    return torch.nn.functional.pad(x[..., :-1], (1, 0), value=-float("inf"))


def shift_left(x: torch.Tensor) -> torch.Tensor:
    """``x`` moved one step left along the last dim, -inf entering on the right."""
    return torch.nn.functional.pad(x[..., 1:], (0, 1), value=-float("inf"))


def exclusive_logsumexp(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``log sum_{k != j} exp(x_k)`` for each j along ``dim``, from prefix and suffix
    log-cumulative sums (no cancellation from subtracting ``exp(x_j)`` off the total).

    >>> exclusive_logsumexp(torch.tensor([0.0, 0.0, 0.0])).exp()
    tensor([2., 2., 2.])
    """
    x = x.movedim(dim, -1)
    n = x.size(-1)
    if n <= _SMALL_EXCLUSIVE_SIZE:
        # One broadcast logsumexp over n copies with entry j masked out: O(n) times the
        # work, but a handful of kernels instead of a dozen, which is what small sizes cost.
        mask = torch.zeros(n, n, dtype=x.dtype, device=x.device).fill_diagonal_(-float("inf"))
        return masked_logsumexp(x.unsqueeze(-2), mask).movedim(-1, dim)
    before = shift_right(x.logcumsumexp(-1))
    after = shift_left(x.flip(-1).logcumsumexp(-1).flip(-1))
    return torch.logaddexp(before, after).movedim(-1, dim)


def masked_logsumexp(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(x + mask).logsumexp(-1)`` in fewer kernels than torch's (which also guards
    against infinite maxima; here a row's maximum is clamped finite, so an all ``-inf``
    row still gives ``-inf``)."""
    x = x + mask
    shift = x.detach().amax(-1, keepdim=True).clamp(min=torch.finfo(x.dtype).min)
    return (x - shift).exp().sum(-1).log() + shift.squeeze(-1)


def entropy_of_logits(logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Entropy of ``softmax(logits)`` along ``dim`` (0 log 0 counted as 0)."""
    log_p = logits.log_softmax(dim)
    return -(log_p.exp() * log_p).nan_to_num(0.0).sum(dim)


def binary_entropy_of_logit(logit: torch.Tensor) -> torch.Tensor:
    """Entropy of a Bernoulli with log-odds ``logit``."""
    p = torch.sigmoid(logit)
    return torch.nn.functional.softplus(logit) - p * logit


def _check_logits(name: str, logits: torch.Tensor, rows_per_column: int) -> int:
    if logits.dim() != 2:
        raise NotImplementedError(f"{name} does not support batching: logits must be 2-D")
    num_destinations = logits.size(-1)
    if logits.size(-2) != rows_per_column * num_destinations:
        raise ValueError(
            f"{name}: logits must have shape ({rows_per_column} * N, N), got {tuple(logits.shape)}"
        )
    return num_destinations


class _OneOneMatchingConstraint(constraints.Constraint):
    is_discrete = True
    event_dim = 1

    def __init__(self, num_nodes: int):
        self.num_nodes = num_nodes

    def check(self, value: torch.Tensor) -> torch.Tensor:
        in_range = ((value >= 0) & (value < self.num_nodes)).all(-1)
        if self.num_nodes > 62:
            sorted_value = value.sort(-1).values
            distinct = (sorted_value[..., 1:] != sorted_value[..., :-1]).all(-1)
            return in_range & distinct
        # N powers of two below 2**N sum to 2**N - 1 (N one bits) only without carries,
        # that is, only if they are distinct: cheaper than sorting.
        bits = torch.ones_like(value).bitwise_left_shift_(value.clamp(0, self.num_nodes - 1))
        return in_range & (bits.sum(-1) == (1 << self.num_nodes) - 1)


class _SubsetTable:
    """``f[S] = log sum over matchings of rows 0..|S|-1 onto the destination set S`` (a
    bitmask), built layer by layer in popcount; ``reduce`` is logsumexp (partition
    function, sampling) or max (mode)."""

    def __init__(self, logits: torch.Tensor, reduce: str):
        n = logits.size(-1)
        if n > _MAX_EXACT_SIZE:
            raise NotImplementedError(
                f"exact matching computations need 2**N states; N={n} is too large. "
                "Pass bp_iters for an approximate log_prob."
            )
        self.logits = logits
        states = torch.arange(2**n, device=logits.device)
        bits = 1 << torch.arange(n, device=logits.device)
        self.has = (states.unsqueeze(-1) & bits) != 0  # (2**n, n)
        self.without = states.unsqueeze(-1) ^ bits  # S minus bit j (valid where has)
        popcount = self.has.sum(-1)
        table = logits.new_full((2**n,), -float("inf")).index_put(
            (torch.tensor([0], device=logits.device),), logits.new_zeros(1)
        )
        for size in range(1, n + 1):
            layer = (popcount == size).nonzero().squeeze(-1)
            candidates = (logits[size - 1] + table[self.without[layer]]).masked_fill(
                ~self.has[layer], -float("inf")
            )
            best = candidates.logsumexp(-1) if reduce == "logsumexp" else candidates.amax(-1)
            table = table.index_put((layer,), best)
        self.table = table
        self.full = 2**n - 1

    def step_scores(self, states: torch.Tensor, row: int) -> torch.Tensor:
        """Scores of giving ``row`` each destination, from ``states`` (the sets rows
        0..row are matched onto); -inf where the destination is not in the set."""
        scores = self.logits[row] + self.table[self.without[states]]
        return scores.masked_fill(~self.has[states], -float("inf"))


class OneOneMatching(TorchDistribution):
    """Random perfect matching: each of N sources matches exactly one of N destinations
    and each destination exactly one source.

    A value is a long tensor ``v`` of shape ``(N,)`` (a permutation), with
    ``log p(v) = sum_s logits[s, v[s]] - log Z``. With ``bp_iters=None`` ``log Z`` is
    exact (dynamic programming in ``O(2**N N)``); with ``bp_iters`` it is the Bethe
    approximation after that many rounds of belief propagation. ``sample`` and ``mode``
    are exact either way.

    >>> d = OneOneMatching(torch.zeros(3, 3))
    >>> d.enumerate_support().shape, round(float(d.log_prob(torch.tensor([2, 0, 1]))), 4)
    (torch.Size([6, 3]), -1.7918)
    """

    arg_constraints = {"logits": constraints.real}
    has_enumerate_support = True
    expand = expand_by_wrapping

    def __init__(self, logits: torch.Tensor, *, bp_iters: Optional[int] = None, validate_args=None):
        self.num_nodes = _check_logits(type(self).__name__, logits, 1)
        self.logits = logits
        self.bp_iters = bp_iters
        super().__init__(torch.Size(), torch.Size([self.num_nodes]), validate_args=validate_args)

    @constraints.dependent_property
    def support(self):
        return _OneOneMatchingConstraint(self.num_nodes)

    @lazy_property
    def log_partition_function(self) -> torch.Tensor:
        """``log Z``: exact, or the Bethe approximation when ``bp_iters`` is set."""
        if self.bp_iters is None:
            return _SubsetTable(self.logits, "logsumexp").table[-1]
        return _bethe_log_partition_function(self.logits, self.bp_iters)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        # A flat take beats two-tensor advanced indexing.
        flat = value + torch.arange(0, self.num_nodes**2, self.num_nodes, device=value.device)
        return self.logits.take(flat).sum(-1) - self.log_partition_function

    def enumerate_support(self, expand: bool = True) -> torch.Tensor:
        """All N! permutations, in lexicographic order."""
        values = list(itertools.permutations(range(self.num_nodes)))
        return torch.tensor(values, dtype=torch.long, device=self.logits.device).reshape(
            len(values), self.num_nodes
        )

    @torch.no_grad()
    def sample(self, sample_shape: Sequence[int] = ()) -> torch.Tensor:
        """Exact draws: the last row picks its destination first, weighted by how much
        mass the remaining rows can still place, and so on back to row 0."""
        sample_shape = torch.Size(sample_shape)
        num_samples = math.prod(sample_shape)
        table = _SubsetTable(self.logits.detach(), "logsumexp")
        states = torch.full((num_samples,), table.full, device=self.logits.device)
        value = states.new_empty(num_samples, self.num_nodes)
        for row in range(self.num_nodes - 1, -1, -1):
            scores = table.step_scores(states, row)
            choice = torch.distributions.Categorical(logits=scores).sample()
            value[:, row] = choice
            states = states ^ (1 << choice)
        return value.reshape(sample_shape + self.event_shape)

    @torch.no_grad()
    def mode(self) -> torch.Tensor:
        """A maximum-probability matching."""
        table = _SubsetTable(self.logits.detach(), "max")
        state = torch.tensor([table.full], device=self.logits.device)
        value = state.new_empty(self.num_nodes)
        for row in range(self.num_nodes - 1, -1, -1):
            choice = table.step_scores(state, row).argmax(-1)
            value[row] = choice[0]
            state = state ^ (1 << choice)
        return value


def _bethe_log_partition_function(logits: torch.Tensor, bp_iters: int) -> torch.Tensor:
    """Bethe approximation of ``log perm(exp(logits))`` by loopy belief propagation.

    Each edge is a binary variable with unary log-potential ``logits``; each source and
    each destination is an exactly-one factor. Messages are log-odds: ``to_edge_from_src``
    and ``to_edge_from_dst``. Then ``log Z_B = E[energy] + H(sources) + H(destinations)
    - H(edges)``, each edge sitting in two factors. Its fixed point maximizes the Bethe
    free energy over doubly-stochastic edge marginals (Vontobel 2012).
    """
    if logits.size(-1) == 1:
        return logits.sum()  # one matching; an empty exclusive sum would make messages inf
    # Messages as odds need ~3 kernels per half-step against ~10 in log space; they run
    # in float64, and if an odds under- or overflows (logits spread over ~700) the result
    # is not finite and the log-space messages take over.
    wide = logits.to(torch.promote_types(logits.dtype, torch.float64))
    result = _bethe_free_energy(wide, *_odds_messages(wide, bp_iters)).to(logits.dtype)
    if bool(torch.isfinite(result)):
        return result
    return _bethe_free_energy(logits, *_log_messages(logits, bp_iters))


def _odds_messages(logits: torch.Tensor, bp_iters: int):
    """The log-odds messages of :func:`_log_messages`, iterated as odds: exclusive sums
    are products with ``1 - I`` (sums of positive terms, so nothing cancels)."""
    n = logits.size(-1)
    shift = logits.detach().max()
    weight = (logits - shift).exp()
    others = 1 - torch.eye(n, dtype=logits.dtype, device=logits.device)
    odds_dst = torch.ones_like(weight)
    for _ in range(bp_iters):
        odds_src = (weight * odds_dst).mm(others).reciprocal()
        odds_dst = others.mm(weight * odds_src).reciprocal()
    if bp_iters == 0:
        return torch.zeros_like(logits), torch.zeros_like(logits)
    return odds_src.log() - shift, odds_dst.log()


def _log_messages(logits: torch.Tensor, bp_iters: int):
    from_src = torch.zeros_like(logits)
    from_dst = torch.zeros_like(logits)
    for _ in range(bp_iters):
        from_src = -exclusive_logsumexp(logits + from_dst, -1)
        from_dst = -exclusive_logsumexp(logits + from_src, -2)
    return from_src, from_dst


def _bethe_free_energy(logits, from_src, from_dst):
    edge_logit = logits + from_src + from_dst
    energy = (torch.sigmoid(edge_logit) * logits).sum()
    source_entropy = entropy_of_logits(logits + from_dst, -1).sum()
    destination_entropy = entropy_of_logits(logits + from_src, -2).sum()
    return energy + source_entropy + destination_entropy - binary_entropy_of_logit(edge_logit).sum()
