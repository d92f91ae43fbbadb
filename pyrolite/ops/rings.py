"""Tensor rings (as ``pyro.ops.rings``): the sum and product used by plated contraction.

A ring works on packed tensors (``pyrolite.ops.packed``): ``sumproduct`` multiplies terms
and sums out named dims, ``product`` multiplies out plate dims, and ``broadcast``,
``inv``, ``global_local`` follow from those. ``LinearRing`` is ordinary arithmetic;
``LogRing`` the same in log space (sum is ``logsumexp``, product is ``+``).
"""

from abc import ABC, abstractmethod
from typing import Dict, FrozenSet, Iterable, List, Optional, Tuple

import torch

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


__all__ = ["LinearRing", "LogRing", "Ring"]
