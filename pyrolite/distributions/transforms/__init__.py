"""torch's transforms, Pyro's transforms and flows, and the bijections for the constraints
pyrolite adds.

Importing this module registers those bijections with torch's ``biject_to`` and
``transform_to`` registries (only for pyrolite's own constraint classes).
"""

import torch
from torch.distributions import biject_to, transform_to
from torch.distributions import transforms as _torch_transforms
from torch.distributions.transforms import *  # noqa: F403

# Registers biject_to/transform_to for corr_matrix, softplus_lower_cholesky and sphere.
import pyrolite.distributions.transforms.registrations  # noqa: F401
from pyrolite.distributions import constraints
from pyrolite.distributions.transforms.affine_autoregressive import (
    AffineAutoregressive,
    ConditionalAffineAutoregressive,
    affine_autoregressive,
    conditional_affine_autoregressive,
)
from pyrolite.distributions.transforms.affine_coupling import (
    AffineCoupling,
    ConditionalAffineCoupling,
    affine_coupling,
    conditional_affine_coupling,
)
from pyrolite.distributions.transforms.basic import (
    ELUTransform,
    LeakyReLUTransform,
    elu,
    leaky_relu,
)
from pyrolite.distributions.transforms.batchnorm import BatchNorm, batchnorm
from pyrolite.distributions.transforms.block_autoregressive import (
    BlockAutoregressive,
    block_autoregressive,
)
from pyrolite.distributions.transforms.cholesky import (
    CholeskyTransform,
    CorrLCholeskyTransform,
    CorrMatrixCholeskyTransform,
    SoftplusLowerCholeskyTransform,
    UnitLowerCholeskyTransform,
)
from pyrolite.distributions.transforms.conditional import (
    ConditionalTransform,
    ConditionalTransformModule,
)
from pyrolite.distributions.transforms.discrete_cosine import DiscreteCosineTransform
from pyrolite.distributions.transforms.generalized_channel_permute import (
    ConditionalGeneralizedChannelPermute,
    GeneralizedChannelPermute,
    conditional_generalized_channel_permute,
    generalized_channel_permute,
)
from pyrolite.distributions.transforms.haar import HaarTransform
from pyrolite.distributions.transforms.householder import (
    ConditionalHouseholder,
    Householder,
    conditional_householder,
    householder,
)
from pyrolite.distributions.transforms.lower_cholesky_affine import LowerCholeskyAffine
from pyrolite.distributions.transforms.matrix_exponential import (
    ConditionalMatrixExponential,
    MatrixExponential,
    conditional_matrix_exponential,
    matrix_exponential,
)
from pyrolite.distributions.transforms.module import ComposeTransformModule, TransformModule
from pyrolite.distributions.transforms.neural_autoregressive import (
    ConditionalNeuralAutoregressive,
    NeuralAutoregressive,
    conditional_neural_autoregressive,
    neural_autoregressive,
)
from pyrolite.distributions.transforms.normalize import Normalize
from pyrolite.distributions.transforms.ordered import OrderedTransform
from pyrolite.distributions.transforms.permute import Permute, permute
from pyrolite.distributions.transforms.planar import (
    ConditionalPlanar,
    Planar,
    conditional_planar,
    planar,
)
from pyrolite.distributions.transforms.polynomial import Polynomial, polynomial
from pyrolite.distributions.transforms.power import PositivePowerTransform
from pyrolite.distributions.transforms.radial import (
    ConditionalRadial,
    Radial,
    conditional_radial,
    radial,
)
from pyrolite.distributions.transforms.simplex_to_ordered import SimplexToOrderedTransform
from pyrolite.distributions.transforms.spline import (
    ConditionalSpline,
    Spline,
    conditional_spline,
    spline,
)
from pyrolite.distributions.transforms.spline_autoregressive import (
    ConditionalSplineAutoregressive,
    SplineAutoregressive,
    conditional_spline_autoregressive,
    spline_autoregressive,
)
from pyrolite.distributions.transforms.spline_coupling import SplineCoupling, spline_coupling
from pyrolite.distributions.transforms.sylvester import Sylvester, sylvester
from pyrolite.distributions.transforms.utils import iterated

__all__ = list(_torch_transforms.__all__) + [
    name
    for name, value in list(globals().items())
    if not name.startswith("_")
    and getattr(value, "__module__", "").startswith("pyrolite.distributions.transforms.")
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
