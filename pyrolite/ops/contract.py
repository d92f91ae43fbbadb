"""Sum-product (and max-product) over plated factor graphs, in log space.

A *factor* is a tensor whose dims carry *labels*: an enumerated variable's label, or a
plate's. Its *ordinal* is the set of plates it sits in. :func:`plan_contraction` works
out, once per structure, how to eliminate the variables by tensor variable elimination
over the plate tree (Obermeyer et al. 2019, "Tensor Variable Elimination for Plated
Factor Graphs"): ordinals are processed deepest first; at each one the variables that
live there are summed out one by one (bucket elimination, cheapest variable first, the
products inside a bucket ordered by an ``opt_einsum`` contraction path), and what is left
is multiplied over the plates it no longer varies along (a sum of logs over that plate
dim, times the plate's subsample scale) and handed to the parent ordinal. Variables to
*keep* (a guide's enumerated sites) are never summed. A term with nothing left to
eliminate comes out as an output at its ordinal, one value per element of its plates
(the caller sums them, or keeps the elements apart).

:class:`Contraction` runs the plan on tensors: with the ``"log"`` ring (logsumexp:
marginal likelihoods, differentiable) or the ``"max"`` ring (max: MAP values), and can
record every elimination's tensor so a backward pass can sample (or maximize) each
variable given those eliminated after it (:meth:`Contraction.sample`: forward-filter
backward-sample, Viterbi at temperature 0).

:func:`einsum` is a log-space ``torch.einsum`` on the same machinery.

>>> import torch
>>> a, b = torch.randn(3, 4), torch.randn(4)
>>> expected = torch.logsumexp(a + b, -1)
>>> torch.allclose(einsum("ab,b->a", a, b), expected)
True
"""

import heapq
import math
from typing import Dict, FrozenSet, Hashable, List, NamedTuple, Sequence, Tuple

import opt_einsum
import torch

Label = Hashable
Ordinal = FrozenSet[Label]


class FactorSpec(NamedTuple):
    """A factor's structure: the labels of its tensor's dims (in order) and its plates."""

    labels: Tuple[Label, ...]
    shape: Tuple[int, ...]
    ordinal: Ordinal


class _Product(NamedTuple):
    """Multiply (add, in log space) two terms: each is permuted and viewed to ``out``."""

    left: int
    right: int
    left_view: Tuple[Tuple[int, ...], Tuple[int, ...]]  # (permutation, view shape)
    right_view: Tuple[Tuple[int, ...], Tuple[int, ...]]
    out: int


class _Eliminate(NamedTuple):
    """Sum (or max) out variable ``var`` at dim ``dim`` of term ``term``."""

    term: int
    var: Label
    dim: int
    labels: Tuple[Label, ...]  # the labels of the term before elimination
    ordinal: Ordinal
    out: int


class _PlateProduct(NamedTuple):
    """Multiply a term over plates: sum over the dims ``dims``, times ``factor``."""

    term: int
    dims: Tuple[int, ...]
    factor: float
    out: int


class Output(NamedTuple):
    """A term left after contraction: its id, labels and ordinal."""

    term: int
    labels: Tuple[Label, ...]
    ordinal: Ordinal


class Plan(NamedTuple):
    steps: Tuple[object, ...]
    outputs: Tuple[Output, ...]
    plate_sizes: Dict[Label, int]


class TreeError(ValueError):
    """The factor graph is not tree-structured over its plates: no exact plated
    elimination exists."""


def plan_contraction(
    factors: Sequence[FactorSpec],
    var_ordinals: Dict[Label, Ordinal],
    sum_vars: Sequence[Label],
    plates: Dict[Label, Tuple[int, float]],
    describe=str,
) -> Plan:
    """The elimination program for ``factors``.

    :param var_ordinals: each variable's plates (where it lives).
    :param sum_vars: the variables to eliminate; the other variables in ``var_ordinals``
        are kept (they come out in the outputs' labels).
    :param plates: each plate label's ``(size, scale)``; the scale multiplies the plate's
        product (subsampling).
    :param describe: names a label in error messages.
    """
    sum_set = set(sum_vars)
    labels: Dict[int, Tuple[Label, ...]] = {}
    sizes: Dict[Label, int] = {}
    tree: Dict[Ordinal, List[int]] = {}
    for i, f in enumerate(factors):
        labels[i] = tuple(f.labels)
        for label, size in zip(f.labels, f.shape):
            sizes[label] = size
        tree.setdefault(frozenset(f.ordinal), []).append(i)
    for label, (size, _) in plates.items():
        sizes.setdefault(label, size)
    steps: list = []
    outputs: List[Output] = []
    next_id = len(factors)

    def new_id() -> int:
        nonlocal next_id
        next_id += 1
        return next_id - 1

    def product(a: int, b: int) -> int:
        out_labels = labels[a] + tuple(x for x in labels[b] if x not in labels[a])
        out = new_id()
        labels[out] = out_labels
        steps.append(
            _Product(
                a,
                b,
                view_between(labels[a], out_labels, sizes),
                view_between(labels[b], out_labels, sizes),
                out,
            )
        )
        return out

    while tree:
        ordinal = max(tree, key=lambda o: (len(o), sorted(map(str, o))))
        terms = tree.pop(ordinal)
        local = [
            v for v in _ordered_vars(terms, labels) if v in sum_set and var_ordinals[v] == ordinal
        ]
        terms = _eliminate_all(terms, local, labels, sizes, ordinal, steps, product, new_id)
        for term in terms:
            term_vars = [x for x in labels[term] if x in var_ordinals]
            parent = frozenset().union(*(var_ordinals[v] for v in term_vars))
            if not parent <= ordinal:
                raise TreeError(
                    f"a factor in plates {_names(ordinal, describe)} depends on "
                    f"{[describe(v) for v in term_vars]}, which live in plates "
                    f"{_names(parent, describe)}: a site depends on an enumerated site in a "
                    "plate it is not in"
                )
            summed = [v for v in term_vars if v in sum_set]
            if not summed:
                # Nothing left to eliminate: out it goes, per element of its plates (the
                # caller sums, or keeps plate elements apart: Rao-Blackwellization).
                outputs.append(Output(term, labels[term], ordinal))
                continue
            if parent == ordinal:
                if summed:
                    raise TreeError(
                        "cannot sum out enumerated sites exactly: a factor in plates "
                        f"{_names(ordinal, describe)} couples "
                        + ", ".join(
                            f"'{describe(v)}' (plates {_names(var_ordinals[v], describe)})"
                            for v in summed
                        )
                        + ", which live in different plates (the plated factor graph is not "
                        "a tree). Enumerate fewer of them, or move the sites into shared plates."
                    )
            reduce = ordinal - parent
            dims = tuple(i for i, x in enumerate(labels[term]) if x in reduce)
            factor = 1.0
            for plate in reduce:
                size, scale = plates[plate]
                factor *= scale if plate in labels[term] else scale * size
            out = new_id()
            labels[out] = tuple(x for x in labels[term] if x not in reduce)
            steps.append(_PlateProduct(term, dims, factor, out))
            tree.setdefault(parent, []).append(out)
    return Plan(tuple(steps), tuple(outputs), {p: size for p, (size, _) in plates.items()})


def _eliminate_all(terms, local, labels, sizes, ordinal, steps, product, new_id) -> List[int]:
    """Bucket elimination of the ``local`` variables from ``terms``; the terms left."""
    terms = list(terms)
    if not local:
        return terms
    order = {v: i for i, v in enumerate(local)}
    remaining = set(local)

    def cost(var) -> Tuple[int, int]:
        bucket_labels = set()
        for t in terms:
            if var in labels[t]:
                bucket_labels.update(labels[t])
        bucket_labels.discard(var)
        return math.prod(sizes[x] for x in bucket_labels), order[var]

    heap = [(cost(v), v) for v in local]
    heapq.heapify(heap)
    while remaining:
        c, var = heapq.heappop(heap)
        if var not in remaining:
            continue
        current = cost(var)
        if current != c:  # stale: a neighbour's elimination changed this one's bucket
            heapq.heappush(heap, (current, var))
            continue
        remaining.discard(var)
        bucket = [t for t in terms if var in labels[t]]
        terms = [t for t in terms if var not in labels[t]]
        term = _bucket_product(bucket, labels, sizes, var, product)
        out = new_id()
        labels[out] = tuple(x for x in labels[term] if x != var)
        steps.append(_Eliminate(term, var, labels[term].index(var), labels[term], ordinal, out))
        terms.append(out)
        neighbours = set(labels[out]) & remaining
        for v in neighbours:
            heapq.heappush(heap, (cost(v), v))
    return terms


def _bucket_product(bucket, labels, sizes, var, product) -> int:
    """The product of a bucket's terms, in the pairwise order ``opt_einsum`` plans."""
    if len(bucket) == 1:
        return bucket[0]
    if len(bucket) == 2:
        return product(bucket[0], bucket[1])
    symbols: Dict[Label, str] = {}
    for t in bucket:
        for x in labels[t]:
            symbols.setdefault(x, opt_einsum.get_symbol(len(symbols)))
    inputs = ["".join(symbols[x] for x in labels[t]) for t in bucket]
    output = "".join(symbols[x] for x in symbols if x != var) + symbols[var]
    shapes = [tuple(sizes[x] for x in labels[t]) for t in bucket]
    path, _ = opt_einsum.contract_path(
        ",".join(inputs) + "->" + output, *shapes, shapes=True, optimize="auto"
    )
    work = list(bucket)
    for pair in path:
        if len(pair) == 1:
            continue
        i, j = sorted(pair)
        b, a = work.pop(j), work.pop(i)
        work.append(product(a, b))
    while len(work) > 1:
        b, a = work.pop(), work.pop()
        work.append(product(a, b))
    return work[0]


def view_between(source: Tuple[Label, ...], target: Tuple[Label, ...], sizes) -> tuple:
    """(permutation of ``source``'s dims into ``target`` order, the view shape with size-1
    dims where ``source`` lacks a ``target`` label): what :func:`apply_view` takes to lay a
    tensor labelled ``source`` out as ``target``."""
    permutation = tuple(sorted(range(len(source)), key=lambda i: target.index(source[i])))
    shape = tuple(sizes[x] if x in source else 1 for x in target)
    return permutation, shape


def _ordered_vars(terms, labels) -> List[Label]:
    seen: Dict[Label, None] = {}
    for t in terms:
        for x in labels[t]:
            seen.setdefault(x, None)
    return list(seen)


def _names(ordinal, describe) -> List[str]:
    return sorted(describe(x) for x in ordinal)


class Contraction:
    """A :class:`Plan` run on tensors.

    :param ring: ``"log"`` (log-sum-exp) or ``"max"``.
    :param record: keep each elimination's tensor, for :meth:`sample`.
    """

    def __init__(self, plan: Plan, ring: str = "log", record: bool = False):
        if ring not in ("log", "max"):
            raise ValueError(f"ring must be 'log' or 'max', got {ring!r}")
        self.plan, self.ring, self.record = plan, ring, record
        self.eliminated: List[Tuple[_Eliminate, torch.Tensor]] = []

    def __call__(self, tensors: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """The outputs' tensors (in ``plan.outputs`` order) from the factors' tensors."""
        values: Dict[int, torch.Tensor] = dict(enumerate(tensors))
        maximize = self.ring == "max"
        self.eliminated = []
        for step in self.plan.steps:
            if type(step) is _Product:
                values[step.out] = apply_view(values[step.left], step.left_view) + apply_view(
                    values[step.right], step.right_view
                )
            elif type(step) is _Eliminate:
                term = values[step.term]
                if self.record:
                    self.eliminated.append((step, term))
                if maximize:
                    values[step.out] = term.amax(step.dim)
                else:
                    values[step.out] = torch.logsumexp(term, step.dim)
            else:
                term = values[step.term]
                if step.dims:
                    term = term.sum(step.dims)
                values[step.out] = term if step.factor == 1.0 else term * step.factor
        return [values[o.term] for o in self.plan.outputs]

    def sample(self, temperature: float = 1.0) -> Dict[Label, Tuple[torch.Tensor, tuple]]:
        """Each eliminated variable drawn from its conditional given those eliminated after
        it (at temperature 1, after a ``"log"`` run: a draw from the exact posterior), or
        its maximizing value (temperature 0, after a ``"max"`` run: the joint MAP).

        Returns ``{var: (index tensor, plate labels of its dims)}``; needs ``record=True``.
        """
        if not self.record:
            raise ValueError("Contraction.sample needs a run with record=True")
        samples: Dict[Label, Tuple[torch.Tensor, tuple]] = {}
        plate_sizes = self.plan.plate_sizes
        for step, term in reversed(self.eliminated):
            plates = tuple(sorted(step.ordinal, key=str))
            # Lay the term out as (plates of the ordinal..., other vars..., var).
            others = tuple(x for x in step.labels if x != step.var and x not in plate_sizes)
            target = plates + others + (step.var,)
            sizes = dict(plate_sizes)
            sizes.update(zip(step.labels, term.shape))
            term = term.detach().permute([step.labels.index(x) for x in target if x in step.labels])
            term = term.reshape([sizes[x] if x in step.labels else 1 for x in target])
            term = term.expand(*[plate_sizes[p] for p in plates], *term.shape[len(plates) :])
            index = []
            for k, p in enumerate(plates):
                view = [1] * len(plates)
                view[k] = plate_sizes[p]
                index.append(torch.arange(plate_sizes[p], device=term.device).reshape(view))
            for u in others:
                value, labels = samples[u]
                index.append(apply_view(value, view_between(labels, plates, plate_sizes)))
            logits = term[tuple(index)] if index else term
            if temperature == 0:
                choice = logits.argmax(-1)
            else:
                probs = torch.softmax(logits / temperature, -1)
                flat = probs.reshape(-1, probs.shape[-1])
                choice = torch.multinomial(flat, 1).reshape(probs.shape[:-1])
            samples[step.var] = (choice, plates)
        return samples


def apply_view(t: torch.Tensor, view) -> torch.Tensor:
    """``t`` permuted and reshaped as ``view`` (from :func:`view_between`) says."""
    permutation, shape = view
    if permutation != tuple(range(len(permutation))):
        t = t.permute(permutation)
    return t.reshape(shape)


# --- einsum ---------------------------------------------------------------------------


def einsum(equation: str, *operands: torch.Tensor, ring: str = "log") -> torch.Tensor:
    """``torch.einsum`` in log space (``ring="log"``: logsumexp over the summed indices,
    sums of logs for products) or max-product (``ring="max"``), contracted pairwise in
    the order ``opt_einsum`` plans. Indices are letters; no ellipsis, no repeated index
    within an operand."""
    if "->" not in equation:
        raise ValueError(f"einsum needs an explicit output ('...->...'), got {equation!r}")
    inputs, output = equation.replace(" ", "").split("->")
    inputs = inputs.split(",")
    if len(inputs) != len(operands):
        raise ValueError(f"einsum {equation!r} names {len(inputs)} operands, got {len(operands)}")
    for spec, x in zip(inputs, operands):
        if len(spec) != x.dim() or len(set(spec)) != len(spec):
            raise ValueError(
                f"einsum {equation!r}: operand spec {spec!r} does not fit shape {tuple(x.shape)}"
            )
    root = frozenset()
    factors = [FactorSpec(tuple(spec), tuple(x.shape), root) for spec, x in zip(inputs, operands)]
    sum_vars = sorted(set("".join(inputs)) - set(output))
    keep = set(output)
    ordinals = {v: root for v in set("".join(inputs))}
    plan = plan_contraction(factors, ordinals, sum_vars, {})
    results = Contraction(plan, ring)(list(operands))
    # Several outputs (disconnected parts): their product, laid out as asked.
    total = None
    for out, value in zip(plan.outputs, results):
        sizes = {c: _size(c, inputs, operands) for c in keep}
        value = apply_view(value, view_between(out.labels, tuple(output), sizes))
        total = value if total is None else total + value
    if total is None:
        return operands[0].new_zeros(())
    return total.expand([_size(c, inputs, operands) for c in output])


def _size(index: str, inputs, operands) -> int:
    for spec, x in zip(inputs, operands):
        if index in spec:
            return x.shape[spec.index(index)]
    raise ValueError(f"einsum output index {index!r} is not in any operand")
