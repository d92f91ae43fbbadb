"""Trace utilities shared by handlers and estimators: subsample and factor sites, shape
checks, and the escape/extend rules of ``poutine.queue`` (search over discrete sites)."""

from typing import List, Optional

import torch

from ..process_state import enable_validation as enable_validation
from ..process_state import is_validation_enabled as is_validation_enabled
from ..process_state import warn_once
from .runtime import Message
from .trace_struct import Trace


def site_is_subsample(site: dict) -> bool:
    """True for the sample sites that hold a plate's subsample indices."""
    return site["type"] == "sample" and bool(site["infer"].get("_subsample"))


def site_is_factor(site: dict) -> bool:
    """True for the sites ``pyrolite.factor`` records (an observed ``Unit`` site).

    >>> import torch, pyrolite
    >>> from pyrolite import poutine
    >>> tr = poutine.trace(lambda: pyrolite.factor("f", torch.tensor(1.0))).get_trace()
    >>> site_is_factor(tr.nodes["f"])
    True
    """
    from ..distributions.unit import Unit

    fn = site["fn"]
    while fn is not None and not isinstance(fn, Unit):
        fn = getattr(fn, "base_dist", None)  # a masked or rescaled factor
    return site["type"] == "sample" and fn is not None


def prune_subsample_sites(trace: Trace) -> Trace:
    """A copy of ``trace`` without plate-subsample sites."""
    return prune_subsample_sites_(trace.copy())


def prune_subsample_sites_(trace: Trace) -> Trace:
    """Remove plate-subsample sites from ``trace`` in place (for traces one owns)."""
    for name in [n for n, site in trace.nodes.items() if site_is_subsample(site)]:
        trace.remove_node(name)
    return trace


def plate_dims(site: dict) -> dict:
    """{dim: frame} of the vectorized plates enclosing ``site``."""
    return {f.dim: f for f in site["cond_indep_stack"] if f.dim is not None}


def max_plate_nesting_of(*traces: Trace) -> int:
    """How many plate dims the sites of ``traces`` use (the deepest ``-dim``)."""
    nesting = 0
    for trace in traces:
        for site in trace.nodes.values():
            for frame in site.get("cond_indep_stack", ()):
                if frame.dim is not None:
                    nesting = max(nesting, -frame.dim)
    return nesting


def check_site_shape(site: dict, max_plate_nesting: Optional[int]) -> None:
    """Check a site's log-prob batch dims against its plates.

    A dim of size > 1 inside the ``max_plate_nesting`` window that no enclosing
    plate claims is summed into the site's log-prob, with a one-time warning (seed
    003 samples an ``[8]``-shaped latent outside any plate). A plate dim whose size
    differs from the plate's is an error. Left of the window only enumeration puts
    dims: for an observed site inside a plate, a dim there of size > 1 that no enumerated site
    holds (the site itself, or one it depends on) is an error, the classic case being
    ``(N, 1)`` data inside a plate of size N, silently broadcast to ``(N, N)``.
    """
    log_prob = site.get("unscaled_log_prob", site.get("log_prob"))
    if not isinstance(log_prob, torch.Tensor):
        return
    frames = plate_dims(site)
    shape = log_prob.shape
    window = len(shape) if max_plate_nesting is None else min(len(shape), max_plate_nesting)
    enum_dim = site["infer"].get("_enumerate_dim")
    for dim in range(-window, 0):
        size = shape[dim]
        frame = frames.get(dim)
        if frame is not None:
            # size -1: a plate declared without a size takes whatever size its sites have.
            if frame.size != -1 and size not in (1, frame.size):
                raise ValueError(
                    f"at site '{site['name']}', invalid log_prob shape {tuple(shape)}: "
                    f"plate('{frame.name}') expects size {frame.size} at dim {dim}, got {size}."
                )
        elif size != 1 and dim != enum_dim:
            warn_once(
                ("unclaimed_batch_dim", site["name"], dim),
                f"Site '{site['name']}' has batch shape {tuple(shape)} whose dim {dim} (size "
                f"{size}) is not claimed by any plate; its log-prob is summed over that dim. "
                "If those entries are one multivariate variable, use .to_event(1) on the "
                "distribution; if they are independent, put the site in a pyro.plate.",
            )
    if frames and site.get("is_observed"):
        # (a latent may carry batch dims left of the window, as in Pyro: its draws have them)
        _check_dims_left_of_plates(site, shape, window, frames)


def _check_dims_left_of_plates(site: dict, shape: torch.Size, window: int, frames: dict) -> None:
    enum_dims = site.get("_enum_dims")  # the step's enumeration allocator, noted by plate
    own_dim = site["infer"].get("_enumerate_dim")
    for dim in range(-len(shape), -window):
        if shape[dim] == 1 or dim in frames or dim == own_dim:
            continue
        if enum_dims is not None and enum_dims.holds(dim):
            continue
        plates = ", ".join(
            f"plate('{f.name}', size={f.size}) at dim {d}" for d, f in sorted(frames.items())
        )
        value = site.get("value")
        value_shape = tuple(value.shape) if isinstance(value, torch.Tensor) else None
        batch_shape = tuple(getattr(site["fn"], "batch_shape", ()))
        source = (
            f"the {'observed ' if site.get('is_observed') else ''}value has shape "
            f"{value_shape} and the distribution batch shape {batch_shape}"
        )
        raise ValueError(
            f"at site '{site['name']}', invalid log_prob shape {tuple(shape)}: inside "
            f"{plates}, dim {dim} (size {shape[dim]}) lies left of the "
            f"max_plate_nesting={window} plate dims and no enumerated site holds it, so "
            f"the log-prob is broadcast to {tuple(shape)} ({source}). Fix: give the data "
            f"the plate's shape (e.g. obs=data.squeeze(-1) for data of shape (N, 1)), "
            "declare trailing dims as event dims with .to_event(1), or put that dim in "
            "its own pyro.plate."
        )


def all_escape(trace: Trace, msg: Message) -> bool:
    """Escape (``poutine.escape``) at the first latent sample site not already in ``trace``."""
    return msg["type"] == "sample" and not msg["is_observed"] and msg["name"] not in trace


def discrete_escape(trace: Trace, msg: Message) -> bool:
    """Escape at the first discrete latent site not already in ``trace``."""
    return all_escape(trace, msg) and bool(getattr(msg["fn"], "has_enumerate_support", False))


def enum_extend(trace: Trace, msg: Message, num_samples: Optional[int] = None) -> List[Trace]:
    """One copy of ``trace`` per value in the support of the site in ``msg``, the site
    added with that value; at most ``num_samples`` copies (the first values).

    ``enumerate_support()`` is called without arguments, as Pyro does, so a user
    distribution whose ``enumerate_support(self)`` takes none works.

    >>> import torch, pyrolite.distributions as dist
    >>> from pyrolite.poutine.runtime import new_message
    >>> msg = new_message("sample", "c", dist.Categorical(torch.ones(3) / 3))
    >>> [int(t.nodes["c"]["value"]) for t in enum_extend(Trace(), msg)]
    [0, 1, 2]
    """
    values = msg["fn"].enumerate_support()
    if num_samples is not None:
        values = values[:num_samples]
    return [_extend(trace, msg, value) for value in values]


def mc_extend(trace: Trace, msg: Message, num_samples: Optional[int] = None) -> List[Trace]:
    """``num_samples`` (default 1) copies of ``trace``, each with the site in ``msg``
    added at a fresh draw from its distribution (Monte Carlo instead of enumeration).

    >>> import torch, pyrolite.distributions as dist
    >>> from pyrolite.poutine.runtime import new_message
    >>> msg = new_message("sample", "z", dist.Normal(0.0, 1.0))
    >>> len(mc_extend(Trace(), msg, num_samples=3))
    3
    """
    count = 1 if num_samples is None else num_samples
    return [_extend(trace, msg, msg["fn"](*msg["args"], **msg["kwargs"])) for _ in range(count)]


def _extend(trace: Trace, msg: Message, value) -> Trace:
    new_trace = trace.copy()
    site = msg.copy()
    site["value"] = value
    new_trace.add_node(msg["name"], **site)
    return new_trace
