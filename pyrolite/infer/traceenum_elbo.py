"""``TraceEnum_ELBO``: the ELBO with discrete latents summed out exactly.

Sites marked ``infer={"enumerate": "parallel"}`` (by hand or with ``config_enumerate``)
take all their values at once along fresh dims left of the plates (one allocator serves
the guide, then the model, of each particle; ``markov`` recycles dims along chains).

* The model's enumerated sites are eliminated exactly: the log-probs that depend on
  them are contracted in log space by tensor variable elimination over the plate tree
  (:mod:`pyrolite.ops.contract`), planned once per trace structure.
* The guide's parallel-enumerated sites are integrated exactly: every ELBO term that
  depends on them is weighted by their guide probabilities (differentiably).
* The guide's ``"sequential"`` sites are enumerated by re-running the guide and model once
  per value (``poutine.queue``), each run weighted by its guide probability.
* Sampled guide sites keep pathwise gradients where reparameterized; the others get
  score-function terms whose cost is Rao-Blackwellized by plates, with TraceGraph's
  baselines (``infer={"baseline": {...}}``) where asked for.
* ``num_samples`` on an enumerated site draws that many values instead of the support
  (sampled enumeration), each weighing ``1/num_samples``.
"""

import math
import warnings
from collections import deque
from typing import Callable, Dict, List, Optional, Tuple

import torch

from .. import distributions as dist
from ..distributions.util import is_identically_zero
from ..ops.contract import Contraction
from ..poutine.enum_messenger import EnumDims, EnumMessenger
from ..poutine.handlers import queue
from ..poutine.plate_messenger import vectorize
from ..poutine.runtime import Message
from ..poutine.trace_struct import Trace
from ..process_state import warn_once
from .elbo import ELBO, PARTICLE_PLATE, TracePair, detach, sum_terms
from .enum import EnumLayout, enum_layout, factor_tensors, plate_batch_shape, positional
from .tracegraph_elbo import BaselineMixin, warn_unused_baselines
from .util import sum_to_plates

# Sequential enumeration re-runs model and guide once per value: warn above this many.
SEQUENTIAL_WARN_SIZE = 100


class _Sequential(Exception):
    """The guide has a site marked for sequential enumeration: run it under a queue."""


class _SequentialCheck(EnumMessenger):
    """The guide's ``enum``, which also notices sites asking for sequential enumeration
    that no queue has replayed yet."""

    def _pyro_sample(self, msg: Message) -> None:
        if (
            msg["infer"].get("enumerate") == "sequential"
            and not msg["done"]
            and msg["value"] is None
            and not msg["is_observed"]
        ):
            raise _Sequential
        super()._pyro_sample(msg)


def _sequential_escape(trace: Trace, msg: Message) -> bool:
    return (
        msg["type"] == "sample"
        and not msg["is_observed"]
        and msg["name"] not in trace
        and msg["infer"].get("enumerate") == "sequential"
    )


def _sequential_extend(trace: Trace, msg: Message, num_samples=None) -> List[Trace]:
    """One copy of ``trace`` per value of the sequentially enumerated site in ``msg``."""
    fn, name = msg["fn"], msg["name"]
    if not getattr(fn, "has_enumerate_support", False):
        raise ValueError(
            f"site '{name}' asks for sequential enumeration but {type(fn).__name__} has no "
            "finite support to enumerate"
        )
    if tuple(fn.batch_shape):
        raise ValueError(
            f"site '{name}' asks for sequential enumeration but has batch shape "
            f"{tuple(fn.batch_shape)}: enumerating every joint value would take one run per "
            "combination. Use infer={'enumerate': 'parallel'} for sites in plates."
        )
    values = fn.enumerate_support(expand=False)
    if values.shape[0] > SEQUENTIAL_WARN_SIZE:
        warn_once(
            ("sequential_support", name, values.shape[0]),
            f"site '{name}' is enumerated sequentially over {values.shape[0]} values: one run "
            "of the model and guide per value each step. Use parallel enumeration, or "
            "infer={'num_samples': k} for sampled enumeration.",
        )
    extended = []
    for value in values:
        new_trace = trace.copy()
        site = msg.copy()
        site["value"] = value
        site["infer"] = dict(msg["infer"])
        new_trace.add_node(name, **site)
        extended.append(new_trace)
    return extended


class TraceEnum_ELBO(BaselineMixin, ELBO):
    """ELBO that sums out enumerated discrete sites exactly (see the module docstring).

    :param max_plate_nesting: how many plate dims the model and guide use; enumeration
        uses the dims left of them. Guessed from one run when not given.

    Other options as :class:`~pyrolite.infer.Trace_ELBO`.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> pyrolite.clear_param_store()
    >>> def model():
    ...     z = pyrolite.sample("z", dist.Bernoulli(0.3), infer={"enumerate": "parallel"})
    ...     pyrolite.sample("x", dist.Normal(2.0 * z, 1.0), obs=torch.tensor(1.5))
    >>> def guide():
    ...     pass
    >>> loss = TraceEnum_ELBO(max_plate_nesting=0).loss(model, guide)
    >>> exact = -torch.logsumexp(torch.tensor([0.7, 0.3]).log() + dist.Normal(
    ...     torch.tensor([0.0, 2.0]), 1.0).log_prob(torch.tensor(1.5)), 0)
    >>> abs(loss - float(exact)) < 1e-6
    True
    """

    enumerates = True
    keeps_state = True
    # The contracted factors need only unscaled log-probs, the other sites their sums: the
    # particle computes what it reads.
    log_probs = "none"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._dims: Optional[EnumDims] = None
        self._sequential_guides: set = set()

    # --- traces ---------------------------------------------------------------------

    @property
    def plate_window(self) -> int:
        """The plate dims (the vectorized particles' plate included); enumeration uses the
        dims left of them."""
        return int(self.max_plate_nesting) + (1 if self.vectorized else 0)

    @property
    def enum_dims_used(self) -> int:
        """How many enumeration dims the latest particle's guide and model used."""
        return 0 if self._dims is None else self._dims.num_dims

    def wrap_enum(self, model: Callable, guide: Callable, sequential: bool = False):
        """Model and guide under ``enum``, one dim allocator per guide run shared with the
        model run after it; the guide also under a queue when ``sequential`` (a fresh
        queue per particle is made by :meth:`particle_pairs`)."""
        first = -1 - self.plate_window

        def enum_guide(*args, **kwargs):
            dims = self._dims = EnumDims(first)
            with _SequentialCheck(dims=dims):
                return guide(*args, **kwargs)

        def enum_model(*args, **kwargs):
            dims = self._dims if self._dims is not None else EnumDims(first)
            with EnumMessenger(dims=dims):
                return model(*args, **kwargs)

        return enum_model, enum_guide

    def get_traces(self, model, guide, args, kwargs):
        if self.max_plate_nesting == float("inf"):
            self.max_plate_nesting = self._guess_max_plate_nesting(model, guide, args, kwargs)
        for _ in range(1 if self.vectorized else self.num_particles):
            yield from self.particle_pairs(model, guide, args, kwargs)

    def one_particle(self, model, guide, args, kwargs):
        if self.max_plate_nesting == float("inf"):
            self.max_plate_nesting = self._guess_max_plate_nesting(model, guide, args, kwargs)
        results = [
            self._particle_of(*pair) for pair in self.particle_pairs(model, guide, args, kwargs)
        ]
        return _sum_results(results)

    def particle_pairs(self, model, guide, args, kwargs):
        """The (model_trace, guide_trace) pairs of one particle: one, or one per joint value
        of the guide's sequentially enumerated sites."""
        key = guide
        if key not in self._sequential_guides:
            try:
                yield self._pair(model, guide, args, kwargs, None)
                return
            except _Sequential:
                self._sequential_guides.add(key)
        pending = deque([Trace()])
        while pending:
            yield self._pair(model, guide, args, kwargs, pending)

    def _pair(self, model, guide, args, kwargs, pending) -> TracePair:
        if pending is not None:
            guide = queue(
                guide, queue=pending, escape_fn=_sequential_escape, extend_fn=_sequential_extend
            )
        if self.vectorized:
            # The particle plate goes inside enum, so that a site enumerated with
            # ``num_samples`` gets its own draws per particle (enum broadcasts a site to the
            # plates it sees).
            dim = -1 - int(self.max_plate_nesting)
            model = vectorize(model, PARTICLE_PLATE, self.num_particles, dim)
            guide = vectorize(guide, PARTICLE_PLATE, self.num_particles, dim)
        model, guide = self.wrap_enum(model, guide)
        self._program = (model, guide, args, kwargs)
        return self._trace_pair(model, guide, args, kwargs)

    # --- the estimate ---------------------------------------------------------------

    def plan(self, model_trace: Trace, guide_trace: Trace) -> dict:
        if self.strict_enumeration_warning and not _any_enumerated(model_trace, guide_trace):
            warnings.warn(
                "TraceEnum_ELBO found no sample sites configured for enumeration. If you want "
                "to enumerate sites, you need to @config_enumerate or set "
                'infer={"enumerate": "sequential"} or infer={"enumerate": "parallel"}. If you '
                "do not want to enumerate, consider using Trace_ELBO instead.",
                stacklevel=2,
            )
        return {}

    def layout(self, plan: dict, model_trace: Trace, guide_trace: Trace) -> EnumLayout:
        """The traces' :class:`~pyrolite.infer.enum.EnumLayout`, cached in ``plan`` (per
        structure) and made again if the contracted sites' shapes changed."""
        layout = plan.get("layout")
        if layout is None or not layout.matches(model_trace):
            model_trace.compute_log_prob()
            layout = plan["layout"] = enum_layout(model_trace, guide_trace, self.plate_window)
            plan["sums"] = frozenset(n for n, depends in layout.model_costs if not depends)
            plan["elementwise"] = frozenset(n for n, depends in layout.model_costs if depends)
            plan["unscored"] = tuple(
                name
                for name, site in guide_trace.nodes.items()
                if site["type"] == "sample"
                and (site["is_observed"] or is_identically_zero(site["score_parts"][1]))
            )
        return layout

    def particle(self, plan: dict, model_trace: Trace, guide_trace: Trace):
        layout = self.layout(plan, model_trace, guide_trace)
        # Each term: (value, surrogate value, plates, guide variables it depends on, the
        # value per plate element: what a score-function cost reads).
        terms: List[Tuple[torch.Tensor, object, tuple, frozenset, torch.Tensor]] = []
        if layout.plan is not None:
            outputs = Contraction(layout.plan)(factor_tensors(layout, model_trace))
            for value, (view, frames, depends) in zip(outputs, layout.outputs):
                value = positional(value, view)
                if layout.scale != 1.0:
                    value = value * layout.scale
                terms.append((value, value, frames, depends, value))
        score_sites = []
        log_weight = []  # the sequentially enumerated sites' log q: the run's weight
        for name, depends in layout.guide_sites:
            site = guide_trace.nodes[name]
            enumerated = name in layout.guide_vars or site["infer"].get("enumerate") == "sequential"
            log_prob, score, entropy = site["score_parts"]
            if depends or enumerated:
                value = -site["log_prob"]
                terms.append((value, value, site["cond_indep_stack"], depends, value))
            else:
                surrogate = -site["log_prob_sum"] if entropy is log_prob else -entropy
                value = -site["log_prob_sum"]
                terms.append(
                    (value, surrogate, site["cond_indep_stack"], depends, -site["log_prob"])
                )
            if site["infer"].get("enumerate") == "sequential":
                log_weight.append(site["unscaled_log_prob"].sum())
            elif not enumerated and not site["is_observed"] and not is_identically_zero(score):
                if depends:
                    raise ValueError(
                        f"TraceEnum_ELBO: guide site '{name}' is sampled without "
                        f"reparameterization but depends on the enumerated guide sites "
                        f"{sorted(depends)}; enumerate it too, or sample those sites."
                    )
                score_sites.append((name, site, score))
        # The model's other sites: their sums, or per element where a guide variable
        # weighs them or a score-function cost reads them.
        sums, elementwise = plan["sums"], plan["elementwise"]
        if score_sites:
            model_trace.compute_log_prob(lambda name, site: name in sums or name in elementwise)
        else:
            model_trace.compute_log_prob_sums(lambda name, site: name in sums)
            if elementwise:
                model_trace.compute_log_prob(lambda name, site: name in elementwise)
        nodes = model_trace.nodes
        for name, depends in layout.model_costs:
            site = nodes[name]
            value = site["log_prob"] if depends else site["log_prob_sum"]
            terms.append((value, value, site["cond_indep_stack"], depends, site.get("log_prob")))
        weights = _Weights(layout, guide_trace)
        elbo = sum_terms([weights.expect(t[0], t[3]) for t in terms])
        surrogate_elbo = sum_terms([weights.expect(t[1], t[3]) for t in terms])
        averages: dict = {}
        if score_sites:
            with torch.no_grad():
                costs = [
                    (weights.expect_per_plate(elementwise, depends).detach(), frames)
                    for _, _, frames, depends, elementwise in terms
                ]
            for name, site, score in score_sites:
                keep = {f.dim: f for f in site["cond_indep_stack"] if f.dim is not None}
                cost = sum_terms([sum_to_plates(c, frames, keep) for c, frames in costs])
                surrogate_elbo = surrogate_elbo + self.score_term(name, site, score, cost, averages)
        warn_unused_baselines(guide_trace, plan.get("unscored", ()))
        loss, surrogate = -elbo, -surrogate_elbo
        if log_weight:
            weight = sum_terms(log_weight).exp()
            fixed = weight.detach()
            surrogate = fixed * surrogate + (weight - fixed) * detach(loss)
            loss = fixed * loss
        return detach(loss), surrogate, averages

    def combine(self, results):
        loss, surrogate, _ = _sum_results(results)
        if self.num_particles > 1:
            loss, surrogate = loss / self.num_particles, surrogate / self.num_particles
        self.propose_averages([r[2] for r in results])
        return loss, surrogate

    # --- marginals ------------------------------------------------------------------

    def compute_marginals(self, model, guide, *args, **kwargs) -> Dict[str, object]:
        """The exact posterior marginal of each of the model's enumerated sites, given the
        guide's draws: ``{name: distribution}`` (the site's own family where it is a
        ``Categorical``/``OneHotCategorical``/``Bernoulli``, else a ``Categorical`` over the
        positions of its support), batch shape the site's plates."""
        if self.max_plate_nesting == float("inf"):
            self.max_plate_nesting = self._guess_max_plate_nesting(model, guide, args, kwargs)
        with torch.no_grad():
            model_trace, guide_trace = self._pair(model, guide, args, kwargs, None)
        layout = enum_layout(model_trace, guide_trace, self.plate_window)
        if layout.guide_vars:
            raise NotImplementedError(
                "compute_marginals: the guide enumerates "
                f"{sorted(layout.guide_vars)}; marginals are computed for guides that sample"
            )
        return marginals_of(layout, model_trace)


def marginals_of(layout: EnumLayout, model_trace: Trace) -> Dict[str, object]:
    """Posterior marginals of the model's enumerated sites: the gradient of the log
    partition function with respect to each site's own log-factor."""
    if layout.plan is None:
        return {}
    leaves = [t.detach().requires_grad_() for t in factor_tensors(layout, model_trace)]
    with torch.enable_grad():
        log_z = sum_terms([out.sum() for out in Contraction(layout.plan)(leaves)])
        grads = torch.autograd.grad(log_z, leaves, allow_unused=True)
    specs = {name: i for i, (name, _, _, _) in enumerate(layout.factors)}
    return {
        name: _marginal(model_trace.nodes[name], layout, specs[name], grads[specs[name]], dist)
        for name in layout.model_vars
        if name in specs
    }


def _marginal(site, layout: EnumLayout, index: int, grad, dist):
    """One enumerated site's marginal, from the gradient at its own log-factor (the
    posterior probability of each joint value of that factor's dims)."""
    fn, dim, window = site["fn"], layout.model_vars[site["name"]], layout.window
    _, log_prob_shape, _, _ = layout.factors[index]
    probs = grad.reshape(log_prob_shape)
    # Sum out the other enumerated dims (the site's parents); keep the site's and plates.
    other = [d for d in range(-len(log_prob_shape), -window) if d != dim]
    if other:
        probs = probs.sum(other, keepdim=True)
    probs = probs.movedim(dim, -1)  # (1, ..., plate dims, K)
    plates = probs.shape[-1 - window : -1]
    batch_shape = plate_batch_shape(site, window)
    kept = plates[len(plates) - len(batch_shape) :] if batch_shape else ()
    probs = probs.reshape(tuple(kept) + probs.shape[-1:]).expand(batch_shape + probs.shape[-1:])
    logits = probs.clamp_min(torch.finfo(probs.dtype).tiny).log()
    if isinstance(fn, dist.Bernoulli):
        return dist.Bernoulli(logits=logits[..., 1] - logits[..., 0])
    if isinstance(fn, (dist.Categorical, dist.OneHotCategorical)):
        return type(fn)(logits=logits)
    return dist.Categorical(logits=logits)


class _Weights:
    """Expectations under the guide's parallel-enumerated sites."""

    def __init__(self, layout: EnumLayout, guide_trace: Trace):
        self.layout, self.guide_trace = layout, guide_trace
        self._cache: Dict[frozenset, torch.Tensor] = {}
        self._depends: Optional[Dict[str, frozenset]] = None  # built at the first weight

    def weight(self, depends: frozenset) -> torch.Tensor:
        """The guide probability of the joint values of ``depends`` and what they depend on."""
        if self._depends is None:
            self._depends = dict(self.layout.guide_sites)
        closure = set(depends)
        while True:
            grown = closure.union(*(self._depends[v] for v in closure))
            if grown == closure:
                break
            closure = grown
        key = frozenset(closure)
        weight = self._cache.get(key)
        if weight is None:
            logs = []
            for name in sorted(key):
                site = self.guide_trace.nodes[name]
                log_q = site["unscaled_log_prob"]
                total = site["infer"].get("_enum_num_samples")
                if total is not None:
                    log_q = log_q - log_q.detach() - math.log(total)
                logs.append(log_q)
            weight = self._cache[key] = sum_terms(logs).exp()
        return weight

    def expect(self, value, depends: frozenset):
        """``E[value]`` summed over every dim (scalar)."""
        if not depends:
            return value.sum() if isinstance(value, torch.Tensor) and value.dim() else value
        return (self.weight(depends) * value).sum()

    def expect_per_plate(self, value, depends: frozenset) -> torch.Tensor:
        """``E[value]`` summed over the enumeration dims only (plate dims kept)."""
        if not depends:
            return value
        product = self.weight(depends) * value
        window = self.layout.window
        dims = tuple(range(-product.dim(), -window))
        return product.sum(dims) if dims else product


def _sum_results(results):
    loss, surrogate, averages = results[0]
    for other_loss, other_surrogate, _ in results[1:]:
        loss, surrogate = loss + other_loss, surrogate + other_surrogate
    return loss, surrogate, averages


def _any_enumerated(model_trace: Trace, guide_trace: Trace) -> bool:
    for trace in (model_trace, guide_trace):
        for site in trace.nodes.values():
            if site["type"] == "sample" and (
                site["infer"].get("_enumerate_dim") is not None
                or site["infer"].get("enumerate") == "sequential"
            ):
                return True
    return False


__all__ = ["TraceEnum_ELBO", "marginals_of"]
