"""Distributions for pyrolite models and guides: torch's families with Pyro's mixin methods,
plus Delta, Unit, ImproperUniform, MaskedDistribution, MixtureGeneral, Empirical and
DiscreteHMM.

>>> import pyrolite.distributions as dist
>>> dist.Normal(0.0, 1.0).expand_by([3]).to_event(1).log_prob(dist.Normal(0.0, 1.0).mean.expand(3))
tensor(-2.7568)
"""

from torch.distributions import biject_to, kl_divergence, register_kl, transform_to

from pyrolite.distributions import constraints, transforms
from pyrolite.distributions.conditional import (
    ConditionalDistribution,
    ConditionalTransformedDistribution,
)
from pyrolite.distributions.delta import Delta
from pyrolite.distributions.empirical import Empirical
from pyrolite.distributions.hmm import DiscreteHMM
from pyrolite.distributions.improper_uniform import ImproperUniform
from pyrolite.distributions.masked import MaskedDistribution
from pyrolite.distributions.mixture import MixtureGeneral
from pyrolite.distributions.score_parts import ScoreParts
from pyrolite.distributions.torch import (
    Bernoulli,
    Beta,
    Binomial,
    Categorical,
    Cauchy,
    Chi2,
    ContinuousBernoulli,
    Dirichlet,
    Exponential,
    ExponentialFamily,
    FisherSnedecor,
    Gamma,
    GeneralizedPareto,
    Geometric,
    Gumbel,
    HalfCauchy,
    HalfNormal,
    Independent,
    InverseGamma,
    Kumaraswamy,
    Laplace,
    LKJCholesky,
    LogisticNormal,
    LogNormal,
    LowRankMultivariateNormal,
    MixtureSameFamily,
    Multinomial,
    MultivariateNormal,
    NegativeBinomial,
    Normal,
    OneHotCategorical,
    OneHotCategoricalStraightThrough,
    Pareto,
    Poisson,
    RelaxedBernoulli,
    RelaxedOneHotCategorical,
    StudentT,
    TransformedDistribution,
    Uniform,
    VonMises,
    Weibull,
    Wishart,
)
from pyrolite.distributions.torch_distribution import TorchDistribution, TorchDistributionMixin
from pyrolite.distributions.transforms import (
    ComposeTransformModule,
    ConditionalTransform,
    ConditionalTransformModule,
    TransformModule,
)
from pyrolite.distributions.unit import Unit
from pyrolite.distributions.util import (
    broadcast_shape,
    enable_validation,
    is_identically_one,
    is_identically_zero,
    is_validation_enabled,
    scale_and_mask,
    sum_rightmost,
    validation_enabled,
)

# Registers the KL rules for Independent, MaskedDistribution and Delta.
from pyrolite.distributions import kl  # isort: skip
from pyrolite.distributions.distribution import Distribution  # isort: skip

__all__ = [
    "Bernoulli",
    "Beta",
    "Binomial",
    "Categorical",
    "Cauchy",
    "Chi2",
    "ComposeTransformModule",
    "ConditionalDistribution",
    "ConditionalTransform",
    "ConditionalTransformModule",
    "ConditionalTransformedDistribution",
    "ContinuousBernoulli",
    "Delta",
    "Dirichlet",
    "DiscreteHMM",
    "Distribution",
    "Empirical",
    "Exponential",
    "ExponentialFamily",
    "FisherSnedecor",
    "Gamma",
    "GeneralizedPareto",
    "Geometric",
    "Gumbel",
    "HalfCauchy",
    "HalfNormal",
    "ImproperUniform",
    "Independent",
    "InverseGamma",
    "Kumaraswamy",
    "LKJCholesky",
    "Laplace",
    "LogNormal",
    "LogisticNormal",
    "LowRankMultivariateNormal",
    "MaskedDistribution",
    "MixtureGeneral",
    "MixtureSameFamily",
    "Multinomial",
    "MultivariateNormal",
    "NegativeBinomial",
    "Normal",
    "OneHotCategorical",
    "OneHotCategoricalStraightThrough",
    "Pareto",
    "Poisson",
    "RelaxedBernoulli",
    "RelaxedOneHotCategorical",
    "ScoreParts",
    "StudentT",
    "TorchDistribution",
    "TorchDistributionMixin",
    "TransformModule",
    "TransformedDistribution",
    "Uniform",
    "Unit",
    "VonMises",
    "Weibull",
    "Wishart",
    "biject_to",
    "broadcast_shape",
    "constraints",
    "enable_validation",
    "is_identically_one",
    "is_identically_zero",
    "is_validation_enabled",
    "kl",
    "kl_divergence",
    "register_kl",
    "scale_and_mask",
    "sum_rightmost",
    "transform_to",
    "transforms",
    "validation_enabled",
]
