"""Tensor-level operations behind the estimators: ``jit`` (TorchScript-compiled loss
functions of the ParamStore), ``contract`` (sum-product and max-product over plated factor
graphs, by tensor variable elimination with ``opt_einsum`` paths; ``einsum`` in log space),
``indexing`` (``Vindex``/``vindex``: broadcasting advanced indexing for enumerated values),
``scan`` (log-space matrix products over time in O(log T) depth) and ``provenance``."""

from . import contract, indexing, jit, provenance, scan
from .contract import einsum

__all__ = ["contract", "einsum", "indexing", "jit", "provenance", "scan"]
