"""``Trace_ELBO``: the general-purpose estimator.

Reparameterized guide sites contribute pathwise gradients; the others contribute
score-function terms ``log q(z) * cost``, where the cost of a site inside plates
keeps only the terms of the same plate elements (partial Rao-Blackwellization).
"""

from ..distributions.util import is_identically_zero
from ..poutine.trace_struct import Trace
from .elbo import ELBO
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

    def _particle_loss(self, model_trace: Trace, guide_trace: Trace):
        elbo = 0.0
        for site in model_trace.nodes.values():
            if site["type"] == "sample":
                elbo = elbo + site["log_prob_sum"]
        surrogate = elbo
        score_terms = 0.0
        cost_cache: dict = {}
        for site in guide_trace.nodes.values():
            if site["type"] != "sample":
                continue
            # Observed guide sites (e.g. a factor) count too: they are part of log q.
            elbo = elbo - site["log_prob_sum"]
            log_prob, score_function, entropy_term = site["score_parts"]
            if entropy_term is log_prob:
                surrogate = surrogate - site["log_prob_sum"]
            elif not is_identically_zero(entropy_term):
                surrogate = surrogate - entropy_term.sum()
            if not is_identically_zero(score_function):
                cost = plate_cost(model_trace, guide_trace, site["cond_indep_stack"], cost_cache)
                score_terms = score_terms + (cost * score_function).sum()
        if not is_identically_zero(score_terms):
            surrogate = surrogate + score_terms
            return -elbo.detach(), -surrogate
        # Fully reparameterized: the surrogate is the ELBO itself.
        return -elbo, -elbo
