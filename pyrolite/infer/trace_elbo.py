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
        # -ELBO = sum log q - sum log p, summed without a 0.0 start or a final negation:
        # each of those would be one more op (and autograd node) per step.
        model_terms = [
            s["log_prob_sum"] for s in model_trace.nodes.values() if s["type"] == "sample"
        ]
        guide_terms, entropy_terms, score_terms = [], [], []
        cost_cache: dict = {}
        for site in guide_trace.nodes.values():
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
                cost = plate_cost(model_trace, guide_trace, site["cond_indep_stack"], cost_cache)
                score_terms.append((cost * score_function).sum())
        log_p = sum_terms(model_terms)
        loss = sum_terms(guide_terms) - log_p
        if not score_terms:
            # Fully reparameterized: the surrogate is the loss itself.
            return loss, loss
        surrogate = sum_terms(entropy_terms) - log_p - sum_terms(score_terms)
        return detach(loss), surrogate
