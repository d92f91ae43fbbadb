"""``infer_discrete``: draw a model's enumerated sites from their exact posterior (or take
their joint MAP values).

The model runs once under ``enum`` (hidden from outer handlers); the log-probs that
depend on its enumerated sites are contracted by tensor variable elimination
(:mod:`pyrolite.ops.contract`) with every elimination recorded, then each enumerated
site is drawn given the sites eliminated after it, in reverse order: forward-filter
backward-sample at ``temperature=1``, and, with max-product instead of sum-product,
the joint MAP (Viterbi along chains) at ``temperature=0``. The model then runs again,
visibly, with those values (and the first run's other latent values, where they do not
depend on an enumerated site), and its return value is returned.
"""

import functools
from typing import Callable, Dict, Optional

import torch

from ..ops.contract import Contraction, apply_view, view_between
from ..poutine.block_messenger import BlockMessenger
from ..poutine.enum_messenger import EnumMessenger
from ..poutine.handlers import replay
from ..poutine.trace_messenger import run_traced
from ..poutine.trace_struct import Trace
from ..poutine.util import max_plate_nesting_of, prune_subsample_sites_
from ..process_state import warn_once
from .enum import EnumLayout, enum_layout, factor_tensors, plate_batch_shape


def infer_discrete(
    fn: Optional[Callable] = None,
    first_available_dim: Optional[int] = None,
    temperature: int = 1,
    *,
    strict_enumeration_warning: bool = True,
):
    """A version of ``fn`` whose sites marked ``infer={"enumerate": "parallel"}`` take
    values drawn from their joint posterior given the model's observations
    (``temperature=1``) or their joint MAP values (``temperature=0``).

    :param first_available_dim: the rightmost dim enumeration may use,
        ``-1 - max_plate_nesting`` (guessed from one run when None).

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> def model():
    ...     z = pyrolite.sample("z", dist.Bernoulli(0.5), infer={"enumerate": "parallel"})
    ...     pyrolite.sample("x", dist.Normal(10.0 * z, 1.0), obs=torch.tensor(9.0))
    ...     return z
    >>> infer_discrete(model, first_available_dim=-1, temperature=0)()
    tensor(1.)
    """
    if fn is None:
        return functools.partial(
            infer_discrete,
            first_available_dim=first_available_dim,
            temperature=temperature,
            strict_enumeration_warning=strict_enumeration_warning,
        )
    if temperature not in (0, 1):
        raise ValueError(f"infer_discrete: temperature must be 0 or 1, got {temperature!r}")
    if first_available_dim is not None and first_available_dim >= 0:
        raise ValueError(
            f"infer_discrete: first_available_dim must be negative, got {first_available_dim}"
        )

    @functools.wraps(fn)
    def sampled(*args, **kwargs):
        first = first_available_dim
        with torch.no_grad(), BlockMessenger():
            if first is None:
                first = -1 - max_plate_nesting_of(run_traced(fn, args, kwargs))
            trace = run_traced(EnumMessenger(first)(fn), args, kwargs)
            prune_subsample_sites_(trace)
            trace.compute_log_prob()
            layout = enum_layout(trace, None, -1 - first)
            if layout.plan is None:
                if strict_enumeration_warning:
                    warn_once(
                        ("infer_discrete_nothing", getattr(fn, "__name__", str(fn))),
                        "infer_discrete found no sites marked for enumeration; mark them "
                        "with infer={'enumerate': 'parallel'} or config_enumerate.",
                    )
                values = {}
            else:
                ring = "log" if temperature == 1 else "max"
                contraction = Contraction(layout.plan, ring=ring, record=True)
                contraction(factor_tensors(layout, trace))
                values = _site_values(layout, trace, contraction.sample(temperature))
        return replay(fn, trace=_replay_trace(trace, values, -1 - first))(*args, **kwargs)

    return sampled


def _site_values(layout: EnumLayout, trace: Trace, samples: Dict) -> Dict[str, torch.Tensor]:
    """Each enumerated site's value at its drawn positions, shaped as the site's batch."""
    window = layout.window
    values = {}
    for name in layout.model_vars:
        site = trace.nodes[name]
        value = site["value"]
        event = tuple(site["fn"].event_shape)
        batch = plate_batch_shape(site, window)
        # (K, enumeration dims right of the site's (size 1), plate dims, event)
        tail = tuple(value.shape[value.dim() - window - len(event) :])
        flat = value.reshape((value.shape[0],) + tail)
        if name in samples:
            index, plates = samples[name]
            index = _positional(index, plates, window)
        else:  # a site with a single value: nothing to choose
            index = torch.zeros((1,) * window, dtype=torch.long, device=value.device)
        plate_shape = torch.broadcast_shapes(flat.shape[1 : 1 + window], index.shape)
        full = (flat.shape[0],) + tuple(plate_shape) + event
        picks = index.reshape(index.shape + (1,) * len(event)).expand((1,) + full[1:])
        chosen = torch.gather(flat.expand(full), 0, picks).squeeze(0)
        values[name] = chosen.reshape(chosen.shape[window - len(batch) :]).expand(batch + event)
    return values


def _positional(index: torch.Tensor, plates: tuple, window: int) -> torch.Tensor:
    """A drawn index (dims labelled by ``plates``) laid out at the plates' tensor dims."""
    vectorized = tuple(p for p in plates if p.dim is not None)
    # Sequential plates' dims have size 1: drop them.
    sizes = {p: index.shape[plates.index(p)] for p in vectorized}
    index = index.reshape([sizes[p] for p in vectorized])
    by_dim = {p.dim: p for p in vectorized}
    target = tuple(by_dim.get(d, d) for d in range(-window, 0))  # an int: no plate there
    return apply_view(index, view_between(vectorized, target, sizes))


def _replay_trace(trace: Trace, values: Dict[str, torch.Tensor], window: int) -> Trace:
    """The first run's latent values to replay: the drawn enumerated values, and the
    other latent sites whose values hold no enumeration dim."""
    replayed = Trace()
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or site["is_observed"]:
            continue
        if name in values:
            infer = {k: v for k, v in site["infer"].items() if not k.startswith("_enum")}
            replayed.add_node(name, **{**site, "value": values[name], "infer": infer})
            continue
        value = site["value"]
        event = len(getattr(site["fn"], "event_shape", ()))
        if isinstance(value, torch.Tensor) and any(
            size != 1 for size in value.shape[: max(value.dim() - event - window, 0)]
        ):
            continue  # depends on an enumerated site: drawn afresh in the second run
        replayed.add_node(name, **site)
    return replayed


__all__ = ["infer_discrete"]
