"""Provenance tracking: which named inputs a tensor was computed from.

``track_provenance(x, {"z"})`` marks ``x``; every torch operation on a marked tensor
returns a tensor marked with the union of its inputs' marks, so ``get_provenance(y)``
names the marked tensors ``y`` depends on through data flow (not through Python
control flow, nor through Python numbers). ``TraceGraph_ELBO`` uses it once per trace
structure to find which log-prob terms depend on each non-reparameterized draw.

>>> import torch
>>> x = track_provenance(torch.tensor(1.0), frozenset({"x"}))
>>> y = track_provenance(torch.tensor(2.0), frozenset({"y"}))
>>> sorted(get_provenance(x * 3 + y.exp()))
['x', 'y']
>>> get_provenance(torch.ones(2) * 2)
frozenset()
>>> type(detach_provenance(x * 3)) is torch.Tensor
True
"""

from typing import Any, FrozenSet, Tuple

import torch

Provenance = FrozenSet[Any]
_EMPTY: Provenance = frozenset()


class ProvenanceTensor(torch.Tensor):
    """A tensor that carries ``provenance`` through every torch operation."""

    provenance: Provenance = _EMPTY

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        provenance = _collect(args, _collect(kwargs.values(), _EMPTY))
        result = super().__torch_function__(func, types, args, kwargs)
        return _mark(result, provenance) if provenance else result


def _collect(values, found: Provenance) -> Provenance:
    for value in values:
        if isinstance(value, ProvenanceTensor):
            if value.provenance:
                found = found | value.provenance
        elif isinstance(value, (tuple, list)):
            found = _collect(value, found)
        elif isinstance(value, dict):
            found = _collect(value.values(), found)
    return found


def _mark(result, provenance: Provenance):
    if isinstance(result, ProvenanceTensor):
        result.provenance = result.provenance | provenance
    elif isinstance(result, torch.Tensor):
        result = track_provenance(result, provenance)
    elif isinstance(result, (tuple, list)) and not hasattr(result, "_fields"):
        result = type(result)(_mark(r, provenance) for r in result)
    return result


def track_provenance(x, provenance: Provenance):
    """``x`` (a tensor, or a tuple/list/dict of them) marked with ``provenance`` too."""
    if isinstance(x, torch.Tensor):
        marked = x.as_subclass(ProvenanceTensor)  # an alias: x keeps its own marks
        marked.provenance = get_provenance(x) | frozenset(provenance)
        return marked
    if isinstance(x, (tuple, list)):
        return type(x)(track_provenance(v, provenance) for v in x)
    if isinstance(x, dict):
        return {k: track_provenance(v, provenance) for k, v in x.items()}
    return x


def get_provenance(x) -> Provenance:
    """The marks ``x`` carries (the union over a tuple/list/dict of tensors)."""
    if isinstance(x, ProvenanceTensor):
        return x.provenance
    if isinstance(x, (tuple, list, dict)):
        return _collect(x.values() if isinstance(x, dict) else x, _EMPTY)
    return _EMPTY


def detach_provenance(x):
    """``x`` as a plain tensor (sharing storage), its marks dropped."""
    if isinstance(x, ProvenanceTensor):
        return x.as_subclass(torch.Tensor)
    if isinstance(x, (tuple, list)):
        return type(x)(detach_provenance(v) for v in x)
    if isinstance(x, dict):
        return {k: detach_provenance(v) for k, v in x.items()}
    return x


def extract_provenance(x) -> Tuple[Any, Provenance]:
    """``(detach_provenance(x), get_provenance(x))``: the plain value and its marks.

    >>> x = track_provenance(torch.tensor(1.0), frozenset({"x"}))
    >>> value, marks = extract_provenance((x * 2, 3))
    >>> type(value[0]) is torch.Tensor, sorted(marks)
    (True, ['x'])
    """
    return detach_provenance(x), get_provenance(x)


__all__ = [
    "ProvenanceTensor",
    "detach_provenance",
    "extract_provenance",
    "get_provenance",
    "track_provenance",
]
