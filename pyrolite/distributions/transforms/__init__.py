"""torch's transforms, Pyro's transforms and flows, and the bijections for the constraints
pyrolite adds.

Importing this module registers those bijections with torch's ``biject_to`` and
``transform_to`` registries (only for pyrolite's own constraint classes).
"""

import torch
from torch.distributions import biject_to, transform_to
from torch.distributions import transforms as _torch_transforms
from torch.distributions.transforms import *  # noqa: F403

from pyrolite.distributions import constraints
from pyrolite.distributions.transforms.cholesky import UnitLowerCholeskyTransform
from pyrolite.distributions.transforms.conditional import (
    ConditionalTransform,
    ConditionalTransformModule,
)
from pyrolite.distributions.transforms.module import ComposeTransformModule, TransformModule
from pyrolite.distributions.transforms.ordered import OrderedTransform

__all__ = list(_torch_transforms.__all__) + [
    "ComposeTransformModule",
    "ConditionalTransform",
    "ConditionalTransformModule",
    "OrderedTransform",
    "TransformModule",
    "UnitLowerCholeskyTransform",
]


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
