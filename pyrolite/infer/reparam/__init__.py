"""Reparameterizers (``poutine.reparam``'s config values) and strategies that choose them."""

from .conjugate import ConjugateReparam
from .discrete_cosine import DiscreteCosineReparam
from .haar import HaarReparam
from .hmm import LinearHMMReparam
from .loc_scale import LocScaleReparam
from .neutra import NeuTraReparam
from .projected_normal import ProjectedNormalReparam
from .reparam import Reparam
from .softmax import GumbelSoftmaxReparam
from .split import SplitReparam
from .stable import LatentStableReparam, StableReparam, SymmetricStableReparam
from .strategies import AutoReparam, MinimalReparam, Strategy
from .structured import StructuredReparam
from .studentt import StudentTReparam
from .transform import TransformReparam
from .unit_jacobian import UnitJacobianReparam

__all__ = [
    "AutoReparam",
    "ConjugateReparam",
    "DiscreteCosineReparam",
    "GumbelSoftmaxReparam",
    "HaarReparam",
    "LatentStableReparam",
    "LinearHMMReparam",
    "LocScaleReparam",
    "MinimalReparam",
    "NeuTraReparam",
    "ProjectedNormalReparam",
    "SplitReparam",
    "StableReparam",
    "StructuredReparam",
    "StudentTReparam",
    "SymmetricStableReparam",
    "TransformReparam",
    "UnitJacobianReparam",
]
