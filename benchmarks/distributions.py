"""Issue 14's speed check: every Pyro 1.9 distribution family and transform, pyrolite vs Pyro.

    python -m benchmarks.distributions [--repeats N] [--only NAME...] [--device cpu|cuda]
        [--block-ms MS] [--clock cpu|wall] [--merge] [--report-only] [--out DIR]

For each family in ``pyro.distributions.__all__`` (``family_specs``: one spec each, the same
parameters for both libraries, broadcast to a batch of 10,000 or, for structured and
time-series families, the size the table states) it times ``log_prob`` on one fixed batch of
values (drawn once by Pyro's sampler, or by pyrolite's, or written by the spec) and
``rsample()`` (``sample()`` where the family is not reparameterized), and, where the name is
also a ``torch.distributions`` family, the same calls on torch's class. Transforms (``TRANSFORMS``:
every ``TransformModule`` and Pyro-specific ``Transform`` in ``pyro.distributions.transforms``)
time forward + ``log_abs_det_jacobian`` at batch 10,000, dim 10, with pyrolite's weights loaded
from Pyro's module (``load_state_dict``). ``DiscreteHMM.log_prob`` (T=1000, K=8, batch 16) is
timed against a sequential forward algorithm written here and Pyro's ``DiscreteHMM``.

One process, one torch thread. Each call is timed in blocks of ``number`` calls (calibrated so a
block takes about ``--block-ms``), pyrolite's, Pyro's and torch's blocks interleaved, and each
figure is the median over ``--repeats`` blocks; ratios divide medians of the same run. Raw numbers
go to ``results-distributions.json``; ``RESULTS.md`` gets (only) its section
"Distributions and transforms (issue 14)" replaced.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import statistics
import sys
import time
import traceback
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Sequence

BENCH_DIR = Path(__file__).resolve().parent
RESULT_FILE = "results-distributions.json"
SECTION = "## Distributions and transforms (issue 14)"
BATCH = 10_000
DIM = 10  # transforms' event size
HMM_T, HMM_K, HMM_B = 1000, 8, 16  # issue 14's DiscreteHMM target size
HMM_TARGET = 2.0  # DiscreteHMM.log_prob at least this many times faster than the loop
NOISE = 1.1  # ratios up to this are within the run-to-run spread of identical torch code

# Names in ``pyro.distributions.__all__`` that are not a family to time, and why.
NOT_FAMILIES = {
    "ComposeTransformModule": "a transform (in the transforms table)",
    "ConditionalDistribution": "abstract base class",
    "ConditionalTransform": "abstract base class",
    "ConditionalTransformModule": "abstract base class",
    "ConditionalTransformedDistribution": "a factory of `TransformedDistribution`s "
    "(its conditional transforms are in the transforms table)",
    "Distribution": "abstract base class",
    "ExponentialFamily": "abstract base class",
    "TorchDistribution": "abstract base class",
    "TransformModule": "abstract base class",
    "constraints": "module",
    "enable_validation": "function",
    "is_validation_enabled": "function",
    "kl": "module",
    "transforms": "module",
    "validation_enabled": "function",
}


# ---------------------------------------------------------------------------- specs


class Params:
    """Deterministic parameters for one spec: a generator seeded by the family's name."""

    def __init__(self, name: str):
        import torch

        self.torch = torch
        self.gen = torch.Generator().manual_seed(zlib.crc32(name.encode()))

    def real(self, *shape):
        return self.torch.randn(shape, generator=self.gen)

    def pos(self, *shape, low=0.5, high=2.0):
        return low + (high - low) * self.torch.rand(shape, generator=self.gen)

    def unit(self, *shape):
        return self.pos(*shape, low=0.1, high=0.9)

    def tril(self, d):
        """A well-conditioned lower-triangular scale matrix."""
        torch = self.torch
        return torch.eye(d) + 0.3 * torch.tril(self.real(d, d), -1)


@dataclass(frozen=True)
class Family:
    """How to build one family in a distributions module ``d`` from ``params(Params)``.

    ``value(params, pyro_instance)`` writes the log_prob values where neither library samples;
    ``sample_shape`` is passed to the sampler (families without batching); ``call`` times
    ``instance(*call(params))`` in the log_prob column instead (``CoalescentRateLikelihood``).
    """

    name: str
    params: Callable
    build: Callable
    size: str = "batch 10,000"
    sample_shape: tuple = ()
    value: Callable | None = None
    call: Callable | None = None
    torch_baseline: bool = False
    skip: tuple = ()  # ((library, "log_prob" | "sample", why), ...): calls it cannot make


@functools.cache
def family_specs(batch: int = BATCH) -> Dict[str, Family]:
    """Every family's spec at ``batch`` (tests use a tiny one; sizes below scale with it)."""
    return {f.name: f for f in _families(batch)}


def _families(B: int) -> List[Family]:
    H = max(1, B // 100)  # time-series batch: H sequences of T=100 steps
    F = Family

    def simple(name, *makers, torch_baseline=True, **kwargs):
        """A family whose constructor takes positional tensors, each ``maker(P)``."""
        return F(
            name,
            lambda P: [m(P) for m in makers],
            lambda d, p, name=name: getattr(d, name)(*p, **kwargs),
            torch_baseline=torch_baseline,
        )

    real = lambda P: P.real(B)  # noqa: E731
    pos = lambda P: P.pos(B)  # noqa: E731
    unit = lambda P: P.unit(B)  # noqa: E731

    def hmm_parts(P, batch=H, hidden=2, obs=2):
        import torch

        eye = lambda n: torch.eye(n) + 0.1 * P.real(n, n).tril(-1)  # noqa: E731
        return dict(
            init_loc=P.real(batch, hidden),
            init_tril=eye(hidden),
            trans_matrix=0.5 * P.real(hidden, hidden),
            trans_loc=P.real(hidden) * 0.1,
            trans_tril=eye(hidden),
            obs_matrix=P.real(hidden, obs),
            obs_loc=P.real(obs) * 0.1,
            obs_tril=eye(obs),
        )

    def gaussian_hmm(d, p):
        return d.GaussianHMM(
            d.MultivariateNormal(p["init_loc"], scale_tril=p["init_tril"]),
            p["trans_matrix"],
            d.MultivariateNormal(p["trans_loc"], scale_tril=p["trans_tril"]),
            p["obs_matrix"],
            d.MultivariateNormal(p["obs_loc"], scale_tril=p["obs_tril"]),
            duration=100,
        )

    def coalescent_rate(P):
        import torch

        leaf = 5 + 4.5 * P.unit(20)
        # 19 coalescences per tree, all before the first leaf: always two lineages to merge
        coal = (torch.rand(B, 19, generator=_gen(3)) * 4.9).sort(-1).values
        return dict(leaf=leaf, coal=coal, rate=P.pos(B, 10))

    def nan_values(p, sample):
        out = sample.clone()
        out.view(-1)[::7] = math.nan
        return out

    def spanning_tree_values(p, inst):
        import torch

        torch.manual_seed(0)
        trees = torch.stack([inst.sample() for _ in range(100)])
        return trees.repeat(H, 1, 1)

    def rejector(d, p):
        import torch

        rate = p[0]
        # Exponential(rate) proposals accepted with probability exp(-x): Exponential(rate + 1).
        return d.Rejector(d.Exponential(rate), lambda x: -x, torch.log(rate / (rate + 1)))

    return [
        F(
            "AVFMultivariateNormal",
            lambda P: [P.real(3), P.tril(3), P.real(2, 1, 3)],
            lambda d, p: d.AVFMultivariateNormal(*p),
            size="D=3 (1-D loc only), 10,000 draws",
            sample_shape=(B,),
        ),
        simple("AffineBeta", pos, pos, real, pos, torch_baseline=False),
        simple("AsymmetricLaplace", real, pos, pos, torch_baseline=False),
        simple("Bernoulli", unit),
        simple("Beta", pos, pos),
        F(
            "BetaBinomial",
            lambda P: [P.pos(B), P.pos(B)],
            lambda d, p: d.BetaBinomial(*p, total_count=10),
            size="batch 10,000, total_count 10",
        ),
        F(
            "Binomial",
            lambda P: [P.unit(B)],
            lambda d, p: d.Binomial(10, p[0]),
            size="batch 10,000, total_count 10",
            torch_baseline=True,
        ),
        F(
            "Categorical",
            lambda P: [P.real(B, 8)],
            lambda d, p: d.Categorical(logits=p[0]),
            size="batch 10,000, K=8",
            torch_baseline=True,
        ),
        simple("Cauchy", real, pos),
        simple("Chi2", pos),
        F(
            "CoalescentRateLikelihood",
            coalescent_rate,
            lambda d, p: d.CoalescentRateLikelihood(p["leaf"], p["coal"], 10),
            size="batch 10,000, 20 leaves, grid of 10 (times `__call__(rate_grid)`)",
            call=lambda p: (p["rate"],),
        ),
        F(
            "CoalescentTimes",
            lambda P: [P.real(20).abs(), P.pos(B)],
            lambda d, p: d.CoalescentTimes(p[0], p[1]),
            size="batch 10,000, 20 leaves",
        ),
        F(
            "CoalescentTimesWithRate",
            lambda P: [P.real(20).abs(), P.pos(B, 10)],
            lambda d, p: d.CoalescentTimesWithRate(p[0], p[1]),
            size="batch 10,000, 20 leaves, grid of 10",
            value=lambda p, inst: _coalescent_values(p[0], B),
        ),
        simple("ContinuousBernoulli", unit),
        simple("Delta", real, torch_baseline=False),
        F(
            "Dirichlet",
            lambda P: [P.pos(B, 5)],
            lambda d, p: d.Dirichlet(p[0]),
            size="batch 10,000, K=5",
            torch_baseline=True,
        ),
        F(
            "DirichletMultinomial",
            lambda P: [P.pos(B, 5)],
            lambda d, p: d.DirichletMultinomial(p[0], total_count=10),
            size="batch 10,000, K=5, total_count 10",
        ),
        F(
            "DiscreteHMM",
            lambda P: [P.real(H, 8), P.real(8, 8), P.real(8) * 3],
            lambda d, p: d.DiscreteHMM(p[0], p[1], d.Normal(p[2], 1.0), duration=100),
            size="batch 100, T=100, K=8 (Normal emissions)",
        ),
        F(
            "Empirical",
            lambda P: [P.real(B, 20), P.real(B, 20)],
            lambda d, p: d.Empirical(p[0], p[1]),
            size="batch 10,000, 20 samples each",
        ),
        F(
            "ExpandedDistribution",
            lambda P: [P.real(1), P.pos(1)],
            lambda d, p: d.ExpandedDistribution(d.Normal(p[0], p[1]), (B,)),
            size="Normal of batch 1 expanded to 10,000",
        ),
        simple("Exponential", pos),
        F(
            "ExtendedBetaBinomial",
            lambda P: [P.pos(B), P.pos(B)],
            lambda d, p: d.ExtendedBetaBinomial(*p, total_count=10),
            size="batch 10,000, total_count 10",
        ),
        F(
            "ExtendedBinomial",
            lambda P: [P.unit(B)],
            lambda d, p: d.ExtendedBinomial(10, p[0]),
            size="batch 10,000, total_count 10",
        ),
        simple("FisherSnedecor", pos, pos),
        F(
            "FoldedDistribution",
            lambda P: [P.real(B), P.pos(B)],
            lambda d, p: d.FoldedDistribution(d.Normal(*p)),
            size="batch 10,000, Normal base",
        ),
        simple("Gamma", pos, pos),
        F(
            "GammaGaussianHMM",
            lambda P: {**hmm_parts(P), "conc": P.pos(H), "rate": P.pos(H)},
            lambda d, p: d.GammaGaussianHMM(
                d.Gamma(p["conc"], p["rate"]),
                d.MultivariateNormal(p["init_loc"], scale_tril=p["init_tril"]),
                p["trans_matrix"],
                d.MultivariateNormal(p["trans_loc"], scale_tril=p["trans_tril"]),
                p["obs_matrix"],
                d.MultivariateNormal(p["obs_loc"], scale_tril=p["obs_tril"]),
                duration=100,
            ),
            size="batch 100, T=100, hidden 2, obs 2",
            value=lambda p, inst: _gaussian_values(p, 100),
        ),
        simple("GammaPoisson", pos, pos, torch_baseline=False),
        F(
            "GaussianHMM",
            hmm_parts,
            gaussian_hmm,
            size="batch 100, T=100, hidden 2, obs 2",
        ),
        F(
            "GaussianMRF",
            lambda P: dict(
                init=P.real(H, 2),
                trans_loc=P.real(4) * 0.1,
                trans_tril=P.tril(4),
                obs_loc=P.real(4) * 0.1,
                obs_tril=P.tril(4),
            ),
            lambda d, p: d.GaussianMRF(
                d.MultivariateNormal(p["init"], scale_tril=p["trans_tril"][:2, :2]),
                d.MultivariateNormal(p["trans_loc"], scale_tril=p["trans_tril"]).expand((100,)),
                d.MultivariateNormal(p["obs_loc"], scale_tril=p["obs_tril"]).expand((100,)),
            ),
            size="batch 100, T=100, hidden 2, obs 2",
            value=lambda p, inst: _gaussian_values(p, 100),
        ),
        F(
            "GaussianScaleMixture",
            lambda P: [P.pos(3), P.real(4), P.pos(4)],
            lambda d, p: d.GaussianScaleMixture(*p),
            size="D=3, 4 components (no batching), 10,000 draws",
            sample_shape=(B,),
            skip=(("pyro", "log_prob", "Pyro's log_prob takes one 1-D value only"),),
        ),
        simple("GeneralizedPareto", real, pos, unit, torch_baseline=False),
        simple("Geometric", unit),
        F(
            "GroupedNormalNormal",
            lambda P: [P.real(100), P.pos(100), P.pos(1)[0]],
            lambda d, p: d.GroupedNormalNormal(*p, _group_idx(B)),
            size="100 groups, 10,000 observations",
            value=lambda p, inst: _real_values(B),
        ),
        simple("Gumbel", real, pos),
        simple("HalfCauchy", pos),
        simple("HalfNormal", pos),
        F(
            "ImproperUniform",
            lambda P: [],
            lambda d, p: d.ImproperUniform(d.constraints.real, (B,), ()),
            value=lambda p, inst: _real_values(B),
        ),
        F(
            "Independent",
            lambda P: [P.real(B, 5), P.pos(B, 5)],
            lambda d, p: d.Independent(d.Normal(*p), 1),
            size="batch 10,000 of 5 Normals",
            torch_baseline=True,
        ),
        F(
            "IndependentHMM",
            lambda P: hmm_parts(P, batch=H * 3, hidden=1, obs=1),
            lambda d, p: d.IndependentHMM(
                gaussian_hmm(d, {**p, "init_loc": p["init_loc"].reshape(H, 3, 1)})
            ),
            size="batch 100, T=100, 3 independent 1-D HMMs",
        ),
        simple("InverseGamma", pos, pos),
        simple("Kumaraswamy", pos, pos),
        F(
            "LKJ",
            lambda P: [P.pos(B)],
            lambda d, p: d.LKJ(4, p[0]),
            size="batch 10,000, dim 4",
        ),
        F(
            "LKJCholesky",
            lambda P: [P.pos(B)],
            lambda d, p: d.LKJCholesky(4, p[0]),
            size="batch 10,000, dim 4",
            torch_baseline=True,
        ),
        F(
            "LKJCorrCholesky",
            lambda P: [P.pos(B)],
            lambda d, p: d.LKJCorrCholesky(4, p[0]),
            size="batch 10,000, dim 4",
        ),
        simple("Laplace", real, pos),
        F(
            "LinearHMM",
            hmm_parts,
            lambda d, p: d.LinearHMM(
                d.MultivariateNormal(p["init_loc"], scale_tril=p["init_tril"]),
                p["trans_matrix"],
                d.MultivariateNormal(p["trans_loc"], scale_tril=p["trans_tril"]),
                p["obs_matrix"],
                d.MultivariateNormal(p["obs_loc"], scale_tril=p["obs_tril"]),
                duration=100,
            ),
            size="batch 100, T=100, hidden 2, obs 2 (Gaussian noise)",
        ),
        simple("LogNormal", real, pos),
        F(
            "LogNormalNegativeBinomial",
            lambda P: [P.pos(B) * 5, P.real(B), P.pos(B) * 0.5],
            lambda d, p: d.LogNormalNegativeBinomial(*p),
            size="batch 10,000, 8 quadrature points",
            value=lambda p, inst: _count_values(B),
        ),
        simple("Logistic", real, pos, torch_baseline=False),
        F(
            "LogisticNormal",
            lambda P: [P.real(B, 4), P.pos(B, 4)],
            lambda d, p: d.LogisticNormal(*p),
            size="batch 10,000, 5 categories",
            torch_baseline=True,
        ),
        F(
            "LowRankMultivariateNormal",
            lambda P: [P.real(B, 5), P.real(B, 5, 2) * 0.5, P.pos(B, 5)],
            lambda d, p: d.LowRankMultivariateNormal(*p),
            size="batch 10,000, D=5, rank 2",
            torch_baseline=True,
        ),
        F(
            "MaskedDistribution",
            lambda P: [P.real(B), P.pos(B), P.real(B) > 0],
            lambda d, p: d.MaskedDistribution(d.Normal(p[0], p[1]), p[2]),
            size="batch 10,000, Normal base",
        ),
        F(
            "MaskedMixture",
            lambda P: [P.real(B) > 0, P.real(B), P.pos(B)],
            lambda d, p: d.MaskedMixture(p[0], d.Normal(p[1], p[2]), d.Normal(-p[1], p[2])),
            size="batch 10,000, two Normals",
        ),
        F(
            "MixtureOfDiagNormals",
            lambda P: [P.real(4, 3), P.pos(4, 3), P.real(4)],
            lambda d, p: d.MixtureOfDiagNormals(*p),
            size="K=4, D=3, 10,000 draws",
            sample_shape=(B,),
        ),
        F(
            "MixtureOfDiagNormalsSharedCovariance",
            lambda P: [P.real(4, 3), P.pos(3), P.real(4)],
            lambda d, p: d.MixtureOfDiagNormalsSharedCovariance(*p),
            size="K=4, D=3, 10,000 draws",
            sample_shape=(B,),
        ),
        F(
            "MixtureSameFamily",
            lambda P: [P.real(B, 3), P.real(B, 3), P.pos(B, 3)],
            lambda d, p: d.MixtureSameFamily(d.Categorical(logits=p[0]), d.Normal(p[1], p[2])),
            size="batch 10,000, 3 Normal components",
            torch_baseline=True,
        ),
        F(
            "Multinomial",
            lambda P: [P.pos(B, 5)],
            lambda d, p: d.Multinomial(10, p[0]),
            size="batch 10,000, K=5, total_count 10",
            torch_baseline=True,
        ),
        F(
            "MultivariateNormal",
            lambda P: [P.real(B, 5), P.tril(5)],
            lambda d, p: d.MultivariateNormal(p[0], scale_tril=p[1]),
            size="batch 10,000, D=5",
            torch_baseline=True,
        ),
        F(
            "MultivariateStudentT",
            lambda P: [P.pos(B) * 3, P.real(B, 5), P.tril(5)],
            lambda d, p: d.MultivariateStudentT(*p),
            size="batch 10,000, D=5",
        ),
        F(
            "NanMaskedMultivariateNormal",
            lambda P: [P.real(B, 5), P.tril(5)],
            lambda d, p: d.NanMaskedMultivariateNormal(p[0], scale_tril=p[1]),
            size="batch 10,000, D=5, 1 in 7 values NaN",
            value=lambda p, inst: nan_values(p, inst.sample()),
        ),
        F(
            "NanMaskedNormal",
            lambda P: [P.real(B), P.pos(B)],
            lambda d, p: d.NanMaskedNormal(*p),
            size="batch 10,000, 1 in 7 values NaN",
            value=lambda p, inst: nan_values(p, inst.sample()),
        ),
        F(
            "NegativeBinomial",
            lambda P: [P.pos(B) * 5, P.unit(B)],
            lambda d, p: d.NegativeBinomial(p[0], probs=p[1]),
            torch_baseline=True,
        ),
        simple("Normal", real, pos),
        F(
            "OMTMultivariateNormal",
            lambda P: [P.real(3), P.tril(3)],
            lambda d, p: d.OMTMultivariateNormal(*p),
            size="D=3 (1-D loc only), 10,000 draws",
            sample_shape=(B,),
        ),
        F(
            "OneHotCategorical",
            lambda P: [P.real(B, 8)],
            lambda d, p: d.OneHotCategorical(logits=p[0]),
            size="batch 10,000, K=8",
            torch_baseline=True,
        ),
        F(
            "OneHotCategoricalStraightThrough",
            lambda P: [P.real(B, 8)],
            lambda d, p: d.OneHotCategoricalStraightThrough(logits=p[0]),
            size="batch 10,000, K=8",
            torch_baseline=True,
        ),
        F(
            "OneOneMatching",
            lambda P: [P.real(6, 6)],
            lambda d, p: d.OneOneMatching(p[0]),
            size="N=6, exact (no batching): log_prob of 100 matchings, 10 draws",
            sample_shape=(10,),
            value=lambda p, inst: inst.sample((10,)).repeat(10, 1),
        ),
        F(
            "OneTwoMatching",
            lambda P: [P.real(10, 5)],
            lambda d, p: d.OneTwoMatching(p[0]),
            size="10 sources, 5 destinations, exact (no batching): 1,000 values, 1,000 draws",
            sample_shape=(1000,),
        ),
        F(
            "OrderedLogistic",
            lambda P: [P.real(B), P.real(4).sort().values],
            lambda d, p: d.OrderedLogistic(*p),
            size="batch 10,000, 5 categories",
        ),
        simple("Pareto", pos, pos),
        simple("Poisson", pos),
        F(
            "ProjectedNormal",
            lambda P: [P.real(B, 3)],
            lambda d, p: d.ProjectedNormal(p[0]),
            size="batch 10,000, D=3",
        ),
        F(
            "Rejector",
            lambda P: [P.pos(B)],
            rejector,
            size="batch 10,000, Exponential proposal, accept exp(-x)",
        ),
        simple("RelaxedBernoulli", pos, unit),
        simple("RelaxedBernoulliStraightThrough", pos, unit, torch_baseline=False),
        F(
            "RelaxedOneHotCategorical",
            lambda P: [P.pos(1)[0], P.real(B, 5)],
            lambda d, p: d.RelaxedOneHotCategorical(p[0], logits=p[1]),
            size="batch 10,000, K=5, one temperature (torch's log_prob takes no batched one)",
            torch_baseline=True,
        ),
        F(
            "RelaxedOneHotCategoricalStraightThrough",
            lambda P: [P.pos(1)[0], P.real(B, 5)],
            lambda d, p: d.RelaxedOneHotCategoricalStraightThrough(p[0], logits=p[1]),
            size="batch 10,000, K=5",
        ),
        F(
            "SineBivariateVonMises",
            lambda P: [P.real(B), P.real(B), P.pos(B), P.pos(B), P.real(B) * 0.2],
            lambda d, p: d.SineBivariateVonMises(*p),
        ),
        F(
            "SineSkewed",
            lambda P: [P.real(B, 2), P.pos(B, 2), P.real(B, 2).clamp(-1, 1) * 0.45],
            lambda d, p: d.SineSkewed(d.Independent(d.VonMises(p[0], p[1]), 1), p[2]),
            size="batch 10,000, 2-D VonMises base",
        ),
        simple("SkewLogistic", real, pos, pos, torch_baseline=False),
        simple("SoftAsymmetricLaplace", real, pos, pos, pos, torch_baseline=False),
        simple("SoftLaplace", real, pos, torch_baseline=False),
        F(
            "SpanningTree",
            lambda P: [P.real(45)],
            lambda d, p: d.SpanningTree(p[0]),
            size="V=10 (no batching): log_prob of 10,000 trees, 1 draw",
            value=spanning_tree_values,
        ),
        F(
            "Stable",
            lambda P: [
                P.pos(min(B, 1000), low=1.2, high=1.8),
                P.real(min(B, 1000)).clamp(-1, 1) * 0.5,
            ],
            lambda d, p: d.Stable(*p),
            size="batch 1,000 (log_prob integrates numerically)",
        ),
        F(
            "StableWithLogProb",
            lambda P: [
                P.pos(min(B, 1000), low=1.2, high=1.8),
                P.real(min(B, 1000)).clamp(-1, 1) * 0.5,
            ],
            lambda d, p: d.StableWithLogProb(*p),
            size="batch 1,000 (log_prob integrates numerically)",
        ),
        simple("StudentT", pos, real, pos),
        F(
            "TransformedDistribution",
            lambda P: [P.real(B), P.pos(B)],
            lambda d, p: d.TransformedDistribution(d.Normal(*p), [d.transforms.ExpTransform()]),
            size="batch 10,000, Normal + ExpTransform",
            torch_baseline=True,
        ),
        F(
            "TruncatedPolyaGamma",
            lambda P: [P.real(B)],
            lambda d, p: d.TruncatedPolyaGamma(p[0]),
            size="batch 10,000 (shape from the prototype)",
        ),
        simple("Uniform", lambda P: -P.pos(B), pos),
        F(
            "Unit",
            lambda P: [P.real(B)],
            lambda d, p: d.Unit(p[0]),
        ),
        simple("VonMises", real, pos),
        F(
            "VonMises3D",
            lambda P: [P.real(B, 3)],
            lambda d, p: d.VonMises3D(p[0]),
            size="batch 10,000, D=3",
            value=lambda p, inst: _sphere_values(B),
        ),
        simple("Weibull", pos, pos),
        F(
            "Wishart",
            lambda P: [P.pos(B) + 4, P.tril(3)],
            lambda d, p: d.Wishart(p[0], scale_tril=p[1]),
            size="batch 10,000, 3x3",
            torch_baseline=True,
        ),
        F(
            "ZeroInflatedDistribution",
            lambda P: [P.pos(B), P.unit(B)],
            lambda d, p: d.ZeroInflatedDistribution(d.Poisson(p[0]), gate=p[1]),
            size="batch 10,000, Poisson base",
        ),
        F(
            "ZeroInflatedNegativeBinomial",
            lambda P: [P.pos(B) * 5, P.unit(B), P.unit(B)],
            lambda d, p: d.ZeroInflatedNegativeBinomial(p[0], probs=p[1], gate=p[2]),
        ),
        F(
            "ZeroInflatedPoisson",
            lambda P: [P.pos(B), P.unit(B)],
            lambda d, p: d.ZeroInflatedPoisson(p[0], gate=p[1]),
        ),
    ]


def _gen(seed: int):
    import torch

    return torch.Generator().manual_seed(seed)


def _real_values(n: int):
    import torch

    return torch.randn(n, generator=_gen(1))


def _count_values(n: int):
    import torch

    return torch.poisson(torch.full((n,), 4.0), generator=_gen(2))


def _sphere_values(n: int):
    import torch

    x = torch.randn(n, 3, generator=_gen(4))
    return x / x.norm(dim=-1, keepdim=True)


def _group_idx(n: int):
    import torch

    return torch.arange(n) % 100


def _coalescent_values(leaf_times, n: int):
    import torch

    # Coalescences precede the leaves (the past is at smaller times): all before the first leaf.
    first = float(leaf_times.min())
    gaps = torch.rand(n, leaf_times.numel() - 1, generator=_gen(5))
    return (first - 3 * gaps).sort(-1).values


def _gaussian_values(p, duration: int):
    import torch

    batch = p["init_loc"].shape[0] if "init_loc" in p else p["init"].shape[0]
    return torch.randn(batch, duration, 2, generator=_gen(6))


# ---------------------------------------------------------------------------- transforms


@dataclass(frozen=True)
class TransformSpec:
    """``build(T)`` makes the transform from a transforms module ``T`` (the same call for both
    libraries); ``inputs()`` the batch it maps; ``context`` conditions a conditional one."""

    name: str
    build: Callable
    inputs: Callable | None = None
    size: str = "batch 10,000, dim 10"
    context: str = ""


def _transform_specs(batch: int) -> List[TransformSpec]:
    import torch

    def _vectors(shape=(batch, DIM)):
        return torch.randn(shape, generator=_gen(7))

    def S(name, build, inputs=None, size="batch 10,000, dim 10", context=""):
        return TransformSpec(name, build, inputs or _vectors, size, context)

    def pos_vectors():
        return _vectors().abs() + 0.1

    def simplex():
        return torch.softmax(_vectors(), -1)

    def matrices(d=4):
        a = torch.randn(batch, d, d, generator=_gen(8))
        return a @ a.transpose(-1, -2) + torch.eye(d)

    def corr(d=4):
        m = matrices(d)
        s = m.diagonal(dim1=-2, dim2=-1).sqrt()
        return m / (s[..., :, None] * s[..., None, :])

    def tril_like(d=4):
        return torch.randn(batch, d, d, generator=_gen(9))

    def images():
        return torch.randn(batch, 3, 2, 2, generator=_gen(10))

    cholesky = torch.eye(DIM) + 0.1 * torch.randn(DIM, DIM, generator=_gen(11)).tril(-1)
    loc = torch.randn(DIM, generator=_gen(12))
    perm = torch.randperm(DIM, generator=_gen(13))
    ctx = dict(context="batch")
    return [
        S("AffineAutoregressive", lambda T: T.affine_autoregressive(DIM)),
        S("AffineCoupling", lambda T: T.affine_coupling(DIM)),
        S("BatchNorm", lambda T: T.batchnorm(DIM), size="batch 10,000, dim 10, training mode"),
        S("BlockAutoregressive", lambda T: T.block_autoregressive(DIM)),
        S("CholeskyTransform", lambda T: T.CholeskyTransform(), matrices, "batch 10,000, 4x4"),
        S(
            "ComposeTransformModule",
            lambda T: T.ComposeTransformModule([T.planar(DIM), T.radial(DIM)]),
            size="batch 10,000, dim 10, Planar then Radial",
        ),
        S(
            "ConditionalAffineAutoregressive",
            lambda T: T.conditional_affine_autoregressive(DIM, 3),
            **ctx,
        ),
        S("ConditionalAffineCoupling", lambda T: T.conditional_affine_coupling(DIM, 3), **ctx),
        S(
            "ConditionalGeneralizedChannelPermute",
            lambda T: T.conditional_generalized_channel_permute(3),
            images,
            "batch 10,000, 3x2x2 images, one context (Pyro's takes no batched context)",
            "single",
        ),
        S("ConditionalHouseholder", lambda T: T.conditional_householder(DIM, 3), **ctx),
        S(
            "ConditionalMatrixExponential",
            lambda T: T.conditional_matrix_exponential(DIM, 3),
            **ctx,
        ),
        S(
            "ConditionalNeuralAutoregressive",
            lambda T: T.conditional_neural_autoregressive(DIM, 3),
            **ctx,
        ),
        S("ConditionalPlanar", lambda T: T.conditional_planar(DIM, 3), **ctx),
        S("ConditionalRadial", lambda T: T.conditional_radial(DIM, 3), **ctx),
        S("ConditionalSpline", lambda T: T.conditional_spline(DIM, 3), **ctx),
        S(
            "ConditionalSplineAutoregressive",
            lambda T: T.conditional_spline_autoregressive(DIM, 3),
            **ctx,
        ),
        S(
            "CorrLCholeskyTransform",
            lambda T: T.CorrLCholeskyTransform(),
            lambda: _vectors((batch, 6)),
            "batch 10,000, 6 -> 4x4",
        ),
        S(
            "CorrMatrixCholeskyTransform",
            lambda T: T.CorrMatrixCholeskyTransform(),
            corr,
            "batch 10,000, 4x4",
        ),
        S("DiscreteCosineTransform", lambda T: T.DiscreteCosineTransform()),
        S("ELUTransform", lambda T: T.ELUTransform()),
        S(
            "GeneralizedChannelPermute",
            lambda T: T.generalized_channel_permute(),
            images,
            "batch 10,000, 3x2x2 images",
        ),
        S("HaarTransform", lambda T: T.HaarTransform()),
        S("Householder", lambda T: T.householder(DIM, 2), size="batch 10,000, dim 10, 2 flows"),
        S("LeakyReLUTransform", lambda T: T.LeakyReLUTransform()),
        S("LowerCholeskyAffine", lambda T: T.LowerCholeskyAffine(_here(loc), _here(cholesky))),
        S("MatrixExponential", lambda T: T.matrix_exponential(DIM)),
        S("NeuralAutoregressive", lambda T: T.neural_autoregressive(DIM)),
        S("Normalize", lambda T: T.Normalize()),
        S("OrderedTransform", lambda T: T.OrderedTransform()),
        S("Permute", lambda T: T.Permute(_here(perm))),
        S("Planar", lambda T: T.planar(DIM)),
        S("Polynomial", lambda T: T.polynomial(DIM)),
        S("PositivePowerTransform", lambda T: T.PositivePowerTransform(1.5), pos_vectors),
        S("Radial", lambda T: T.radial(DIM)),
        S("SimplexToOrderedTransform", lambda T: T.SimplexToOrderedTransform(), simplex),
        S(
            "SoftplusLowerCholeskyTransform",
            lambda T: T.SoftplusLowerCholeskyTransform(),
            tril_like,
            "batch 10,000, 4x4",
        ),
        S("SoftplusTransform", lambda T: T.SoftplusTransform()),
        S("Spline", lambda T: T.spline(DIM)),
        S("SplineAutoregressive", lambda T: T.spline_autoregressive(DIM)),
        S("SplineCoupling", lambda T: T.spline_coupling(DIM)),
        S("Sylvester", lambda T: T.sylvester(DIM, 2), size="batch 10,000, dim 10, 2 flows"),
    ]


def _here(tensor):
    """``tensor`` on the device transforms are being built on (``build_transform``)."""
    import torch

    return tensor.to(torch.get_default_device())


@functools.cache
def transform_specs(batch: int = BATCH) -> Dict[str, TransformSpec]:
    """Every transform's spec, its inputs at ``batch``."""
    return {s.name: s for s in _transform_specs(batch)}


# ---------------------------------------------------------------------------- building pairs


def _to(value, device):
    import torch

    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: _to(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to(v, device) for v in value)
    return value


def _modules():
    import pyro.distributions as pyro_dists
    import torch.distributions as torch_dists

    import pyrolite.distributions as pyrolite_dists

    return {"pyrolite": pyrolite_dists, "pyro": pyro_dists, "torch": torch_dists}


@dataclass
class FamilyPair:
    """One family built by each library on the same parameters, and its log_prob values."""

    spec: Family
    instances: Dict[str, object]
    value: object
    sampler: Dict[str, str | None] = field(default_factory=dict)  # rsample / sample / None
    errors: Dict[str, str] = field(default_factory=dict)


def _sampler_name(instance) -> str | None:
    return "rsample" if getattr(instance, "has_rsample", False) else "sample"


def build_family(name: str, batch: int = BATCH, device: str = "cpu") -> FamilyPair:
    """Build ``name``'s pyrolite, Pyro (and torch, when it is a torch family) instances on
    the same parameters at ``batch``, and the fixed values its log_prob is timed on."""
    import torch

    spec = family_specs(batch)[name]
    params = _to(spec.params(Params(name)), device)
    mods = _modules()
    libs = ["pyrolite", "pyro"] + (["torch"] if spec.torch_baseline else [])
    instances, errors = {}, {}
    for lib in libs:
        try:
            instances[lib] = spec.build(mods[lib], params)
        except Exception as error:  # noqa: BLE001 - the failure becomes the row's note
            errors[lib] = _error_text(error)
    pair = FamilyPair(spec, instances, None, errors=errors)
    ref = instances.get("pyro") or instances.get("pyrolite")
    if spec.call is not None:
        pair.value = spec.call(params)
        pair.sampler = {lib: None for lib in instances}
        return pair
    torch.manual_seed(0)
    if spec.value is not None:
        pair.value = _to(spec.value(params, ref), device)
    else:
        for lib in ("pyro", "pyrolite"):
            if lib in instances:
                try:
                    pair.value = instances[lib].sample(spec.sample_shape)
                    break
                except NotImplementedError:
                    continue
    for lib, inst in instances.items():
        pair.sampler[lib] = _sampler_name(inst)
    return pair


def log_prob_call(pair: FamilyPair, lib: str) -> Callable:
    inst = pair.instances[lib]
    if pair.spec.call is not None:
        return lambda: inst(*pair.value)
    return lambda: inst.log_prob(pair.value)


def sample_call(pair: FamilyPair, lib: str) -> Callable:
    inst, shape = pair.instances[lib], pair.spec.sample_shape
    method = getattr(inst, pair.sampler[lib])
    return lambda: method(shape)


@dataclass
class TransformPair:
    spec: TransformSpec
    modules: Dict[str, object]
    x: object
    context: object = None
    note: str = ""
    forward_only: bool = False  # neither library has its log_abs_det_jacobian

    def call(self, lib: str) -> Callable:
        t, ctx = self.modules[lib], self.context
        # Two copies of the input, taken in turn: a transform caches its latest (x, y) pair
        # (and some their log|det J|), and the cache must miss, as it does on new inputs.
        inputs = [self.x, self.x.clone()]

        def forward():
            x = inputs[0]
            inputs.reverse()
            tr = t.condition(ctx) if ctx is not None else t
            y = tr(x)
            return y if self.forward_only else tr.log_abs_det_jacobian(x, y)

        return forward


def build_transform(name: str, batch: int = BATCH, device: str = "cpu") -> TransformPair:
    """Both libraries' transform, pyrolite's weights loaded from Pyro's ``state_dict``."""
    import pyro.distributions.transforms as pyro_t
    import torch

    import pyrolite.distributions.transforms as pyrolite_t

    spec = transform_specs(batch)[name]
    with torch.device(device):
        torch.manual_seed(0)
        pyro_mod = spec.build(pyro_t)
        torch.manual_seed(0)
        mine = spec.build(pyrolite_t)
    note = ""
    if isinstance(pyro_mod, torch.nn.Module):
        theirs = pyro_mod.state_dict()
        keys = set(mine.state_dict())
        if keys != set(theirs):
            note = (
                "state_dict keys differ: pyrolite "
                f"{sorted(keys - set(theirs))} vs Pyro {sorted(set(theirs) - keys)}; not timed"
            )
        else:
            mine.load_state_dict(theirs)
    x = spec.inputs().to(device)
    ctx = None
    if spec.context:
        shape = (x.shape[0], 3) if spec.context == "batch" else (3,)
        ctx = torch.randn(shape, generator=_gen(14)).to(device)
    return TransformPair(spec, {"pyrolite": mine, "pyro": pyro_mod}, x, ctx, note)


# ---------------------------------------------------------------------------- timing


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


# What a block's time is read from (``--clock``): the process's CPU time by default on the CPU,
# which a busy shared machine's scheduler does not inflate (one torch thread, so CPU time is
# the call's own compute), or wall-clock time (the default with ``--device cuda``).
CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}
_clock = CLOCKS["cpu"]


def _block(fn: Callable, number: int, device: str) -> float:
    """Seconds per call over ``number`` calls."""
    _sync(device)
    start = _clock()
    for _ in range(number):
        fn()
    _sync(device)
    return (_clock() - start) / number


def _calibrate(fn: Callable, block_s: float, device: str) -> int:
    """Calls per block: doubled until a block takes a quarter of ``block_s`` (as timeit's
    autorange), then scaled to ``block_s``; the fastest of two tries, so one stall on a
    shared machine does not shrink the block to one call."""
    number = 1
    while True:
        per_call = min(_block(fn, number, device) for _ in range(2))
        if per_call * number >= block_s / 4 or number >= 10_000:
            return max(1, min(10_000, round(block_s / per_call)))
        number *= 2


def time_interleaved(
    calls: Dict[str, Callable], repeats: int, block_s: float, device: str
) -> Dict[str, dict]:
    """Median µs per call of each of ``calls``; blocks of each call alternate, and each call's
    block size is calibrated on its own (one warm-up call, then enough calls for ``block_s``)."""
    out, numbers, live = {}, {}, {}
    for key, fn in calls.items():
        try:
            fn()  # warm-up: lazy properties, caches, first-call allocations
            numbers[key] = _calibrate(fn, block_s, device)
            live[key] = fn
        except NotImplementedError as error:  # the library has no such call: "—"
            out[key] = {"missing": _error_text(error)}
        except Exception as error:  # noqa: BLE001 - the failure becomes the cell's note
            out[key] = {"error": _error_text(error)}
    samples = {key: [] for key in live}
    for _ in range(repeats):
        for key, fn in live.items():
            samples[key].append(_block(fn, numbers[key], device))
    for key, values in samples.items():
        out[key] = {
            "us": statistics.median(values) * 1e6,
            "number": numbers[key],
            "blocks_us": [v * 1e6 for v in values],
        }
    return out


def _error_text(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    where = f" at {frames[-1].filename.split('/')[-1]}:{frames[-1].lineno}" if frames else ""
    return f"{type(error).__name__}: {error}{where}"[:300]


def _ratio(row: dict, op: str) -> float | None:
    mine, theirs = row.get(op, {}).get("pyrolite", {}), row.get(op, {}).get("pyro", {})
    if "us" in mine and "us" in theirs:
        return mine["us"] / theirs["us"]
    return None


def family_row(name: str, args) -> dict:
    row = {"name": name}
    try:
        pair = build_family(name, device=args.device)
    except Exception as error:  # noqa: BLE001
        return {**row, "size": family_specs()[name].size, "error": _error_text(error)}
    row.update(size=pair.spec.size, build_errors=pair.errors, sampler=pair.sampler)
    libs = [lib for lib in ("pyrolite", "pyro", "torch") if lib in pair.instances]
    skip = {(lib, op): why for lib, op, why in pair.spec.skip}
    ops = {"log_prob": log_prob_call} | ({"sample": sample_call} if pair.spec.call is None else {})
    for op, make in ops.items():
        calls = {lib: make(pair, lib) for lib in libs if (lib, op) not in skip}
        row[op] = time_interleaved(calls, args.repeats, args.block_s, args.device)
        row[op].update({lib: {"missing": why} for (lib, o), why in skip.items() if o == op})
    for op in ("log_prob", "sample"):
        row[f"{op}_ratio"] = _ratio(row, op)
    return row


def transform_row(name: str, args) -> dict:
    row = {"name": name, "size": transform_specs()[name].size}
    try:
        pair = build_transform(name, device=args.device)
    except Exception as error:  # noqa: BLE001
        return {**row, "error": _error_text(error)}
    row["note"] = pair.note
    if pair.note:  # state_dict keys differ: the two would not compute the same thing
        return row
    import torch

    with torch.no_grad():
        try:
            b = pair.call("pyro")()
        except NotImplementedError:
            pair.forward_only = True
            row["note"] = "forward only: Pyro has no log_abs_det_jacobian"
            b = pair.call("pyro")()
        a = pair.call("pyrolite")()
    row["same_output"] = a.shape == b.shape and bool(torch.allclose(a, b, rtol=1e-4, atol=1e-4))
    row["forward"] = time_interleaved(
        {lib: pair.call(lib) for lib in ("pyrolite", "pyro")},
        args.repeats,
        args.block_s,
        args.device,
    )
    row["forward_ratio"] = _ratio({"f": row["forward"]}, "f")
    return row


def sequential_forward(initial_logits, transition_logits, observation_logp):
    """log p(y) of an HMM by the forward algorithm, one time step at a time.

    ``observation_logp`` is (batch, T, K); the state before step 0 is drawn from
    ``initial_logits`` and moves once before the first observation (``DiscreteHMM``'s
    convention)."""
    import torch

    log_trans = transition_logits.log_softmax(-1)
    alpha = initial_logits.log_softmax(-1).expand(observation_logp.shape[:1] + (-1,))
    for t in range(observation_logp.shape[-2]):
        alpha = torch.logsumexp(alpha[..., :, None] + log_trans, -2) + observation_logp[..., t, :]
    return alpha.logsumexp(-1)


def hmm_rows(args) -> dict:
    """``DiscreteHMM.log_prob`` at T=1000, K=8, batch 16 against the forward loop and Pyro."""
    import torch

    mods = _modules()
    P = Params("DiscreteHMM-T1000")
    init, trans = P.real(HMM_K), P.real(HMM_K, HMM_K) + 3 * torch.eye(HMM_K)
    locs, scale = torch.linspace(-7, 7, HMM_K), torch.tensor(0.5)
    init, trans, locs, scale = _to([init, trans, locs, scale], args.device)
    hmms = {
        lib: mods[lib].DiscreteHMM(init, trans, mods[lib].Normal(locs, scale), duration=HMM_T)
        for lib in ("pyrolite", "pyro")
    }
    torch.manual_seed(0)
    y = hmms["pyro"].expand((HMM_B,)).sample()

    def loop():
        obs = torch.distributions.Normal(locs, scale).log_prob(y[..., None])
        return sequential_forward(init, trans, obs)

    calls = {lib: (lambda h=h: h.log_prob(y)) for lib, h in hmms.items()}
    calls["sequential"] = loop
    with torch.no_grad():
        values = {k: fn() for k, fn in calls.items()}
    agree = {
        k: float((v - values["sequential"]).abs().max())
        for k, v in values.items()
        if k != "sequential"
    }
    times = time_interleaved(calls, args.repeats, args.block_s, args.device)
    mine = times.get("pyrolite", {}).get("us")
    return {
        "size": f"T={HMM_T}, K={HMM_K}, batch {HMM_B}, Normal emissions",
        "times": times,
        "max_abs_diff_vs_sequential": agree,
        "speedup_vs_sequential": times["sequential"]["us"] / mine if mine else None,
        "ratio_vs_pyro": mine / times["pyro"]["us"] if mine and "us" in times["pyro"] else None,
        "target": HMM_TARGET,
    }


# ---------------------------------------------------------------------------- the report


def _us(cell: dict | None) -> str:
    if not cell or "missing" in cell:
        return "—"
    if "error" in cell:
        return "error"
    us = cell["us"]
    return f"{us:,.0f}" if us >= 100 else f"{us:,.1f}"


def _r(value: float | None) -> str:
    if value is None:
        return "—"
    return f"**{value:.2f}**" if value > 1.0 else f"{value:.2f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def family_lines(rows: List[dict]) -> List[str]:
    lines = [
        "### Families: µs per call",
        "",
        "| family | size | log_prob pyrolite | Pyro | torch | ratio | sample pyrolite | Pyro | "
        "torch | ratio | notes |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        notes = []
        if "error" in row:
            notes.append(row["error"])
        for op in ("log_prob", "sample"):
            for lib, cell in row.get(op, {}).items():
                if "error" in cell:
                    notes.append(f"{lib} {op}: {cell['error'][:120]}")
            cells = row.get(op, {}).items()
            absent = [lib for lib, c in cells if c.get("missing", "").startswith("NotImpl")]
            if absent:
                notes.append(f"no {op} in {', '.join(absent)}")
            notes += [c["missing"] for k, c in cells if "missing" in c and k not in absent]
        for lib, text in row.get("build_errors", {}).items():
            notes.append(f"{lib} build: {text[:120]}")
        timed = {lib for lib, c in row.get("sample", {}).items() if "us" in c}
        samplers = {v for k, v in row.get("sampler", {}).items() if k in timed and v}
        if samplers:
            notes.insert(0, "/".join(sorted(samplers)))
        lp, sm = row.get("log_prob", {}), row.get("sample", {})
        lines.append(
            f"| {row['name']} | {row.get('size', '')} | {_us(lp.get('pyrolite'))} | "
            f"{_us(lp.get('pyro'))} | {_us(lp.get('torch'))} | {_r(row.get('log_prob_ratio'))} | "
            f"{_us(sm.get('pyrolite'))} | {_us(sm.get('pyro'))} | {_us(sm.get('torch'))} | "
            f"{_r(row.get('sample_ratio'))} | {_cell('; '.join(notes))} |"
        )
    return lines


def transform_lines(rows: List[dict]) -> List[str]:
    lines = [
        "### Transforms: forward + log_abs_det_jacobian, µs per call",
        "",
        "| transform | size | pyrolite | Pyro | ratio | same output | notes |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for row in rows:
        f = row.get("forward", {})
        note = row.get("error") or row.get("note", "")
        for lib, cell in f.items():
            if "error" in cell:
                note += f" {lib}: {cell['error']}"
        same = {True: "yes", False: "**no**", None: "—"}[row.get("same_output")]
        lines.append(
            f"| {row['name']} | {row['size']} | {_us(f.get('pyrolite'))} | {_us(f.get('pyro'))} "
            f"| {_r(row.get('forward_ratio'))} | {same} | {_cell(note.strip())} |"
        )
    return lines


def hmm_lines(hmm: dict | None) -> List[str]:
    if not hmm:
        return []
    t = hmm["times"]
    speed = hmm["speedup_vs_sequential"]
    met = speed is not None and speed >= hmm["target"]
    diffs = ", ".join(f"{k} {v:.1e}" for k, v in hmm["max_abs_diff_vs_sequential"].items())
    return [
        f"### DiscreteHMM.log_prob, {hmm['size']}",
        "",
        "| implementation | µs per call | pyrolite's speed-up |",
        "|---|---:|---:|",
        f"| sequential forward algorithm (loop over T, written in the script) | "
        f"{_us(t.get('sequential'))} | {speed:.1f}× |"
        if speed
        else "| sequential | — | — |",
        f"| Pyro `DiscreteHMM.log_prob` | {_us(t.get('pyro'))} | {1 / hmm['ratio_vs_pyro']:.1f}× |"
        if hmm["ratio_vs_pyro"]
        else "| Pyro | — | — |",
        f"| pyrolite `DiscreteHMM.log_prob` | {_us(t.get('pyrolite'))} | 1.0× |",
        "",
        f"Target: at least {hmm['target']:.0f}× faster than the sequential forward algorithm: "
        f"**{'met' if met else 'NOT met'}**. Max |log_prob − sequential|: {diffs}.",
        "",
    ]


def slower_lines(families: List[dict], transforms: List[dict], hmm: dict | None) -> List[str]:
    slow = []
    for row in families:
        for op in ("log_prob", "sample"):
            r = row.get(f"{op}_ratio")
            if r is not None and r > 1.0:
                slow.append((r, f"* {row['name']} `{op}`: {r:.2f}× Pyro"))
    for row in transforms:
        r = row.get("forward_ratio")
        if r is not None and r > 1.0:
            slow.append((r, f"* transform {row['name']}: {r:.2f}× Pyro"))
    if hmm and hmm.get("ratio_vs_pyro") and hmm["ratio_vs_pyro"] > 1.0:
        r = hmm["ratio_vs_pyro"]
        slow.append((r, f"* DiscreteHMM T={HMM_T}, K={HMM_K}: {r:.2f}× Pyro"))
    slow.sort(key=lambda item: -item[0])
    clear = [text for r, text in slow if r > NOISE]
    close = [text[2:] for r, text in slow if r <= NOISE]
    return [
        "### Rows slower than Pyro (ratio above 1.0)",
        "",
        f"Slowest first. Above {NOISE:.2f}:",
        "",
        *(clear or ["None."]),
        "",
        f"From 1.00 to {NOISE:.2f}, within this machine's run-to-run spread (rows where "
        f"pyrolite and Pyro run the same torch code differ by that much): "
        + ("; ".join(close) or "none")
        + ".",
        "",
    ]


CLOCK_TEXT = {
    "cpu": "the process's CPU time (`time.process_time`: one torch thread, so the calls' own "
    "compute, not inflated when a shared machine's other processes take the cores)",
    "wall": "wall-clock time (`time.perf_counter`, the device synchronized around each block)",
}


def section_lines(raw: dict) -> List[str]:
    s = raw["settings"]
    env = s["env"]
    fams, trans = raw["families"], raw["transforms"]
    skipped = ", ".join(f"{k} ({v})" for k, v in s["not_families"].items())
    return [
        SECTION,
        "",
        f"* Command: `{s['command']}`; {s['wall_s']:.0f} s."
        + "".join(
            f" Then `{m['command']}` (re-ran {', '.join(m['rows'])})." for m in s.get("merged", [])
        ),
        f"* Date: {env['date']}; machine: {env['machine']}; device {s['device']}.",
        f"* {env['software']}.",
        "* Method: one process, `OMP_NUM_THREADS=1` and `torch.set_num_threads(1)`; each call "
        f"warmed up once, then timed in blocks of calls sized to about {s['block_ms']:.0f} ms, "
        f"the libraries' blocks interleaved, {s['repeats']} blocks each, timed by "
        f"{CLOCK_TEXT[s['clock']]}; figures are medians, "
        "ratios pyrolite / Pyro within the run (above 1.0 in bold: slower than Pyro). Both "
        "libraries get the same parameter tensors; log_prob runs on one fixed batch of values "
        "(Pyro's draw, or one written by the spec where neither samples). *sample* is "
        "`rsample()` where the family is reparameterized, else `sample()` (the notes say "
        "which); — where a library has no such call. Validation is at torch's default (on). "
        "*torch* is `torch.distributions`' class of the same name, where there is one.",
        f"* Not timed (not families): {skipped}.",
        "",
        *family_lines(fams),
        "",
        "Transforms: every `TransformModule` and Pyro-specific `Transform` in "
        "`pyro.distributions.transforms.__all__`, built by the same call in both libraries "
        "(the lower-case helper where there is one), pyrolite's weights loaded from Pyro's "
        "module with `load_state_dict`; *same output* compares log|det J| on the timed batch "
        "(rtol/atol 1e-4; the forward output where there is no log|det J|). Conditional ones "
        "are conditioned on a (10,000, 3) context inside the timed call. Inputs alternate "
        "between two copies so that the transforms' one-entry caches miss. Autograd is on "
        "(parameters require grad), as in a guide.",
        "",
        *transform_lines(trans),
        "",
        *hmm_lines(raw.get("hmm")),
        *slower_lines(fams, trans, raw.get("hmm")),
    ]


def write_section(markdown: Path, lines: List[str]) -> None:
    """Replace this benchmark's section of ``markdown`` (or insert it before the GPU part)."""
    text = markdown.read_text() if markdown.exists() else "# pyrolite benchmarks\n"
    block = "\n".join(lines).rstrip() + "\n"
    start = text.find(SECTION)
    if start >= 0:
        rest = text[start + len(SECTION) :]
        ends = [i for i in (rest.find("\n## "), rest.find("\n# ")) if i >= 0]
        end = start + len(SECTION) + min(ends) + 1 if ends else len(text)
        text = text[:start] + block + ("\n" + text[end:] if end < len(text) else "")
    else:
        gpu = text.find("\n# GPU")
        if gpu >= 0:
            text = text[: gpu + 1] + block + "\n" + text[gpu + 1 :]
        else:
            text = text.rstrip() + "\n\n" + block
    markdown.write_text(text)


# ---------------------------------------------------------------------------- the command


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed blocks per call")
    parser.add_argument("--block-ms", type=float, default=20.0, help="target ms per block")
    parser.add_argument("--only", nargs="+", default=None, help="family/transform names, or hmm")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--clock", choices=tuple(CLOCKS), default=None, help="default: cpu on cpu, wall on cuda"
    )
    parser.add_argument("--out", type=Path, default=BENCH_DIR, help="where reports go")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: re-render the RESULTS.md section from the results file",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the other rows of the existing results file (to re-run a few rows)",
    )
    args = parser.parse_args(argv)
    args.block_s = args.block_ms / 1000
    args.clock = args.clock or ("wall" if args.device == "cuda" else "cpu")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.report_only:
        write_section(
            args.out / "RESULTS.md", section_lines(json.loads((args.out / RESULT_FILE).read_text()))
        )
        print(f"wrote the section of {args.out / 'RESULTS.md'} from {RESULT_FILE}")
        return 0
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        if os.environ.get(name) != "1":
            print(f"note: {name} is not 1 here; torch.set_num_threads(1) still applies")
    from .measure import set_torch_single_thread
    from .report import environment

    threads = set_torch_single_thread()
    global _clock
    _clock = CLOCKS[args.clock]
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("CUDA not available")
    import pyro.distributions as pyro_dists

    only = set(args.only) if args.only else None
    known = set(family_specs()) | set(transform_specs()) | {"hmm"}
    if only and only - known:
        raise SystemExit(f"unknown names {sorted(only - known)}")
    missing = [n for n in pyro_dists.__all__ if n not in family_specs() and n not in NOT_FAMILIES]
    started = time.time()
    families, transforms = [], []
    for name in family_specs():
        if only is None or name in only:
            families.append(family_row(name, args))
            _progress(families[-1], ("log_prob", "sample"))
    for name in transform_specs():
        if only is None or name in only:
            transforms.append(transform_row(name, args))
            _progress(transforms[-1], ("forward",))
    hmm = hmm_rows(args) if only is None or "hmm" in only else None
    if hmm:
        print(f"DiscreteHMM T={HMM_T}: {hmm['speedup_vs_sequential']:.1f}x the loop", flush=True)
    command = "python -m benchmarks.distributions" + (" " + " ".join(argv) if argv else "")
    settings = {
        "command": command,
        "repeats": args.repeats,
        "block_ms": args.block_ms,
        "device": args.device,
        "clock": args.clock,
        "torch_threads": threads,
        "batch": BATCH,
        "wall_s": round(time.time() - started, 1),
        "env": environment(),
        "not_families": NOT_FAMILIES,
        "unspecified_pyro_names": missing,
    }
    raw = {"settings": settings, "families": families, "transforms": transforms, "hmm": hmm}
    if args.merge and (args.out / RESULT_FILE).exists():
        raw = merge(json.loads((args.out / RESULT_FILE).read_text()), raw)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / RESULT_FILE).write_text(json.dumps(raw, indent=1) + "\n")
    write_section(args.out / "RESULTS.md", section_lines(raw))
    print(f"wrote {args.out / RESULT_FILE} and its RESULTS.md section in {settings['wall_s']} s")
    if missing:
        print(f"no spec for: {', '.join(missing)}")
    return 0


def merge(old: dict, new: dict) -> dict:
    """``old``'s results with ``new``'s rows in their place; ``old``'s settings, with the
    merged command and its rows listed under ``merged``."""
    out = {"settings": dict(old["settings"])}
    for key in ("families", "transforms"):
        fresh = {row["name"]: row for row in new[key]}
        rows = [fresh.pop(row["name"], row) for row in old[key]]
        out[key] = rows + list(fresh.values())
    out["hmm"] = new["hmm"] or old.get("hmm")
    names = [r["name"] for r in new["families"] + new["transforms"]] + ["hmm"] * bool(new["hmm"])
    merged = {"command": new["settings"]["command"], "rows": names}
    out["settings"]["merged"] = old["settings"].get("merged", []) + [merged]
    return out


def _progress(row: dict, ops) -> None:
    parts = [row["name"]]
    for op in ops:
        cells = row.get(op, {})
        parts.append(f"{op} " + "/".join(f"{k} {_us(v)}" for k, v in cells.items()))
        ratio = row.get(f"{op}_ratio")
        parts.append(f"ratio {ratio:.2f}" if ratio else "")
    if row.get("error") or row.get("note"):
        parts.append(row.get("error") or row.get("note"))
    print("  ".join(p for p in parts if p), flush=True)


if __name__ == "__main__":
    sys.exit(main())
