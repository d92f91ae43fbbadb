"""Einsum with pluggable semirings (as ``pyro.ops.einsum``): :func:`contract` and
:func:`contract_expression` are ``opt_einsum``'s, run with one of the backends here
(``backend="pyrolite.ops.einsum.torch_log"``, ``torch_map``, ``torch_sample``,
``torch_marginal``; Pyro's ``"pyro.ops.einsum.*"`` names are accepted too) or any
other ``opt_einsum`` backend; ``adjoint`` holds the backward passes.
"""

from typing import Dict, Sequence, Tuple

import opt_einsum
import torch

from . import adjoint, torch_log, torch_map, torch_marginal, torch_sample

_PYRO_PREFIX = "pyro.ops.einsum."
_PATH_CACHE: Dict[Tuple, object] = {}


def _backend(name: str) -> str:
    # User code written for Pyro names Pyro's backend modules; ours have the same names.
    if isinstance(name, str) and name.startswith(_PYRO_PREFIX):
        return __name__ + "." + name[len(_PYRO_PREFIX) :]
    return name


def contract_expression(equation: str, *shapes: Sequence[int], **kwargs):
    """``opt_einsum.contract_expression``: a reusable contraction for operands of these
    ``shapes``; pass ``backend=`` when calling it (as with opt_einsum).

    >>> expr = contract_expression("ab,b->a", (2, 3), (3,))
    >>> x, y = torch.zeros(2, 3), torch.zeros(3)
    >>> expr(x, y, backend="pyrolite.ops.einsum.torch_log")
    tensor([1.0986, 1.0986])
    """
    expression = opt_einsum.contract_expression(equation, *shapes, **kwargs)
    return _Expression(expression)


class _Expression:
    """A ``ContractExpression`` whose ``backend=`` accepts Pyro's backend names."""

    def __init__(self, expression):
        self._expression = expression

    def __call__(self, *operands, **kwargs):
        if "backend" in kwargs:
            kwargs["backend"] = _backend(kwargs["backend"])
        return self._expression(*operands, **kwargs)

    def __getattr__(self, name):
        return getattr(self._expression, name)

    def __repr__(self) -> str:
        return repr(self._expression)


def contract(equation: str, *operands: torch.Tensor, **kwargs) -> torch.Tensor:
    """``opt_einsum.contract(equation, *operands, backend=...)``; the contraction path is
    cached per (equation, shapes, options) unless ``cache_path=False``. The default
    backend is ``"torch"`` (Pyro's is ``"numpy"``, which turns tensors into arrays).

    >>> x, y = torch.zeros(2, 3), torch.zeros(3)
    >>> contract("ab,b->a", x, y, backend="pyro.ops.einsum.torch_log")
    tensor([1.0986, 1.0986])
    >>> contract("ab,b->a", x.exp(), y.exp(), backend="torch")
    tensor([3., 3.])
    """
    backend = _backend(kwargs.pop("backend", "torch"))
    cache_path = kwargs.pop("cache_path", True)
    if not cache_path:
        return opt_einsum.contract(equation, *operands, backend=backend, **kwargs)
    out = kwargs.pop("out", None)
    shapes = tuple(tuple(x.shape) for x in operands)
    key = (equation, shapes, tuple(sorted(kwargs.items())))
    try:
        expression = _PATH_CACHE.get(key)
    except TypeError:  # an unhashable option (an explicit path list): plan afresh
        key, expression = None, None
    if expression is None:
        expression = opt_einsum.contract_expression(equation, *shapes, **kwargs)
        if key is not None:
            _PATH_CACHE[key] = expression
    return expression(*operands, backend=backend, out=out)


__all__ = [
    "adjoint",
    "contract",
    "contract_expression",
    "torch_log",
    "torch_map",
    "torch_marginal",
    "torch_sample",
]
