"""Gaussian factors in information form (``log_normalizer + info_vec @ x - x @ precision @ x
/ 2``): sums, conditioning and integrating out dims, and the pairwise tree over time that
reduces a chain of such factors in ``ceil(log2 T)`` rounds (:func:`sequential_gaussian_tensordot`,
as ``ops.scan`` does for discrete chains) or walks back down it to sample the chain's states."""

import math
from typing import Callable, List, Optional, Sequence, Tuple, TypeVar

import torch

from pyrolite.distributions.util import broadcast_shape

LOG_2PI = math.log(2 * math.pi)
Factor = TypeVar("Factor", bound="InfoFormFactor")


class InfoFormFactor:
    """A batch of factors stored as tensors with a fixed number of event dims each.

    Subclasses name their tensors in ``_fields`` and the event dims of each in
    ``_event_dims``; batch dims broadcast between the tensors. This base gives them batch
    shape bookkeeping (``expand``, slicing and concatenating along the last batch dim), which
    is all that the pairwise tree over time needs.
    """

    _fields: Tuple[str, ...] = ()
    _event_dims: Tuple[int, ...] = ()

    def _tensors(self) -> Tuple[torch.Tensor, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def _map(self: Factor, fn: Callable[[torch.Tensor, int], torch.Tensor]) -> Factor:
        return type(self)(*(fn(t, e) for t, e in zip(self._tensors(), self._event_dims)))

    @property
    def batch_shape(self) -> torch.Size:
        return broadcast_shape(
            *(t.shape[: t.dim() - e] for t, e in zip(self._tensors(), self._event_dims))
        )

    def expand(self: Factor, batch_shape: Sequence[int]) -> Factor:
        batch_shape = torch.Size(batch_shape)
        return self._map(lambda t, e: t.expand(batch_shape + t.shape[t.dim() - e :]))

    def time_slice(self: Factor, start=None, stop=None, step=None) -> Factor:
        """Slice the last batch dim (time), every tensor expanded to the full batch first."""
        full = self.expand(self.batch_shape)
        index = slice(start, stop, step)
        return full._map(lambda t, e: t[(Ellipsis, index) + (slice(None),) * e])

    def time_select(self: Factor, index: int) -> Factor:
        """Drop the last batch dim by picking entry ``index`` of it."""
        full = self.expand(self.batch_shape)
        return full._map(lambda t, e: t.select(t.dim() - e - 1, index))

    @classmethod
    def time_cat(cls, factors: Sequence[Factor]) -> Factor:
        """Concatenate along the last batch dim (time)."""
        batch = broadcast_shape(*(f.batch_shape[:-1] for f in factors))
        parts = [f.expand(batch + f.batch_shape[-1:])._tensors() for f in factors]
        dims = factors[0]._event_dims
        return cls(*(torch.cat(ts, dim=ts[0].dim() - e - 1) for *ts, e in zip(*parts, dims)))


class Gaussian(InfoFormFactor):
    """``log_normalizer + info_vec @ x - x @ precision @ x / 2`` over ``x`` in R^n.

    Shapes: ``log_normalizer`` ``(...)``, ``info_vec`` ``(..., n)``, ``precision``
    ``(..., n, n)`` (symmetric, positive semidefinite), batch dims broadcasting. The density
    is normalized when ``event_logsumexp()`` is 0.

    >>> g = Gaussian(torch.tensor(0.0), torch.tensor([2.0]), torch.tensor([[4.0]]))
    >>> round(float(g.event_logsumexp()), 4)  # log of the integral: 0.5 + log(2 pi / 4) / 2
    0.7258
    >>> g.condition(torch.tensor([1.0])).log_normalizer  # its log density at x = 1
    tensor(0.)
    """

    _fields = ("log_normalizer", "info_vec", "precision")
    _event_dims = (0, 1, 2)

    def __init__(
        self, log_normalizer: torch.Tensor, info_vec: torch.Tensor, precision: torch.Tensor
    ):
        if info_vec.dim() < 1 or precision.shape[-2:] != info_vec.shape[-1:] * 2:
            raise ValueError(
                f"Gaussian: info_vec of shape {tuple(info_vec.shape)} and precision of shape "
                f"{tuple(precision.shape)} disagree: expected (..., n) and (..., n, n)."
            )
        self.log_normalizer = log_normalizer
        self.info_vec = info_vec
        self.precision = precision

    def dim(self) -> int:
        return self.info_vec.size(-1)

    def __repr__(self) -> str:
        return f"Gaussian(batch_shape={tuple(self.batch_shape)}, dim={self.dim()})"

    def event_pad(self, left: int = 0, right: int = 0) -> "Gaussian":
        """The same density over ``left`` new dims, then the old ones, then ``right`` new ones
        (flat in the new dims: their precision and info are 0)."""
        info_vec = torch.nn.functional.pad(self.info_vec, (left, right))
        precision = torch.nn.functional.pad(self.precision, (left, right, left, right))
        return Gaussian(self.log_normalizer, info_vec, precision)

    def __add__(self, other):
        """The product of densities (a sum of log densities); a tensor adds to the log
        normalizer."""
        if isinstance(other, Gaussian):
            if other.dim() != self.dim():
                raise ValueError(
                    f"Gaussian + Gaussian: dims {self.dim()} and {other.dim()} differ; "
                    "event_pad one of them first."
                )
            return Gaussian(
                self.log_normalizer + other.log_normalizer,
                self.info_vec + other.info_vec,
                self.precision + other.precision,
            )
        if isinstance(other, (torch.Tensor, int, float)):
            return Gaussian(self.log_normalizer + other, self.info_vec, self.precision)
        return NotImplemented

    def add_block(self, other: "Gaussian", start: int) -> "Gaussian":
        """``self + other`` where ``other`` is over this Gaussian's dims ``start ..
        start + other.dim()``: ``other.event_pad`` then ``+``, without building the padding.

        >>> g = Gaussian(torch.tensor(0.0), torch.zeros(2), torch.eye(2))
        >>> g.add_block(Gaussian(torch.tensor(1.0), torch.ones(1), torch.eye(1)), 1).precision
        tensor([[1., 0.],
                [0., 2.]])
        """
        stop = start + other.dim()
        if stop > self.dim():
            raise ValueError(
                f"Gaussian.add_block: other of dim {other.dim()} at start {start} runs past "
                f"this Gaussian's dim {self.dim()}."
            )
        batch = broadcast_shape(self.batch_shape, other.batch_shape)
        n = self.dim()
        info_vec = self.info_vec.expand(batch + (n,)).clone()
        info_vec[..., start:stop] += other.info_vec
        precision = self.precision.expand(batch + (n, n)).clone()
        precision[..., start:stop, start:stop] += other.precision
        return Gaussian(self.log_normalizer + other.log_normalizer, info_vec, precision)

    def log_density(self, value: torch.Tensor) -> torch.Tensor:
        """The log density at ``value`` ``(..., n)``."""
        quadratic = (value * matvec(self.precision, value)).sum(-1)
        return self.log_normalizer + (self.info_vec * value).sum(-1) - 0.5 * quadratic

    def condition(self, value: torch.Tensor) -> "Gaussian":
        """Fix the rightmost ``value.size(-1)`` dims to ``value``: a Gaussian over the rest."""
        keep = self.dim() - value.size(-1)
        info_vec, precision, constant = condition_blocks(
            self.info_vec, self.precision, value, slice(0, keep), slice(keep, None)
        )
        return Gaussian(self.log_normalizer + constant, info_vec, precision)

    def condition_left(self, value: torch.Tensor) -> "Gaussian":
        """Fix the leftmost ``value.size(-1)`` dims to ``value``: a Gaussian over the rest."""
        fixed = value.size(-1)
        info_vec, precision, constant = condition_blocks(
            self.info_vec, self.precision, value, slice(fixed, None), slice(0, fixed)
        )
        return Gaussian(self.log_normalizer + constant, info_vec, precision)

    def marginalize(self, left: int = 0, right: int = 0) -> "Gaussian":
        """Integrate out the ``left`` leftmost and ``right`` rightmost dims (their precision
        block must be positive definite)."""
        n = self.dim()
        keep = list(range(left, n - right))
        drop = list(range(left)) + list(range(n - right, n))
        precision, info_vec, half_quad, drop_logdet = marginalize_blocks(
            self.info_vec, self.precision, keep, drop
        )
        log_normalizer = self.log_normalizer + half_quad + 0.5 * len(drop) * LOG_2PI - drop_logdet
        return Gaussian(log_normalizer, info_vec, precision)

    def event_logsumexp(self) -> torch.Tensor:
        """``log`` of the integral over all dims (the precision must be positive definite)."""
        return self.marginalize(left=self.dim()).log_normalizer

    def mean(self) -> torch.Tensor:
        """``precision^-1 @ info_vec`` (the mode, and the mean when normalizable)."""
        chol = torch.linalg.cholesky(self.precision)
        return torch.cholesky_solve(self.info_vec.unsqueeze(-1), chol).squeeze(-1)


def _by_columns(op, matrix: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
    """``op(matrix, vec[..., None])[..., 0]`` for a matrix op (matmul, triangular solve)
    whose batch dims broadcast. Leading dims that only ``vec`` has (sample dims) become
    columns of one op, rather than copies of ``matrix``: for 10,000 samples of a chain that
    is one product with 10,000 columns per matrix instead of 10,000 tiny ones."""
    extra = vec.dim() - (matrix.dim() - 1)
    if extra <= 0:
        return op(matrix, vec.unsqueeze(-1)).squeeze(-1)
    lead = vec.shape[:extra]
    batch = broadcast_shape(matrix.shape[:-2], vec.shape[extra:-1])
    columns = vec.expand(lead + batch + vec.shape[-1:]).reshape((-1,) + batch + vec.shape[-1:])
    result = op(matrix, columns.movedim(0, -1))
    return result.movedim(-1, 0).reshape(lead + batch + result.shape[-2:-1])


def matvec(matrix: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
    """``matrix @ vec`` for ``(..., n, m)`` and ``(..., m)``, batch dims broadcasting.

    >>> matvec(torch.eye(2) * 3, torch.ones(5, 2)).shape
    torch.Size([5, 2])
    """
    return _by_columns(torch.matmul, matrix, vec)


def solve_lower(chol: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
    """``chol^-1 @ vec`` for lower-triangular ``chol`` ``(..., n, n)`` and ``vec``
    ``(..., n)``, batch dims broadcasting (sample dims become columns of one solve).

    >>> solve_lower(torch.eye(2) * 2, torch.ones(3, 2))[0]
    tensor([0.5000, 0.5000])
    """
    return _by_columns(lambda a, b: torch.linalg.solve_triangular(a, b, upper=False), chol, vec)


def _solve_upper(chol_t: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
    return _by_columns(lambda a, b: torch.linalg.solve_triangular(a, b, upper=True), chol_t, vec)


def condition_blocks(
    info_vec: torch.Tensor,
    precision: torch.Tensor,
    value: torch.Tensor,
    keep: slice,
    fixed: slice,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Quadratic form ``info @ x - x @ P @ x / 2`` with dims ``fixed`` set to ``value``:
    ``(info_vec, precision)`` over ``keep`` and the constant term left over."""
    p_kf = precision[..., keep, fixed]
    p_ff = precision[..., fixed, fixed]
    info_f = info_vec[..., fixed]
    info = info_vec[..., keep] - matvec(p_kf, value)
    quadratic = (value * matvec(p_ff, value)).sum(-1)
    constant = (info_f * value).sum(-1) - 0.5 * quadratic
    return info, precision[..., keep, keep], constant


# Below this size a Cholesky factor and triangular solves are a few elementwise ops over the
# whole batch; torch's batched LAPACK calls cost a call per matrix instead.
_SMALL = 3


def _cholesky(p: torch.Tensor) -> torch.Tensor:
    """Lower Cholesky factor of the positive definite ``p`` ``(..., n, n)``; raises
    ``torch.linalg.LinAlgError`` (as ``torch.linalg.cholesky`` does) when it is not."""
    n = p.size(-1)
    if n > _SMALL:
        return torch.linalg.cholesky(p)
    rows: List[List[torch.Tensor]] = []
    pivots = []
    for i in range(n):
        row = []
        for j in range(i + 1):
            acc = p[..., i, j]
            for k in range(j):
                acc = acc - row[k] * rows[j][k] if i != j else acc - row[k] * row[k]
            if i == j:
                pivots.append(acc)
                row.append(acc.clamp(min=0).sqrt())
            else:
                row.append(acc / rows[j][j])
        rows.append(row)
    if not bool(torch.stack(pivots).gt(0).all()):
        raise torch.linalg.LinAlgError(
            f"cholesky: a ({n}, {n}) precision block is not positive definite"
        )
    zero = p.new_zeros(()).expand(p.shape[:-2])
    return torch.stack([torch.stack(row + [zero] * (n - len(row)), -1) for row in rows], -2)


def _solve_small(chol: torch.Tensor, rhs: torch.Tensor, upper: bool) -> torch.Tensor:
    """``chol^-1 @ rhs`` (``chol.mT^-1 @ rhs`` when ``upper``) for a small lower ``chol``
    ``(..., n, n)`` and ``rhs`` ``(..., n, k)``, by substitution over the n rows."""
    n = chol.size(-1)
    order = range(n - 1, -1, -1) if upper else range(n)
    out: dict = {}
    for i in order:
        acc = rhs[..., i, :]
        for j in out:
            coeff = chol[..., j, i] if upper else chol[..., i, j]
            acc = acc - coeff.unsqueeze(-1) * out[j]
        out[i] = acc / chol[..., i, i].unsqueeze(-1)
    return torch.stack([out[i] for i in range(n)], -2)


def _eliminate(p_dd: torch.Tensor, p_dk_parts: List[torch.Tensor], info_d: torch.Tensor):
    """The shared step of integrating dims ``d`` out of ``info @ x - x @ P @ x / 2``.

    With ``P_dd = L @ L.T`` and ``W = L^-1 @ [P_dk, info_d]`` (``P_dk`` the concatenation
    of ``p_dk_parts``) it returns ``(W.T @ W, log det(P_dd) / 2)``. Of that Gram matrix the
    kept dims' precision loses the top-left block and their info vector the last column;
    its last entry, halved, is the constant ``info_d @ P_dd^-1 @ info_d / 2``. The integral
    contributes ``exp(constant) (2 pi)^(d/2) det(P_dd)^(-1/2)``.
    """
    parts = p_dk_parts + [info_d.unsqueeze(-1)]
    batch = broadcast_shape(*(part.shape[:-2] for part in parts))
    # One triangular solve and one product for the precision, info vector and constant.
    rhs = torch.cat([part.expand(batch + part.shape[-2:]) for part in parts], -1)
    chol = _cholesky(p_dd)
    if p_dd.size(-1) <= _SMALL:
        whitened = _solve_small(chol, rhs, upper=False)
    else:
        whitened = torch.linalg.solve_triangular(chol, rhs, upper=False)
    half_logdet = chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    return whitened.mT @ whitened, half_logdet


def marginalize_blocks(
    info_vec: torch.Tensor, precision: torch.Tensor, keep: List[int], drop: List[int]
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Integrate the dims ``drop`` (an index list) out of ``info @ x - x @ P @ x / 2``.

    Returns ``(precision, info_vec)`` over ``keep`` (the Schur complement), the constant
    ``half_quad`` and ``half_logdet`` of :func:`_eliminate`.
    """
    if not drop:
        zero = info_vec.new_zeros(())
        return precision, info_vec, zero, zero
    keep_t = torch.tensor(keep, dtype=torch.long, device=info_vec.device)
    drop_t = torch.tensor(drop, dtype=torch.long, device=info_vec.device)
    p_k = precision.index_select(-2, keep_t)
    p_d = precision.index_select(-2, drop_t)
    gram, half_logdet = _eliminate(
        p_d.index_select(-1, drop_t), [p_d.index_select(-1, keep_t)], info_vec[..., drop_t]
    )
    precision = p_k.index_select(-1, keep_t) - gram[..., :-1, :-1]
    info_vec = info_vec.index_select(-1, keep_t) - gram[..., :-1, -1]
    return precision, info_vec, 0.5 * gram[..., -1, -1], half_logdet


def tensordot_blocks(
    x_info: torch.Tensor,
    x_prec: torch.Tensor,
    y_info: torch.Tensor,
    y_prec: torch.Tensor,
    dims: int,
):
    """:func:`marginalize_blocks` for the product of ``x`` over ``(a, b)`` and ``y`` over
    ``(b, c)`` with ``b`` (of size ``dims``) integrated out: the result is over ``(a, c)``."""
    na = x_info.size(-1) - dims
    gram, half_logdet = _eliminate(
        x_prec[..., na:, na:] + y_prec[..., :dims, :dims],
        [x_prec[..., na:, :na], y_prec[..., :dims, dims:]],
        x_info[..., na:] + y_info[..., :dims],
    )
    # The (a, c) block of the product is block diagonal: add its two blocks in place to the
    # fresh Schur term rather than building it from zeros.
    precision = gram[..., :-1, :-1].neg()
    precision[..., :na, :na] += x_prec[..., :na, :na]
    precision[..., na:, na:] += y_prec[..., dims:, dims:]
    info_vec = gram[..., :-1, -1].neg()
    info_vec[..., :na] += x_info[..., :na]
    info_vec[..., na:] += y_info[..., dims:]
    return precision, info_vec, 0.5 * gram[..., -1, -1], half_logdet


def gaussian_tensordot(x: Gaussian, y: Gaussian, dims: int) -> Gaussian:
    """Integrate out the ``dims`` dims shared by ``x`` (its rightmost) and ``y`` (its
    leftmost) from their product: ``x`` over ``(a, b)`` and ``y`` over ``(b, c)`` give a
    Gaussian over ``(a, c)``.

    >>> walk = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])  # -(x[1] - x[0])^2 / 2
    >>> step = Gaussian(torch.tensor(0.0), torch.zeros(2), walk)
    >>> prior = Gaussian(torch.tensor(0.0), torch.zeros(1), torch.tensor([[1.0]]))
    >>> gaussian_tensordot(prior, step, 1).precision  # a random walk step adds variance 1
    tensor([[0.5000]])
    """
    precision, info_vec, half_quad, half_logdet = tensordot_blocks(
        x.info_vec, x.precision, y.info_vec, y.precision, dims
    )
    log_normalizer = (
        x.log_normalizer + y.log_normalizer + half_quad + 0.5 * dims * LOG_2PI - half_logdet
    )
    return Gaussian(log_normalizer, info_vec, precision)


def tree_levels(factors: Factor, contract: Callable[[Factor, Factor], Factor]) -> List[Factor]:
    """Every level of the pairwise tree that reduces ``factors`` over its last batch dim.

    Level 0 is ``factors``; level ``l + 1`` contracts neighbouring pairs ``(2i, 2i + 1)`` of
    level ``l`` and carries an odd last factor up unchanged, as ``ops.scan.scan_levels`` does
    for matrices. The last level has time size 1.
    """
    levels = [factors]
    while levels[-1].batch_shape[-1] > 1:
        level = levels[-1]
        size = level.batch_shape[-1]
        paired = 2 * (size // 2)
        products = contract(level.time_slice(0, paired, 2), level.time_slice(1, paired, 2))
        if paired < size:
            products = type(level).time_cat([products, level.time_slice(paired, None)])
        levels.append(products)
    return levels


def sequential_gaussian_tensordot(gaussian: Gaussian) -> Gaussian:
    """Contract a chain of factors ``(..., T)`` over ``(x[t-1], x[t])`` (each of dim
    ``2 * state_dim``) into one ``(...)`` over ``(x[-1], x[T-1])``, in ``ceil(log2 T)``
    rounds of batched contractions.

    >>> walk = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])  # -(x[t] - x[t-1])^2 / 2
    >>> step = Gaussian(torch.zeros(3), torch.zeros(3, 2), walk.expand(3, 2, 2))
    >>> sequential_gaussian_tensordot(step).precision  # three random-walk steps: variance 3
    tensor([[ 0.3333, -0.3333],
            [-0.3333,  0.3333]])
    """
    if gaussian.dim() % 2:
        raise ValueError(
            f"sequential_gaussian_tensordot: a factor over (old, new) has an even dim, got "
            f"{gaussian.dim()}."
        )
    state_dim = gaussian.dim() // 2
    levels = tree_levels(gaussian, lambda x, y: gaussian_tensordot(x, y, state_dim))
    return levels[-1].time_select(0)


def sample_from_precision(
    precision: torch.Tensor, info_vec: torch.Tensor, noise: torch.Tensor
) -> torch.Tensor:
    """``precision^-1 @ info_vec + L^-T @ noise`` where ``precision = L @ L.T``: a draw from
    the normalized Gaussian, given standard normal ``noise`` shaped like ``info_vec``."""
    chol = _cholesky(precision)
    if precision.size(-1) <= _SMALL:
        white = _solve_small(chol, info_vec.unsqueeze(-1), upper=False).squeeze(-1) + noise
        return _solve_small(chol, white.unsqueeze(-1), upper=True).squeeze(-1)
    return _solve_upper(chol.mT, solve_lower(chol, info_vec) + noise)


def sequential_gaussian_filter_sample(
    init: Gaussian, trans: Gaussian, sample_shape: Sequence[int] = torch.Size()
) -> torch.Tensor:
    """Draw the states ``x[-1], x[0], .., x[T-1]`` of the chain ``init(x[-1]) prod_t
    trans[t](x[t-1], x[t])``, shape ``sample_shape + batch_shape + (T + 1, state_dim)``.

    Up the pairwise tree of :func:`sequential_gaussian_tensordot`, then down it: the two ends
    of the root are drawn jointly, and each node's middle state is drawn given the states at
    both of its ends, for all nodes of a level at once (``O(log T)`` rounds, reparameterized).

    >>> walk = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])  # -(x[t] - x[t-1])^2 / 2
    >>> step = Gaussian(torch.zeros(4), torch.zeros(4, 2), walk.expand(4, 2, 2))
    >>> init = Gaussian(torch.tensor(0.0), torch.zeros(1), torch.eye(1))
    >>> sequential_gaussian_filter_sample(init, step, [7]).shape
    torch.Size([7, 5, 1])
    """
    state_dim = init.dim()
    if trans.dim() != 2 * state_dim:
        raise ValueError(
            f"sequential_gaussian_filter_sample: trans has dim {trans.dim()}, expected "
            f"2 * init.dim() = {2 * state_dim} (old, new)."
        )
    batch = broadcast_shape(init.batch_shape, trans.batch_shape[:-1])
    trans = trans.expand(batch + trans.batch_shape[-1:])
    levels = tree_levels(trans, lambda x, y: gaussian_tensordot(x, y, state_dim))
    shape = torch.Size(sample_shape) + batch
    root = levels[-1].time_select(0) + init.event_pad(right=state_dim)
    noise = root.info_vec.new_empty(shape + (2 * state_dim,)).normal_()
    ends = sample_from_precision(root.precision, root.info_vec, noise)
    # ends[..., i, :]: the state at the boundary left of node i of the current level.
    ends = ends.reshape(shape + (2, state_dim))
    h = state_dim
    for level in reversed(levels[:-1]):
        pairs = level.batch_shape[-1] // 2
        left = level.time_slice(0, 2 * pairs, 2)
        right = level.time_slice(1, 2 * pairs, 2)
        start = ends[..., :pairs, :]
        end = ends[..., 1 : pairs + 1, :]
        precision = left.precision[..., h:, h:] + right.precision[..., :h, :h]
        info_vec = (
            left.info_vec[..., h:]
            + right.info_vec[..., :h]
            - matvec(left.precision[..., h:, :h], start)
            - matvec(right.precision[..., :h, h:], end)
        )
        noise = info_vec.new_empty(info_vec.shape).normal_()
        middle = sample_from_precision(precision, info_vec, noise)
        interleaved = torch.stack([start, middle], -2)
        ends = torch.cat([interleaved.reshape(shape + (2 * pairs, h)), ends[..., pairs:, :]], -2)
    return ends


def mvn_to_gaussian(dist: torch.distributions.Distribution) -> Gaussian:
    """The normalized log density of a ``MultivariateNormal`` or an ``Independent`` of
    ``Normal`` (one reinterpreted dim) as a :class:`Gaussian`.

    >>> from pyrolite.distributions import MultivariateNormal
    >>> g = mvn_to_gaussian(MultivariateNormal(torch.zeros(2), torch.eye(2)))
    >>> round(float(g.event_logsumexp()), 4)
    0.0
    """
    info_vec, precision, log_normalizer, half_quad = linear_gaussian_parts(None, dist)
    return Gaussian(log_normalizer - half_quad, info_vec, precision)


def matrix_and_mvn_to_gaussian(
    matrix: torch.Tensor, dist: torch.distributions.Distribution
) -> Gaussian:
    """The conditional density of ``y = x @ matrix + noise``, ``noise ~ dist``, as a
    :class:`Gaussian` over ``(x, y)``; ``matrix`` is ``(..., x_dim, y_dim)``.

    >>> from pyrolite.distributions import MultivariateNormal
    >>> noise = MultivariateNormal(torch.zeros(1), torch.eye(1))
    >>> matrix_and_mvn_to_gaussian(torch.ones(1, 1), noise).precision  # -(y - x)^2 / 2
    tensor([[ 1., -1.],
            [-1.,  1.]])
    """
    info_vec, precision, log_normalizer, half_quad = linear_gaussian_parts(matrix, dist)
    return Gaussian(log_normalizer - half_quad, info_vec, precision)


def linear_gaussian_parts(matrix: Optional[torch.Tensor], dist: torch.distributions.Distribution):
    """The log density of ``y = x @ matrix + noise`` (of ``y = noise`` when ``matrix`` is
    None) as ``(info_vec, precision, log_normalizer, half_quad)``: it is
    ``log_normalizer - half_quad + info_vec @ v - v @ precision @ v / 2`` over ``v = (x, y)``,
    where ``half_quad = loc @ noise_precision @ loc / 2`` is kept apart for
    :mod:`~pyrolite.ops.gamma_gaussian`, whose noise precision is scaled."""
    loc, noise_prec, half_logdet = _mvn_parts(dist)
    y_dim = loc.size(-1)
    log_normalizer = -0.5 * y_dim * LOG_2PI + half_logdet
    noise_info = (noise_prec @ loc.unsqueeze(-1)).squeeze(-1)
    half_quad = 0.5 * (noise_info * loc).sum(-1)
    if matrix is None:
        return noise_info, noise_prec, log_normalizer, half_quad
    if matrix.dim() < 2 or matrix.size(-1) != y_dim:
        raise ValueError(
            f"matrix of shape {tuple(matrix.shape)} does not map onto the noise's "
            f"event_shape ({y_dim},): expected (..., x_dim, {y_dim})."
        )
    # y - x @ M - loc = v @ C - loc with v = (x, y) and C = [-M; I].
    batch = broadcast_shape(matrix.shape[:-2], noise_prec.shape[:-2])
    eye = torch.eye(y_dim, dtype=matrix.dtype, device=matrix.device).expand(batch + (y_dim, y_dim))
    coef = torch.cat([-matrix.expand(batch + matrix.shape[-2:]), eye], -2)
    coef_prec = coef @ noise_prec
    info_vec = (coef @ noise_info.unsqueeze(-1)).squeeze(-1)
    return info_vec, coef_prec @ coef.mT, log_normalizer, half_quad


def _mvn_parts(dist) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(loc, precision, log det(precision) / 2)`` of a MultivariateNormal or an
    Independent(Normal, 1), or a ValueError naming what was given."""
    if isinstance(dist, torch.distributions.MultivariateNormal):
        loc = dist.loc
        precision = dist.precision_matrix
        scale_tril = dist._unbroadcasted_scale_tril
        half_logdet = -scale_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        return loc, precision, half_logdet.expand(dist.batch_shape)
    if (
        isinstance(dist, torch.distributions.Independent)
        and dist.reinterpreted_batch_ndims == 1
        and isinstance(dist.base_dist, torch.distributions.Normal)
    ):
        shape = dist.base_dist.batch_shape
        loc = torch.as_tensor(dist.base_dist.loc).expand(shape)
        scale = torch.as_tensor(dist.base_dist.scale, dtype=loc.dtype, device=loc.device)
        scale = scale.expand(shape)
        precision = torch.diag_embed(scale.pow(-2))
        return loc, precision, -scale.log().sum(-1)
    raise ValueError(
        f"expected a MultivariateNormal or an Independent(Normal, 1) (e.g. "
        f"Normal(loc, scale).to_event(1)), got {dist}."
    )


__all__ = [
    "Gaussian",
    "InfoFormFactor",
    "gaussian_tensordot",
    "linear_gaussian_parts",
    "matvec",
    "matrix_and_mvn_to_gaussian",
    "mvn_to_gaussian",
    "sequential_gaussian_filter_sample",
    "sequential_gaussian_tensordot",
]
