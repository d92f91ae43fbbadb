"""``TraceGraph_ELBO``: score-function gradients Rao-Blackwellized by dependency structure,
with decaying-average, neural and user-supplied baselines.

For each non-reparameterized latent ``z`` of the guide the surrogate has one term
``log q(z) * (downstream cost - baseline)``, detached, where the downstream cost sums
the log-prob terms of ``z`` and of the guide sites after it (``log p - log q``) and of
the model sites that depend on any of them (``log p``), each restricted to the plate
elements ``z`` shares (element i of a plate sees only the terms of element i).
Dependency follows the data, as in Pyro 1.9: a site depends on the draws its
distribution's parameters were computed from (provenance marks carried through one
replay of guide and model, :mod:`pyrolite.ops.provenance`), not on every earlier site.
Which sites are downstream of which is worked out once per trace structure (the plan);
each step only sums detached tensors. Reparameterized sites keep pathwise gradients, and
the loss is Trace_ELBO's.

Baselines are asked for per guide site with ``infer={"baseline": {...}}``:

* ``use_decaying_avg_baseline=True`` (``baseline_beta``, default 0.90): a running
  average of the site's downstream cost, kept by the estimator (on the site's device),
  updated in place once per applied step, and saved in SVI's checkpoints;
* ``nn_baseline`` (an ``nn.Module`` the guide registers with ``pyrolite.module``) fed with
  ``nn_baseline_input`` (detached first), trained in the same step on its squared error
  ``(baseline - downstream cost)**2``;
* ``baseline_value``: a tensor computed by the guide, trained on the same squared error
  when it requires grad.

The baseline enters the score-function term detached and its own loss sees the cost
detached, so no ELBO gradient reaches a baseline and no baseline loss reaches the
model's or guide's params.
"""

import difflib
import numbers
from typing import Dict, List, NamedTuple, Optional, Tuple

import torch

from ..distributions.util import is_identically_zero
from ..ops.provenance import detach_provenance, get_provenance, track_provenance
from ..poutine.messenger import Messenger
from ..poutine.trace_struct import Trace
from ..process_state import warn_once
from .elbo import ELBO, detach, sum_terms
from .trace_elbo import elbo_parts
from .util import fits_within

BASELINE_KEYS = (
    "use_decaying_avg_baseline",
    "baseline_beta",
    "nn_baseline",
    "nn_baseline_input",
    "baseline_value",
)
_KEY_SET = frozenset(BASELINE_KEYS)
_DECAYING, _NN, _VALUE = "use_decaying_avg_baseline", "nn_baseline", "baseline_value"
AVERAGE_STATE = "baseline_avg_downstream_cost/"  # + site name: the decaying average's state


Term = Tuple[str, Tuple[int, ...]]  # a site's name, and the dims of its log-prob to keep


class Downstream(NamedTuple):
    """The log-prob terms in one guide site's downstream cost: each site's name and the
    dims (of the plates it shares with the scored site) its log-prob keeps; the others are
    summed (Rao-Blackwellization by plates)."""

    model: Tuple[Term, ...]  # model sites: + log p
    guide: Tuple[Term, ...]  # guide sites: - log q (the site itself included)


class TrackNonReparam(Messenger):
    """Mark each non-reparameterized latent's value with its site name
    (:mod:`pyrolite.ops.provenance`), so each log-prob's marks name the draws it depends
    on. Enter it outside the trace, so the trace records the marked values.

    :param replayed: the run replays its draws rather than sampling them (a guide run
        again on its own trace): also mark each value with its distribution's
        parameters' marks, as a fresh draw would carry them.
    """

    def __init__(self, replayed: bool = False):
        self.replayed = replayed

    def _pyro_post_sample(self, msg) -> None:
        if msg["is_observed"] or msg["infer"].get("_subsample"):
            return
        value, fn = msg["value"], msg["fn"]
        if not isinstance(value, torch.Tensor):
            return
        marks = frozenset()
        if self.replayed:
            try:
                marks = get_provenance(fn.log_prob(detach_provenance(value)))
            except Exception:  # noqa: BLE001 - a value outside the support has no log-prob
                pass
        if not getattr(fn, "has_rsample", False):
            marks = marks | {msg["name"]}
        if marks:
            msg["value"] = track_provenance(value, marks)


class _Plan(NamedTuple):
    downstream: Dict[str, Downstream]  # per non-reparameterized latent guide site
    unscored: Tuple[str, ...]  # guide sample sites without a score-function term


def downstream_sites(model_trace: Trace, guide_trace: Trace) -> Dict[str, Downstream]:
    """For each non-reparameterized latent guide site, the sites whose log-probs depend on
    its value (through data flow), read from traces run under :class:`TrackNonReparam`."""
    marks = {
        side: {
            name: get_provenance(site["log_prob"])
            for name, site in trace.nodes.items()
            if site["type"] == "sample"
        }
        for side, trace in (("model", model_trace), ("guide", guide_trace))
    }
    plans = {}
    for name, site in guide_trace.nodes.items():
        if site["type"] != "sample" or site["is_observed"]:
            continue
        if getattr(site["fn"], "has_rsample", False):
            continue
        keep = {f.dim: f for f in site["cond_indep_stack"] if f.dim is not None}
        plans[name] = Downstream(
            _terms(model_trace, marks["model"], name, keep),
            _terms(guide_trace, marks["guide"], name, keep),
        )
    return plans


def _terms(trace: Trace, marks: dict, name: str, keep: dict) -> Tuple[Term, ...]:
    """The sites of ``trace`` whose log-probs depend on ``name``, with the dims they keep."""
    return tuple(
        (n, _shared_dims(trace.nodes[n]["cond_indep_stack"], keep))
        for n, m in marks.items()
        if name in m
    )


def _shared_dims(frames, keep: dict) -> Tuple[int, ...]:
    return tuple(sorted(f.dim for f in frames if f.dim is not None and keep.get(f.dim) == f))


class BaselineMixin:
    """Baselines for score-function terms (see the module docstring), for an ELBO with
    ``keeps_state``: ``score_term`` per site, then ``propose_averages`` once per estimate
    with every particle's ``averages``."""

    def combine(self, results):
        loss, surrogate = super().combine([result[:2] for result in results])
        self.propose_averages([result[2] for result in results])
        return loss, surrogate

    def propose_averages(self, particle_averages: List[dict]) -> None:
        """Propose the decaying averages' new values from the particles' ``averages``
        (filled by :meth:`score_term`): one update per step, from the particles' mean."""
        costs: Dict[str, List[torch.Tensor]] = {}
        betas: Dict[str, float] = {}
        for averages in particle_averages:
            for state_name, (cost, beta) in averages.items():
                costs.setdefault(state_name, []).append(cost)
                betas[state_name] = beta
        for state_name, particle_costs in costs.items():
            # One update per step, from the mean cost of the step's particles.
            mean = sum_terms(particle_costs)
            if len(particle_costs) > 1:
                mean = mean / len(particle_costs)
            old = self.read_state(state_name, lambda m=mean: torch.zeros_like(m))
            # beta * old + (1 - beta) * mean, in one op
            self.propose_state(state_name, torch.lerp(old, mean, 1.0 - betas[state_name]))

    def score_term(self, name: str, site: dict, score, cost, averages: dict) -> torch.Tensor:
        """``sum(score * (cost - baseline))`` for one site (minus its baseline's own loss
        where one is trained), ``cost`` detached; the site's ``infer["baseline"]`` is
        checked on every call. A decaying average's new value goes into ``averages``."""
        config = baseline_config(name, site, type(self).__name__)
        if config is None:
            term = score * cost
            return term.sum() if term.dim() else term
        baseline, baseline_loss = self._baseline(name, site, score, cost, config, averages)
        advantage = cost - baseline
        if isinstance(advantage, torch.Tensor) and advantage.requires_grad:
            advantage = advantage.detach()  # no ELBO gradient reaches a baseline
        term = score * advantage
        term = term.sum() if term.dim() else term
        return term if baseline_loss is None else term - baseline_loss

    def _baseline(self, name, site, score, cost, config, averages):
        """``(baseline, baseline loss or None)`` for one site, as ``config`` asks."""
        kind = config["kind"]
        if kind == _DECAYING:
            averaged = self._particle_mean(cost)
            state_name = AVERAGE_STATE + name
            old = self.read_state(state_name, lambda: torch.zeros_like(averaged))
            if old.shape != averaged.shape:
                raise ValueError(
                    f"{type(self).__name__}: the decaying-average baseline of site '{name}' has "
                    f"shape {tuple(old.shape)} from earlier steps, but the site's downstream "
                    f"cost now has shape {tuple(averaged.shape)} (a plate changed size, e.g. "
                    "a new subsample size). Keep plate sizes fixed, or use an nn_baseline "
                    "fed with the data instead."
                )
            averages[state_name] = (averaged, config["beta"])
            return old, None
        if kind == _NN:
            inputs = config["input"]
            if isinstance(inputs, torch.Tensor):
                inputs = inputs.detach()
            elif isinstance(inputs, (tuple, list)):
                inputs = [detach(x) for x in inputs]
            baseline = config["module"](inputs)
        else:
            baseline = config["value"]
        if isinstance(baseline, torch.Tensor) and not fits_within(
            tuple(baseline.shape), tuple(score.shape)
        ):
            raise ValueError(
                f"{type(self).__name__}: the {kind} at site '{name}' has shape "
                f"{tuple(baseline.shape)}, which does not broadcast to the site's batch shape "
                f"{tuple(score.shape)}. Return one baseline per batch element of the site "
                "(or a scalar)."
            )
        if not (isinstance(baseline, torch.Tensor) and baseline.requires_grad):
            return baseline, None
        return baseline, (cost - baseline).pow(2).sum()

    def _particle_mean(self, cost: torch.Tensor) -> torch.Tensor:
        """The cost averaged over vectorized particles: one running average for all."""
        if not self.vectorized:
            return cost
        dim = -1 - self.max_plate_nesting
        if cost.dim() < -dim:
            return cost
        return _strip_leading_ones(cost.mean(dim, keepdim=True))


class TraceGraph_ELBO(BaselineMixin, ELBO):
    """ELBO whose score-function terms keep only each site's downstream cost, minus an
    optional baseline. Same options as :class:`~pyrolite.infer.Trace_ELBO`; see the module
    docstring for the cost and the baselines.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite.distributions.testing.fakes import NonreparameterizedNormal
    >>> pyrolite.clear_param_store()
    >>> def model():
    ...     pyrolite.sample("z", dist.Normal(0.0, 1.0))
    >>> def guide():
    ...     loc = pyrolite.param("loc", torch.tensor(0.0))
    ...     pyrolite.sample("z", NonreparameterizedNormal(loc, 1.0),
    ...                     infer={"baseline": {"use_decaying_avg_baseline": True}})
    >>> elbo = TraceGraph_ELBO()
    >>> abs(elbo.loss_and_grads(model, guide))  # q == p: the cost is 0 for every draw
    0.0
    >>> sorted(elbo.get_state())
    ['baseline_avg_downstream_cost/z']
    """

    graph_type = "dense"
    keeps_state = True
    # The loss reads each model site's sum; a cost reads sums over the plates it does not
    # share, made without the per-element log-prob where the distribution can.
    log_probs = "sums"

    def plan(self, model_trace: Trace, guide_trace: Trace) -> "_Plan":
        # Guide sites without a score-function term (a baseline there is unused).
        unscored = tuple(
            name
            for name, site in guide_trace.nodes.items()
            if site["type"] == "sample"
            and (site["is_observed"] or is_identically_zero(site["score_parts"][1]))
        )
        if not guide_trace.nonreparam_stochastic_nodes:
            return _Plan({}, unscored)
        # Which terms depend on which draws: found once per structure, by running model
        # and guide again on this particle's draws with provenance-marked values.
        traces = self.replay_pair(guide_trace, TrackNonReparam(replayed=True), TrackNonReparam())
        return _Plan(downstream_sites(*traces), unscored)

    def particle(self, plan: "_Plan", model_trace: Trace, guide_trace: Trace):
        loss, log_p, entropy_terms, score_sites = elbo_parts(model_trace, guide_trace)
        averages: Dict[str, Tuple[torch.Tensor, float]] = {}
        score_terms: List[torch.Tensor] = []
        cache: dict = {}
        for name, site, score in score_sites:
            if site["is_observed"]:
                continue  # an observed guide site (a factor) has no latent to score
            with torch.no_grad():  # no graph to build; detached too: jit.trace ignores no_grad
                cost = _downstream_cost(model_trace, guide_trace, plan.downstream[name], cache)
            # no leading size-1 dims beyond the score's: it broadcasts against it
            cost = _strip_leading_ones(cost, score.dim()).detach()
            score_terms.append(self.score_term(name, site, score, cost, averages))
        warn_unused_baselines(guide_trace, plan.unscored)
        if not score_terms:
            return loss, loss, averages
        surrogate = sum_terms(entropy_terms) - log_p - sum_terms(score_terms)
        return detach(loss), surrogate, averages


def _downstream_cost(model_trace, guide_trace, down: Downstream, cache) -> torch.Tensor:
    """The downstream cost of a site (call under no_grad), in the plate elements it shares:
    each term's log-prob summed over the dims it does not keep, laid out to broadcast."""
    terms = []
    for sign, trace, names in ((1, model_trace, down.model), (-1, guide_trace, down.guide)):
        for term_name, dims in names:
            key = (sign, term_name, dims)
            term = cache.get(key)
            if term is None:
                if dims:
                    kept = trace.log_prob_sum_keeping(term_name, dims)
                    term = kept.reshape(
                        [kept.shape[dims.index(d)] if d in dims else 1 for d in range(dims[0], 0)]
                    )
                else:
                    term = trace.nodes[term_name]["log_prob_sum"]
                cache[key] = term
            terms.append(term if sign > 0 else -term)
    return sum_terms(terms)


def _strip_leading_ones(t: torch.Tensor, min_dim: int = 0) -> torch.Tensor:
    """``t`` without its leading size-1 dims, keeping at least ``min_dim`` dims."""
    while t.dim() > min_dim and t.shape[0] == 1:
        t = t.squeeze(0)
    return t


def baseline_config(name: str, site: dict, estimator: str = "TraceGraph_ELBO") -> Optional[dict]:
    """The site's baseline request, checked: None for none, else a dict with ``kind``."""
    config = site["infer"].get("baseline")
    if config is None:
        return None
    if not isinstance(config, dict):
        raise TypeError(
            f"{estimator}: infer['baseline'] at site '{name}' must be a dict of baseline "
            f"options {list(BASELINE_KEYS)}, got {type(config).__name__}"
        )
    unknown = [k for k in config if k not in _KEY_SET] if not _KEY_SET.issuperset(config) else ()
    if unknown:
        hints = [
            f"'{k}' (did you mean '{close[0]}'?)" if close else f"'{k}'"
            for k in unknown
            for close in [difflib.get_close_matches(str(k), BASELINE_KEYS, n=1)]
        ]
        raise ValueError(
            f"{estimator}: unknown baseline option {', '.join(hints)} at site '{name}'; "
            f"the options are {list(BASELINE_KEYS)}"
        )
    kinds = []
    if config.get(_DECAYING, False):
        kinds.append(_DECAYING)
    if config.get(_NN) is not None:
        kinds.append(_NN)
    if config.get(_VALUE) is not None:
        kinds.append(_VALUE)
    if len(kinds) > 1:
        raise ValueError(
            f"{estimator}: site '{name}' asks for {' and '.join(kinds)} at once; choose "
            "one baseline per site"
        )
    beta = config.get("baseline_beta", 0.90)
    if not isinstance(beta, numbers.Real) or isinstance(beta, bool) or not 0.0 <= beta < 1.0:
        raise ValueError(
            f"{estimator}: baseline_beta at site '{name}' must be a number in [0, 1), got {beta!r}"
        )
    if not kinds:
        return None
    kind = kinds[0]
    if kind == _NN:
        module = config[_NN]
        if not callable(module):
            raise TypeError(
                f"{estimator}: nn_baseline at site '{name}' must be an nn.Module (or a "
                f"callable), got {type(module).__name__}"
            )
        return {"kind": kind, "module": module, "input": config.get("nn_baseline_input")}
    if kind == _VALUE:
        value = config[_VALUE]
        if not isinstance(value, (torch.Tensor, numbers.Real)):
            raise TypeError(
                f"{estimator}: baseline_value at site '{name}' must be a tensor or a "
                f"number, got {type(value).__name__}"
            )
        return {"kind": kind, "value": value}
    return {"kind": kind, "beta": float(beta)}


def warn_unused_baselines(guide_trace: Trace, unscored: Tuple[str, ...]) -> None:
    """Warn (once per site) about baselines asked for on sites without a score term."""
    for name in unscored:
        site = guide_trace.nodes[name]
        if "baseline" in site["infer"] and baseline_config(name, site) is not None:
            warn_once(
                ("unused_baseline", name),
                f"TraceGraph_ELBO: site '{name}' asks for a baseline, but it has no "
                "score-function term (it is reparameterized or observed), so the baseline "
                "is unused. Remove infer['baseline'] there.",
            )


__all__ = [
    "BASELINE_KEYS",
    "BaselineMixin",
    "Downstream",
    "TraceGraph_ELBO",
    "TrackNonReparam",
    "baseline_config",
    "downstream_sites",
    "warn_unused_baselines",
]
