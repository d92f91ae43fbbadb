"""The workloads and the configurations that run them: the one place to add a benchmark.

A *workload* fixes the model, the data, the learning rate and the step budget; a *config* says
which framework runs it and how (guide, ELBO flavour, loop style). Adding a workload means:
a ``Workload`` entry here, its data in ``data.py``, its model/guide in ``models.py`` and its
hand-written step in ``frameworks/hand.py``. A workload with a ``Convergence`` also runs its
steps-to-converge measurement (``benchmarks.run``, separate from the timing blocks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Tuple

FRAMEWORKS = ("hand", "pyrolite", "pyro", "numpyro")


@dataclass(frozen=True)
class Convergence:
    """A workload's steps-to-converge figure, measured apart from the timing blocks.

    Each of ``configs`` runs once per seed (``torch.manual_seed(seed)`` for the hand-written
    step, ``pyro.set_rng_seed(seed)`` for Pyro and pyrolite) from a fresh param store, and the
    figure is the first step k (counting from 1) after which the run's quality (see
    ``data.coin_quality``) is below ``tolerance``, checked after every step, at most
    ``max_steps`` steps; the table gives the mean over seeds (a seed that never gets there
    counts as ``max_steps``). ``--quick`` runs the first ``quick_seeds`` seeds only.
    """

    configs: Tuple[str, ...]
    seeds: Tuple[int, ...] = tuple(range(10))
    quick_seeds: int = 10
    max_steps: int = 10_000
    tolerance: float = 0.8

    def run_seeds(self, quick: bool) -> Tuple[int, ...]:
        return self.seeds[: self.quick_seeds] if quick else self.seeds


@dataclass(frozen=True)
class Workload:
    """One benchmark problem and its step budget.

    ``block_steps`` steps form one timing block; each run does one warm-up block and
    ``blocks`` timed blocks after the (separately timed) first step. ``adam_betas`` are the
    optimizer's betas where a workload sets them (None: Adam's defaults, (0.9, 0.999));
    ``estimator`` names what the ``pyro`` reference row runs (the tables' "× Pyro" column).
    """

    name: str
    title: str
    description: str
    lr: float
    num_data: int
    num_particles: int = 1
    block_steps: int = 200
    quick_block_steps: int = 50
    quality_name: str = ""
    planned: bool = False
    adam_betas: Tuple[float, float] | None = None
    estimator: str = "Trace_ELBO"
    convergence: Convergence | None = None


@dataclass(frozen=True)
class Config:
    """One way of running a workload: a framework plus its options.

    ``options`` keys understood by the workers: ``guide`` ("hand" | "autodiag"),
    ``elbo`` (the estimator: "trace" | "meanfield" | "renyi" | "tracegraph" | "enum", or its JIT
    variant "jit-trace" | "jit-meanfield" | "jit-renyi" | "jit-tracegraph" | "jit-enum"; for
    the hand-written step "renyi" means its IWAE step), ``hmm`` (the HMM workloads' model:
    "markov", the default, step by step; "discrete", one ``DiscreteHMM`` site), ``baseline``
    ("decaying": W4's guide site asks for the decaying-average baseline; absent: no
    baseline), ``num_particles`` (overrides the workload's count, see ``num_particles``),
    ``particles`` ("vectorized" | "sequential"), ``loop`` ("update" | "scan"), ``compile``
    (SVI's ``compile=True``), ``validation`` ("off": ``enable_validation(False)``; the
    default is the library's, on). ``step_scale`` scales the step budget: below 1 for very slow
    configs (e.g. Pyro with 100 sequential particles), above 1 for a fast row among slow ones
    (W9's ``DiscreteHMM`` rows).
    """

    key: str
    framework: str
    label: str
    options: Tuple[Tuple[str, str], ...] = ()
    step_scale: float = 1.0
    note: str = ""

    def option(self, name: str, default: str | None = None) -> str | None:
        return dict(self.options).get(name, default)


WORKLOADS: Dict[str, Workload] = {
    "W1": Workload(
        name="W1",
        title="Coin: Beta-Bernoulli",
        description=(
            "f ~ Beta(10, 10); 10 Bernoulli obs in a plate (6 ones, 4 zeros); "
            "guide Beta(alpha_q, beta_q), params init 15.0 with constraint=positive; "
            "Trace_ELBO, Adam lr 5e-4."
        ),
        lr=5e-4,
        num_data=10,
        block_steps=300,
        quick_block_steps=100,
        quality_name="|E_q[f] - exact posterior mean 16/30|",
    ),
    "W2": Workload(
        name="W2",
        title="Bayesian linear regression, N=2500, P=8",
        description=(
            "alpha ~ Normal(0, 100), beta ~ Normal(0, 10).to_event(1), sigma ~ HalfNormal(10), "
            "y ~ Normal(alpha + x @ beta, sigma) in plate('data', N); data as in seed 003 "
            "(torch seed 42). Hand-written mean-field guide: Normal over alpha and beta, "
            "LogNormal over sigma, scales = exp(unconstrained) (constraint=positive, init 0.1); "
            "Adam lr 1e-2."
        ),
        lr=1e-2,
        num_data=2500,
        block_steps=200,
        quick_block_steps=50,
        quality_name="max |guide mean - least-squares coef| over (alpha, beta)",
    ),
    "W3": Workload(
        name="W3",
        title="W2 with 100 particles",
        description=(
            "W2's model and guide; Trace_ELBO(num_particles=100, vectorize_particles=True, "
            "max_plate_nesting=1) for pyrolite/Pyro, Trace_ELBO(num_particles=100) for NumPyro, "
            "a leading particle dimension for the hand-written step."
        ),
        lr=1e-2,
        num_data=2500,
        num_particles=100,
        block_steps=50,
        quick_block_steps=10,
        quality_name="max |guide mean - least-squares coef| over (alpha, beta)",
    ),
    "W4": Workload(
        name="W4",
        title="Score-function Beta-Bernoulli, with/without decaying-average baseline",
        description=(
            "Seed 004 (Pyro tutorial SVI Part III): f ~ Beta(10, 10); 10 Bernoulli obs in "
            "plate('data_plate') (6 ones, 4 zeros); guide NonreparameterizedBeta(alpha_q, beta_q) "
            "(pyro.distributions.testing.fakes), params init 15.0 with constraint=positive, "
            "infer=dict(baseline={'use_decaying_avg_baseline': <bool>, 'baseline_beta': 0.90}); "
            "TraceGraph_ELBO, Adam lr 5e-4, betas (0.93, 0.999). Exact posterior Beta(16, 14)."
        ),
        lr=5e-4,
        num_data=10,
        block_steps=200,  # fewer than W1's 300: Pyro's TraceGraph_ELBO step takes ~10 ms
        quick_block_steps=100,
        quality_name="max(|alpha_q - 16|, |beta_q - 14|) (converged below 0.8)",
        adam_betas=(0.93, 0.999),
        estimator="TraceGraph_ELBO",
        convergence=Convergence(
            configs=(
                "hand",
                "hand-nobaseline",
                "pyrolite",
                "pyrolite-nobaseline",
                "pyro",
                "pyro-nobaseline",
            ),
        ),
    ),
    "W5": Workload(
        name="W5",
        title="Gaussian mixture, K=3, N=1000, parallel enumeration, MAP guide",
        description=(
            "Pyro's GMM tutorial: weights ~ Dirichlet(0.5 * ones(3)), scale ~ LogNormal(0, 2), "
            "locs ~ Normal(0, 10) in plate('components', 3); in plate('data', 1000) assignment ~ "
            "Categorical(weights) with infer={'enumerate': 'parallel'}, obs ~ Normal(locs["
            "assignment], scale); data: 1000 draws from weights (0.3, 0.45, 0.25), locs (-6, 0, "
            "5), scale 1 (torch seed 5). Guide: a Delta at a param per global (weights_q with "
            "constraint=simplex, init uniform; scale_q positive, init 2; locs_q init (-2, 0, 2)); "
            "TraceEnum_ELBO(max_plate_nesting=1), Adam lr 0.1, betas (0.8, 0.99). The hand step "
            "sums the assignment out with logsumexp (the same MAP objective, no Jacobian terms)."
        ),
        lr=0.1,
        num_data=1000,
        block_steps=50,  # Pyro's step takes ~20 ms, and the compiled row compiles in the run
        quick_block_steps=20,
        quality_name="max |sorted locs_q - (-6, 0, 5)|",
        adam_betas=(0.8, 0.99),
        estimator="TraceEnum_ELBO",
    ),
    "W6": Workload(
        name="W6",
        title="W2 with N = 1,000,000",
        description="W2's model, guide and optimiser on N = 1,000,000 data points.",
        lr=1e-2,
        num_data=1_000_000,
        block_steps=10,
        quick_block_steps=3,
        quality_name="max |guide mean - least-squares coef| over (alpha, beta)",
    ),
    "W7": Workload(
        name="W7",
        title="HMM, K=8, B=16, T=100: sequential enumeration under markov",
        description=(
            "K=8 hidden states, B=16 sequences in plate('sequences', 16, dim=-1), T=100; x = 0, "
            "then for t in markov(range(T)): x = sample(f'x_{t}', Categorical(Vindex(probs_x)"
            "[x]), infer={'enumerate': 'parallel'}); sample(f'y_{t}', Normal(Vindex(locs)[x], "
            "scale), obs=data[t]). Globals as model params: probs_x (8, 8) rows with "
            "constraint=simplex, init 0.9 on the diagonal; locs init linspace(-6, 6, 8); scale "
            "positive, init 1. The guide is empty. Data drawn from the same HMM with stay "
            "probability 0.8, locs -7, -5, ..., 7, scale 0.5 (torch seed 7). "
            "TraceEnum_ELBO(max_plate_nesting=1), Adam lr 0.05. The hand step is the forward "
            "algorithm (one logsumexp per time step)."
        ),
        lr=0.05,
        num_data=100,
        block_steps=6,  # Pyro's step takes ~0.4 s (its rows run half of it)
        quick_block_steps=4,
        quality_name="max |sorted locs - (-7, -5, ..., 7)|",
        estimator="TraceEnum_ELBO",
    ),
    "W8": Workload(
        name="W8",
        title="HMM, K=8, B=16, T=1000: sequential enumeration under markov",
        description=(
            "W7's model, params, inits and optimizer with T=1000 (W7's sequences are the first "
            "100 steps of these). No JitTraceEnum_ELBO rows: pyrolite's traced graph took ~50 s "
            "to optimize here (TorchScript's profiling executor, step 2) for a ~1 s step."
        ),
        lr=0.05,
        num_data=1000,
        block_steps=2,  # pyrolite's step takes ~1.5 s, Pyro's ~4.5 s (one step per block)
        quick_block_steps=1,
        quality_name="max |sorted locs - (-7, -5, ..., 7)|",
        estimator="TraceEnum_ELBO",
    ),
    "W9": Workload(
        name="W9",
        title="HMM, T=1000, the time dimension eliminated by a parallel scan (DiscreteHMM)",
        description=(
            "W8's model, data and params, its likelihood as one site: sample('y', "
            "DiscreteHMM(initial_logits, probs_x.log(), Normal(locs, scale)), obs=data) in "
            "plate('sequences', 16, dim=-1), data (B, T) = (16, 1000). DiscreteHMM's "
            "initial_logits is the state before the first transition, so W8's 'state 0 before "
            "t = 0' is a one-hot initial_logits (0 for state 0, -inf elsewhere): the likelihood "
            "equals W8's. No latent sites, so Trace_ELBO (the empty guide), Adam lr 0.05; "
            "against W8's sequential pyrolite config and the hand forward loop."
        ),
        lr=0.05,
        num_data=1000,
        block_steps=2,  # scaled per row: sequential 0.5x (W8's again), DiscreteHMM 5x
        quick_block_steps=1,
        quality_name="max |sorted locs - (-7, -5, ..., 7)|",
        estimator="DiscreteHMM (Trace_ELBO)",
    ),
}


def _cfg(key, framework, label, step_scale=1.0, note="", **options) -> Config:
    return Config(key, framework, label, tuple(sorted(options.items())), step_scale, note)


HAND = _cfg("hand", "hand", "hand-written PyTorch step")
PYROLITE = _cfg("pyrolite", "pyrolite", "pyrolite Trace_ELBO", elbo="trace", guide="hand")
# Validation off (pyrolite.enable_validation(False)): the cost of the per-step checks.
PYROLITE_NOVALIDATE = _cfg(
    "pyrolite-novalidate",
    "pyrolite",
    "pyrolite Trace_ELBO, validation off",
    elbo="trace",
    guide="hand",
    validation="off",
)
PYRO = _cfg("pyro", "pyro", "Pyro Trace_ELBO", elbo="trace", guide="hand")
PYRO_JIT = _cfg("pyro-jit", "pyro", "Pyro JitTrace_ELBO", elbo="jit-trace", guide="hand")
NUMPYRO = _cfg("numpyro", "numpyro", "NumPyro jit(svi.update)", loop="update", guide="hand")
PYROLITE_JIT = _cfg(
    "pyrolite-jit", "pyrolite", "pyrolite JitTrace_ELBO", elbo="jit-trace", guide="hand"
)
_COMPILE_NOTE = "steps 1-2 run eagerly, step 3 compiles (in the warm-up block, not timed)"
PYROLITE_COMPILED = _cfg(
    "pyrolite-compiled",
    "pyrolite",
    "pyrolite SVI(compile=True)",
    elbo="trace",
    guide="hand",
    compile="inductor",
    note=_COMPILE_NOTE,
)
PYROLITE_AUTODIAG = _cfg(
    "pyrolite-autodiag", "pyrolite", "pyrolite AutoDiagonalNormal", elbo="trace", guide="autodiag"
)

_AUTODIAG = [
    PYROLITE_AUTODIAG,
    _cfg("pyro-autodiag", "pyro", "Pyro AutoDiagonalNormal", elbo="trace", guide="autodiag"),
    _cfg(
        "numpyro-autodiag",
        "numpyro",
        "NumPyro AutoDiagonalNormal jit(svi.update)",
        loop="update",
        guide="autodiag",
    ),
]
NUMPYRO_SCAN = _cfg(
    "numpyro-scan",
    "numpyro",
    "NumPyro lax.scan loop (per step)",
    loop="scan",
    guide="hand",
    note="first-step column = first call, which compiles and runs one whole block",
)

# TraceMeanField_ELBO: analytic KL where torch has one (W1's Beta/Beta, W2's Normal/Normal
# sites; W2's LogNormal guide against the HalfNormal prior stays a Monte Carlo term).
_MEANFIELD = [
    _cfg(
        "pyrolite-meanfield",
        "pyrolite",
        "pyrolite TraceMeanField_ELBO",
        elbo="meanfield",
        guide="hand",
    ),
    _cfg("pyro-meanfield", "pyro", "Pyro TraceMeanField_ELBO", elbo="meanfield", guide="hand"),
]
_MEANFIELD_COMPILED = [
    _cfg(
        "pyrolite-meanfield-jit",
        "pyrolite",
        "pyrolite JitTraceMeanField_ELBO",
        elbo="jit-meanfield",
        guide="hand",
    ),
    _cfg(
        "pyro-meanfield-jit",
        "pyro",
        "Pyro JitTraceMeanField_ELBO",
        step_scale=0.1,
        note="runs a tenth of the step budget: Pyro 1.9.2 traces it anew every step (its cache "
        "check reads `_loss_and_surrogate_loss`, the cache is `_differentiable_loss`)",
        elbo="jit-meanfield",
        guide="hand",
    ),
    _cfg(
        "pyrolite-meanfield-compiled",
        "pyrolite",
        "pyrolite TraceMeanField_ELBO SVI(compile=True)",
        elbo="meanfield",
        guide="hand",
        compile="inductor",
        note=_COMPILE_NOTE,
    ),
]
# RenyiELBO(alpha=0): the importance-weighted (IWAE) bound with 10 vectorized particles on W2,
# against a hand-written IWAE step (Pyro has no JitRenyiELBO).
_IWAE = dict(guide="hand", num_particles="10", particles="vectorized")
_RENYI = [
    _cfg(
        "hand-iwae",
        "hand",
        "hand-written IWAE step, 10 particles",
        elbo="renyi",
        num_particles="10",
    ),
    _cfg(
        "pyrolite-iwae",
        "pyrolite",
        "pyrolite RenyiELBO(alpha=0) 10 vectorized",
        elbo="renyi",
        **_IWAE,
    ),
    _cfg("pyro-iwae", "pyro", "Pyro RenyiELBO(alpha=0) 10 vectorized", elbo="renyi", **_IWAE),
    _cfg(
        "pyrolite-iwae-jit",
        "pyrolite",
        "pyrolite JitRenyiELBO(alpha=0) 10 vectorized",
        elbo="jit-renyi",
        **_IWAE,
    ),
    _cfg(
        "pyrolite-iwae-compiled",
        "pyrolite",
        "pyrolite RenyiELBO(alpha=0) 10 vectorized SVI(compile=True)",
        elbo="renyi",
        compile="inductor",
        note=_COMPILE_NOTE,
        **_IWAE,
    ),
]

# W4: TraceGraph_ELBO's score-function estimator, with the decaying-average baseline (the plain
# keys) and without it (``-nobaseline``); ``-1000`` rows draw 1000 vectorized particles.
_SF = dict(guide="hand", elbo="tracegraph")
_SF_BASELINE = dict(_SF, baseline="decaying")
_SF_1000 = dict(_SF_BASELINE, num_particles="1000", particles="vectorized")
_SCORE_FUNCTION = [
    _cfg("hand", "hand", "hand-written score-function step, baseline", baseline="decaying"),
    _cfg("hand-nobaseline", "hand", "hand-written score-function step, no baseline"),
    _cfg("pyrolite", "pyrolite", "pyrolite TraceGraph_ELBO, baseline", **_SF_BASELINE),
    _cfg("pyrolite-nobaseline", "pyrolite", "pyrolite TraceGraph_ELBO, no baseline", **_SF),
    _cfg(
        "pyrolite-jit",
        "pyrolite",
        "pyrolite JitTraceGraph_ELBO, baseline",
        **dict(_SF_BASELINE, elbo="jit-tracegraph"),
    ),
    _cfg(
        "pyrolite-compiled",
        "pyrolite",
        "pyrolite TraceGraph_ELBO SVI(compile=True), baseline",
        compile="inductor",
        note=_COMPILE_NOTE,
        **_SF_BASELINE,
    ),
    _cfg("pyro", "pyro", "Pyro TraceGraph_ELBO, baseline", **_SF_BASELINE),
    _cfg("pyro-nobaseline", "pyro", "Pyro TraceGraph_ELBO, no baseline", **_SF),
    _cfg(
        "pyro-jit",
        "pyro",
        "Pyro JitTraceGraph_ELBO, baseline",
        note="Pyro 1.9.2 cannot trace the decaying-average baseline (it reads the average from "
        "the param store, where it requires grad, and torch.jit.trace refuses it as a constant)",
        **dict(_SF_BASELINE, elbo="jit-tracegraph"),
    ),
    _cfg(
        "pyro-jit-nobaseline",
        "pyro",
        "Pyro JitTraceGraph_ELBO, no baseline",
        note="Pyro's JIT row that runs: `pyro-jit` fails with the baseline",
        **dict(_SF, elbo="jit-tracegraph"),
    ),
    _cfg(
        "numpyro-nobaseline",
        "numpyro",
        "NumPyro TraceGraph_ELBO jit(svi.update), no baseline",
        note="NumPyro has no baselines; its Beta subclass with `reparametrized_params = []` "
        "is non-reparameterized",
        loop="update",
        **_SF,
    ),
    _cfg(
        "hand-1000",
        "hand",
        "hand-written score-function step, 1000 particles, baseline",
        baseline="decaying",
        num_particles="1000",
        note="baseline: one running average of the particle-mean cost",
    ),
    _cfg(
        "pyrolite-1000",
        "pyrolite",
        "pyrolite TraceGraph_ELBO 1000 vectorized, baseline",
        **_SF_1000,
    ),
    _cfg("pyro-1000", "pyro", "Pyro TraceGraph_ELBO 1000 vectorized, baseline", **_SF_1000),
]

# W5, W7-W9: TraceEnum_ELBO (discrete sites enumerated in parallel and summed out exactly).
_ENUM = dict(elbo="enum", guide="hand")
_JIT_ENUM = dict(elbo="jit-enum", guide="hand")
_PYRO_JIT_ENUM_NOTE = (
    "TorchScript's profiling executor optimizes the traced graph over the first three steps "
    "(the first-step column is step 1 only; steps 2-3 land in the untimed warm-up block)"
)
_MIXTURE = [
    _cfg("hand", "hand", "hand-written MAP step, assignment summed by logsumexp"),
    _cfg("pyrolite", "pyrolite", "pyrolite TraceEnum_ELBO", **_ENUM),
    _cfg("pyrolite-jit", "pyrolite", "pyrolite JitTraceEnum_ELBO", **_JIT_ENUM),
    _cfg(
        "pyrolite-compiled",
        "pyrolite",
        "pyrolite TraceEnum_ELBO SVI(compile=True)",
        compile="inductor",
        note=_COMPILE_NOTE,
        **_ENUM,
    ),
    _cfg("pyro", "pyro", "Pyro TraceEnum_ELBO", **_ENUM),
    _cfg("pyro-jit", "pyro", "Pyro JitTraceEnum_ELBO", note=_PYRO_JIT_ENUM_NOTE, **_JIT_ENUM),
]
_HMM_HAND = _cfg("hand", "hand", "hand-written forward algorithm (loop over t)")
_HMM_MARKOV = [
    _HMM_HAND,
    _cfg("pyrolite", "pyrolite", "pyrolite TraceEnum_ELBO, markov", **_ENUM),
]
# W7 only: at T=1000 the traced graph took ~50 s to optimize (TorchScript's profiling executor,
# step 2) for a ~1 s step, a minute of every W8 run.
_HMM_JIT = _cfg("pyrolite-jit", "pyrolite", "pyrolite JitTraceEnum_ELBO, markov", **_JIT_ENUM)
_PYRO_HMM_NOTE = "runs half the step budget"
_HMM_DISCRETE = dict(elbo="trace", guide="hand", hmm="discrete")
_DISCRETE_NOTE = "runs 5x the step budget (a fast step)"
_W8_AGAIN_NOTE = "W8's row again, one step per block (half the step budget)"

# W1's and W2's common rows: each framework's plain step, and pyrolite's variants.
_TRACE_ROWS = [
    HAND,
    PYROLITE,
    PYROLITE_NOVALIDATE,
    PYROLITE_JIT,
    PYROLITE_COMPILED,
    PYRO,
    PYRO_JIT,
    NUMPYRO,
]

CONFIGS: Dict[str, List[Config]] = {
    "W1": [*_TRACE_ROWS, *_MEANFIELD],
    "W2": [
        *_TRACE_ROWS,
        NUMPYRO_SCAN,
        *_AUTODIAG,
        *_MEANFIELD,
        *_MEANFIELD_COMPILED,
        *_RENYI,
    ],
    "W3": [
        HAND,
        _cfg(
            "pyrolite",
            "pyrolite",
            "pyrolite Trace_ELBO vectorized",
            elbo="trace",
            guide="hand",
            particles="vectorized",
        ),
        _cfg(
            "pyro",
            "pyro",
            "Pyro Trace_ELBO vectorized",
            elbo="trace",
            guide="hand",
            particles="vectorized",
        ),
        _cfg(
            "pyro-seq",
            "pyro",
            "Pyro Trace_ELBO sequential particles",
            step_scale=0.1,
            note="runs a tenth of the step budget",
            elbo="trace",
            guide="hand",
            particles="sequential",
        ),
        _cfg("numpyro", "numpyro", "NumPyro jit(svi.update)", loop="update", guide="hand"),
        _cfg(
            "pyrolite-autodiag",
            "pyrolite",
            "pyrolite AutoDiagonalNormal vectorized",
            elbo="trace",
            guide="autodiag",
            particles="vectorized",
        ),
    ],
    "W4": _SCORE_FUNCTION,
    "W5": _MIXTURE,
    "W6": [HAND, PYROLITE, PYROLITE_AUTODIAG, PYROLITE_COMPILED, PYRO, NUMPYRO],
    "W7": [
        *_HMM_MARKOV,
        _HMM_JIT,
        _cfg(
            "pyro",
            "pyro",
            "Pyro TraceEnum_ELBO, markov",
            step_scale=0.5,
            note=_PYRO_HMM_NOTE,
            **_ENUM,
        ),
        _cfg(
            "pyro-jit",
            "pyro",
            "Pyro JitTraceEnum_ELBO, markov",
            step_scale=0.5,
            note=f"{_PYRO_HMM_NOTE}; {_PYRO_JIT_ENUM_NOTE}",
            **_JIT_ENUM,
        ),
    ],
    "W8": [
        *_HMM_MARKOV,
        _cfg(
            "pyro",
            "pyro",
            "Pyro TraceEnum_ELBO, markov",
            step_scale=0.5,
            note="runs one step per block (half the step budget: its step takes seconds)",
            **_ENUM,
        ),
    ],
    "W9": [
        _cfg(
            "hand",
            "hand",
            "hand-written forward algorithm (loop over t), as W8's",
            step_scale=0.5,
            note=_W8_AGAIN_NOTE,
        ),
        _cfg(
            "pyrolite",
            "pyrolite",
            "pyrolite DiscreteHMM, Trace_ELBO",
            step_scale=5.0,
            note=_DISCRETE_NOTE,
            **_HMM_DISCRETE,
        ),
        _cfg(
            "pyrolite-markov",
            "pyrolite",
            "pyrolite TraceEnum_ELBO, markov (W8's)",
            step_scale=0.5,
            note=_W8_AGAIN_NOTE,
            **_ENUM,
        ),
        _cfg(
            "pyro",
            "pyro",
            "Pyro DiscreteHMM, Trace_ELBO",
            step_scale=5.0,
            note=_DISCRETE_NOTE,
            **_HMM_DISCRETE,
        ),
    ],
}

# Per workload: the config the "ratio to hand" and "ratio to Pyro" columns divide by.
REFERENCE_KEYS = {"hand": "hand", "pyro": "pyro"}


@dataclass(frozen=True)
class Target:
    """An issue target: pyrolite's ratio to the hand-written step, in time (and memory).

    ``malloc`` names the allocator setting both rows must have run under ("steady" |
    "default", see ``benchmarks.run --malloc``); None means the run's main setting. A
    ``max_time_ratio`` of None makes it a memory-only target.
    """

    workload: str
    config: str
    max_time_ratio: float | None
    max_memory_ratio: float | None = None
    text: str = field(default="")
    reference: str = "hand"  # the config the ratio divides by
    malloc: str | None = None


TARGETS = [
    Target(
        "W1",
        "pyrolite",
        1.1,
        reference="pyrolite-novalidate",
        text="W1 validation on (checked every step) within 1.1x of validation off",
    ),
    Target(
        "W2",
        "pyrolite",
        1.1,
        reference="pyrolite-novalidate",
        text="W2 validation on (checked every step) within 1.1x of validation off",
    ),
    Target("W1", "pyrolite", 1.3, text="W1 pyrolite eager svi.step() within 1.3x of hand"),
    Target("W2", "pyrolite", 1.3, text="W2 pyrolite eager svi.step() within 1.3x of hand"),
    Target("W3", "pyrolite", 1.3, text="W3 pyrolite eager svi.step() within 1.3x of hand"),
    Target(
        "W6",
        "pyrolite",
        1.1,
        1.2,
        text="W6 pyrolite within 1.1x of hand in time, peak memory within 1.2x of hand's",
    ),
    # Issue 5: the same targets with AutoDiagonalNormal (autoguide overhead included).
    Target("W2", "pyrolite-autodiag", 1.3, text="W2 AutoDiagonalNormal within 1.3x of hand"),
    Target("W3", "pyrolite-autodiag", 1.3, text="W3 AutoDiagonalNormal within 1.3x of hand"),
    Target(
        "W6",
        "pyrolite-autodiag",
        1.1,
        1.2,
        text="W6 AutoDiagonalNormal within 1.1x of hand in time, 1.2x in peak memory",
    ),
    # Issue 4: compiled variants.
    Target(
        "W1",
        "pyrolite-jit",
        1 / 1.5,
        reference="pyro-jit",
        text="W1 JitTrace_ELBO at least 1.5x faster than Pyro's JitTrace_ELBO",
    ),
    Target(
        "W2",
        "pyrolite-jit",
        1 / 1.5,
        reference="pyro-jit",
        text="W2 JitTrace_ELBO at least 1.5x faster than Pyro's JitTrace_ELBO",
    ),
    Target(
        "W1",
        "pyrolite-compiled",
        2.0,
        reference="numpyro",
        text="W1 compiled whole step within 2x of NumPyro's jitted svi.update",
    ),
    Target(
        "W2",
        "pyrolite-compiled",
        2.0,
        reference="numpyro",
        text="W2 compiled whole step within 2x of NumPyro's jitted svi.update",
    ),
    Target(
        "W6",
        "pyrolite-compiled",
        1.0,
        reference="numpyro",
        text="W6 compiled whole step no slower than NumPyro's jitted svi.update",
    ),
    # TraceMeanField_ELBO and RenyiELBO.
    *[
        Target(
            w,
            "pyrolite-meanfield",
            1.05,
            reference="pyrolite",
            text=f"{w} TraceMeanField_ELBO within 1.05x of pyrolite's Trace_ELBO",
        )
        for w in ("W1", "W2")
    ],
    *[
        Target(
            w,
            "pyrolite-meanfield",
            1 / 2.5,
            reference="pyro-meanfield",
            text=f"{w} TraceMeanField_ELBO at least 2.5x faster than Pyro's",
        )
        for w in ("W1", "W2")
    ],
    Target(
        "W2",
        "pyrolite-iwae",
        1.3,
        reference="hand-iwae",
        text="W2 RenyiELBO(alpha=0), 10 vectorized particles, within 1.3x of the hand IWAE step",
    ),
    Target(
        "W2",
        "pyrolite-iwae",
        1 / 2.0,
        reference="pyro-iwae",
        text="W2 RenyiELBO(alpha=0), 10 vectorized particles, at least 2x faster than Pyro's",
    ),
    # W4: TraceGraph_ELBO's score-function step, with and without the decaying-average baseline.
    Target(
        "W4",
        "pyrolite",
        1.5,
        text="W4 pyrolite eager TraceGraph_ELBO step with baseline within 1.5x of hand",
    ),
    Target(
        "W4",
        "pyrolite-nobaseline",
        1.5,
        reference="hand-nobaseline",
        text="W4 pyrolite eager TraceGraph_ELBO step without baseline within 1.5x of hand",
    ),
    Target(
        "W4",
        "pyrolite-jit",
        1.0,
        text="W4 JitTraceGraph_ELBO (baseline) no slower than the hand step",
    ),
    Target(
        "W4",
        "pyrolite-compiled",
        1.0,
        text="W4 TraceGraph_ELBO SVI(compile=True) (baseline) no slower than the hand step",
    ),
    Target(
        "W4",
        "pyrolite-1000",
        1.3,
        1.2,
        reference="hand-1000",
        text="W4 1000 vectorized particles within 1.3x of the 1000-particle hand step in time, "
        "1.2x in peak memory",
    ),
    # Issue 11: enumeration (TraceEnum_ELBO) on W5's mixture and W7/W8's HMM.
    Target(
        "W5",
        "pyrolite",
        1.5,
        text="W5 pyrolite eager TraceEnum_ELBO step within 1.5x of the hand MAP step",
    ),
    Target(
        "W5",
        "pyrolite",
        1 / 3,
        reference="pyro",
        text="W5 pyrolite eager TraceEnum_ELBO at least 3x faster than Pyro's TraceEnum_ELBO",
    ),
    Target("W5", "pyrolite-jit", 1.0, text="W5 JitTraceEnum_ELBO no slower than the hand step"),
    Target(
        "W5",
        "pyrolite-jit",
        1 / 2,
        reference="pyro-jit",
        text="W5 JitTraceEnum_ELBO at least 2x faster than Pyro's JitTraceEnum_ELBO",
    ),
    *[
        Target(
            w,
            "pyrolite",
            1 / 3,
            reference="pyro",
            text=f"{w} (HMM, T={t}) pyrolite TraceEnum_ELBO at least 3x faster than Pyro's",
        )
        for w, t in (("W7", 100), ("W8", 1000))
    ],
    Target(
        "W8",
        "pyrolite",
        None,
        1.5,
        text="W8 (HMM, T=1000) pyrolite TraceEnum_ELBO peak memory within 1.5x of the hand "
        "forward algorithm's",
    ),
    # The eager step under both allocator settings (``benchmarks.run --malloc both``).
    *[
        Target(
            w,
            "pyrolite",
            1.2,
            malloc=malloc,
            text=f"{w} pyrolite eager svi.step() within 1.2x of hand under `--malloc {malloc}`",
        )
        for w in ("W2", "W3")
        for malloc in ("steady", "default")
    ],
]


@dataclass(frozen=True)
class ConvergenceTarget:
    """An issue target on a workload's steps-to-converge figure (see ``Convergence``): the mean
    over seeds of ``config`` at most ``max_ratio`` times that of ``reference``."""

    workload: str
    config: str
    reference: str
    max_ratio: float
    text: str


CONVERGENCE_TARGETS = [
    ConvergenceTarget(
        "W4",
        "pyrolite",
        "pyro",
        1.0,
        text="W4 pyrolite's mean steps to converge with baseline no more than Pyro's (same seeds)",
    ),
    ConvergenceTarget(
        "W4",
        "pyrolite-nobaseline",
        "pyro-nobaseline",
        1.0,
        text="W4 pyrolite's mean steps to converge without baseline no more than Pyro's "
        "(same seeds)",
    ),
]


@dataclass(frozen=True)
class ScalingTarget:
    """An issue target on how a config's step time grows with the problem: its µs/step on
    ``long`` over that on ``short`` (the same model, ``factor`` times longer) at most
    ``max_ratio`` (linear growth: about ``factor``, less with a fixed per-step overhead)."""

    short: str
    long: str
    config: str
    factor: float
    max_ratio: float
    text: str


# Issue 11: the HMM's per-step time grows linearly in T, for every framework (T=100 -> 1000:
# at most 15x, linear with a 50% allowance for noise and cache effects: the hand and Pyro
# steps measured 12-13x on a shared machine; a quadratic cost would be ~100x).
SCALING_TARGETS = [
    ScalingTarget(
        "W7",
        "W8",
        key,
        10.0,
        15.0,
        text=f"HMM per-step time linear in T: `{key}` T=1000 (W8) / T=100 (W7)",
    )
    for key in ("hand", "pyrolite", "pyro")
]

# Per workload and config: rows whose time ratio its notes give besides its targets' (the
# "× Pyro" column divides by the workload's ``pyro`` row only).
RATIO_NOTES = {
    ("W4", "pyrolite-nobaseline"): ("pyro-nobaseline",),
    ("W4", "pyrolite-jit"): ("pyro-jit",),
    ("W4", "pyrolite-1000"): ("pyro-1000",),
    ("W5", "pyrolite-compiled"): ("pyro-jit",),
    ("W7", "pyrolite-jit"): ("pyro-jit",),
    ("W9", "pyrolite"): ("pyrolite-markov",),
    ("W9", "pyro"): ("pyrolite-markov",),
}


def malloc_comparison() -> Dict[str, List[str]]:
    """Per workload, the configs that targets check under a named allocator setting (and the
    rows they divide by): what ``--malloc both`` also runs under glibc's default, and what the
    report's allocator table shows."""
    keys: Dict[str, List[str]] = {}
    for target in TARGETS:
        if target.malloc is not None:
            row = keys.setdefault(target.workload, [])
            row += [k for k in (target.reference, target.config) if k not in row]
    return keys


def runnable_workloads() -> List[str]:
    return [name for name, w in WORKLOADS.items() if not w.planned]


def num_particles(workload: str, config: Config) -> int:
    """The particles a config draws per step: its ``num_particles`` option, else the workload's."""
    return int(config.option("num_particles") or WORKLOADS[workload].num_particles)


def convergence_configs(workload: str) -> Tuple[str, ...]:
    """The configs whose steps to converge ``benchmarks.run`` measures on ``workload``."""
    convergence = WORKLOADS[workload].convergence
    return convergence.configs if convergence is not None else ()


def find_config(workload: str, key: str) -> Config:
    for config in CONFIGS[workload]:
        if config.key == key:
            return config
    raise KeyError(f"no config {key!r} for workload {workload}; known: {list_keys(workload)}")


def list_keys(workload: str) -> List[str]:
    return [c.key for c in CONFIGS[workload]]
