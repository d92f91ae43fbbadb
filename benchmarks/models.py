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
names.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, Tuple

from .data import COIN_PRIOR


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


def regression(backend: Backend, num_features: int) -> Tuple[Callable, Callable]:
    """W2/W3/W6: Bayesian linear regression and a mean-field guide over unconstrained latents.

    Every param gets its own init array: Pyro may keep an unconstrained init tensor as the param
    itself, so two params must never share one.
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


def model_and_guide(workload: str, backend: Backend, num_features: int, baseline: bool = False):
    """The workload's (model, guide); ``baseline`` is W4's guide-site option."""
    if workload == "W1":
        return coin(backend)
    if workload == "W4":
        return score_function_coin(backend, baseline)
    return regression(backend, num_features)
