"""Rejector: a distribution sampled by rejection from a proposal, for rejection-sampling VI.

Its ``score_parts`` carry the acceptance term as a score function (Naesseth et al. 2017),
so a reparameterized proposal with a parameter-dependent acceptance stays unbiased.
"""

from typing import Callable, Optional, Sequence, Union

import torch

from pyrolite.distributions.expanded import expand_by_wrapping
from pyrolite.distributions.score_parts import ScoreParts
from pyrolite.distributions.torch_distribution import TorchDistribution


class Rejector(TorchDistribution):
    """Rejection-sampled distribution with density ``propose.log_prob(x) +
    log_prob_accept(x) - log_scale``.

    ``propose`` draws a batch of proposals (``propose(sample_shape)``; a plain callable
    works when only ``propose()`` is used); ``log_prob_accept(x)`` gives each proposal's
    log acceptance probability (<= 0); ``log_scale`` is the log total acceptance
    probability, which normalizes the density. ``rsample`` redraws the rejected entries
    until every entry has been accepted.

    >>> from pyrolite.distributions import Normal
    >>> accept = lambda x: torch.where(x > 0, 0.0, -float("inf"))  # keep x > 0
    >>> half = Rejector(Normal(0.0, 1.0), accept, torch.tensor(0.5).log())
    >>> bool((half.rsample((100,)) > 0).all()), round(float(half.log_prob(torch.tensor(1.0))), 4)
    (True, -0.7258)
    """

    arg_constraints = {}
    has_rsample = True
    expand = expand_by_wrapping

    def __init__(
        self,
        propose: Union[torch.distributions.Distribution, Callable],
        log_prob_accept: Callable[[torch.Tensor], torch.Tensor],
        log_scale: Union[float, torch.Tensor],
        *,
        batch_shape: Optional[Sequence[int]] = None,
        event_shape: Optional[Sequence[int]] = None,
    ):
        self.propose = propose
        self.log_prob_accept = log_prob_accept
        self._log_scale = log_scale
        if batch_shape is None:
            batch_shape = propose.batch_shape
        if event_shape is None:
            event_shape = propose.event_shape
        super().__init__(torch.Size(batch_shape), torch.Size(event_shape), validate_args=False)

    # One-entry caches keyed by the value tensor itself: an estimator asks for log_prob
    # and score_parts of the same sample, and the acceptance may be costly.
    def _propose_log_prob(self, value: torch.Tensor) -> torch.Tensor:
        cached = self.__dict__.get("_propose_log_prob_cache")
        if cached is None or cached[0] is not value:
            cached = value, self.propose.log_prob(value)
            self._propose_log_prob_cache = cached
        return cached[1]

    def _log_prob_accept(self, value: torch.Tensor) -> torch.Tensor:
        cached = self.__dict__.get("_log_prob_accept_cache")
        if cached is None or cached[0] is not value:
            cached = value, self.log_prob_accept(value)
            self._log_prob_accept_cache = cached
        return cached[1]

    def rsample(self, sample_shape: Sequence[int] = ()) -> torch.Tensor:
        sample_shape = torch.Size(sample_shape)
        proposal = self.propose(sample_shape) if sample_shape else self.propose()
        # Accept per batch entry (an event is accepted or rejected whole).
        batch = proposal.shape[: proposal.dim() - self.event_dim]
        accepted = torch.zeros(batch, dtype=torch.bool, device=proposal.device)
        value = proposal
        while True:
            log_u = torch.rand(batch, dtype=proposal.dtype, device=proposal.device).log()
            accept = ~accepted & (log_u < self._log_prob_accept(proposal))
            if accept.any():
                value = torch.where(_pad(accept, self.event_dim), proposal, value)
                accepted = accepted | accept
            if accepted.all():
                return value
            proposal = self.propose(sample_shape) if sample_shape else self.propose()

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        cached = self.__dict__.get("_log_prob_cache")
        if cached is None or cached[0] is not value:
            log_prob = self._propose_log_prob(value) + self._log_prob_accept(value)
            cached = value, log_prob - self._log_scale
            self._log_prob_cache = cached
        return cached[1]

    def score_parts(self, value: torch.Tensor) -> ScoreParts:
        # The pathwise gradient through an accepted proposal misses how the parameters
        # move the acceptance region: that part is a score function of the acceptance.
        log_prob = self.log_prob(value)
        score_function = self._log_prob_accept(value) - self._log_scale
        return ScoreParts(log_prob=log_prob, score_function=score_function, entropy_term=log_prob)


def _pad(mask: torch.Tensor, event_dim: int) -> torch.Tensor:
    return mask.reshape(mask.shape + (1,) * event_dim)
