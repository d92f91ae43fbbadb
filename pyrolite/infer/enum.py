"""Enumeration: ``config_enumerate``, and the factor graph an enumerated trace defines.

:func:`enum_layout` reads a model trace (and the guide trace it replayed) run under
``enum``: which sites are enumerated variables (the model's are summed out, the guide's
kept), which tensor dim of each site's log-prob is which variable or plate, and so the
:func:`pyrolite.ops.contract.plan_contraction` program that eliminates the model's
variables. Inside ``markov`` a dim is recycled, so a dim is read as the variable that
held it most recently in the trace (the Markov promise: nothing older is used). The
layout depends only on the traces' structure and shapes; estimators cache it.
"""

import math
from typing import Dict, FrozenSet, List, NamedTuple, Optional, Tuple

import torch

from ..distributions.util import scale_and_mask
from ..ops.contract import FactorSpec, Plan, apply_view, plan_contraction, view_between
from ..poutine.handlers import infer_config
from ..poutine.trace_struct import Trace

Frames = FrozenSet[object]


def config_enumerate(
    guide=None, default: str = "parallel", expand: bool = False, num_samples=None, tmc=None
):
    """Mark every discrete latent sample site of ``guide`` (a model or a guide) for
    enumeration: ``infer={"enumerate": default, "expand": expand}`` (and
    ``"num_samples"`` when given: sampled enumeration, which also applies to sites without
    finite support). A site's own ``infer`` settings take precedence.

    Usable as ``config_enumerate(fn)``, ``@config_enumerate`` or
    ``@config_enumerate(default="sequential")``.

    >>> import pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> @config_enumerate
    ... def model():
    ...     pyrolite.sample("z", dist.Bernoulli(0.5))
    ...     pyrolite.sample("x", dist.Normal(0.0, 1.0))
    >>> tr = poutine.trace(model).get_trace()
    >>> tr.nodes["z"]["infer"], tr.nodes["x"]["infer"]
    ({'enumerate': 'parallel', 'expand': False}, {})
    """
    if default not in ("sequential", "parallel", "flat", None):
        raise ValueError(
            f"config_enumerate: default must be 'sequential', 'parallel', 'flat' or None, got "
            f"{default!r}"
        )
    if guide is None:
        return lambda fn: config_enumerate(fn, default, expand, num_samples, tmc)

    def config_fn(msg) -> dict:
        if msg["type"] != "sample" or msg["is_observed"] or msg["infer"].get("_subsample"):
            return {}
        infer = msg["infer"]
        if num_samples is not None:
            return {
                "enumerate": infer.get("enumerate", default),
                "num_samples": infer.get("num_samples", num_samples),
                "expand": infer.get("expand", expand),
            }
        if getattr(msg["fn"], "has_enumerate_support", False):
            return {
                "enumerate": infer.get("enumerate", default),
                "expand": infer.get("expand", expand),
            }
        return {}

    return infer_config(guide, config_fn)


class EnumLayout(NamedTuple):
    """How an enumerated (model, guide) trace pair becomes factors (see the module doc)."""

    plan: Optional[Plan]  # eliminates the model's enumerated variables (None: there are none)
    factors: Tuple[Tuple[str, Tuple[int, ...], Tuple[int, ...], bool], ...]
    # ^ model sites in the contraction: (name, log-prob shape, factor shape, sampled-enum?)
    outputs: Tuple[Tuple[Optional[tuple], Frames, FrozenSet[str]], ...]
    # ^ per contraction output: positional view (None: a scalar), plates, guide variables
    scale: float  # the common scale of the contracted sites
    model_costs: Tuple[Tuple[str, FrozenSet[str]], ...]  # other model sites, guide variables
    guide_sites: Tuple[Tuple[str, FrozenSet[str]], ...]  # guide sample sites, guide variables
    guide_vars: Dict[str, int]  # parallel-enumerated guide sites: their dims
    model_vars: Dict[str, int]  # the model's enumerated sites: their dims
    window: int  # plate dims (dims -1 .. -window)

    def matches(self, model_trace: Trace) -> bool:
        """Whether the contracted sites' log-probs still have the shapes planned for."""
        return all(
            tuple(model_trace.unscaled_log_prob(name).shape) == shape
            for name, shape, _, _ in self.factors
        )


def enum_layout(model_trace: Trace, guide_trace: Optional[Trace], window: int) -> EnumLayout:
    """The :class:`EnumLayout` of traces whose sites carry log-probs (``log_prob`` and
    ``unscaled_log_prob``); ``window`` is the number of plate dims."""
    guide_vars: Dict[str, int] = {}
    guide_sites: List[Tuple[str, FrozenSet[str]]] = []
    if guide_trace is not None:
        owner: Dict[int, str] = {}
        for name, site in _sample_sites(guide_trace):
            dim = site["infer"].get("_enumerate_dim")
            if dim is not None and not site["is_observed"]:
                if dim in owner:
                    raise ValueError(
                        f"TraceEnum_ELBO: the guide's enumerated sites '{owner[dim]}' and "
                        f"'{name}' share dim {dim} (markov recycled it). Enumerate chains in "
                        "the model, where they are summed out exactly, and keep the guide's "
                        "enumerated sites outside markov."
                    )
                owner[dim] = name
                guide_vars[name] = dim
            labels = _labels(name, site, site["log_prob"].shape, owner, window)
            guide_sites.append((name, frozenset(x for x in labels if isinstance(x, str))))
    # The model: guide variables are kept, the model's own enumerated sites summed out.
    owner = {}
    model_vars: Dict[str, int] = {}
    var_ordinals: Dict[str, Frames] = {}
    site_labels = []
    for name, site in _sample_sites(model_trace):
        if name in guide_vars:
            owner[guide_vars[name]] = name
            var_ordinals[name] = frozenset(site["cond_indep_stack"])
        elif not site["is_observed"] and site["infer"].get("_enumerate_dim") is not None:
            dim = site["infer"]["_enumerate_dim"]
            owner[dim] = name
            model_vars[name] = dim
            var_ordinals[name] = frozenset(site["cond_indep_stack"])
        shape = tuple(site["unscaled_log_prob"].shape)
        site_labels.append((name, site, shape, _labels(name, site, shape, owner, window)))
    factors, specs, model_costs, scales = [], [], [], {}
    for name, site, shape, labels in site_labels:
        if not any(x in model_vars for x in labels):
            model_costs.append((name, frozenset(x for x in labels if x in guide_vars)))
            continue
        factor_shape = tuple(s for s in shape if s != 1)
        sampled = site["infer"].get("_enum_num_samples") is not None and name in model_vars
        factors.append((name, shape, factor_shape, sampled))
        specs.append(FactorSpec(labels, factor_shape, frozenset(site["cond_indep_stack"])))
        scales[name] = site["scale"]
    plan, outputs, scale = None, (), 1.0
    if factors:
        scale = _common_scale(scales)
        plates = {
            frame: (frame.size if frame.dim is not None else 1, 1.0)
            for spec in specs
            for frame in spec.ordinal
        }
        plan = plan_contraction(specs, var_ordinals, list(model_vars), plates, describe=_describe)
        sizes = {x: n for spec in specs for x, n in zip(spec.labels, spec.shape)}
        sizes.update({f: f.size for f in plates if f.dim is not None})
        dims = {**guide_vars, **{f: f.dim for f in plates if f.dim is not None}}
        outputs = tuple(
            (
                _positional_view(
                    out.labels
                    + tuple(f for f in out.ordinal if f.dim is not None and f not in out.labels),
                    set(out.labels),
                    dims,
                    sizes,
                ),
                frozenset(f for f in out.ordinal if f.dim is not None),
                frozenset(x for x in out.labels if x in guide_vars),
            )
            for out in plan.outputs
        )
    return EnumLayout(
        plan,
        tuple(factors),
        outputs,
        scale,
        tuple(model_costs),
        tuple(guide_sites),
        guide_vars,
        model_vars,
        window,
    )


def factor_tensors(layout: EnumLayout, model_trace: Trace) -> List[torch.Tensor]:
    """The contracted sites' log-factors: unscaled, masked log-probs laid out as planned
    (for sampled enumeration, ``log p - log p.detach() - log k``: the draws already follow
    ``p``, each weighs ``1/k``, and the score-function gradient is kept)."""
    tensors = []
    for name, _, factor_shape, sampled in layout.factors:
        site = model_trace.nodes[name]
        log_prob = model_trace.unscaled_log_prob(name)
        if site["mask"] is not None:
            log_prob = scale_and_mask(log_prob, 1.0, site["mask"])
        if sampled:
            total = site["infer"]["_enum_num_samples"]
            log_prob = log_prob - log_prob.detach() - math.log(total)
        tensors.append(log_prob.reshape(factor_shape))
    return tensors


def positional(value: torch.Tensor, view) -> torch.Tensor:
    """A contraction output laid out at its labels' tensor dims, expanded to its plates."""
    if view is None:
        return value
    layout, expanded = view
    value = apply_view(value, layout)
    return value if expanded is None else value.expand(expanded)


def _positional_view(labels, present, dims: Dict[object, int], sizes) -> Optional[tuple]:
    """(the :func:`~pyrolite.ops.contract.view_between` layout, the expanded shape or None)
    putting an output's dims (labels ``present``) at their tensor dims, expanded to the
    sizes of the other ``labels`` (plates the output does not vary along)."""
    if not labels:
        return None
    by_dim = {dims[x]: x for x in labels}
    # the tensor dims from the leftmost label's to -1; an int stands for a dim no label holds
    target = tuple(by_dim.get(d, d) for d in range(min(by_dim), 0))
    layout = view_between(tuple(x for x in labels if x in present), target, sizes)
    full = tuple(sizes[x] if x in labels else 1 for x in target)
    return layout, (None if full == layout[1] else full)


def plate_batch_shape(site: dict, window: int) -> Tuple[int, ...]:
    """An enumerated run's site's batch shape without the enumeration dims (its parents'):
    the shape the site has in a run that does not enumerate."""
    full = tuple(site["fn"].batch_shape)
    shape = full[len(full) - min(len(full), window) :]
    deepest = max((-f.dim for f in site["cond_indep_stack"] if f.dim is not None), default=0)
    while len(shape) > deepest and shape[0] == 1:
        shape = shape[1:]
    return shape


def _sample_sites(trace: Trace):
    for name, site in trace.nodes.items():
        if site["type"] == "sample":
            yield name, site


def _labels(name: str, site: dict, shape, owner: Dict[int, str], window: int) -> tuple:
    """The label of each size>1 dim of a site's log-prob: its plate frame, or (left of the
    plate dims) the enumerated variable that holds that dim now."""
    frames = {f.dim: f for f in site["cond_indep_stack"] if f.dim is not None}
    labels = []
    n = len(shape)
    for position, size in enumerate(shape):
        if size == 1:
            continue
        dim = position - n
        if dim >= -window:
            frame = frames.get(dim)
            if frame is None:
                raise ValueError(
                    f"site '{name}' has log-prob shape {tuple(shape)}, whose dim {dim} (size "
                    f"{size}) is in no plate of the site. Declare the plate, use "
                    ".to_event() for event dims, or check max_plate_nesting."
                )
            labels.append(frame)
            continue
        var = owner.get(dim)
        if var is None:
            raise ValueError(
                f"site '{name}' has log-prob shape {tuple(shape)}, whose dim {dim} (size "
                f"{size}) lies left of the {window} plate dims, but no enumerated site holds "
                f"that dim. Pass max_plate_nesting={-dim} (or more) if it is a plate dim, or "
                "put the batch dim in a plate."
            )
        labels.append(var)
    return tuple(labels)


def _common_scale(scales: Dict[str, object]) -> float:
    distinct = {}
    for name, scale in scales.items():
        if isinstance(scale, torch.Tensor):
            if scale.numel() != 1:
                raise ValueError(
                    f"site '{name}' depends on an enumerated site and has a tensor scale of "
                    f"shape {tuple(scale.shape)}; enumerated factors need one number as scale"
                )
            scale = float(scale)
        distinct.setdefault(float(scale), name)
    if len(distinct) > 1:
        raise ValueError(
            "Expected all enumerated sample sites to share a common poutine.scale, but found "
            f"{len(distinct)} different scales: "
            + ", ".join(f"{s:g} (site '{n}')" for s, n in distinct.items())
            + ". Subsample the plates of enumerated sites alike, or scale them together."
        )
    return next(iter(distinct))


def _describe(label) -> str:
    return label if isinstance(label, str) else f"plate('{label.name}')"


__all__ = [
    "EnumLayout",
    "config_enumerate",
    "enum_layout",
    "factor_tensors",
    "plate_batch_shape",
    "positional",
]
