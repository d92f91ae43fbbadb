"""Tensor-level operations behind the estimators: ``jit`` (TorchScript-compiled loss
functions of the ParamStore)."""

from . import jit

__all__ = ["jit"]
