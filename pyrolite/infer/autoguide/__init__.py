"""Autoguides: guides built automatically from a model, and their init strategies.

``AutoDelta`` and ``AutoNormal`` keep params per latent site; ``AutoDiagonalNormal``,
``AutoMultivariateNormal``, ``AutoLowRankMultivariateNormal`` and
``AutoLaplaceApproximation`` keep one flat vector over all latents, and so do the flows
``AutoNormalizingFlow`` and ``AutoIAFNormal``; ``AutoStructured`` follows the model's
dependencies, and ``AutoGaussian`` is a Gaussian with the model's factor graph;
``AutoGuideList`` combines guides. ``AutoDiscreteParallel`` guides discrete sites for
enumeration, and the effect-based ``AutoMessenger`` family (``AutoNormalMessenger``, ...)
runs the model inside the guide. Every autoguide is a ``PyroModule``.
"""

from .continuous import (
    AutoContinuous,
    AutoDiagonalNormal,
    AutoLaplaceApproximation,
    AutoLowRankMultivariateNormal,
    AutoMultivariateNormal,
)
from .discrete import AutoDiscreteParallel
from .effect import (
    AutoHierarchicalNormalMessenger,
    AutoMessenger,
    AutoNormalMessenger,
    AutoRegressiveMessenger,
)
from .flows import AutoIAFNormal, AutoNormalizingFlow
from .gaussian import AutoGaussian, AutoGaussianDense
from .guides import AutoCallable, AutoDelta, AutoGuide, AutoGuideList, AutoNormal
from .initialization import (
    InitMessenger,
    init_to_feasible,
    init_to_generated,
    init_to_mean,
    init_to_median,
    init_to_sample,
    init_to_uniform,
    init_to_value,
)
from .structured import AutoStructured
from .utils import mean_field_entropy

__all__ = [
    "AutoCallable",
    "AutoContinuous",
    "AutoDelta",
    "AutoDiagonalNormal",
    "AutoDiscreteParallel",
    "AutoGaussian",
    "AutoGaussianDense",
    "AutoGuide",
    "AutoGuideList",
    "AutoHierarchicalNormalMessenger",
    "AutoIAFNormal",
    "AutoLaplaceApproximation",
    "AutoLowRankMultivariateNormal",
    "AutoMessenger",
    "AutoMultivariateNormal",
    "AutoNormal",
    "AutoNormalMessenger",
    "AutoNormalizingFlow",
    "AutoRegressiveMessenger",
    "AutoStructured",
    "InitMessenger",
    "init_to_feasible",
    "init_to_generated",
    "init_to_mean",
    "init_to_median",
    "init_to_sample",
    "init_to_uniform",
    "init_to_value",
    "mean_field_entropy",
]
