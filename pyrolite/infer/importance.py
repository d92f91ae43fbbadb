"""``Importance``: posterior inference by importance sampling, with the guide as proposal.

Each draw is a model trace (replayed at a guide draw) weighted by
``log p(x, z) - log q(z)``; the weights give the evidence estimate and the ESS.
"""

import math
import warnings
from typing import Callable, Optional

import torch

from ..poutine.block_messenger import BlockMessenger
from ..poutine.trace_messenger import run_traced
from .abstract_infer import TracePosterior
from .util import per_particle_log_prob


def _prior_proposal(model: Callable) -> Callable:
    """The model with its observed sites hidden: running it traces a draw from the prior."""
    return BlockMessenger(hide_fn=lambda msg: msg["type"] == "sample" and msg["is_observed"])(model)


class Importance(TracePosterior):
    """Importance sampling from ``guide`` (the model's prior when ``guide`` is None).

    :param model: the model.
    :param guide: the proposal; defaults to the model's prior.
    :param num_samples: number of draws (default 10).

    For a Normal prior and one Normal observation the evidence is known in closed
    form; with the exact posterior as guide every weight equals it:

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> def model(x):
    ...     z = pyrolite.sample("z", dist.Normal(0.0, 1.0))
    ...     pyrolite.sample("x", dist.Normal(z, 1.0), obs=x)
    >>> def guide(x):
    ...     pyrolite.sample("z", dist.Normal(x / 2, 0.5**0.5))
    >>> posterior = Importance(model, guide, num_samples=50).run(torch.tensor(1.0))
    >>> exact = dist.Normal(0.0, 2**0.5).log_prob(torch.tensor(1.0))
    >>> bool(torch.isclose(posterior.get_log_normalizer(), exact, atol=1e-5))
    True
    >>> round(posterior.get_ESS().item())
    50
    """

    def __init__(
        self, model: Callable, guide: Optional[Callable] = None, num_samples: Optional[int] = None
    ):
        super().__init__()
        if num_samples is None:
            num_samples = 10
            warnings.warn(f"num_samples not provided, defaulting to {num_samples}")
        if guide is None:
            guide = _prior_proposal(model)
        self.model = model
        self.guide = guide
        self.num_samples = num_samples

    def _traces(self, *args, **kwargs):
        for _ in range(self.num_samples):
            guide_trace = run_traced(self.guide, args, kwargs)
            model_trace = run_traced(
                self.model, args, kwargs, replay_trace=guide_trace, with_return=True
            )
            log_weight = model_trace.log_prob_sum() - guide_trace.log_prob_sum()
            yield model_trace, log_weight

    def _log_weights(self) -> torch.Tensor:
        if not self.log_weights:
            raise ValueError("Importance has no draws yet: call .run(*args) first")
        return torch.stack(self.log_weights)

    def get_log_normalizer(self) -> torch.Tensor:
        """log of the evidence estimate: ``logsumexp(log_w) - log N``."""
        log_w = self._log_weights()
        return torch.logsumexp(log_w, 0) - math.log(log_w.numel())

    def get_normalized_weights(self, log_scale: bool = False) -> torch.Tensor:
        """The weights divided by their sum (their logs with ``log_scale``)."""
        log_w = self._log_weights()
        log_w_norm = log_w - torch.logsumexp(log_w, 0)
        return log_w_norm if log_scale else log_w_norm.exp()

    def get_ESS(self) -> torch.Tensor:
        """Effective sample size ``1 / sum(w_norm**2)``: N for equal weights, 1 at worst."""
        log_w_norm = self.get_normalized_weights(log_scale=True)
        return torch.exp(-torch.logsumexp(2 * log_w_norm, 0))


def vectorized_importance_weights(model: Callable, guide: Callable, *args, **kwargs):
    """All ``num_samples`` importance weights in one vectorized run of guide and model.

    Keyword arguments ``num_samples`` (default 1), ``max_plate_nesting`` (required: the
    model's plate depth) and ``normalized`` (default False) are consumed; the rest go
    to the model and guide. Returns ``(log_weights, model_trace, guide_trace)``.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> def model(x):
    ...     z = pyrolite.sample("z", dist.Normal(0.0, 1.0))
    ...     pyrolite.sample("x", dist.Normal(z, 1.0), obs=x)
    >>> log_w, _, _ = vectorized_importance_weights(
    ...     model, _prior_proposal(model), torch.tensor(1.0), num_samples=1000, max_plate_nesting=0
    ... )
    >>> log_w.shape
    torch.Size([1000])
    """
    from ..poutine.plate_messenger import vectorize

    num_samples = kwargs.pop("num_samples", 1)
    if "max_plate_nesting" not in kwargs:
        raise ValueError("vectorized_importance_weights needs max_plate_nesting=<the model's>")
    max_plate_nesting = kwargs.pop("max_plate_nesting")
    normalized = kwargs.pop("normalized", False)

    def vectorized(fn):
        return vectorize(fn, "num_particles_vectorized", num_samples, -1 - max_plate_nesting)

    with torch.no_grad():
        guide_trace = run_traced(vectorized(guide), args, kwargs)
        model_trace = run_traced(vectorized(model), args, kwargs, replay_trace=guide_trace)
    particle_dim = -1 - max_plate_nesting
    log_weights = per_particle_log_prob(model_trace, particle_dim, num_samples)
    log_weights = log_weights - per_particle_log_prob(guide_trace, particle_dim, num_samples)
    if normalized:
        log_weights = log_weights - torch.logsumexp(log_weights, 0)
    return log_weights, model_trace, guide_trace
