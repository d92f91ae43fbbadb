"""``Resampler``: a cache of draws from a diffuse guide (and an optional simulator) that
importance-resamples them to any model with the same latents, without rerunning the
simulator (Pyro's tool for interactive prior predictive checks)."""

from typing import Callable, Dict, Optional

import torch

from ..poutine.condition_messenger import ConditionMessenger
from ..poutine.plate_messenger import vectorize
from ..poutine.trace_messenger import run_traced
from ..poutine.trace_struct import Trace
from .util import per_particle_log_prob

_PARTICLES = "_resampler_particles"


def _plate_nesting(trace: Trace) -> int:
    return max(
        (
            -frame.dim
            for site in trace.nodes.values()
            for frame in site.get("cond_indep_stack", ())
            if frame.dim is not None
        ),
        default=0,
    )


class Resampler:
    """Importance resampler of ``num_guide_samples`` draws of ``guide`` (extended by
    ``simulator``, run at the guide's draws).

    :param guide: a model without arguments, more diffuse than the models resampled to;
        vectorizable by a plate.
    :param simulator: an optional larger model with a superset of the guide's latents.
    :param num_guide_samples: how many draws to cache (many more than later requests).
    :param max_plate_nesting: the models' plate depth; guessed by running the guide.

    >>> import pyrolite, pyrolite.distributions as dist
    >>> resampler = Resampler(lambda: pyrolite.sample("a", dist.Normal(0.0, 3.0)),
    ...                       num_guide_samples=5000)
    >>> samples = resampler.sample(lambda: pyrolite.sample("a", dist.Normal(1.0, 1.0)), 1000)
    >>> samples["a"].shape, abs(float(samples["a"].mean()) - 1.0) < 0.2
    (torch.Size([1000]), True)
    """

    def __init__(
        self,
        guide: Callable,
        simulator: Optional[Callable] = None,
        *,
        num_guide_samples: int,
        max_plate_nesting: Optional[int] = None,
    ):
        if max_plate_nesting is None:
            with torch.no_grad():
                max_plate_nesting = _plate_nesting(run_traced(guide, (), {}))
        self._particle_dim = -1 - max_plate_nesting
        self._num_guide_samples = num_guide_samples
        self._gumbels: Optional[torch.Tensor] = None
        with torch.no_grad():
            guide_trace = run_traced(self._vectorized(guide), (), {})
            self._guide_latents = {
                name: site["value"]
                for name, site in guide_trace.nodes.items()
                if site["type"] == "sample"
                and not site["is_observed"]
                and not site["infer"].get("_subsample")
            }
            self._old_logp = per_particle_log_prob(
                guide_trace, self._particle_dim, num_guide_samples
            )
            trace = guide_trace
            if simulator is not None:
                trace = self._conditioned_trace(simulator)
        # each value with the dim its particles lie on (event dims sit right of it)
        self._samples = {
            name: (site["value"], self._particle_dim - len(getattr(site["fn"], "event_shape", ())))
            for name, site in trace.nodes.items()
            if site["type"] == "sample" and not site["infer"].get("_subsample")
        }

    def _vectorized(self, fn: Callable) -> Callable:
        return vectorize(fn, _PARTICLES, self._num_guide_samples, self._particle_dim)

    def _conditioned_trace(self, fn: Callable) -> Trace:
        with ConditionMessenger(self._guide_latents):
            return run_traced(self._vectorized(fn), (), {})

    def sample(
        self, model: Callable, num_samples: int, stable: bool = True
    ) -> Dict[str, torch.Tensor]:
        """``num_samples`` cached draws, resampled by their weights ``p_model / p_guide``.

        :param model: a model with the guide's latents, vectorizable by a plate.
        :param stable: resample with fixed Gumbel noise (Gumbel-max), so a small change of
            ``model`` keeps most draws (for plots); ``False`` draws afresh (for Monte Carlo).
        :returns: ``{site: tensor}`` with the draws along the particle dim.
        """
        with torch.no_grad():
            trace = self._conditioned_trace(model)
            new_logp = per_particle_log_prob(trace, self._particle_dim, self._num_guide_samples)
        log_weights = new_logp - self._old_logp
        if stable:
            n = self._num_guide_samples
            have = 0 if self._gumbels is None else self._gumbels.size(0)
            if have < num_samples:
                # the noise is kept so that later calls reuse it: that is what makes it stable
                fresh = torch.distributions.Gumbel(0.0, 1.0).sample((num_samples - have, n))
                self._gumbels = (
                    fresh if self._gumbels is None else torch.cat([self._gumbels, fresh])
                )
            index = (log_weights + self._gumbels[:num_samples]).argmax(-1)
        else:
            probs = torch.softmax(log_weights, 0)
            index = torch.multinomial(probs, num_samples, replacement=True)
        return {
            name: value.index_select(dim, index)
            if value.dim() >= -dim and value.size(dim) == self._num_guide_samples
            else value
            for name, (value, dim) in self._samples.items()
        }
