"""torch's constraints, plus the few Pyro adds: ``softplus_positive``, ``ordered_vector``,
``positive_ordered_vector``, ``unit_lower_cholesky``. Their bijections live in ``transforms``.
"""

import torch
from torch.distributions import constraints as _torch_constraints
from torch.distributions.constraints import *  # noqa: F403

__all__ = list(_torch_constraints.__all__) + [
    "ordered_vector",
    "positive_ordered_vector",
    "softplus_positive",
    "unit_lower_cholesky",
]


class _SoftplusPositive(_torch_constraints._GreaterThan):
    """Positive reals, mapped from the unconstrained space by softplus instead of exp."""

    def __init__(self):
        super().__init__(lower_bound=0.0)


class _OrderedVector(_torch_constraints.Constraint):
    """Real vectors whose entries strictly increase along the last dim."""

    event_dim = 1

    def check(self, value: torch.Tensor) -> torch.Tensor:
        return (value[..., 1:] > value[..., :-1]).all(-1)


class _PositiveOrderedVector(_OrderedVector):
    """Positive real vectors whose entries strictly increase along the last dim."""

    def check(self, value: torch.Tensor) -> torch.Tensor:
        return super().check(value) & (value > 0).all(-1)


class _UnitLowerCholesky(_torch_constraints.Constraint):
    """Lower-triangular square matrices with ones on the diagonal."""

    event_dim = 2

    def check(self, value: torch.Tensor) -> torch.Tensor:
        lower = (value.tril() == value).flatten(-2).all(-1)
        unit_diagonal = (value.diagonal(dim1=-2, dim2=-1) == 1).all(-1)
        return lower & unit_diagonal


softplus_positive = _SoftplusPositive()
ordered_vector = _OrderedVector()
positive_ordered_vector = _PositiveOrderedVector()
unit_lower_cholesky = _UnitLowerCholesky()


def _register_codecs() -> None:
    # Params constrained by these can then be saved in checkpoints (plain data only).
    from ..params.constraint_codec import register_constraint_codec

    for name in ("softplus_positive", "ordered_vector", "positive_ordered_vector"):
        register_constraint_codec(name, globals()[name])
    register_constraint_codec("unit_lower_cholesky", unit_lower_cholesky)


_register_codecs()
