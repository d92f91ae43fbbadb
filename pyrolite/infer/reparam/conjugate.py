"""``ConjugateReparam``: sample a site from its prior conjugate-updated by a guide."""

import torch

from ...distributions.delta import Delta
from .reparam import Reparam


class ConjugateReparam(Reparam):
    """EXPERIMENTAL, as in Pyro. Draw a latent ``x ~ p`` from its prior conjugate-updated
    by ``guide``, ``u = p.conjugate_update(guide) = p guide / Z``, inside the model (no new
    site), and make ``x`` a ``Delta`` of log-density ``log Z - log guide(x)``, i.e. the
    importance weight ``p(x) / u(x)``: the model then needs no guide for ``x``.
    ``guide`` is a distribution (a likelihood-like factor over ``x``, e.g. a hand-computed
    conjugate posterior) or a callable taking the model's ``*args, **kwargs`` and
    returning one.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> from pyrolite.poutine.reparam_messenger import ReparamMessenger
    >>> from pyrolite.distributions.gaussian_hmm import GaussianHMM
    >>> mvn = dist.MultivariateNormal(torch.zeros(1), torch.eye(1))
    >>> hmm = GaussianHMM(mvn, torch.eye(1), mvn, torch.eye(1), mvn, duration=3)
    >>> def model():
    ...     return pyrolite.sample("x", hmm)
    >>> like = dist.Normal(torch.zeros(3, 1), 1.0).to_event(2)
    >>> tr = poutine.trace(ReparamMessenger({"x": ConjugateReparam(like)})(model)).get_trace()
    >>> [n for n in tr.nodes if tr.nodes[n]["type"] == "sample"], tr.nodes["x"]["is_observed"]
    (['x'], True)
    """

    def __init__(self, guide):
        self.guide = guide

    def apply(self, msg):
        name, fn = msg["name"], msg["fn"]
        if msg["is_observed"]:
            raise NotImplementedError(
                f"ConjugateReparam at site '{name}' cannot reparameterize an observed site."
            )
        guide_dist = self.guide
        if not isinstance(guide_dist, torch.distributions.Distribution):
            args, kwargs = self.args_kwargs if self.args_kwargs is not None else ((), {})
            guide_dist = guide_dist(*args, **kwargs)
        updated, log_normalizer = fn.conjugate_update(guide_dist)
        if not updated.has_rsample:
            raise NotImplementedError(
                f"ConjugateReparam at site '{name}': the updated {type(updated).__name__} "
                "has no rsample, so the site cannot be drawn reparameterized."
            )
        value = updated.rsample()
        log_density = log_normalizer - guide_dist.log_prob(value)
        new_fn = Delta(value, log_density=log_density, event_dim=fn.event_dim)
        return {"fn": new_fn, "value": value, "is_observed": True}
