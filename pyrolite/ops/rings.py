"""Tensor rings (as ``pyro.ops.rings``): the sum and product used by plated contraction.

A ring works on packed tensors (``pyrolite.ops.packed``): ``sumproduct`` multiplies terms
and sums out named dims, ``product`` multiplies out plate dims, and ``broadcast``,
``inv``, ``global_local`` follow from those. ``LinearRing`` is ordinary arithmetic;
``LogRing`` the same in log space (sum is ``logsumexp``, product is ``+``).
``SampleRing``, ``MapRing`` and ``MarginalRing`` are ``LogRing`` (max-product for
``MapRing``) run through the ``pyrolite.ops.einsum`` backends, so that a backward pass
(``pyrolite.ops.einsum.adjoint``) from a result draws posterior samples, MAP values or
marginals for the terms marked with ``require_backward``; ``BACKEND_TO_RING`` maps
opt_einsum backend names (ours and Pyro's) to rings.
"""

from abc import ABC, abstractmethod
from typing import Dict, FrozenSet, Iterable, List, Optional, Tuple

import torch

from . import packed
from .einsum import adjoint, torch_map, torch_marginal, torch_sample
from .packed import _named


def _dims_of(terms: Iterable[torch.Tensor]) -> Dict[str, int]:
    sizes = {}
    for term in terms:
        sizes.update(zip(term._pyro_dims, term.shape))
    return sizes


class Ring(ABC):
    """Base of the rings: ``sumproduct``, ``product`` and ``inv`` per ring; ``broadcast``
    and ``global_local`` built from them. Results are cached by operand identity in
    ``cache`` (a dict the caller may share between rings of one contraction).

    ``dim_to_size`` gives the sizes ``broadcast`` expands to.
    """

    def __init__(self, cache: Optional[dict] = None, dim_to_size: Optional[Dict[str, int]] = None):
        self._cache = {} if cache is None else cache
        self._dim_to_size = {} if dim_to_size is None else dim_to_size

    def _cached(self, key, compute, keep: Tuple = ()):
        if key in self._cache:
            return self._cache[key][0]
        result = compute()
        # Hold the operands so their ids are not reused while the key lives.
        self._cache[key] = (result, keep)
        return result

    @abstractmethod
    def sumproduct(self, terms: List[torch.Tensor], dims: Iterable[str]) -> torch.Tensor:
        """Multiply ``terms``, then sum out ``dims``; the result's dims are sorted."""

    @abstractmethod
    def product(self, term: torch.Tensor, ordinal: FrozenSet[str]) -> torch.Tensor:
        """Multiply ``term`` out along its dims that are in ``ordinal`` (plate dims)."""

    @abstractmethod
    def inv(self, term: torch.Tensor) -> torch.Tensor:
        """The reciprocal of ``term`` (for inclusion-exclusion)."""

    def broadcast(self, term: torch.Tensor, ordinal: FrozenSet[str]) -> torch.Tensor:
        """``term`` expanded along the dims of ``ordinal`` it lacks (sorted, put first)."""
        missing = "".join(sorted(set(ordinal) - set(term._pyro_dims)))
        if not missing:
            return term

        def compute():
            sizes = [self._dim_to_size[d] for d in missing]
            shape = sizes + list(term.shape)
            value = term.reshape((1,) * len(missing) + tuple(term.shape)).expand(shape)
            return _named(value, missing + term._pyro_dims)

        return self._cached(("broadcast", id(term), missing), compute, (term,))

    def global_local(
        self, term: torch.Tensor, dims: Iterable[str], ordinal: FrozenSet[str]
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(global, local)`` with ``global = product(sum(term, dims), ordinal)`` and
        ``local = term / sum(term, dims)`` (ring operations), for message passing."""
        dims = frozenset(dims)
        summed = self.sumproduct([term], dims)
        local = self.sumproduct([term, self.inv(summed)], frozenset())
        return self.product(summed, ordinal), local


class LinearRing(Ring):
    """Sum-product in linear space.

    >>> a = torch.tensor([[1.0, 2.0], [3.0, 4.0]]); a._pyro_dims = "ab"
    >>> ring = LinearRing()
    >>> ring.sumproduct([a], "b"), ring.product(a, frozenset("a"))
    (tensor([3., 7.]), tensor([3., 8.]))
    """

    def sumproduct(self, terms, dims):
        dims = frozenset(dims)
        key = ("sumproduct", tuple(id(t) for t in terms), dims)
        return self._cached(key, lambda: _einsum(terms, dims, log=False), tuple(terms))

    def product(self, term, ordinal):
        dims = [i for i, d in enumerate(term._pyro_dims) if d in ordinal]
        if not dims:
            return term
        names = "".join(d for d in term._pyro_dims if d not in ordinal)

        def compute():
            value = term
            for i in reversed(dims):
                value = value.prod(i)
            return _named(value, names)

        return self._cached(("product", id(term), frozenset(ordinal)), compute, (term,))

    def inv(self, term):
        return self._cached(
            ("inv", id(term)), lambda: _named(term.reciprocal(), term._pyro_dims), (term,)
        )


class LogRing(Ring):
    """Sum-product in log space: ``sum`` is ``logsumexp`` and ``product`` is ``+``.

    >>> a = torch.tensor([[0.0, 0.0], [1.0, 2.0]]); a._pyro_dims = "ab"
    >>> ring = LogRing()
    >>> [round(v, 4) for v in ring.sumproduct([a], "b").tolist()], ring.product(a, {"a"})
    ([0.6931, 2.3133], tensor([1., 2.]))
    """

    def sumproduct(self, terms, dims):
        dims = frozenset(dims)
        key = ("sumproduct", tuple(id(t) for t in terms), dims)
        return self._cached(key, lambda: _einsum(terms, dims, log=True), tuple(terms))

    def product(self, term, ordinal):
        dims = [i for i, d in enumerate(term._pyro_dims) if d in ordinal]
        if not dims:
            return term
        names = "".join(d for d in term._pyro_dims if d not in ordinal)
        return self._cached(
            ("product", id(term), frozenset(ordinal)),
            lambda: _named(term.sum(dims), names),
            (term,),
        )

    def inv(self, term):
        return self._cached(("inv", id(term)), lambda: _named(-term, term._pyro_dims), (term,))


def _einsum(terms: List[torch.Tensor], dims: FrozenSet[str], log: bool) -> torch.Tensor:
    """Product of ``terms`` summed over ``dims`` (log space: sum of logs, logsumexp)."""
    sizes = _dims_of(terms)
    output = "".join(sorted(d for d in sizes if d not in dims))
    if not log:
        equation = ",".join(t._pyro_dims for t in terms) + "->" + output
        return _named(torch.einsum(equation, *terms), output)
    # Log space: shift each term by its max so exp() stays finite, as opt_einsum's log
    # backends do; a -inf max (an impossible term) is shifted by 0.
    shifts, scaled = [], []
    for term in terms:
        shift = term.detach().amax() if term.numel() else term.new_zeros(())
        shift = torch.where(torch.isfinite(shift), shift, torch.zeros_like(shift))
        shifts.append(shift)
        scaled.append((term - shift).exp())
    equation = ",".join(t._pyro_dims for t in terms) + "->" + output
    result = torch.einsum(equation, *scaled).log() + sum(shifts)
    return _named(result, output)


class _BackendRing(LogRing):
    """A ``LogRing`` whose ``sumproduct`` runs through an einsum backend with a backward
    pass, and whose ``product`` passes that pass's messages back across the plates."""

    _einsum = None  # the backend's einsum, set by each subclass

    def sumproduct(self, terms, dims):
        dims = frozenset(dims)
        key = ("sumproduct", tuple(id(t) for t in terms), dims)

        def compute():
            sizes = _dims_of(terms)
            output = "".join(sorted(d for d in sizes if d not in dims))
            equation = ",".join(t._pyro_dims for t in terms) + "->" + output
            return _named(type(self)._einsum(equation, *terms), output)

        return self._cached(key, compute, tuple(terms))

    def product(self, term, ordinal):
        result = super().product(term, ordinal)
        if result is not term and adjoint.requires_backward(term):
            result._pyro_backward = self._product_backward(term, result)
        return result


class _SampleProductBackward(adjoint.Backward):
    """A sample of the product's dims holds for every element of the plates multiplied
    out: it is broadcast along them before the term's own step."""

    def __init__(self, term: torch.Tensor, result: torch.Tensor):
        self.term = term
        self.plates = "".join(d for d in term._pyro_dims if d not in result._pyro_dims)

    def process(self, message):
        if message is None:
            return [(self.term._pyro_backward, None)]
        sizes = dict(zip(self.term._pyro_dims, self.term.shape))
        plates = _named(message.new_zeros([sizes[d] for d in self.plates]), self.plates)
        rows = []
        for row in message:
            rows.append(_named(row, message._pyro_dims[1:]))
        batch = message._pyro_dims[1:] + "".join(
            d for d in self.plates if d not in message._pyro_dims
        )
        rows = packed.broadcast_all(*rows, plates, dims=batch)[:-1]
        sample = torch.stack(rows)
        sample._pyro_dims = adjoint.SAMPLE_SYMBOL + batch
        sample._pyro_sample_dims = message._pyro_sample_dims
        return [(self.term._pyro_backward, sample)]


class _MarginalProductBackward(adjoint.Backward):
    """The marginal of the product's dims, repeated along the plates multiplied out (and
    laid out like the term, as marginal messages are positional)."""

    def __init__(self, term: torch.Tensor, result: torch.Tensor):
        self.term, self.dims = term, result._pyro_dims

    def process(self, message):
        if message is None:
            message = self.term.new_zeros([])
            dims = ""
        else:
            dims = self.dims
        message = _named(message, dims)
        layout = _named(self.term.detach(), self.term._pyro_dims)
        return [
            (
                self.term._pyro_backward,
                packed.broadcast_all(message, layout, dims=self.term._pyro_dims)[0],
            )
        ]


class SampleRing(_BackendRing):
    """``LogRing`` whose backward pass draws the summed dims from their exact posterior.

    >>> from pyrolite.ops.einsum.adjoint import backward, backward_result, require_backward
    >>> x = torch.tensor([[0.0, -1e9], [-1e9, 0.0]]); x._pyro_dims = "ia"; require_backward(x)
    >>> ring = SampleRing(dim_to_size={"i": 2, "a": 2})
    >>> backward(ring.sumproduct([x], "a"))
    >>> backward_result(x).tolist(), backward_result(x)._pyro_dims
    ([[0, 1]], ' i')
    """

    _einsum = staticmethod(torch_sample.einsum)
    _product_backward = _SampleProductBackward


class MapRing(_BackendRing):
    """Max-product in log space: ``sumproduct`` maximizes over the summed dims, and its
    backward pass gives the maximizing values.

    >>> from pyrolite.ops.einsum.adjoint import backward, backward_result, require_backward
    >>> x = torch.tensor([[0.0, 2.0], [3.0, 1.0]]); x._pyro_dims = "ab"; require_backward(x)
    >>> root = MapRing().sumproduct([x], "ab"); backward(root)
    >>> float(root), backward_result(x).tolist()
    (3.0, [1, 0])
    """

    _einsum = staticmethod(torch_map.einsum)
    _product_backward = _SampleProductBackward


class MarginalRing(_BackendRing):
    """``LogRing`` whose backward pass gives each marked term the log-marginal of its dims.

    >>> from pyrolite.ops.einsum.adjoint import backward, backward_result, require_backward
    >>> x = torch.log(torch.tensor([[1.0, 2.0], [3.0, 4.0]])); x._pyro_dims = "ab"
    >>> require_backward(x)
    >>> y = torch.zeros(2); y._pyro_dims = "b"; require_backward(y)
    >>> backward(MarginalRing().sumproduct([x, y], "ab"))
    >>> [round(v, 4) for v in backward_result(y).exp().tolist()]
    [4.0, 6.0]
    """

    _einsum = staticmethod(torch_marginal.einsum)
    _product_backward = _MarginalProductBackward


BACKEND_TO_RING = {"torch": LinearRing}
for _name, _ring in [
    ("torch_log", LogRing),
    ("torch_map", MapRing),
    ("torch_sample", SampleRing),
    ("torch_marginal", MarginalRing),
]:
    BACKEND_TO_RING["pyrolite.ops.einsum." + _name] = _ring
    BACKEND_TO_RING["pyro.ops.einsum." + _name] = _ring

__all__ = [
    "BACKEND_TO_RING",
    "LinearRing",
    "LogRing",
    "MapRing",
    "MarginalRing",
    "Ring",
    "SampleRing",
]
