"""Autoguides: guides built automatically from a model, and their init strategies.

``AutoDelta`` and ``AutoNormal`` keep params per latent site; ``AutoDiagonalNormal``,
``AutoMultivariateNormal``, ``AutoLowRankMultivariateNormal`` and
``AutoLaplaceApproximation`` keep one flat vector over all latents;
``AutoGuideList`` combines guides.
"""

from .continuous import (
    AutoContinuous,
    AutoDiagonalNormal,
    AutoLaplaceApproximation,
    AutoLowRankMultivariateNormal,
    AutoMultivariateNormal,
)
from .guides import AutoCallable, AutoDelta, AutoGuide, AutoGuideList, AutoNormal
from .initialization import (
    InitMessenger,
    init_to_feasible,
    init_to_mean,
    init_to_median,
    init_to_sample,
    init_to_uniform,
    init_to_value,
)

__all__ = [
    "AutoCallable",
    "AutoContinuous",
    "AutoDelta",
    "AutoDiagonalNormal",
    "AutoGuide",
    "AutoGuideList",
    "AutoLaplaceApproximation",
    "AutoLowRankMultivariateNormal",
    "AutoMultivariateNormal",
    "AutoNormal",
    "InitMessenger",
    "init_to_feasible",
    "init_to_mean",
    "init_to_median",
    "init_to_sample",
    "init_to_uniform",
    "init_to_value",
]
