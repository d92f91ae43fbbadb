"""``TraceTailAdaptive_ELBO``: gradients of the tail-adaptive f-divergence (Wang et al. 2018).

With ``N`` vectorized particles and importance weights ``w_k = p(x, z_k) / q(z_k)``, each
particle's pathwise gradient of ``log w_k`` is weighted by ``γ_k ∝ F̄(w_k)^β``, where
``F̄(w_k) = #{j: w_j ≥ w_k} / N`` is the empirical tail probability of its weight and
``β = tail_adaptive_beta`` (in ``[-1, 0)``): heavier weights count more, adaptively to
how heavy the weights' tail is. Only the gradient is defined, so ``loss`` is not.
"""

import warnings
from typing import NamedTuple, Tuple

import torch

from ..distributions.util import is_identically_zero
from ..poutine.trace_struct import Trace, sum_all_but
from .elbo import sum_terms
from .trace_elbo import Trace_ELBO


class _Plan(NamedTuple):
    particle_dim: int
    model_sites: Tuple[str, ...]
    guide_sites: Tuple[str, ...]


class TraceTailAdaptive_ELBO(Trace_ELBO):
    """Tail-adaptive f-divergence gradients, as Pyro's ``TraceTailAdaptive_ELBO``.

    Needs ``vectorize_particles=True`` and ``num_particles > 1`` (with one particle it is
    ``Trace_ELBO``, and warns), a fully reparameterized guide and no subsampling.
    ``differentiable_loss`` (and ``loss_and_grads``) return ``-mean_k log w_k``, the usual
    ELBO estimate, carrying the tail-adaptive gradient; ``loss`` raises, as in Pyro (use
    e.g. ``RenyiELBO`` to monitor convergence).

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> pyrolite.clear_param_store()
    >>> def model():
    ...     pyrolite.sample("z", dist.Normal(0.0, 1.0))
    >>> def guide():
    ...     loc = pyrolite.param("loc", torch.tensor(0.0))
    ...     pyrolite.sample("z", dist.Normal(loc, 1.0))
    >>> elbo = TraceTailAdaptive_ELBO(num_particles=4, vectorize_particles=True)
    >>> abs(float(elbo.differentiable_loss(model, guide)))  # q == p: every log w is 0
    0.0
    """

    log_probs = "none"

    def plan(self, model_trace: Trace, guide_trace: Trace) -> _Plan:
        guide_sites = []
        for name, site in guide_trace.nodes.items():
            if site["type"] != "sample":
                continue
            _check_no_subsampling("guide", name, site)
            if not site["is_observed"] and not is_identically_zero(site["score_parts"][1]):
                raise NotImplementedError(
                    "All distributions in the guide must be fully reparameterized: "
                    f"TraceTailAdaptive_ELBO's guide site '{name}' "
                    f"({type(site['fn']).__name__}) is not. Use Trace_ELBO or RenyiELBO."
                )
            guide_sites.append(name)
        model_sites = []
        for name, site in model_trace.nodes.items():
            if site["type"] == "sample":
                _check_no_subsampling("model", name, site)
                model_sites.append(name)
        particle_dim = -1 - int(self.max_plate_nesting) if self.vectorized else 0
        return _Plan(particle_dim, tuple(model_sites), tuple(guide_sites))

    def particle(self, plan: _Plan, model_trace: Trace, guide_trace: Trace):
        if not self.vectorized:
            model_trace.compute_log_prob_sums()
            return super().particle(plan, model_trace, guide_trace)
        keep = (plan.particle_dim,)
        log_p = sum_terms([model_trace.log_prob_sum_keeping(n, keep) for n in plan.model_sites])
        log_q = sum_terms(
            [sum_all_but(guide_trace.nodes[n]["log_prob"], keep) for n in plan.guide_sites]
        )
        log_w = (log_p - log_q).reshape(-1)
        gamma = tail_adaptive_weights(log_w.detach(), self.tail_adaptive_beta)
        loss = -log_w.mean()
        surrogate = -(gamma * log_w).sum()
        # The value is the ELBO estimate, the gradient the tail-adaptive one.
        return loss.detach(), surrogate - surrogate.detach() + loss.detach()

    def combine(self, results):
        return results[0] if self.vectorized else super().combine(results)

    def get_traces(self, model, guide, args, kwargs):
        if self.num_particles == 1:
            warnings.warn(
                "For num_particles==1 TraceTailAdaptive_ELBO uses the same loss function as "
                "Trace_ELBO. Increase num_particles to get an adaptive f-divergence.",
                UserWarning,
                stacklevel=2,
            )
        elif not self.vectorize_particles:
            raise NotImplementedError(
                "TraceTailAdaptive_ELBO only implemented for vectorize_particles==True: "
                f"construct it with vectorize_particles=True (num_particles={self.num_particles})."
            )
        return super().get_traces(model, guide, args, kwargs)

    def loss(self, model, guide, *args, **kwargs) -> float:
        """Not defined (only the gradient is), as in Pyro."""
        raise NotImplementedError(
            "Loss method for TraceTailAdaptive_ELBO not implemented: only its gradient is "
            "defined. Monitor convergence with another estimator (e.g. RenyiELBO().loss)."
        )


def tail_adaptive_weights(log_w: torch.Tensor, beta: float) -> torch.Tensor:
    """``γ_k ∝ F̄(w_k)^β``, normalized to sum to 1, from the log weights (1-D).

    >>> tail_adaptive_weights(torch.tensor([0.0, 2.0]), -1.0)  # the heavier weight: 2/3
    tensor([0.3333, 0.6667])
    """
    n = log_w.numel()
    # F̄(w_k) * N = how many weights are >= w_k: 1 for the largest, N for the smallest.
    ordered = log_w.sort().values
    at_least = (n - torch.searchsorted(ordered, log_w, side="left")).to(log_w.dtype)
    gamma = (at_least / n).pow(beta)
    return gamma / gamma.sum()


def _check_no_subsampling(role: str, name: str, site: dict) -> None:
    scale = site["scale"]
    if not (isinstance(scale, (int, float)) and scale == 1.0):
        raise NotImplementedError(
            f"TraceTailAdaptive_ELBO does not support data subsampling (or poutine.scale): "
            f"{role} site '{name}' has scale {scale}. Use the full data in its plates."
        )
