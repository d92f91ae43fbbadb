"""``Predictive``: draw samples of a model's sites from a guide or from posterior samples.

Three uses: samples of a guide (``Predictive(guide, num_samples=N)``), the model's
predictive from a guide (``Predictive(model, guide=guide, num_samples=N)``) and from
posterior samples (``Predictive(model, posterior_samples)``). ``params=`` substitutes
constrained values for param sites, as NumPyro's ``params`` does.
"""

import math
import warnings
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Optional

import torch

from ..poutine.block_messenger import BlockMessenger
from ..poutine.condition_messenger import ConditionMessenger
from ..poutine.plate_messenger import vectorize
from ..poutine.replay_messenger import ReplayMessenger
from ..poutine.trace_messenger import TraceHandler, TraceMessenger
from ..poutine.trace_struct import Trace
from .util import per_particle_log_prob

_VECTORIZE_PLATE = "_num_predictive_samples"


def _is_returnable(site: dict) -> bool:
    """Sample sites worth returning: not plate subsample indices, not ``factor`` terms."""
    if site["type"] != "sample":
        return False
    infer = site["infer"]
    return not infer.get("_subsample") and not infer.get("is_auxiliary")


def _latent_values(trace: Trace) -> Dict[str, torch.Tensor]:
    return {
        name: site["value"]
        for name, site in trace.nodes.items()
        if _is_returnable(site) and not site["is_observed"]
    }


def _max_plate_nesting(*traces: Trace) -> int:
    nesting = 0
    for trace in traces:
        for site in trace.nodes.values():
            for frame in site.get("cond_indep_stack", ()):
                if frame.dim is not None and frame.name != _VECTORIZE_PLATE:
                    nesting = max(nesting, -frame.dim)
    return nesting


class Predictive(torch.nn.Module):
    """Samples of a model's (or guide's) sites, stacked along a leading ``num_samples`` dim.

    :param model: the model (or a guide, to sample the guide itself).
    :param posterior_samples: ``{site: tensor}`` with ``batch_ndims`` leading batch dims;
        the model is conditioned on each sample in turn.
    :param guide: a guide; each model run is conditioned on a fresh guide draw.
    :param num_samples: how many samples to draw (taken from ``posterior_samples`` when given).
    :param return_sites: sites to return. By default: with a guide every model sample
        site; otherwise the sample sites not in ``posterior_samples`` (observed sites
        included). ``None`` means every sample site. ``"_RETURN"`` is the return value.
    :param parallel: run all samples at once in an outer plate (the model must be
        vectorizable: plates for every batch dim); otherwise one run per sample.
    :param params: ``{param name: constrained value}`` used in place of the ParamStore
        (e.g. ``svi_result.params``); params not listed are read from the store.
    :param batch_ndims: leading batch dims of ``posterior_samples`` (2 for chains x draws).

    Observed sites return their observation; pass ``None`` for the data (as the
    model allows) to get predictions. Unlike Pyro, returned values have the site's
    own shape behind the sample dims (no singleton dims for outer plates).

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> def model(data):
    ...     f = pyrolite.sample("latent_fairness", dist.Beta(10.0, 10.0))
    ...     with pyrolite.plate("N", data.shape[0] if data is not None else 10):
    ...         pyrolite.sample("obs", dist.Bernoulli(f), obs=data)
    >>> def guide(data):
    ...     a = pyrolite.param("alpha_q", torch.tensor(15.0))
    ...     b = pyrolite.param("beta_q", torch.tensor(15.0))
    ...     pyrolite.sample("latent_fairness", dist.Beta(a, b))
    >>> params = {"alpha_q": torch.tensor(16.0), "beta_q": torch.tensor(14.0)}
    >>> samples = Predictive(guide, params=params, num_samples=100)(data=None)
    >>> samples["latent_fairness"].shape
    torch.Size([100])
    >>> predictive = Predictive(model, samples, params=params)
    >>> {k: tuple(v.shape) for k, v in predictive(data=None).items()}
    {'obs': (100, 10)}
    >>> out = Predictive(model, guide=guide, params=params, num_samples=100)(None)
    >>> sorted(out), out["obs"].shape
    (['latent_fairness', 'obs'], torch.Size([100, 10]))
    """

    def __init__(
        self,
        model: Callable,
        posterior_samples: Optional[Dict[str, torch.Tensor]] = None,
        guide: Optional[Callable] = None,
        num_samples: Optional[int] = None,
        return_sites: Optional[Iterable[str]] = (),
        parallel: bool = False,
        *,
        params: Optional[Dict[str, torch.Tensor]] = None,
        batch_ndims: int = 1,
    ):
        super().__init__()
        if posterior_samples is not None and guide is not None:
            raise ValueError(
                "Predictive takes posterior_samples or a guide, not both: the guide would "
                "draw the latent sites the samples already fix"
            )
        if batch_ndims < 1:
            raise ValueError(f"Predictive: batch_ndims must be >= 1, got {batch_ndims}")
        self.batch_shape = torch.Size([num_samples]) if num_samples is not None else None
        if posterior_samples:
            self.batch_shape = self._check_samples(posterior_samples, num_samples, batch_ndims)
        if self.batch_shape is None:
            raise ValueError("Predictive needs num_samples (or posterior_samples to take it from)")
        self.num_samples = math.prod(self.batch_shape)
        self.model = model
        self.guide = guide
        self.posterior_samples = {
            name: value.reshape((self.num_samples,) + value.shape[batch_ndims:])
            for name, value in (posterior_samples or {}).items()
        }
        self.return_sites = None if return_sites is None else list(return_sites)
        self.parallel = parallel
        self.params = dict(params) if params else None

    @staticmethod
    def _check_samples(samples: Dict[str, torch.Tensor], num_samples, batch_ndims) -> torch.Size:
        batch_shape = None
        for name, value in samples.items():
            if not isinstance(value, torch.Tensor) or value.dim() < batch_ndims:
                raise ValueError(
                    f"Predictive: posterior sample '{name}' must be a tensor with at least "
                    f"{batch_ndims} leading batch dim(s), got {getattr(value, 'shape', value)}"
                )
            shape = value.shape[:batch_ndims]
            if batch_shape is None:
                batch_shape = shape
            elif shape != batch_shape:
                raise ValueError(
                    f"Predictive: posterior samples disagree on the batch shape: '{name}' has "
                    f"{tuple(shape)}, others {tuple(batch_shape)}"
                )
        total = math.prod(batch_shape)
        if num_samples is not None and num_samples != total:
            warnings.warn(
                f"Sample's leading dimension size {total} is different from the provided "
                f"{num_samples} num_samples argument. Defaulting to {total}."
            )
        return batch_shape

    # --- which sites ---------------------------------------------------------------------

    def _sites_to_return(self, trace: Trace) -> list:
        names = [name for name, site in trace.nodes.items() if _is_returnable(site)]
        if self.return_sites:
            missing = [s for s in self.return_sites if s not in names and s != "_RETURN"]
            if missing:
                raise KeyError(
                    f"Predictive: return_sites {missing} are not sample sites of the model; "
                    f"its sample sites are {names}"
                )
            return list(self.return_sites)
        if self.return_sites is None or self.guide is not None:
            return names
        return [name for name in names if name not in self.posterior_samples]

    # --- one run -------------------------------------------------------------------------

    def _run_once(self, args, kwargs, latent: Optional[Dict[str, torch.Tensor]]) -> Trace:
        """The model's trace, conditioned on ``latent`` or on one guide draw."""
        if self.guide is not None:
            tracer = TraceMessenger()
            with tracer:
                self.guide(*args, **kwargs)
            latent = _latent_values(tracer.trace)
        handler = TraceHandler(TraceMessenger(), self.model)
        with ConditionMessenger(latent or {}):
            handler(*args, **kwargs)
        return handler.trace

    def _substituted(self) -> ExitStack:
        """Handlers every run goes through: no grads, hidden from outer handlers, params."""
        stack = ExitStack()
        stack.enter_context(torch.no_grad())
        stack.enter_context(BlockMessenger())
        if self.params is not None:
            stack.enter_context(ReplayMessenger(params=self.params))
        return stack

    def forward(self, *args, **kwargs) -> Dict[str, Any]:
        """``{site: samples}`` with leading dims ``batch_shape`` (``(num_samples,)``)."""
        with self._substituted():
            if self.parallel:
                samples = self._forward_parallel(args, kwargs)
            else:
                samples = self._forward_sequential(args, kwargs)
        if len(self.batch_shape) > 1:
            samples = {
                name: value.reshape(self.batch_shape + value.shape[1:])
                if isinstance(value, torch.Tensor)
                else value
                for name, value in samples.items()
            }
        return samples

    def get_samples(self, *args, **kwargs) -> Dict[str, Any]:
        """Same as calling the ``Predictive`` (Pyro's older name)."""
        return self(*args, **kwargs)

    def _sample_latent(self, i: int) -> Optional[Dict[str, torch.Tensor]]:
        return {name: value[i] for name, value in self.posterior_samples.items()}

    def _forward_sequential(self, args, kwargs) -> Dict[str, Any]:
        collected: Dict[str, list] = {}
        sites = None
        for i in range(self.num_samples):
            trace = self._run_once(args, kwargs, self._sample_latent(i))
            if sites is None:
                sites = self._sites_to_return(trace)
                collected = {name: [] for name in sites}
            for name in sites:
                collected[name].append(trace.nodes[name]["value"])
        out = {}
        for name, values in collected.items():
            if not all(isinstance(v, torch.Tensor) for v in values):
                out[name] = values  # e.g. a _RETURN that is not a tensor
                continue
            shapes = {tuple(v.shape) for v in values}
            if len(shapes) > 1:
                raise ValueError(
                    f"Predictive: site '{name}' has different shapes across samples "
                    f"{sorted(shapes)}; a model with changing shapes cannot be stacked"
                )
            out[name] = torch.stack(values)
        return out

    # --- vectorized ----------------------------------------------------------------------

    def get_vectorized_trace(self, *args, **kwargs) -> Trace:
        """One trace of the model run for all samples at once in an outer plate."""
        with self._substituted():
            return self._vectorized_trace(args, kwargs)[0]

    def _vectorized_trace(self, args, kwargs):
        prototype = self._run_once(args, kwargs, self._sample_latent(0))
        dim = -1 - _max_plate_nesting(prototype)
        n = self.num_samples

        def vectorized(fn):
            return vectorize(fn, _VECTORIZE_PLATE, n, dim)

        if self.guide is not None:
            tracer = TraceMessenger()
            with tracer:
                vectorized(self.guide)(*args, **kwargs)
            latent = _latent_values(tracer.trace)
        else:
            latent = {}
            for name, value in self.posterior_samples.items():
                site = prototype.nodes.get(name)
                if site is None:
                    continue  # the model ignores it, as condition would
                event_dim = len(getattr(site["fn"], "event_shape", ()))
                pad = -dim - 1 - (value.dim() - 1 - event_dim)
                latent[name] = value.reshape((n,) + (1,) * max(pad, 0) + value.shape[1:])
        handler = TraceHandler(TraceMessenger(), vectorized(self.model))
        with ConditionMessenger(latent):
            handler(*args, **kwargs)
        return handler.trace, prototype

    def _forward_parallel(self, args, kwargs) -> Dict[str, Any]:
        trace, prototype = self._vectorized_trace(args, kwargs)
        out = {}
        for name in self._sites_to_return(prototype):
            value = trace.nodes[name]["value"]
            if name == "_RETURN":
                out[name] = value
                continue
            shape = (self.num_samples,) + tuple(prototype.nodes[name]["value"].shape)
            if value.numel() == math.prod(shape):
                out[name] = value.reshape(shape)
            else:
                out[name] = value.expand(shape)  # a site that does not vary across samples
        return out


# --- weighed samples -----------------------------------------------------------------------


@dataclass
class WeighedPredictiveResults:
    """What :class:`WeighedPredictive` and :class:`MHResampler` return: ``samples``
    (``{site: tensor}``, samples first), per-sample ``log_weights`` and the two log
    densities they are the difference of."""

    samples: Dict[str, Any]
    log_weights: torch.Tensor
    guide_log_prob: torch.Tensor
    model_log_prob: torch.Tensor


def _traced(fn: Callable, args, kwargs, latent: Optional[Dict[str, torch.Tensor]] = None) -> Trace:
    handler = TraceHandler(TraceMessenger(), fn)
    with ConditionMessenger(latent or {}):
        handler(*args, **kwargs)
    return handler.trace


class WeighedPredictive(Predictive):
    """:class:`Predictive` from a guide that also returns each sample's importance weight
    ``log p(X_obs, z) - log q(z)``, where ``p`` is ``model_guide`` (the model the guide was
    fitted to; by default ``model``). Feed the results to
    :func:`~pyrolite.ops.stats.weighed_quantile` or resample them with :class:`MHResampler`.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> def model(x=None):
    ...     z = pyrolite.sample("z", dist.Normal(0.0, 1.0))
    ...     return pyrolite.sample("x", dist.Normal(z, 1.0), obs=x)
    >>> def guide(x=None):  # the exact posterior given x = 1
    ...     pyrolite.sample("z", dist.Normal(0.5, 0.5**0.5))
    >>> out = WeighedPredictive(model, guide=guide, num_samples=20)(
    ...     model_guide=lambda: model(torch.tensor(1.0)))
    >>> out.samples["x"].shape, round(float(out.log_weights.std()), 4)
    (torch.Size([20]), 0.0)
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.guide is None:
            raise ValueError(
                "WeighedPredictive needs a guide (guide=...): the weights compare the model's "
                "density with the guide's at each guide draw"
            )

    def forward(self, *args, model_guide: Optional[Callable] = None, **kwargs):
        """:class:`WeighedPredictiveResults` of ``num_samples`` guide draws pushed through
        ``model``, weighted against ``model_guide`` (default ``model``, same arguments)."""
        model_guide = self.model if model_guide is None else model_guide
        with self._substituted():
            if self.parallel:
                latent, guide_lp, model_lp = self._weigh_parallel(model_guide, args, kwargs)
            else:
                latent, guide_lp, model_lp = self._weigh_sequential(model_guide, args, kwargs)
        predictive = Predictive(
            self.model,
            posterior_samples=latent,
            num_samples=self.num_samples,
            return_sites=self.return_sites or None,
            parallel=self.parallel,
            params=self.params,
        )
        samples = predictive(*args, **kwargs)
        if len(self.batch_shape) > 1:
            samples = {
                name: value.reshape(self.batch_shape + value.shape[len(self.batch_shape) :])
                if isinstance(value, torch.Tensor)
                else value
                for name, value in samples.items()
            }
            guide_lp = guide_lp.reshape(self.batch_shape)
            model_lp = model_lp.reshape(self.batch_shape)
        return WeighedPredictiveResults(samples, model_lp - guide_lp, guide_lp, model_lp)

    def _weigh_sequential(self, model_guide, args, kwargs):
        draws, guide_lp, model_lp = [], [], []
        for _ in range(self.num_samples):
            guide_trace = _traced(self.guide, args, kwargs)
            latent = _latent_values(guide_trace)
            draws.append(latent)
            guide_lp.append(guide_trace.log_prob_sum())
            model_lp.append(_traced(model_guide, args, kwargs, latent).log_prob_sum())
        latent = {name: torch.stack([d[name] for d in draws]) for name in draws[0]}
        return latent, torch.stack(guide_lp), torch.stack(model_lp)

    def _weigh_parallel(self, model_guide, args, kwargs):
        # one unvectorized run fixes the particle dim left of every plate and each site's shape
        guide_proto = _traced(self.guide, args, kwargs)
        model_proto = _traced(model_guide, args, kwargs, _latent_values(guide_proto))
        dim = -1 - _max_plate_nesting(guide_proto, model_proto)
        n = self.num_samples

        def vectorized(fn):
            return vectorize(fn, _VECTORIZE_PLATE, n, dim)

        guide_trace = _traced(vectorized(self.guide), args, kwargs)
        values = _latent_values(guide_trace)
        model_trace = _traced(vectorized(model_guide), args, kwargs, values)
        latent = {}
        for name, value in values.items():
            site_shape = guide_proto.nodes[name]["value"].shape
            event_dim = len(getattr(guide_trace.nodes[name]["fn"], "event_shape", ()))
            value = value.movedim(dim - event_dim, 0) if value.dim() >= event_dim - dim else value
            if value.numel() == n * math.prod(site_shape):
                latent[name] = value.reshape((n,) + site_shape)
            else:
                latent[name] = value.expand((n,) + site_shape)  # does not vary over samples
        return (
            latent,
            per_particle_log_prob(guide_trace, dim, n),
            per_particle_log_prob(model_trace, dim, n),
        )


def _in_slice(index: int, selection: slice) -> bool:
    return index in range(index + 1)[selection]


class MHResampler(torch.nn.Module):
    """Turns weighed samples into equally weighed ones by independence Metropolis-Hastings:
    each call draws fresh weighed samples from ``sampler`` (a :class:`WeighedPredictive`)
    and sample ``i`` moves to its candidate with probability
    ``min(1, exp(log_w'_i - log_w_i))``. The first call returns the guide's draws; later
    calls approach the target.

    :param sampler: returns :class:`WeighedPredictiveResults` when called.
    :param source_samples_slice: which calls' candidate draws to keep (default none).
    :param stored_samples_slice: which calls' outputs to keep (default none).

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> def model():
    ...     pyrolite.sample("z", dist.Normal(0.0, 1.0))
    >>> def guide():
    ...     pyrolite.sample("z", dist.Normal(0.0, 1.0))
    >>> resampler = MHResampler(WeighedPredictive(model, guide=guide, num_samples=8))
    >>> for _ in range(3):
    ...     out = resampler()
    >>> int(resampler.get_total_transition_count()), out.samples["z"].shape
    (16, torch.Size([8]))
    """

    def __init__(
        self,
        sampler: Callable,
        source_samples_slice: slice = slice(0),
        stored_samples_slice: slice = slice(0),
    ):
        super().__init__()
        self.sampler = sampler
        self.source_samples_slice = source_samples_slice
        self.stored_samples_slice = stored_samples_slice
        self.samples: Optional[WeighedPredictiveResults] = None
        self.transition_count = torch.tensor(0)
        self.source_samples: list = []
        self.stored_samples: list = []
        self._calls = 0

    def forward(self, *args, **kwargs) -> WeighedPredictiveResults:
        """One Metropolis-Hastings step for every sample; returns the current samples."""
        candidate = self.sampler(*args, **kwargs)
        if _in_slice(self._calls, self.source_samples_slice):
            self.source_samples.append(candidate)
        if self.samples is None:
            self.samples = candidate
            self.transition_count = torch.zeros_like(candidate.log_weights, dtype=torch.long)
        else:
            log_u = torch.rand_like(candidate.log_weights).log()
            accept = log_u < candidate.log_weights - self.samples.log_weights
            self.samples = WeighedPredictiveResults(
                {
                    name: _select(accept, value, self.samples.samples[name])
                    for name, value in candidate.samples.items()
                },
                *(
                    torch.where(accept, getattr(candidate, field), getattr(self.samples, field))
                    for field in ("log_weights", "guide_log_prob", "model_log_prob")
                ),
            )
            self.transition_count = self.transition_count + accept.long()
        if _in_slice(self._calls, self.stored_samples_slice):
            self.stored_samples.append(self.samples)
        self._calls += 1
        return self.samples

    def get_samples(self, samples: list) -> WeighedPredictiveResults:
        """A list of results concatenated along the sample dim."""
        if not samples:
            raise ValueError(
                "MHResampler: no samples were kept; pass source_samples_slice / "
                "stored_samples_slice selecting the calls to keep (e.g. slice(None))"
            )
        return WeighedPredictiveResults(
            {name: torch.cat([s.samples[name] for s in samples]) for name in samples[0].samples},
            *(
                torch.cat([getattr(s, field) for s in samples])
                for field in ("log_weights", "guide_log_prob", "model_log_prob")
            ),
        )

    def get_source_samples(self) -> WeighedPredictiveResults:
        """The candidate draws of the calls ``source_samples_slice`` selects."""
        return self.get_samples(self.source_samples)

    def get_stored_samples(self) -> WeighedPredictiveResults:
        """The outputs of the calls ``stored_samples_slice`` selects."""
        return self.get_samples(self.stored_samples)

    def get_total_transition_count(self) -> torch.Tensor:
        """How many moves all samples made together."""
        return self.transition_count.sum()

    def get_min_sample_transition_count(self) -> torch.Tensor:
        """The number of moves of the sample that moved least."""
        return self.transition_count.min()


def _select(accept: torch.Tensor, new, old):
    if not isinstance(new, torch.Tensor):
        return [n if a else o for a, n, o in zip(accept.tolist(), new, old)]
    mask = accept.reshape(accept.shape + (1,) * (new.dim() - accept.dim()))
    return torch.where(mask, new, old)
