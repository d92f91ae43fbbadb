"""The hand-written PyTorch step: the floor for any eager-PyTorch PPL.

Same model, guide, parameterization (positive params as ``exp`` of unconstrained tensors, the
same init values) and optimizer (``torch.optim.Adam``) as the PPL versions, with every
log-density written out as tensor arithmetic: no ``torch.distributions`` objects, no validation,
no traces. Log-densities are evaluated at the sampled values, as a PPL does; constants that do not
depend on params are computed once. With ``--device cuda`` the params, the constants and every
random draw live on the GPU. The IWAE step (``hand-iwae``, the floor for ``RenyiELBO(alpha=0)``)
is the W2/W3 step with its particles' log-weights combined by ``logsumexp``. W4's step is the
score-function (REINFORCE) estimator that ``TraceGraph_ELBO`` builds for a non-reparameterized
Beta guide, with or without the decaying-average baseline. W5's step is the MAP objective that
``TraceEnum_ELBO`` computes for the mixture with a ``Delta`` guide (the assignment summed out by
``logsumexp``), and W7-W9's the forward algorithm, one ``logsumexp`` per time step. A
simplex param is the softmax of an unconstrained tensor initialized at the log of its init, as
``transform_to(simplex)`` (torch's ``SoftmaxTransform``) makes a PPL's ``constraint=simplex``
param; the step takes its log as ``log_softmax``.
"""

from __future__ import annotations

import math

import torch

from .. import data as bench_data
from ..models import (
    BASELINE_BETA,
    HMM_INIT_LOCS,
    HMM_INIT_SCALE,
    HMM_INIT_STAY,
    MIXTURE_INIT_LOCS,
    MIXTURE_INIT_SCALE,
)
from ..registry import WORKLOADS, Config, num_particles
from . import Trainer

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
LOG_2 = math.log(2.0)


ARRAYS = "torch"  # what the worker moves the data to and measures device memory with


def prepare(framework: str) -> dict:
    return {"torch": torch.__version__}


def to_device(dataset, device: str):
    return dataset.to(device)


def normal_log_prob(value, loc, scale, log_scale):
    z = (value - loc) / scale
    return -0.5 * z * z - log_scale - HALF_LOG_2PI


def log_beta_fn(a, b):
    return torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b)


def beta_log_prob(f, log_f, log1m_f, a, b):
    return (a - 1) * log_f + (b - 1) * log1m_f - log_beta_fn(a, b)


def _adam_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> float:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


def coin_trainer(dataset: bench_data.CoinData, lr: float, device: torch.device) -> Trainer:
    """W1. The Beta sample is the ratio of two standard-gamma draws (implicit reparam grads)."""
    obs = dataset.obs
    unconstrained = torch.full((2,), math.log(15.0), requires_grad=True, device=device)
    prior_a, prior_b = (torch.tensor(c, device=device) for c in bench_data.COIN_PRIOR)
    prior_log_norm = float(log_beta_fn(prior_a, prior_b))
    optimizer = torch.optim.Adam([unconstrained], lr=lr)

    def step() -> float:
        conc = unconstrained.exp()
        gammas = torch._standard_gamma(conc)
        f = gammas[0] / gammas.sum()
        log_f, log1m_f = f.log(), torch.log1p(-f)
        log_q = beta_log_prob(f, log_f, log1m_f, conc[0], conc[1])
        log_prior = (prior_a - 1) * log_f + (prior_b - 1) * log1m_f - prior_log_norm
        log_lik = (obs * log_f + (1 - obs) * log1m_f).sum()
        return _adam_step(optimizer, log_q - log_prior - log_lik)

    def quality() -> float:
        a, b = unconstrained.detach().exp().tolist()
        return bench_data.coin_quality("W1", a, b, obs)

    return Trainer(step=step, quality=quality)


def score_function_coin_trainer(
    dataset: bench_data.CoinData,
    lr: float,
    betas: tuple,
    particles: int,
    baseline: bool,
    device: torch.device,
) -> Trainer:
    """W4: ``TraceGraph_ELBO``'s estimator for W1's model with a non-reparameterized Beta guide.

    The sample f (a ratio of standard-gamma draws, as in W1) is a constant here. The cost is the
    ELBO particle, log p(f) + sum log p(x|f) - log q(f), detached; the surrogate loss is
    -(log q(f) * (cost - b) + log p(f) + sum log p(x|f)): the score-function term, plus the
    model's terms, which carry no gradient (as in Pyro's surrogate, which drops the guide's own
    log q: its expected gradient is zero). The baseline b is the decaying average of the cost,
    b <- 0.9 b + 0.1 cost, starting at 0 and updated after the backward pass (Pyro's update
    order: the surrogate uses the old average); without ``baseline`` b stays 0. With particles >
    1 every draw gets a leading particle dimension, the surrogate and the loss are means over
    particles and b is one running average of the particle-mean cost (Pyro keeps one per
    particle). Returns the loss -mean(cost), as ``svi.step()`` does.
    """
    obs = dataset.obs
    unconstrained = torch.full((2,), math.log(15.0), requires_grad=True, device=device)
    prior_a, prior_b = (torch.tensor(c, device=device) for c in bench_data.COIN_PRIOR)
    prior_log_norm = float(log_beta_fn(prior_a, prior_b))
    optimizer = torch.optim.Adam([unconstrained], lr=lr, betas=betas)
    draw_shape = (particles, 2) if particles > 1 else (2,)
    average = torch.zeros((), device=device)  # the decaying-average baseline

    def step() -> float:
        conc = unconstrained.exp()
        with torch.no_grad():
            gammas = torch._standard_gamma(conc.expand(draw_shape))
            f = gammas[..., 0] / gammas.sum(-1)
            log_f, log1m_f = f.log(), torch.log1p(-f)
            log_prior = (prior_a - 1) * log_f + (prior_b - 1) * log1m_f - prior_log_norm
            log_lik = (obs * log_f.unsqueeze(-1) + (1 - obs) * log1m_f.unsqueeze(-1)).sum(-1)
            log_p = log_prior + log_lik
        log_q = beta_log_prob(f, log_f, log1m_f, conc[0], conc[1])
        cost = log_p - log_q.detach()
        advantage = cost - average if baseline else cost
        surrogate = -(log_q * advantage + log_p).mean()
        optimizer.zero_grad(set_to_none=True)
        surrogate.backward()
        optimizer.step()
        mean_cost = cost.mean()
        if baseline:
            average.mul_(BASELINE_BETA).add_(mean_cost, alpha=1 - BASELINE_BETA)
        return -mean_cost.item()

    def quality() -> float:
        a, b = unconstrained.detach().exp().tolist()
        return bench_data.coin_quality("W4", a, b, obs)

    return Trainer(step=step, quality=quality)


def regression_trainer(
    dataset: bench_data.RegressionData,
    lr: float,
    particles: int,
    device: torch.device,
    iwae: bool = False,
) -> Trainer:
    """W2/W3/W6. With particles > 1 every latent gets a leading particle dimension.

    The loss is the mean over particles of log q - log p (``Trace_ELBO``), or with ``iwae`` the
    importance-weighted bound of ``RenyiELBO(alpha=0)``: minus the log of the mean over
    particles of p/q, ``log S - logsumexp(log p - log q)``.
    """
    x, y = dataset.x, dataset.y
    num_features = x.shape[1]
    lead = (particles, 1) if particles > 1 else ()
    beta_shape = (particles, num_features) if particles > 1 else (num_features,)
    log_scale_init = math.log(0.1)
    on = dict(requires_grad=True, device=device)
    a_loc = torch.zeros((), **on)
    a_uscale = torch.full((), log_scale_init, **on)
    b_loc = torch.zeros(num_features, **on)
    b_uscale = torch.full((num_features,), log_scale_init, **on)
    s_loc = torch.zeros((), **on)
    s_uscale = torch.full((), log_scale_init, **on)
    params = [a_loc, a_uscale, b_loc, b_uscale, s_loc, s_uscale]
    optimizer = torch.optim.Adam(params, lr=lr)
    log_100, log_10 = math.log(100.0), math.log(10.0)
    log_particles = math.log(particles)

    def step() -> float:
        a_scale, b_scale, s_scale = a_uscale.exp(), b_uscale.exp(), s_uscale.exp()
        alpha = a_loc + a_scale * torch.randn(lead, device=device)
        beta = b_loc + b_scale * torch.randn(beta_shape, device=device)
        log_sigma = s_loc + s_scale * torch.randn(lead, device=device)
        sigma = log_sigma.exp()
        log_q = (
            normal_log_prob(alpha, a_loc, a_scale, a_uscale)
            + normal_log_prob(beta, b_loc, b_scale, b_uscale).sum(-1, keepdim=particles > 1)
            + normal_log_prob(log_sigma, s_loc, s_scale, s_uscale)
            - log_sigma  # LogNormal: Jacobian of sigma = exp(log_sigma)
        )
        # as the models' linear_predictor; the particle dim is already leading here
        mu = alpha + beta @ x.T if particles > 1 else alpha + x @ beta
        log_p = (
            normal_log_prob(alpha, 0.0, 100.0, log_100)
            + normal_log_prob(beta, 0.0, 10.0, log_10).sum(-1, keepdim=particles > 1)
            + LOG_2
            + normal_log_prob(sigma, 0.0, 10.0, log_10)
            + normal_log_prob(y, mu, sigma, log_sigma).sum(-1, keepdim=particles > 1)
        )
        if iwae:  # log_p - log_q is (particles, 1): one log importance weight per particle
            return _adam_step(optimizer, log_particles - torch.logsumexp(log_p - log_q, (0, 1)))
        return _adam_step(optimizer, (log_q - log_p).mean())

    def quality() -> float:
        reference = bench_data.least_squares_coefficients(x, y)
        return bench_data.regression_error(float(a_loc), b_loc.detach().cpu().numpy(), reference)

    return Trainer(step=step, quality=quality)


def mixture_trainer(
    dataset: bench_data.MixtureData, lr: float, betas: tuple, device: torch.device
) -> Trainer:
    """W5: the MAP objective of the mixture, the assignment summed out.

    The guide is a ``Delta`` at each global's param, so its log-density is 0 and the loss is
    minus the model's log joint at the params, with each point's assignment marginalized:
    -(log Dirichlet(w; 0.5) + log LogNormal(scale; 0, 2) + sum_k log Normal(loc_k; 0, 10)
    + sum_n logsumexp_k(log w_k + log Normal(x_n; loc_k, scale))); no Jacobian terms (the
    values are the params themselves), as ``TraceEnum_ELBO`` computes it.
    """
    obs = dataset.obs.unsqueeze(-1)  # (N, 1) against the components' (K,)
    components = len(bench_data.MIXTURE_WEIGHTS)
    on = dict(requires_grad=True, device=device)
    weights_u = torch.full((components,), -math.log(components), **on)  # uniform weights
    scale_u = torch.full((), math.log(MIXTURE_INIT_SCALE), **on)
    locs = torch.tensor(MIXTURE_INIT_LOCS, **on)
    optimizer = torch.optim.Adam([weights_u, scale_u, locs], lr=lr, betas=betas)
    concentration = torch.full((components,), 0.5, device=device)
    dirichlet_log_norm = float(
        torch.lgamma(concentration.sum()) - torch.lgamma(concentration).sum()
    )
    log_2, log_10 = math.log(2.0), math.log(10.0)

    def step() -> float:
        log_weights = torch.log_softmax(weights_u, -1)
        scale = scale_u.exp()
        log_prior = (
            ((concentration - 1) * log_weights).sum()
            + dirichlet_log_norm
            + normal_log_prob(scale_u, 0.0, 2.0, log_2)
            - scale_u  # LogNormal: log scale is scale_u
            + normal_log_prob(locs, 0.0, 10.0, log_10).sum()
        )
        joint = log_weights + normal_log_prob(obs, locs, scale, scale_u)  # (N, K)
        return _adam_step(optimizer, -(log_prior + torch.logsumexp(joint, -1).sum()))

    def quality() -> float:
        return bench_data.locs_error(locs.detach().cpu().numpy(), bench_data.MIXTURE_LOCS)

    return Trainer(step=step, quality=quality)


def hmm_trainer(dataset: bench_data.HMMData, lr: float, device: torch.device) -> Trainer:
    """W7-W9: the forward algorithm. alpha_0 = log probs_x[0] + e_0 (state 0 before t = 0),
    then alpha_t = logsumexp_i(alpha_{t-1}[i] + log probs_x[i, :]) + e_t for t >= 1, where
    e_t[k] = log Normal(y_t; loc_k, scale); loss = -sum over sequences of logsumexp(alpha_T-1).
    """
    by_time = dataset.by_time.unsqueeze(-1)  # (T, B, 1) against the states' (K,)
    init_probs = bench_data.hmm_transition_probs(HMM_INIT_STAY).to(device)
    on = dict(requires_grad=True, device=device)
    probs_u = init_probs.log().requires_grad_()
    locs = torch.tensor(HMM_INIT_LOCS, **on)
    scale_u = torch.full((), math.log(HMM_INIT_SCALE), **on)
    optimizer = torch.optim.Adam([probs_u, locs, scale_u], lr=lr)

    def step() -> float:
        log_trans = torch.log_softmax(probs_u, -1)  # (K, K), rows: the old state
        emission = normal_log_prob(by_time, locs, scale_u.exp(), scale_u)  # (T, B, K)
        alpha = log_trans[0] + emission[0]
        for t in range(1, emission.shape[0]):
            alpha = torch.logsumexp(alpha.unsqueeze(-1) + log_trans, -2) + emission[t]
        return _adam_step(optimizer, -torch.logsumexp(alpha, -1).sum())

    def quality() -> float:
        return bench_data.locs_error(locs.detach().cpu().numpy(), bench_data.HMM_LOCS)

    return Trainer(step=step, quality=quality)


def build(
    framework: str,
    workload: str,
    config: Config,
    dataset,
    block_steps: int,
    device: str = "cpu",
    seed: int = 0,
) -> Trainer:
    spec = WORKLOADS[workload]
    torch.manual_seed(seed)
    on = torch.device(device)
    if workload == "W1":
        return coin_trainer(dataset, spec.lr, on)
    if workload in bench_data.MIXTURE_WORKLOADS:
        return mixture_trainer(dataset, spec.lr, spec.adam_betas or (0.9, 0.999), on)
    if workload in bench_data.HMM_WORKLOADS:
        return hmm_trainer(dataset, spec.lr, on)
    particles = num_particles(workload, config)
    if workload == "W4":
        betas = spec.adam_betas or (0.9, 0.999)
        baseline = config.option("baseline") == "decaying"
        return score_function_coin_trainer(dataset, spec.lr, betas, particles, baseline, on)
    return regression_trainer(dataset, spec.lr, particles, on, config.option("elbo") == "renyi")
