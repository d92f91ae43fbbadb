"""Each workload's model and guide, written once against a Pyro-style namespace.

``Backend`` bundles what differs between pyrolite, Pyro and NumPyro (the primitives module, the
distributions module, the constraints and how to make an array); the model code itself is the
same ordinary Pyro code for all three, so ``import pyrolite as pyro`` runs exactly what Pyro runs.

``Backend.const`` wraps the numbers a model passes to a prior: the number itself on the CPU (the
code is then literally ``dist.Beta(10.0, 10.0)``), a device tensor made once on a GPU, as a GPU
user writes it (a prior built from bare numbers lives on the CPU, and torch's Beta cannot score a
GPU sample with CPU concentrations).

``Backend.fakes`` is the package's ``distributions.testing.fakes`` module (where Pyro keeps
``NonreparameterizedBeta``, W4's guide distribution), or for NumPyro a namespace with the same
names. ``Backend.vindex`` is the package's ``ops.indexing.Vindex`` (the HMMs' enumerated
indexing), set only for the workloads that use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, Tuple

from .data import COIN_PRIOR, HMM_STATES, HMM_WORKLOADS, MIXTURE_WEIGHTS, hmm_transition_probs


@dataclass(frozen=True)
class Backend:
    """A PPL as the models see it: ``ppl.sample/param/plate``, ``dist``, ``constraints``."""

    ppl: ModuleType
    dist: ModuleType
    constraints: Any
    scalar: Callable[[float], Any]
    full: Callable[[int, float], Any]
    const: Callable[[float], Any] = float
    fakes: Any = None
    array: Callable[[Any], Any] | None = None  # nested lists of floats -> an array
    vindex: Any = None


# W4's guide-site baseline options (Pyro's ``infer=dict(baseline=...)``): the decaying average
# of the downstream cost, avg <- beta * avg + (1 - beta) * cost, used before its update.
BASELINE_BETA = 0.90


def baseline_options(decaying: bool) -> dict:
    return {"use_decaying_avg_baseline": decaying, "baseline_beta": BASELINE_BETA}


def linear_predictor(x, alpha, beta):
    """``alpha + x @ beta``, also under a vectorized particle plate.

    Without particles beta is (P,): plain ``x @ beta`` (``beta @ x.T`` would make XLA copy the
    transposed x every step, 13x slower on W6). Under Pyro's vectorized particles beta is
    (S, 1, P), the 1 being the data plate: ``beta @ x.T`` is (S, 1, N), and dropping that
    singleton lines it up with alpha's (S, 1) and the data plate at dim -1.
    """
    if beta.ndim == 1:
        return alpha + x @ beta
    return alpha + (beta @ x.T).squeeze(-2)


def coin(backend: Backend) -> Tuple[Callable, Callable]:
    """W1: Beta(10, 10) prior, Bernoulli likelihood in a plate, Beta guide."""
    ppl, dist, positive = backend.ppl, backend.dist, backend.constraints.positive
    alpha_init, beta_init = backend.scalar(15.0), backend.scalar(15.0)
    prior_a, prior_b = (backend.const(c) for c in COIN_PRIOR)

    def model(obs):
        f = ppl.sample("latent_fairness", dist.Beta(prior_a, prior_b))
        with ppl.plate("data", obs.shape[0]):
            ppl.sample("obs", dist.Bernoulli(probs=f), obs=obs)

    def guide(obs):
        alpha_q = ppl.param("alpha_q", alpha_init, constraint=positive)
        beta_q = ppl.param("beta_q", beta_init, constraint=positive)
        ppl.sample("latent_fairness", dist.Beta(alpha_q, beta_q))

    return model, guide


def score_function_coin(backend: Backend, baseline: bool) -> Tuple[Callable, Callable]:
    """W4 (seed 004, SVI Part III): W1's model with a non-reparameterized Beta guide, whose
    site asks for the decaying-average baseline when ``baseline``."""
    ppl, dist, positive = backend.ppl, backend.dist, backend.constraints.positive
    nonreparameterized_beta = backend.fakes.NonreparameterizedBeta
    alpha_init, beta_init = backend.scalar(15.0), backend.scalar(15.0)
    prior_a, prior_b = (backend.const(c) for c in COIN_PRIOR)
    infer = dict(baseline=baseline_options(baseline))

    def model(data):
        f = ppl.sample("latent_fairness", dist.Beta(prior_a, prior_b))
        with ppl.plate("data_plate", data.shape[0]):
            ppl.sample("obs", dist.Bernoulli(f), obs=data)

    def guide(data):
        alpha_q = ppl.param("alpha_q", alpha_init, constraint=positive)
        beta_q = ppl.param("beta_q", beta_init, constraint=positive)
        ppl.sample("latent_fairness", nonreparameterized_beta(alpha_q, beta_q), infer=infer)

    return model, guide


def regression(
    backend: Backend, num_features: int, index_by_plate: bool = False
) -> Tuple[Callable, Callable]:
    """W2/W3/W6: Bayesian linear regression and a mean-field guide over unconstrained latents.

    Every param gets its own init array: Pyro may keep an unconstrained init tensor as the param
    itself, so two params must never share one. ``index_by_plate``: the model reads the rows of
    ``x`` and ``y`` by the data plate's indices (``x[idx]``, ``y[idx]``), as a plate that
    ``DistributedSVI(shard_plates=["data"])`` splits needs (``benchmarks.distributed``); the
    same model otherwise.
    """
    ppl, dist, positive = backend.ppl, backend.dist, backend.constraints.positive
    scalar, full, const = backend.scalar, backend.full, backend.const
    beta_prior_loc = full(num_features, 0.0)
    alpha_prior = (const(0.0), const(100.0))
    sigma_prior_scale = const(10.0)
    inits = {
        "alpha_loc": scalar(0.0),
        "alpha_scale": scalar(0.1),
        "beta_loc": full(num_features, 0.0),
        "beta_scale": full(num_features, 0.1),
        "log_sigma_loc": scalar(0.0),
        "log_sigma_scale": scalar(0.1),
    }

    def model(x, y):
        alpha = ppl.sample("alpha", dist.Normal(*alpha_prior))
        beta = ppl.sample("beta", dist.Normal(beta_prior_loc, 10.0).to_event(1))
        sigma = ppl.sample("sigma", dist.HalfNormal(sigma_prior_scale))
        if index_by_plate:
            with ppl.plate("data", x.shape[0]) as idx:
                mu = linear_predictor(x[idx], alpha, beta)
                ppl.sample("y", dist.Normal(mu, sigma), obs=y[idx])
            return
        mu = linear_predictor(x, alpha, beta)
        with ppl.plate("data", x.shape[0]):
            ppl.sample("y", dist.Normal(mu, sigma), obs=y)

    def guide(x, y):
        a_loc = ppl.param("alpha_loc", inits["alpha_loc"])
        a_scale = ppl.param("alpha_scale", inits["alpha_scale"], constraint=positive)
        b_loc = ppl.param("beta_loc", inits["beta_loc"])
        b_scale = ppl.param("beta_scale", inits["beta_scale"], constraint=positive)
        s_loc = ppl.param("log_sigma_loc", inits["log_sigma_loc"])
        s_scale = ppl.param("log_sigma_scale", inits["log_sigma_scale"], constraint=positive)
        ppl.sample("alpha", dist.Normal(a_loc, a_scale))
        ppl.sample("beta", dist.Normal(b_loc, b_scale).to_event(1))
        ppl.sample("sigma", dist.LogNormal(s_loc, s_scale))

    return model, guide


# The inits every framework starts W5 and W7-W9 from (the hand-written steps too).
MIXTURE_INIT_SCALE = 2.0  # and the weights uniform
MIXTURE_INIT_LOCS = (-2.0, 0.0, 2.0)
HMM_INIT_STAY = 0.9  # probs_x: a strong diagonal, the rest spread evenly over each row
HMM_INIT_LOCS = tuple(-6.0 + 12.0 * k / (HMM_STATES - 1) for k in range(HMM_STATES))
HMM_INIT_SCALE = 1.0
ENUMERATE = {"enumerate": "parallel"}


def gaussian_mixture(backend: Backend, components: int) -> Tuple[Callable, Callable]:
    """W5 (Pyro's GMM tutorial): the per-point assignment enumerated in parallel, summed out
    by ``TraceEnum_ELBO``; a MAP guide, a ``Delta`` at a param for each global."""
    ppl, dist, constraints = backend.ppl, backend.dist, backend.constraints
    concentration = backend.full(components, 0.5)
    zero, two, ten = (backend.const(c) for c in (0.0, 2.0, 10.0))
    inits = {
        "weights_q": backend.full(components, 1.0 / components),
        "scale_q": backend.scalar(MIXTURE_INIT_SCALE),
        "locs_q": backend.array(list(MIXTURE_INIT_LOCS)),
    }

    def model(data):
        weights = ppl.sample("weights", dist.Dirichlet(concentration))
        scale = ppl.sample("scale", dist.LogNormal(zero, two))
        with ppl.plate("components", components):
            locs = ppl.sample("locs", dist.Normal(zero, ten))
        with ppl.plate("data", data.shape[0]):
            assignment = ppl.sample("assignment", dist.Categorical(weights), infer=ENUMERATE)
            ppl.sample("obs", dist.Normal(locs[assignment], scale), obs=data)

    def guide(data):
        weights_q = ppl.param("weights_q", inits["weights_q"], constraint=constraints.simplex)
        scale_q = ppl.param("scale_q", inits["scale_q"], constraint=constraints.positive)
        locs_q = ppl.param("locs_q", inits["locs_q"])
        ppl.sample("weights", dist.Delta(weights_q).to_event(1))
        ppl.sample("scale", dist.Delta(scale_q))
        with ppl.plate("components", components):
            ppl.sample("locs", dist.Delta(locs_q))

    return model, guide


def _hmm_params(backend: Backend) -> Callable:
    """The HMMs' globals as model params: ``probs_x`` (rows on the simplex), ``locs``,
    ``scale``; returns the function that declares them (inside the model)."""
    ppl, constraints = backend.ppl, backend.constraints
    inits = {
        "probs_x": backend.array(hmm_transition_probs(HMM_INIT_STAY).tolist()),
        "locs": backend.array(list(HMM_INIT_LOCS)),
        "scale": backend.scalar(HMM_INIT_SCALE),
    }

    def params():
        probs_x = ppl.param("probs_x", inits["probs_x"], constraint=constraints.simplex)
        locs = ppl.param("locs", inits["locs"])
        scale = ppl.param("scale", inits["scale"], constraint=constraints.positive)
        return probs_x, locs, scale

    return params


def hmm(backend: Backend) -> Tuple[Callable, Callable]:
    """W7/W8 (and W9's sequential row): the HMM written step by step, ``x_t`` enumerated in
    parallel under ``markov`` so ``TraceEnum_ELBO`` eliminates one step at a time (the forward
    algorithm); B sequences in a plate. ``by_time`` is (T, B). The guide is empty."""
    ppl, dist, vindex = backend.ppl, backend.dist, backend.vindex
    params = _hmm_params(backend)

    def model(by_time, by_sequence):
        probs_x, locs, scale = params()
        with ppl.plate("sequences", by_time.shape[1], dim=-1):
            x = 0
            for t in ppl.markov(range(by_time.shape[0])):
                x = ppl.sample(f"x_{t}", dist.Categorical(vindex(probs_x)[x]), infer=ENUMERATE)
                ppl.sample(f"y_{t}", dist.Normal(vindex(locs)[x], scale), obs=by_time[t])

    def guide(by_time, by_sequence):
        pass

    return model, guide


def discrete_hmm(backend: Backend) -> Tuple[Callable, Callable]:
    """W9: ``hmm``'s likelihood as one ``DiscreteHMM`` site on ``by_sequence`` (B, T), whose
    parallel scan eliminates the time dimension.

    ``DiscreteHMM``'s ``initial_logits`` is the state *before* the first transition (its
    ``log_prob`` applies ``transition_logits`` before scoring the first observation), so
    "state 0 before t = 0" is a one-hot ``initial_logits`` (log 1 for state 0, log 0 = -inf
    for the rest): then x_0 ~ Categorical(probs_x[0]), and the likelihood equals ``hmm``'s.
    """
    ppl, dist = backend.ppl, backend.dist
    params = _hmm_params(backend)
    initial_logits = backend.array([0.0] + [float("-inf")] * (HMM_STATES - 1))

    def model(by_time, by_sequence):
        probs_x, locs, scale = params()
        observation = dist.Normal(locs, scale)
        hmm_dist = dist.DiscreteHMM(initial_logits, probs_x.log(), observation)
        with ppl.plate("sequences", by_sequence.shape[0], dim=-1):
            ppl.sample("y", hmm_dist, obs=by_sequence)

    def guide(by_time, by_sequence):
        pass

    return model, guide


def model_and_guide(
    workload: str,
    backend: Backend,
    num_features: int,
    baseline: bool = False,
    hmm_form: str = "markov",
):
    """The workload's (model, guide); ``baseline`` is W4's guide-site option, ``hmm_form``
    the HMM workloads' ("markov": step by step, "discrete": one ``DiscreteHMM`` site)."""
    if workload == "W1":
        return coin(backend)
    if workload == "W4":
        return score_function_coin(backend, baseline)
    if workload == "W5":
        return gaussian_mixture(backend, len(MIXTURE_WEIGHTS))
    if workload in HMM_WORKLOADS:
        return discrete_hmm(backend) if hmm_form == "discrete" else hmm(backend)
    return regression(backend, num_features)
