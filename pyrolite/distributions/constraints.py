"""torch's constraints, plus the ones Pyro adds: ``softplus_positive``, ``ordered_vector``,
``positive_ordered_vector``, ``unit_lower_cholesky``, ``corr_matrix``, ``integer``, ``sphere``,
``softplus_lower_cholesky`` (and ``corr_cholesky_constraint``, torch's ``corr_cholesky``).
Their bijections live in ``transforms``.
"""

import torch
from torch.distributions import constraints as _torch_constraints
from torch.distributions.constraints import *  # noqa: F403

__all__ = list(_torch_constraints.__all__) + [
    "corr_cholesky_constraint",
    "corr_matrix",
    "integer",
    "ordered_vector",
    "positive_ordered_vector",
    "softplus_lower_cholesky",
    "softplus_positive",
    "sphere",
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


class _CorrMatrix(_torch_constraints.Constraint):
    """Correlation matrices: symmetric positive definite with ones on the diagonal."""

    event_dim = 2

    def check(self, value: torch.Tensor) -> torch.Tensor:
        unit_diagonal = torch.isclose(value.diagonal(dim1=-2, dim2=-1), value.new_ones(())).all(-1)
        return _torch_constraints.positive_definite.check(value) & unit_diagonal


class _Integer(_torch_constraints.Constraint):
    """Integer values (of any dtype); infinities and NaN are not."""

    is_discrete = True

    def check(self, value: torch.Tensor) -> torch.Tensor:
        return value % 1 == 0

    def __repr__(self):
        return "Integer"


class _Sphere(_torch_constraints.Constraint):
    """Vectors of Euclidean norm 1 (to ``10 eps sqrt(dim)``, ``eps`` of the dtype)."""

    event_dim = 1

    def check(self, value: torch.Tensor) -> torch.Tensor:
        tolerance = 10 * torch.finfo(value.dtype).eps * value.size(-1) ** 0.5
        return (torch.linalg.vector_norm(value, dim=-1) - 1).abs() <= tolerance

    def __repr__(self):
        return "Sphere"


class _SoftplusLowerCholesky(_torch_constraints._LowerCholesky):
    """Lower Cholesky factors, mapped from square matrices by a softplus on the diagonal."""


corr_cholesky_constraint = _torch_constraints.corr_cholesky
corr_matrix = _CorrMatrix()
integer = _Integer()
sphere = _Sphere()
softplus_lower_cholesky = _SoftplusLowerCholesky()
softplus_positive = _SoftplusPositive()
ordered_vector = _OrderedVector()
positive_ordered_vector = _PositiveOrderedVector()
unit_lower_cholesky = _UnitLowerCholesky()


def _register_codecs() -> None:
    # Params constrained by these can then be saved in checkpoints (plain data only).
    from ..params.constraint_codec import register_constraint_codec

    for name in (
        "softplus_positive",
        "ordered_vector",
        "positive_ordered_vector",
        "corr_matrix",
        "integer",
        "sphere",
        "softplus_lower_cholesky",
    ):
        register_constraint_codec(name, globals()[name])
    register_constraint_codec("unit_lower_cholesky", unit_lower_cholesky)


_register_codecs()
