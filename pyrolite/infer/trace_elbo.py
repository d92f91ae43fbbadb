"""``Trace_ELBO``: the general-purpose estimator.

Reparameterized guide sites contribute pathwise gradients; the others contribute
score-function terms ``log q(z) * cost``, where the cost of a site inside plates
keeps only the terms of the same plate elements (partial Rao-Blackwellization).
"""

from ..distributions.util import is_identically_zero
from ..poutine.trace_struct import Trace
from .elbo import ELBO, detach, sum_terms
from .util import plate_cost


class Trace_ELBO(ELBO):
    """Monte-Carlo ELBO with pathwise and score-function gradients.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from torch.distributions import constraints
    >>> pyrolite.clear_param_store()
    >>> def model():
    ...     pyrolite.sample("z", dist.Normal(0.0, 1.0))
    >>> def guide():
    ...     loc = pyrolite.param("loc", torch.tensor(0.0))
    ...     pyrolite.sample("z", dist.Normal(loc, 1.0))
    >>> abs(Trace_ELBO().loss(model, guide))  # q == p: log p - log q is 0 for every draw
    0.0
    """

    def particle(self, plan, model_trace: Trace, guide_trace: Trace):
        loss, log_p, entropy_terms, score_sites = elbo_parts(model_trace, guide_trace)
        if not score_sites:
            # Fully reparameterized: the surrogate is the loss itself.
            return loss, loss
        cost_cache: dict = {}
        score_terms = [
            (
                plate_cost(model_trace, guide_trace, site["cond_indep_stack"], cost_cache) * score
            ).sum()
            for _, site, score in score_sites
        ]
        surrogate = sum_terms(entropy_terms) - log_p - sum_terms(score_terms)
        return detach(loss), surrogate


def elbo_parts(model_trace: Trace, guide_trace: Trace):
    """What every Monte-Carlo ELBO particle is built from: ``(loss, log_p, entropy_terms,
    score_sites)``.

    ``loss`` is -ELBO (``sum log q - sum log p``, not detached); ``log_p`` the model's
    log-joint; ``entropy_terms`` the guide terms with pathwise gradients; ``score_sites``
    ``(name, site, score_function)`` for each guide site with a score-function term. A
    surrogate is ``sum(entropy_terms) - log_p - sum(score terms)``. Terms are summed
    without a 0.0 start or a final negation: each would be one more op (and autograd
    node) per step.
    """
    model_terms = [s["log_prob_sum"] for s in model_trace.nodes.values() if s["type"] == "sample"]
    guide_terms, entropy_terms, score_sites = [], [], []
    for name, site in guide_trace.nodes.items():
        if site["type"] != "sample":
            continue
        # Observed guide sites (e.g. a factor) count too: they are part of log q.
        guide_terms.append(site["log_prob_sum"])
        log_prob, score_function, entropy_term = site["score_parts"]
        if entropy_term is log_prob:
            entropy_terms.append(site["log_prob_sum"])
        elif not is_identically_zero(entropy_term):
            entropy_terms.append(entropy_term.sum())
        if not is_identically_zero(score_function):
            score_sites.append((name, site, score_function))
    log_p = sum_terms(model_terms)
    return sum_terms(guide_terms) - log_p, log_p, entropy_terms, score_sites
