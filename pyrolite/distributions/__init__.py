"""Distributions for pyrolite models and guides: torch's families with Pyro's mixin methods,
plus Delta, Unit, ImproperUniform, MaskedDistribution, MixtureGeneral, Empirical and
DiscreteHMM.

>>> import pyrolite.distributions as dist
>>> dist.Normal(0.0, 1.0).expand_by([3]).to_event(1).log_prob(dist.Normal(0.0, 1.0).mean.expand(3))
tensor(-2.7568)
"""

from torch.distributions import biject_to, kl_divergence, register_kl, transform_to

from pyrolite.distributions import constraints, transforms
from pyrolite.distributions.affine_beta import AffineBeta
from pyrolite.distributions.asymmetric_laplace import AsymmetricLaplace, SoftAsymmetricLaplace
from pyrolite.distributions.coalescent import (
    CoalescentRateLikelihood,
    CoalescentTimes,
    CoalescentTimesWithRate,
)
from pyrolite.distributions.conditional import (
    ConditionalDistribution,
    ConditionalTransformedDistribution,
)
from pyrolite.distributions.conjugate import BetaBinomial, DirichletMultinomial, GammaPoisson
from pyrolite.distributions.delta import Delta
from pyrolite.distributions.diag_normal_mixture import (
    MixtureOfDiagNormals,
    MixtureOfDiagNormalsSharedCovariance,
)
from pyrolite.distributions.empirical import Empirical
from pyrolite.distributions.expanded import ExpandedDistribution
from pyrolite.distributions.extended import ExtendedBetaBinomial, ExtendedBinomial
from pyrolite.distributions.folded import FoldedDistribution
from pyrolite.distributions.gaussian_hmm import (
    GammaGaussianHMM,
    GaussianHMM,
    GaussianMRF,
    IndependentHMM,
    LinearHMM,
)
from pyrolite.distributions.gaussian_scale_mixture import GaussianScaleMixture
from pyrolite.distributions.grouped_normal_normal import GroupedNormalNormal
from pyrolite.distributions.hmm import DiscreteHMM
from pyrolite.distributions.improper_uniform import ImproperUniform
from pyrolite.distributions.lkj import LKJ, LKJCorrCholesky
from pyrolite.distributions.log_normal_negative_binomial import LogNormalNegativeBinomial
from pyrolite.distributions.logistic import Logistic, SkewLogistic
from pyrolite.distributions.masked import MaskedDistribution
from pyrolite.distributions.masked_mixture import MaskedMixture
from pyrolite.distributions.mixture import MixtureGeneral
from pyrolite.distributions.multivariate_normal_grads import (
    AVFMultivariateNormal,
    OMTMultivariateNormal,
)
from pyrolite.distributions.multivariate_studentt import MultivariateStudentT
from pyrolite.distributions.nan_masked import NanMaskedMultivariateNormal, NanMaskedNormal
from pyrolite.distributions.one_one_matching import OneOneMatching
from pyrolite.distributions.one_two_matching import OneTwoMatching
from pyrolite.distributions.ordered_logistic import OrderedLogistic
from pyrolite.distributions.polya_gamma import TruncatedPolyaGamma
from pyrolite.distributions.projected_normal import ProjectedNormal
from pyrolite.distributions.rejector import Rejector
from pyrolite.distributions.relaxed_straight_through import (
    RelaxedBernoulliStraightThrough,
    RelaxedOneHotCategoricalStraightThrough,
)
from pyrolite.distributions.score_parts import ScoreParts
from pyrolite.distributions.sine_bivariate_von_mises import SineBivariateVonMises
from pyrolite.distributions.sine_skewed import SineSkewed
from pyrolite.distributions.soft_laplace import SoftLaplace
from pyrolite.distributions.spanning_tree import SpanningTree
from pyrolite.distributions.stable import Stable, StableWithLogProb
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
from pyrolite.distributions.von_mises_3d import VonMises3D
from pyrolite.distributions.zero_inflated import (
    ZeroInflatedDistribution,
    ZeroInflatedNegativeBinomial,
    ZeroInflatedPoisson,
)

# Registers the KL rules for Independent, MaskedDistribution and Delta.
from pyrolite.distributions import kl  # isort: skip
from pyrolite.distributions.distribution import Distribution  # isort: skip

__all__ = [
    "AVFMultivariateNormal",
    "AffineBeta",
    "AsymmetricLaplace",
    "Bernoulli",
    "Beta",
    "BetaBinomial",
    "Binomial",
    "Categorical",
    "Cauchy",
    "Chi2",
    "CoalescentRateLikelihood",
    "CoalescentTimes",
    "CoalescentTimesWithRate",
    "ComposeTransformModule",
    "ConditionalDistribution",
    "ConditionalTransform",
    "ConditionalTransformModule",
    "ConditionalTransformedDistribution",
    "ContinuousBernoulli",
    "Delta",
    "Dirichlet",
    "DirichletMultinomial",
    "DiscreteHMM",
    "Distribution",
    "Empirical",
    "ExpandedDistribution",
    "Exponential",
    "ExponentialFamily",
    "ExtendedBetaBinomial",
    "ExtendedBinomial",
    "FisherSnedecor",
    "FoldedDistribution",
    "Gamma",
    "GammaGaussianHMM",
    "GammaPoisson",
    "GaussianHMM",
    "GaussianMRF",
    "GaussianScaleMixture",
    "GeneralizedPareto",
    "Geometric",
    "GroupedNormalNormal",
    "Gumbel",
    "HalfCauchy",
    "HalfNormal",
    "ImproperUniform",
    "Independent",
    "IndependentHMM",
    "InverseGamma",
    "Kumaraswamy",
    "LKJ",
    "LKJCholesky",
    "LKJCorrCholesky",
    "Laplace",
    "LinearHMM",
    "LogNormal",
    "LogNormalNegativeBinomial",
    "Logistic",
    "LogisticNormal",
    "LowRankMultivariateNormal",
    "MaskedDistribution",
    "MaskedMixture",
    "MixtureGeneral",
    "MixtureOfDiagNormals",
    "MixtureOfDiagNormalsSharedCovariance",
    "MixtureSameFamily",
    "Multinomial",
    "MultivariateNormal",
    "MultivariateStudentT",
    "NanMaskedMultivariateNormal",
    "NanMaskedNormal",
    "NegativeBinomial",
    "Normal",
    "OMTMultivariateNormal",
    "OneHotCategorical",
    "OneHotCategoricalStraightThrough",
    "OneOneMatching",
    "OneTwoMatching",
    "OrderedLogistic",
    "Pareto",
    "Poisson",
    "ProjectedNormal",
    "Rejector",
    "RelaxedBernoulli",
    "RelaxedBernoulliStraightThrough",
    "RelaxedOneHotCategorical",
    "RelaxedOneHotCategoricalStraightThrough",
    "ScoreParts",
    "SineBivariateVonMises",
    "SineSkewed",
    "SkewLogistic",
    "SoftAsymmetricLaplace",
    "SoftLaplace",
    "SpanningTree",
    "Stable",
    "StableWithLogProb",
    "StudentT",
    "TorchDistribution",
    "TorchDistributionMixin",
    "TransformModule",
    "TransformedDistribution",
    "TruncatedPolyaGamma",
    "Uniform",
    "Unit",
    "VonMises",
    "VonMises3D",
    "Weibull",
    "Wishart",
    "ZeroInflatedDistribution",
    "ZeroInflatedNegativeBinomial",
    "ZeroInflatedPoisson",
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
