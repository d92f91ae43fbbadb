"""Register ``biject_to`` / ``transform_to`` for the constraints Pyro adds beyond those in
``transforms/__init__.py``: ``corr_matrix``, ``softplus_lower_cholesky``, ``sphere``.

(``corr_cholesky_constraint`` is torch's ``corr_cholesky``, which torch already registers.)
Importing this module performs the registration; ``integer`` has no transform.
"""

from torch.distributions import biject_to, transform_to
from torch.distributions.transforms import ComposeTransform, CorrCholeskyTransform

from pyrolite.distributions import constraints
from pyrolite.distributions.transforms.cholesky import (
    CorrMatrixCholeskyTransform,
    SoftplusLowerCholeskyTransform,
)
from pyrolite.distributions.transforms.normalize import Normalize


def _corr_matrix_transform(constraint):
    # Unconstrained vector -> Cholesky factor of a correlation matrix -> the matrix.
    return ComposeTransform([CorrCholeskyTransform(), CorrMatrixCholeskyTransform().inv])


def _softplus_lower_cholesky_transform(constraint):
    return SoftplusLowerCholeskyTransform()


def _sphere_transform(constraint):
    return Normalize()


biject_to.register(constraints._CorrMatrix, _corr_matrix_transform)
transform_to.register(constraints._CorrMatrix, _corr_matrix_transform)
# Not bijective (they drop coordinates), so only ``transform_to``, as in Pyro.
transform_to.register(constraints._SoftplusLowerCholesky, _softplus_lower_cholesky_transform)
transform_to.register(constraints._Sphere, _sphere_transform)
