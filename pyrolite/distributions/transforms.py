"""torch's transforms, plus the bijections for the constraints pyrolite adds.

Importing this module registers those bijections with torch's ``biject_to`` and
``transform_to`` registries (only for pyrolite's own constraint classes).
"""

import torch
from torch.distributions import biject_to, transform_to
from torch.distributions import transforms as _torch_transforms
from torch.distributions.transforms import *  # noqa: F403

from pyrolite.distributions import constraints

__all__ = list(_torch_transforms.__all__) + ["OrderedTransform", "UnitLowerCholeskyTransform"]


class OrderedTransform(_torch_transforms.Transform):
    """Map a real vector to an increasing one: ``y_0 = x_0``, ``y_i = y_{i-1} + exp(x_i)``.

    >>> OrderedTransform()(torch.tensor([1.0, 0.0, 0.0]))
    tensor([1., 2., 3.])
    """

    domain = constraints.real_vector
    codomain = constraints.ordered_vector
    bijective = True

    def __eq__(self, other):
        return isinstance(other, OrderedTransform)

    def _call(self, x):
        return torch.cat([x[..., :1], x[..., 1:].exp()], -1).cumsum(-1)

    def _inverse(self, y):
        return torch.cat([y[..., :1], (y[..., 1:] - y[..., :-1]).log()], -1)

    def log_abs_det_jacobian(self, x, y):
        return x[..., 1:].sum(-1)


class UnitLowerCholeskyTransform(_torch_transforms.Transform):
    """Keep the strictly lower triangle of a square matrix and put ones on the diagonal."""

    domain = constraints.independent(constraints.real, 2)
    codomain = constraints.unit_lower_cholesky

    def __eq__(self, other):
        return isinstance(other, UnitLowerCholeskyTransform)

    def _call(self, x):
        return x.tril(-1) + torch.eye(x.size(-1), dtype=x.dtype, device=x.device)

    def _inverse(self, y):
        return y.tril(-1)

    def log_abs_det_jacobian(self, x, y):
        return x.new_zeros(x.shape[:-2])


def _softplus_positive_transform(constraint):
    return _torch_transforms.SoftplusTransform()


def _ordered_transform(constraint):
    return OrderedTransform()


def _positive_ordered_transform(constraint):
    ordered = OrderedTransform()
    return _torch_transforms.ComposeTransform([ordered, _torch_transforms.ExpTransform()])


def _unit_lower_cholesky_transform(constraint):
    return UnitLowerCholeskyTransform()


for _registry in (biject_to, transform_to):
    _registry.register(constraints._SoftplusPositive, _softplus_positive_transform)
    _registry.register(constraints._OrderedVector, _ordered_transform)
    _registry.register(constraints._PositiveOrderedVector, _positive_ordered_transform)
transform_to.register(constraints._UnitLowerCholesky, _unit_lower_cholesky_transform)
