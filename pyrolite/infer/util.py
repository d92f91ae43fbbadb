"""Helpers shared by the estimators: grads, plate-aware cost sums, model/guide checks,
and the names Pyro programs import from ``pyro.infer.util`` (``MultiFrameTensor``,
``torch_exp``, ``torch_item``, ``get_plate_stacks``, ...)."""

import dataclasses
import math
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch

from ..distributions import Delta
from ..distributions.util import is_identically_zero
from ..ops import packed
from ..ops.einsum.adjoint import SAMPLE_SYMBOL
from ..ops.einsum.adjoint import require_backward as require_backward
from ..ops.rings import LogRing
from ..ops.rings import MarginalRing as MarginalRing
from ..poutine.runtime import plate_batch_shape
from ..poutine.trace_struct import Trace
from ..poutine.util import check_site_shape
from ..poutine.util import site_is_subsample as site_is_subsample
from ..process_state import enable_validation as enable_validation
from ..process_state import is_validation_enabled as is_validation_enabled
from ..process_state import validation_enabled as validation_enabled
from ..process_state import warn_once

Number = Union[int, float]


def zero_grads(tensors: Iterable[torch.Tensor]) -> None:
    """Set the gradients of ``tensors`` to zero in place (those that have one).

    >>> x = torch.tensor(2.0, requires_grad=True); (x * x).backward(); zero_grads([x])
    >>> x.grad
    tensor(0.)
    """
    for p in tensors:
        if p.grad is not None:
            p.grad.detach_()
            p.grad.zero_()


def torch_item(x: Union[torch.Tensor, Number]) -> float:
    """``x.item()`` for a tensor, ``float(x)`` for a number.

    >>> torch_item(torch.tensor(2.5)), torch_item(3)
    (2.5, 3.0)
    """
    return x.item() if isinstance(x, torch.Tensor) else float(x)


def torch_exp(x: Union[torch.Tensor, Number]) -> Union[torch.Tensor, float]:
    """``x.exp()`` for a tensor, ``math.exp(x)`` for a number.

    >>> round(torch_exp(1.0), 4), torch_exp(torch.tensor(0.0))
    (2.7183, tensor(1.))
    """
    return x.exp() if isinstance(x, torch.Tensor) else math.exp(x)


def torch_backward(x: Union[torch.Tensor, Number], retain_graph: Optional[bool] = None) -> None:
    """``x.backward()`` for a tensor with a graph; a no-op for numbers and constants (a
    loss with nothing to differentiate).

    >>> w = torch.tensor(3.0, requires_grad=True); torch_backward(w * w); w.grad
    tensor(6.)
    >>> torch_backward(1.0)
    """
    if isinstance(x, torch.Tensor) and x.requires_grad:
        x.backward(retain_graph=retain_graph)


def torch_sum(tensor: torch.Tensor, dims: Iterable[int]) -> torch.Tensor:
    """Sum ``tensor`` over those of ``dims`` (negative) that it has, keeping them as size 1.

    >>> torch_sum(torch.ones(2, 3), (-1,)).shape, torch_sum(torch.ones(3), (-2, -1)).shape
    (torch.Size([2, 1]), torch.Size([1]))
    """
    present = [d for d in dims if -d <= tensor.dim()]
    return tensor.sum(present, keepdim=True) if present else tensor


class MultiFrameTensor(dict):
    """Sums of tensors from sites in different plates, keyed by the set of their plate
    frames; ``sum_to(frames)`` adds them as seen from a site in ``frames``: each term's
    plate dims not in ``frames`` summed out (as in ``TraceGraph_ELBO``'s downstream
    costs), leading size-1 dims dropped.

    >>> from pyrolite.poutine.plate_messenger import CondIndepStackFrame
    >>> p = CondIndepStackFrame("p", -1, 3, 0, 3)
    >>> costs = MultiFrameTensor(((), torch.tensor(1.0)), ((p,), torch.tensor([1.0, 2.0, 3.0])))
    >>> costs.sum_to((p,)), costs.sum_to(())
    (tensor([2., 3., 4.]), tensor(7.))
    """

    def __init__(self, *items: Tuple[Sequence, torch.Tensor]):
        super().__init__()
        self.add(*items)

    def add(self, *items: Tuple[Sequence, torch.Tensor]) -> None:
        """Add each ``(cond_indep_stack, value)``; frames are compared as a set."""
        for frames, value in items:
            key = frozenset(f for f in frames if f.vectorized)
            self[key] = value if key not in self else self[key] + value

    def sum_to(self, target_frames: Iterable) -> Union[torch.Tensor, float]:
        target = frozenset(target_frames)
        total = None
        for frames, value in self.items():
            for frame in frames:
                if frame not in target and value.dim() >= -frame.dim:
                    if value.shape[frame.dim] != 1:
                        value = value.sum(frame.dim, keepdim=True)
            while value.dim() and value.shape[0] == 1:
                value = value.squeeze(0)
            total = value if total is None else total + value
        return 0.0 if total is None else total


def get_plate_stacks(trace: Trace) -> Dict[str, List]:
    """``{site name: [vectorized plate frames, outermost first]}`` for the sample sites.

    >>> import pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> def model():
    ...     with pyrolite.plate("p", 3):
    ...         pyrolite.sample("x", dist.Normal(0.0, 1.0))
    >>> [f.name for f in get_plate_stacks(poutine.trace(model).get_trace())["x"]]
    ['p']
    """
    return {
        name: [f for f in site["cond_indep_stack"] if f.vectorized]
        for name, site in trace.nodes.items()
        if site["type"] == "sample"
    }


def get_dependent_plate_dims(sites: Iterable[dict]) -> List[int]:
    """The dims (ascending) of the plates that enclose some but not all of ``sites``."""
    stacks = [{f for f in site["cond_indep_stack"] if f.vectorized} for site in sites]
    if not stacks:
        return []
    common = set.intersection(*stacks)
    return sorted({f.dim for stack in stacks for f in stack - common})


def check_fully_reparametrized(guide_site: dict) -> None:
    """Raise ``NotImplementedError`` unless the guide site (with ``score_parts``
    computed) is fully reparameterized: no score-function term."""
    if not is_identically_zero(guide_site["score_parts"].score_function):
        raise NotImplementedError(
            "All distributions in the guide must be fully reparameterized "
            f"(site '{guide_site['name']}' is not)."
        )


class CloneMixin:
    """``.clone()`` for dataclasses whose fields are tensors: a copy with cloned fields.

    >>> @dataclasses.dataclass
    ... class Pair(CloneMixin):
    ...     a: torch.Tensor
    >>> p = Pair(torch.zeros(1)); q = p.clone(); q.a += 1; p.a
    tensor([0.])
    """

    def clone(self):
        return type(self)(
            **{f.name: getattr(self, f.name).clone() for f in dataclasses.fields(self)}
        )


def sum_to_plates(term: torch.Tensor, site_frames: tuple, keep: Dict[int, object]) -> torch.Tensor:
    """Sum ``term`` over every dim except the vectorized plates it shares with ``keep``.

    ``keep`` maps dim -> plate frame of the site being scored. Summed dims stay as
    size 1 so the result broadcasts against that site's batch shape.
    """
    shared = [f.dim for f in site_frames if f.dim is not None and keep.get(f.dim) == f]
    if not shared:
        return term.sum()
    dims = [d for d in range(-term.dim(), 0) if d not in shared and term.shape[d] != 1]
    return term.sum(dim=dims, keepdim=True) if dims else term


def plate_cost(
    model_trace: Trace, guide_trace: Trace, frames: tuple, cache: Optional[dict] = None
) -> torch.Tensor:
    """The detached cost ``log p - log q`` seen by a non-reparameterized site in ``frames``.

    ``log p`` sums the model's sites and ``log q`` all of the guide's, auxiliary ones
    included: a guide-only site's ``-log q`` carries its entropy gradient. Terms in
    plates the site shares keep their per-element values (the site's element i only
    gets the cost of element i: Rao-Blackwellization); every other term is summed.
    """
    keep = {f.dim: f for f in frames if f.dim is not None}
    key = tuple(sorted(keep.items(), key=lambda kv: kv[0]))
    if cache is not None and key in cache:
        return cache[key]
    total = 0.0
    for sign, trace in ((1.0, model_trace), (-1.0, guide_trace)):
        for site in trace.nodes.values():
            if site["type"] == "sample":
                term = sum_to_plates(site["log_prob"].detach(), site["cond_indep_stack"], keep)
                total = total + term if sign > 0 else total - term
    if cache is not None:
        cache[key] = total
    return total


def observation_check(
    site: dict, max_plate_nesting: Optional[int], shapes: bool = True
) -> Optional[torch.Tensor]:
    """Check an observed site now: its log-prob's shape against its plates (on the host,
    raising a named error; from the shapes alone, no log-prob needed), and its value
    against the distribution's support, as a 0-dim bool tensor left on the device (None
    where the distribution has no support to check)."""
    fn, value = site["fn"], site["value"]
    if shapes:
        _check_observation_shape(site, max_plate_nesting)
    support = getattr(fn, "support", None)
    if support is None:
        return None
    try:
        ok = support.check(value)
    except Exception:  # noqa: BLE001 - a support that cannot check this value says nothing
        return None
    return ok.all() if isinstance(ok, torch.Tensor) else None


def _check_observation_shape(site: dict, max_plate_nesting: Optional[int]) -> None:
    fn, value = site["fn"], site["value"]
    event = len(getattr(fn, "event_shape", ()))
    batch = tuple(value.shape[: max(value.dim() - event, 0)])
    try:
        shape = torch.broadcast_shapes(batch, tuple(getattr(fn, "batch_shape", ())))
    except RuntimeError:
        raise ValueError(
            f"site '{site['name']}': the observation's batch shape {batch} does not broadcast "
            f"with the distribution's batch shape {tuple(fn.batch_shape)}"
        ) from None
    standin = {**site, "unscaled_log_prob": torch.empty(shape, device="meta")}
    check_site_shape(standin, max_plate_nesting)


def site_shape(site: dict) -> Tuple[int, ...]:
    """Batch (as the site's plates imply) + event shape of a sample site's distribution."""
    batch = plate_batch_shape(site)
    if batch is None:
        batch = tuple(getattr(site["fn"], "batch_shape", ()))
    return tuple(batch) + tuple(getattr(site["fn"], "event_shape", ()))


def check_model_guide_match(model_trace: Trace, guide_trace: Trace) -> None:
    """Name the sites where model and guide disagree: missing latents, shapes, supports."""
    model_latents = {
        n for n, s in model_trace.nodes.items() if s["type"] == "sample" and not s["is_observed"]
    }
    guide_latents = {
        n
        for n, s in guide_trace.nodes.items()
        if s["type"] == "sample"
        and not s["is_observed"]
        and not s["infer"].get("is_auxiliary")
        and not s["infer"].get("_subsample")
    }
    model_observed = {
        n for n, s in model_trace.nodes.items() if s["type"] == "sample" and s["is_observed"]
    }
    clash = guide_latents & model_observed
    if clash:
        raise ValueError(
            f"Sites {sorted(clash)} are sampled in the guide but observed in the model. "
            "A guide must not sample observed sites: remove them from the guide."
        )
    extra = guide_latents - model_latents
    if extra:
        warn_once(
            ("guide_not_model", tuple(sorted(extra))),
            f"Found latent sites in the guide but not in the model: {sorted(extra)}. They are "
            "ignored by the ELBO; rename them to match the model, or mark auxiliary guide "
            "variables with infer={'is_auxiliary': True}.",
        )
    missing = {
        n
        for n in model_latents - guide_latents
        if not model_trace.nodes[n]["infer"].get("_subsample")
        and not model_trace.nodes[n]["infer"].get("enumerate")
    }
    if missing:
        warn_once(
            ("model_not_guide", tuple(sorted(missing))),
            f"Found latent sites in the model but not in the guide: {sorted(missing)}. They are "
            "drawn from the prior at each step, which makes gradients noisy; add them to the "
            "guide (or use an autoguide).",
        )
    for name in model_latents & guide_latents:
        model_site, guide_site = model_trace.nodes[name], guide_trace.nodes[name]
        model_fn, guide_fn = model_site["fn"], guide_site["fn"]
        model_event = len(getattr(model_fn, "event_shape", ()))
        guide_event = len(getattr(guide_fn, "event_shape", ()))
        if model_event != guide_event:
            raise ValueError(
                f"Model and guide disagree on the event dims of site '{name}': model "
                f"{type(model_fn).__name__} has event_shape {tuple(model_fn.event_shape)}, guide "
                f"{type(guide_fn).__name__} has {tuple(guide_fn.event_shape)}. Use .to_event(n) "
                "so both declare the same event dims."
            )
        value = guide_site["value"]
        if isinstance(value, torch.Tensor) and "_enumerate_dim" not in guide_site["infer"]:
            expected = site_shape(model_site)
            if not fits_within(tuple(value.shape), expected):
                raise ValueError(
                    f"At site '{name}' the guide's value has shape {tuple(value.shape)} but the "
                    f"model's distribution has shape {expected} (batch + event). Make the guide "
                    "sample the model's shape, e.g. with the same plates or .to_event()."
                )
        model_support = getattr(model_fn, "support", None)
        guide_support = getattr(guide_fn, "support", None)
        # A Delta guide site is a deterministic transform of auxiliary draws (autoguides):
        # its nominal support says nothing about where its values lie.
        if (
            model_support is not None
            and guide_support is not None
            and not isinstance(guide_fn, Delta)
            and not _support_contains(model_support, guide_support)
        ):
            warn_once(
                ("support", name),
                f"The guide's support at site '{name}' ({guide_support}) is not contained in the "
                f"model's ({model_support}). Guide draws outside the model's support give -inf "
                "log-probs; use a guide distribution whose support fits the model's.",
            )


def fits_within(shape: Tuple[int, ...], target: Tuple[int, ...]) -> bool:
    """True when ``shape`` broadcasts to ``target`` without enlarging it (leading
    size-1 dims beyond ``target``'s allowed)."""
    try:
        joint = tuple(torch.broadcast_shapes(shape, target))
    except RuntimeError:
        return False
    while len(joint) > len(target) and joint[0] == 1:
        joint = joint[1:]
    return joint == tuple(target)


def _real_bounds(c) -> Optional[Tuple[float, float]]:
    """(lower, upper) of a scalar real constraint, or None if it is not one."""
    c = strip_independent(c)
    name = type(c).__name__
    if name == "_Real":
        return (-math.inf, math.inf)
    lower = getattr(c, "lower_bound", -math.inf)
    upper = getattr(c, "upper_bound", math.inf)
    if name in ("_GreaterThan", "_GreaterThanEq", "_LessThan", "_Interval", "_HalfOpenInterval"):
        if isinstance(lower, torch.Tensor) or isinstance(upper, torch.Tensor):
            return None
        return (float(lower), float(upper))
    return None


def _support_contains(outer, inner) -> bool:
    """Whether every value allowed by ``inner`` is allowed by ``outer`` (conservative)."""
    outer_bounds, inner_bounds = _real_bounds(outer), _real_bounds(inner)
    if outer_bounds is not None and inner_bounds is not None:
        return outer_bounds[0] <= inner_bounds[0] and inner_bounds[1] <= outer_bounds[1]
    base_outer, base_inner = strip_independent(outer), strip_independent(inner)
    if type(base_outer) is not type(base_inner):
        return False
    return all(
        not isinstance(v, (int, float)) or math.isclose(v, getattr(base_inner, k, v))
        for k, v in vars(base_outer).items()
        if not k.startswith("_")
    )


def strip_independent(c):
    """The base of an ``independent`` constraint (any depth), or ``c`` itself."""
    while hasattr(c, "base_constraint"):
        c = c.base_constraint
    return c


# --- DiCE factors over packed traces ------------------------------------------------------
#
# Pyro keeps packed copies of a trace's tensors in ``site["packed"]``, filled by the
# ``Trace.pack_tensors`` method. pyrolite's ``Trace`` has no such method: call
# :func:`pack_tensors` on the trace instead (after ``compute_log_prob`` and, for guides,
# ``compute_score_parts``); it fills the same entries.


def pack_tensors(trace: Trace, plate_to_symbol: Optional[Dict[str, str]] = None) -> None:
    """Fill ``site["packed"]`` (``log_prob``, ``unscaled_log_prob``, ``score_parts``,
    ``mask``) of each sample site with packed tensors (``pyrolite.ops.packed``): size-1
    dims dropped, the rest named by one symbol per plate and per enumeration dim. Sets
    ``trace.plate_to_symbol`` and ``trace.symbol_to_dim``, and the enumerated sites'
    ``infer["_enumerate_symbol"]``. This is Pyro's ``Trace.pack_tensors`` as a function.

    >>> import pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> def model():
    ...     with pyrolite.plate("data", 3):
    ...         pyrolite.sample("x", dist.Normal(0.0, 1.0))
    >>> trace = poutine.trace(model).get_trace(); trace.compute_log_prob(); pack_tensors(trace)
    >>> trace.nodes["x"]["packed"]["log_prob"]._pyro_dims, trace.plate_to_symbol
    ('a', {'data': 'a'})
    """
    plate_to_symbol = dict(plate_to_symbol or {})
    symbol_to_dim: Dict[str, int] = {}
    used = set(plate_to_symbol.values()) | {SAMPLE_SYMBOL}
    letters = (chr(c) for c in range(ord("a"), ord("z") + 1))

    def new_symbol() -> str:
        for letter in letters:
            if letter not in used:
                used.add(letter)
                return letter
        raise ValueError("pack_tensors: more than 25 plates and enumeration dims in one trace")

    sites = [s for s in trace.nodes.values() if s["type"] == "sample"]
    for site in sites:
        for frame in site["cond_indep_stack"]:
            if frame.vectorized and frame.name not in plate_to_symbol:
                plate_to_symbol[frame.name] = new_symbol()
            if frame.vectorized:
                symbol_to_dim[plate_to_symbol[frame.name]] = frame.dim
    enum_dim_to_symbol: Dict[int, str] = {}
    for site in sites:
        dim = site["infer"].get("_enumerate_dim")
        if dim is not None:
            if dim not in enum_dim_to_symbol:
                enum_dim_to_symbol[dim] = new_symbol()
                symbol_to_dim[enum_dim_to_symbol[dim]] = dim
            site["infer"]["_enumerate_symbol"] = enum_dim_to_symbol[dim]
    for site in sites:
        dim_to_symbol = dict(enum_dim_to_symbol)
        for frame in site["cond_indep_stack"]:
            if frame.vectorized:
                dim_to_symbol[frame.dim] = plate_to_symbol[frame.name]
        site_packed = site.setdefault("packed", {})
        try:
            for key in ("log_prob", "unscaled_log_prob"):
                if key in site:
                    site_packed[key] = packed.pack(site[key], dim_to_symbol)
            if "score_parts" in site:
                site_packed["score_parts"] = site["score_parts"]._replace(
                    **{
                        k: packed.pack(v, dim_to_symbol)
                        for k, v in site["score_parts"]._asdict().items()
                    }
                )
            mask = site.get("mask")
            if isinstance(mask, torch.Tensor):
                site_packed["mask"] = packed.pack(mask, dim_to_symbol)
            elif mask is not None:
                site_packed["mask"] = mask
        except ValueError as e:
            raise ValueError(f"Error while packing tensors at site '{site['name']}':\n{e}") from e
    trace.plate_to_symbol = plate_to_symbol
    trace.symbol_to_dim = symbol_to_dim


def _packed(site: dict) -> dict:
    if "packed" not in site:
        raise ValueError(
            f"site '{site['name']}' has no packed tensors: call "
            "pyrolite.infer.util.pack_tensors(trace) after trace.compute_log_prob() (and "
            "compute_score_parts() for a guide) first"
        )
    return site["packed"]


def _named_like(value, dims: str) -> torch.Tensor:
    value._pyro_dims = dims
    return value


def compute_site_dice_factor(site: dict) -> Tuple[Union[torch.Tensor, float], float]:
    """``(log_factor, log_denom)`` of a packed guide site for :class:`Dice`: ``log q -
    detach(log q)`` for a sampled non-reparameterized site (value 0, gradient of the
    score), ``log q`` for a parallel-enumerated one, ``log q - detach(log q) - log k`` for
    ``k`` sampled values (``num_samples``); ``log_denom = log(#values)`` for sequential
    enumeration. Reparameterized sites give ``(0, 0)``."""
    log_prob = _packed(site)["score_parts"].score_function
    dims = getattr(log_prob, "_pyro_dims", "")
    log_denom = 0
    infer = site["infer"]
    if infer.get("enumerate"):
        num_samples = infer.get("num_samples")
        if num_samples is not None:
            if not is_identically_zero(log_prob):
                log_prob = log_prob - log_prob.detach()
            log_prob = log_prob - math.log(num_samples)
            if not isinstance(log_prob, torch.Tensor):
                log_prob = torch.tensor(float(log_prob), device=site["value"].device)
            _named_like(log_prob, dims)
            # Spread it over the site's own (enumeration and plate) dims, one value each.
            log_prob = packed.broadcast_all(log_prob, site["packed"]["log_prob"])[0]
        elif infer["enumerate"] == "sequential":
            total = infer.get("_enum_total")
            if total is None:
                total = site["fn"].enumerate_support(expand=False).shape[0]
            log_denom = math.log(total)
    elif not is_identically_zero(log_prob):
        log_prob = _named_like(log_prob - log_prob.detach(), dims)
    if isinstance(log_prob, torch.Tensor) and not hasattr(log_prob, "_pyro_dims"):
        _named_like(log_prob, dims)
    return log_prob, log_denom


class Dice:
    """DiCE factors of a guide trace (Foerster et al. 2018): ``compute_expectation``
    returns the expected cost whose gradient is the score-function gradient, with the
    enumerated sites' probabilities summed in exactly. Handles subsampling scales, plates
    (a cost sees only the factors of sites at or above its ordinal), parallel, sequential
    and sampled enumeration.

    :param guide_trace: a guide trace packed with :func:`pack_tensors` (after
        ``compute_score_parts``).
    :param ordering: site name -> ordinal (a ``<=``-comparable hashable, usually the
        frozenset of the site's plate symbols).

    >>> import pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> p = torch.tensor(0.25, requires_grad=True)
    >>> guide = lambda: pyrolite.sample("z", dist.Bernoulli(p))
    >>> trace = poutine.trace(guide).get_trace(); trace.compute_score_parts(); pack_tensors(trace)
    >>> cost = trace.nodes["z"]["value"] * 0 + 2.0; cost._pyro_dims = ""
    >>> dice = Dice(trace, {"z": frozenset()})
    >>> float(dice.compute_expectation({frozenset(): [cost]}))
    2.0
    """

    def __init__(self, guide_trace: Trace, ordering: Dict[str, object]):
        self.log_denom: Dict[object, float] = {}
        self.log_probs: Dict[object, List[torch.Tensor]] = {}
        for name, site in guide_trace.nodes.items():
            # Every sample site counts, observed ones included, as in Pyro.
            if site["type"] != "sample":
                continue
            log_prob, log_denom = compute_site_dice_factor(site)
            ordinal = ordering[name]
            if not is_identically_zero(log_denom):
                self.log_denom[ordinal] = self.log_denom.get(ordinal, 0.0) + log_denom
            if not is_identically_zero(log_prob):
                self.log_probs.setdefault(ordinal, []).append(log_prob)

    def _get_log_factors(self, target_ordinal) -> List[Union[torch.Tensor, float]]:
        """The factors seen by a cost at ``target_ordinal``: the sites at or above it, and
        ``-log_denom`` of the sequentially enumerated sites *not* above it (each such
        branch of the enumeration repeats costs that do not depend on it)."""
        log_denom = sum(v for o, v in self.log_denom.items() if not o <= target_ordinal)
        factors: List[Union[torch.Tensor, float]] = [] if log_denom == 0 else [-log_denom]
        for ordinal, terms in self.log_probs.items():
            if ordinal <= target_ordinal:
                factors.extend(terms)
        return factors

    def compute_expectation(self, costs: Dict[object, List[torch.Tensor]]):
        """``sum over ordinals and their packed cost tensors of E[cost]``: each cost times
        the exp of its factors, summed over all dims (the factors' dims the cost lacks are
        summed out first, by a log-space contraction shared between costs)."""
        ring = LogRing()
        expected = 0.0
        for ordinal, cost_terms in costs.items():
            factors = self._get_log_factors(ordinal)
            scale = math.exp(sum(x for x in factors if not isinstance(x, torch.Tensor)))
            factors = [x for x in factors if isinstance(x, torch.Tensor)]
            for cost in cost_terms:
                cost_dims = getattr(cost, "_pyro_dims", "")
                if factors:
                    dims = set().union(*(f._pyro_dims for f in factors)) - set(cost_dims)
                    prob = packed.exp(ring.sumproduct(factors, frozenset(dims)))
                else:
                    prob = _named_like(torch.ones((), device=cost.device), "")
                cost = cost if isinstance(cost, torch.Tensor) else torch.tensor(float(cost))
                if not hasattr(cost, "_pyro_dims"):
                    cost._pyro_dims = ""
                cost, prob = packed.broadcast_all(cost, prob)
                # Impossible branches (prob 0) may have infinite costs: leave them out.
                mask = prob > 0
                if not bool(mask.all()):
                    cost, prob = cost[mask], prob[mask]
                expected = expected + scale * (prob * cost).sum()
        return expected


def plate_log_prob_sum(trace: Trace, plate_symbol: str) -> torch.Tensor:
    """The packed log-probs of ``trace``'s sample sites, summed over every dim but
    ``plate_symbol`` (one value per element of that plate), for a trace packed with
    :func:`pack_tensors`. Every site must be inside the plate.

    >>> import pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> def model():
    ...     with pyrolite.plate("data", 2):
    ...         pyrolite.sample("x", dist.Normal(0.0, 1.0), obs=torch.zeros(2))
    >>> trace = poutine.trace(model).get_trace(); trace.compute_log_prob(); pack_tensors(trace)
    >>> plate_log_prob_sum(trace, trace.plate_to_symbol["data"])
    tensor([-0.9189, -0.9189])
    """
    total = 0.0
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or site["infer"].get("_subsample"):
            continue
        log_prob = _packed(site)["log_prob"]
        dims = getattr(log_prob, "_pyro_dims", "")
        if plate_symbol not in dims:
            raise ValueError(
                f"plate_log_prob_sum: site '{name}' (packed dims {dims!r}) is not in the plate "
                f"with symbol {plate_symbol!r}; put every site of the trace inside that plate"
            )
        total = total + torch.einsum(f"{dims}->{plate_symbol}", log_prob)
    return total


def per_particle_log_prob(trace: Trace, particle_dim: int, num_particles: int) -> torch.Tensor:
    """Each particle's ``log p`` from a trace vectorized over particles at batch dim
    ``particle_dim``: every sample site's (scaled, masked) log-prob summed over all other
    dims; a site that does not vary over particles adds to every particle. Plate
    subsample sites are left out.

    >>> import pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> def model():
    ...     with pyrolite.plate("particles", 3, dim=-1):
    ...         pyrolite.sample("z", dist.Normal(0.0, 1.0), obs=torch.zeros(3))
    >>> per_particle_log_prob(poutine.trace(model).get_trace(), -1, 3)
    tensor([-0.9189, -0.9189, -0.9189])
    """
    trace.compute_log_prob(site_filter=lambda name, site: not site["infer"].get("_subsample"))
    total = torch.zeros(num_particles)
    for site in trace.nodes.values():
        if site["type"] != "sample" or site["infer"].get("_subsample"):
            continue
        log_prob = site["log_prob"]
        if log_prob.dim() < -particle_dim or log_prob.size(particle_dim) == 1:
            total = total.to(log_prob) + log_prob.sum()
            continue
        log_prob = log_prob.movedim(particle_dim, 0).reshape(num_particles, -1).sum(-1)
        total = total.to(log_prob) + log_prob
    return total
