"""``TraceMeanField_ELBO``: the ELBO with analytic KL terms for a mean-field guide.

For each latent site whose (guide, model) distribution pair has a registered
``kl_divergence``, the estimator uses ``KL(q || p)`` in closed form instead of the
Monte-Carlo ``log q(z) - log p(z)``; the other latent sites (and auxiliary guide
sites) keep the Monte-Carlo terms. Observations contribute ``log p(x | z)`` as in
``Trace_ELBO``. The closed form is exact only when ``p``'s parameters do not depend on
other latents sampled by ``q`` in a way ``q`` shares, i.e. for a mean-field guide.
"""

import math
from typing import FrozenSet, List, NamedTuple, Optional, Tuple

import torch

from ..distributions import kl_divergence
from ..distributions.util import scale_and_mask
from ..poutine.runtime import plate_batch_shape
from ..poutine.trace_struct import Trace
from ..process_state import warn_once
from .elbo import ELBO, sum_terms

_KL, _MONTE_CARLO = "kl", "mc"


class _Plan(NamedTuple):
    latent: Tuple[Tuple[str, str, int], ...]  # (site name, _KL or _MONTE_CARLO, KL repeats)
    observed: Tuple[str, ...]  # model sites scored by log p
    guide_only: Tuple[str, ...]  # guide sites absent from the model (auxiliary)
    model_needs: FrozenSet[str]  # the model sites whose log-prob sums the loss reads
    guide_needs: FrozenSet[str]  # the guide sites whose log-prob sums the loss reads


class TraceMeanField_ELBO(ELBO):
    """ELBO with ``KL(q || p)`` in closed form wherever ``kl_divergence`` knows the pair.

    Same options as :class:`~pyrolite.infer.Trace_ELBO`. Every latent guide site must be
    reparameterized (a score-function gradient would need the Monte-Carlo terms it
    replaces); use ``Trace_ELBO`` or ``TraceGraph_ELBO`` otherwise. With validation on,
    a guide site whose distribution depends on another latent (not mean-field) warns.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> pyrolite.clear_param_store()
    >>> def model():
    ...     pyrolite.sample("z", dist.Normal(0.0, 1.0))
    >>> def guide():
    ...     loc = pyrolite.param("loc", torch.tensor(1.0))
    ...     pyrolite.sample("z", dist.Normal(loc, 1.0))
    >>> TraceMeanField_ELBO().loss(model, guide)  # KL(N(1, 1) || N(0, 1)) = 1/2, exactly
    0.5
    """

    # Latent sites with a KL read no log-prob at all: the particle computes what it needs.
    log_probs = "none"
    guide_log_probs = "none"

    def plan(self, model_trace: Trace, guide_trace: Trace) -> _Plan:
        latent, observed = [], []
        for name, site in model_trace.nodes.items():
            if site["type"] != "sample":
                continue
            if site["is_observed"] or name not in guide_trace.nodes:
                observed.append(name)
                continue
            guide_site = guide_trace.nodes[name]
            _check_reparameterized(name, guide_site)
            kl = _kl_if_known(guide_site["fn"], site["fn"])
            if kl is None:
                latent.append((name, _MONTE_CARLO, 1))
            else:
                kl = scale_and_mask(kl, guide_site["scale"], guide_site["mask"])
                latent.append((name, _KL, _plate_repeats(guide_site, kl.shape)))
        guide_only = []
        for name, site in guide_trace.nodes.items():
            if site["type"] == "sample" and name not in model_trace.nodes:
                _check_reparameterized(name, site)
                guide_only.append(name)
        sampled = {n for n, how, _ in latent if how == _MONTE_CARLO}
        return _Plan(
            tuple(latent),
            tuple(observed),
            tuple(guide_only),
            frozenset(sampled.union(observed)),
            frozenset(sampled.union(guide_only)),
        )

    def particle(self, plan: _Plan, model_trace: Trace, guide_trace: Trace):
        model_nodes, guide_nodes = model_trace.nodes, guide_trace.nodes
        model_needs, guide_needs = plan.model_needs, plan.guide_needs
        model_trace.compute_log_prob_sums(lambda name, site: name in model_needs)
        guide_trace.compute_score_parts(lambda name, site: name in guide_needs)
        # loss = sum KL + sum (log q - log p) over Monte-Carlo latents - sum log p(obs)
        terms: List[torch.Tensor] = []
        negative: List[torch.Tensor] = [model_nodes[n]["log_prob_sum"] for n in plan.observed]
        for name, how, repeats in plan.latent:
            guide_site = guide_nodes[name]
            if how == _KL:
                terms.append(_kl_sum(guide_site, model_nodes[name], repeats))
            else:
                terms.append(guide_site["log_prob_sum"])
                negative.append(model_nodes[name]["log_prob_sum"])
        for name in plan.guide_only:
            terms.append(guide_nodes[name]["log_prob_sum"])
        loss = sum_terms(terms) - sum_terms(negative)
        return loss, loss

    def _validate(self, model_trace: Trace, guide_trace: Trace) -> None:
        super()._validate(model_trace, guide_trace)
        _warn_if_not_mean_field(model_trace, guide_trace)


def _check_reparameterized(name: str, guide_site: dict) -> None:
    if not getattr(guide_site["fn"], "has_rsample", False):
        raise NotImplementedError(
            f"TraceMeanField_ELBO: guide site '{name}' ({type(guide_site['fn']).__name__}) is "
            "not reparameterized, but this estimator needs every latent guide site to be; "
            "use Trace_ELBO or TraceGraph_ELBO (score-function gradients) for this guide."
        )


def _kl_if_known(q, p) -> Optional[torch.Tensor]:
    """``kl_divergence(q, p)`` if it is registered for this pair, else None (asked once
    per trace structure: the plan is cached)."""
    try:
        with torch.no_grad():
            return kl_divergence(q, p)
    except NotImplementedError:
        return None


def _plate_repeats(guide_site: dict, kl_shape: torch.Size) -> int:
    """How many plate entries each KL element stands for: a site's distribution may stay
    compact inside its plates (lazy broadcasting), one element for a whole plate."""
    batch = plate_batch_shape(guide_site) or ()
    full = torch.broadcast_shapes(kl_shape, tuple(batch))
    return math.prod(full) // max(1, math.prod(kl_shape))


def _kl_sum(guide_site: dict, model_site: dict, repeats: int) -> torch.Tensor:
    """``sum KL(q || p)`` over the site's batch (plates included), scaled and masked."""
    kl = kl_divergence(guide_site["fn"], model_site["fn"])
    kl = scale_and_mask(kl, guide_site["scale"], guide_site["mask"])
    total = kl.sum() if kl.dim() else kl
    return total if repeats == 1 else total * repeats


def _warn_if_not_mean_field(model_trace: Trace, guide_trace: Trace) -> None:
    """Warn when a guide site's distribution depends on another latent's value.

    Found through autograd: the site's log-density at its (detached) value is
    differentiated against the earlier latents' values that carry gradients (so on
    calls that take gradients, as every SVI step does; ``loss()`` alone cannot tell).
    """
    earlier: List[Tuple[str, torch.Tensor]] = []
    for name, site in guide_trace.nodes.items():
        if site["type"] != "sample" or site["is_observed"]:
            continue
        value = site["value"]
        sources = [(n, v) for n, v in earlier if v.requires_grad]
        if sources and isinstance(value, torch.Tensor):
            with torch.enable_grad():
                lp = site["fn"].log_prob(value.detach())
                if lp.requires_grad:
                    grads = torch.autograd.grad(
                        lp.sum(), [v for _, v in sources], allow_unused=True, retain_graph=True
                    )
                    parents = [n for (n, _), g in zip(sources, grads) if g is not None]
                    if parents and name in model_trace.nodes:
                        warn_once(
                            ("not_mean_field", name, tuple(parents)),
                            "Failed to verify mean field restriction on the guide: guide "
                            f"site '{name}' depends on latent site(s) {parents}, so the "
                            "analytic KL terms of TraceMeanField_ELBO are not the ELBO's. Use "
                            "Trace_ELBO for this guide, or make its sites independent.",
                        )
        if isinstance(value, torch.Tensor):
            earlier.append((name, value))
