"""``RenyiELBO``: the Rényi α-divergence bound (IWAE at α = 0).

With importance weights ``w_k = p(x, z_k) / q(z_k)`` of ``K`` particles the bound is
``L_α = 1/(1-α) log(1/K Σ_k w_k^(1-α))``: the ELBO's limit as α → 1, the importance
weighted bound at α = 0, tighter as ``K`` grows for α < 1. Plates that every site shares
are independent, so the bound is taken per element of them and summed (each element
gets its own importance weighting), as Pyro does.

Gradients: reparameterized sites are differentiated through ``w_k``, each weighted by
its normalized weight; a non-reparameterized site adds the score-function term
``L_α · Σ_k log q(z_k)`` (the bound held fixed), which makes the estimate unbiased.
(Pyro 1.9's RenyiELBO omits that term: its gradient for the parameters of a discrete
guide site is zero. ``tests/infer/test_renyi_elbo.py`` checks ours by enumeration.)
"""

import math
import warnings
from typing import List, NamedTuple, Optional, Tuple

import torch

from ..distributions.util import is_identically_zero
from ..poutine.trace_struct import Trace, sum_all_but
from .elbo import ELBO, sum_terms


class _Plan(NamedTuple):
    kept: Tuple[int, ...]  # the dims kept per particle: particle dim first, then shared plates
    guide_sites: Tuple[Tuple[str, bool], ...]  # (name, has a score-function term)
    model_sites: Tuple[str, ...]


class _Particle(NamedTuple):
    log_w: torch.Tensor  # log w with the gradient paths, shape (particles or 1, *shared plates)
    score: Optional[torch.Tensor]  # sum of log q of the score-function sites, or None


class RenyiELBO(ELBO):
    """Rényi α bound, as Pyro's ``RenyiELBO``.

    :param alpha: the order α (≥ 0, ≠ 1); 0 gives the IWAE bound.
    :param num_particles: ``K``, the particles the bound averages over (≥ 2 to differ
        from ``Trace_ELBO``).
    :param max_plate_nesting: as for every ELBO (needed with ``vectorize_particles``,
        guessed otherwise).
    :param vectorize_particles: draw the ``K`` particles at once.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> pyrolite.clear_param_store()
    >>> def model():
    ...     pyrolite.sample("z", dist.Normal(0.0, 1.0))
    >>> def guide():
    ...     loc = pyrolite.param("loc", torch.tensor(0.0))
    ...     pyrolite.sample("z", dist.Normal(loc, 1.0))
    >>> abs(RenyiELBO(num_particles=4).loss(model, guide))  # q == p: every weight is 1
    0.0
    """

    # Model log-probs are summed per particle (and shared-plate element) by the particle,
    # without the per-element tensor where the distribution can.
    log_probs = "none"

    def __init__(
        self,
        alpha: float = 0.0,
        num_particles: int = 2,
        max_plate_nesting: float = float("inf"),
        max_iarange_nesting: Optional[int] = None,
        vectorize_particles: bool = False,
        strict_enumeration_warning: bool = True,
    ):
        if alpha == 1:
            raise ValueError(
                "RenyiELBO(alpha=1) is the ordinary ELBO, which this bound reaches only as a "
                "limit: use Trace_ELBO (or any alpha != 1)."
            )
        if alpha < 0:
            raise ValueError(f"RenyiELBO needs alpha >= 0, got {alpha!r}")
        super().__init__(
            num_particles=num_particles,
            max_plate_nesting=max_plate_nesting,
            max_iarange_nesting=max_iarange_nesting,
            vectorize_particles=vectorize_particles,
            strict_enumeration_warning=strict_enumeration_warning,
        )
        if num_particles < 2:
            warnings.warn(
                "RenyiELBO with num_particles=1 is Trace_ELBO's bound (one importance weight "
                "averages to itself); use num_particles >= 2 for a tighter bound.",
                UserWarning,
                stacklevel=2,
            )
        self.alpha = alpha

    def plan(self, model_trace: Trace, guide_trace: Trace) -> _Plan:
        model_sites = [n for n, s in model_trace.nodes.items() if s["type"] == "sample"]
        guide_sites = [n for n, s in guide_trace.nodes.items() if s["type"] == "sample"]
        sites = [model_trace.nodes[n] for n in model_sites]
        sites += [guide_trace.nodes[n] for n in guide_sites]
        particle_dim = -1 - self.max_plate_nesting if self.vectorized else None
        shared = None
        for site in sites:
            dims = {
                f.dim
                for f in site["cond_indep_stack"]
                if f.dim is not None and f.dim != particle_dim
            }
            shared = dims if shared is None else shared & dims
        kept = sorted(shared or ())
        if particle_dim is not None:
            kept = [particle_dim] + kept
        scored = []
        for name in guide_sites:
            _, score_function, entropy_term = guide_trace.nodes[name]["score_parts"]
            has_score = not is_identically_zero(score_function)
            if has_score and not is_identically_zero(entropy_term):
                raise NotImplementedError(
                    f"RenyiELBO: guide site '{name}' is partially reparameterized (it has both "
                    "a pathwise and a score-function part); use Trace_ELBO for it."
                )
            scored.append((name, has_score))
        return _Plan(tuple(kept), tuple(scored), tuple(model_sites))

    def particle(self, plan: _Plan, model_trace: Trace, guide_trace: Trace) -> _Particle:
        kept = plan.kept
        log_w: List[torch.Tensor] = [
            model_trace.log_prob_sum_keeping(n, kept) for n in plan.model_sites
        ]
        log_q, score = [], []
        for name, has_score in plan.guide_sites:
            term = sum_all_but(guide_trace.nodes[name]["log_prob"], kept)
            log_q.append(term)
            if has_score:
                score.append(term)
        log_weight = sum_terms(log_w) - sum_terms(log_q)
        if not self.vectorized:
            log_weight = log_weight.unsqueeze(0)  # a particle dim of 1
        score_sum = None
        if score:
            score_sum = sum_terms(score)
            if not self.vectorized:
                score_sum = score_sum.unsqueeze(0)
        return _Particle(log_weight, score_sum)

    def combine(self, results: List[_Particle]) -> Tuple[torch.Tensor, torch.Tensor]:
        log_w = _cat([r.log_w for r in results])
        scaled = log_w if self.alpha == 0 else (1.0 - self.alpha) * log_w
        # Differentiated through logsumexp, each particle's log w gets its normalized
        # weight: the pathwise gradient of the bound.
        bound = torch.logsumexp(scaled, dim=0) - math.log(log_w.shape[0])
        if self.alpha != 0:
            bound = bound / (1.0 - self.alpha)  # per element of the shared plates
        scores = [r.score for r in results]
        if scores[0] is None:
            loss = -bound.sum()
            return loss, loss
        surrogate = bound + bound.detach() * _cat(scores).sum(0)
        return -bound.sum().detach(), -surrogate.sum()


def _cat(parts: List[torch.Tensor]) -> torch.Tensor:
    """The particles along dim 0 (each part holds one, or all of them)."""
    if len(parts) == 1:
        return parts[0]
    shape = torch.broadcast_shapes(*(p.shape for p in parts))
    return torch.cat([p.expand(shape) for p in parts])
