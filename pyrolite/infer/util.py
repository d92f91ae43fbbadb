"""Helpers shared by the estimators: grads, plate-aware cost sums, model/guide checks,
and the names Pyro programs import from ``pyro.infer.util`` (``MultiFrameTensor``,
``torch_exp``, ``torch_item``, ``get_plate_stacks``, ...)."""

import dataclasses
import math
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch

from ..distributions import Delta
from ..distributions.util import is_identically_zero
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
    c = _strip_independent(c)
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
    base_outer, base_inner = _strip_independent(outer), _strip_independent(inner)
    if type(base_outer) is not type(base_inner):
        return False
    return all(
        not isinstance(v, (int, float)) or math.isclose(v, getattr(base_inner, k, v))
        for k, v in vars(base_outer).items()
        if not k.startswith("_")
    )


def _strip_independent(c):
    while hasattr(c, "base_constraint"):
        c = c.base_constraint
    return c
