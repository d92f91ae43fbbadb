"""The helpers users import from ``pyro.util`` (NaN/inf warnings, jit warning filters,
model/guide trace checks), and the process-wide switches (validation, RNG seeding and
state, warn-once) that live in ``pyrolite.process_state``."""

import math
import numbers
import sys
import time
import warnings
from contextlib import contextmanager
from typing import Dict, List, Optional, Tuple, Union

import torch

from .distributions.util import ignore_jit_warnings as ignore_jit_warnings
from .infer.util import check_model_guide_match as infer_check_model_guide_match
from .poutine.util import check_site_shape as poutine_check_site_shape
from .poutine.util import site_is_subsample as site_is_subsample
from .process_state import enable_validation as enable_validation
from .process_state import get_rng_state as get_rng_state
from .process_state import is_validation_enabled as is_validation_enabled
from .process_state import reset_warn_once as reset_warn_once
from .process_state import set_rng_seed as set_rng_seed
from .process_state import set_rng_state as set_rng_state
from .process_state import validation_disabled as validation_disabled
from .process_state import validation_enabled as validation_enabled
from .process_state import warn_once as warn_once

# --- helpers users import from ``pyro.util`` ---------------------------------------------


class ExperimentalWarning(UserWarning):
    """Warns that an interface is experimental and may change."""


@contextmanager
def ignore_experimental_warning():
    """Silence :class:`ExperimentalWarning` inside (other warnings still show).

    >>> with ignore_experimental_warning():
    ...     warnings.warn("new API", ExperimentalWarning)
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=ExperimentalWarning)
        yield


def jit_iter(tensor: torch.Tensor) -> List[torch.Tensor]:
    """The slices of ``tensor`` along dim 0, without TorchScript tracer warnings.

    >>> jit_iter(torch.arange(3.0))
    [tensor(0.), tensor(1.), tensor(2.)]
    """
    with ignore_jit_warnings():
        return list(tensor.unbind(0))


class optional:
    """``with optional(ctx, condition):`` enters ``ctx`` only when ``condition`` is true.

    >>> with optional(torch.no_grad(), True):
    ...     torch.is_grad_enabled()
    False
    """

    def __init__(self, context_manager, condition: bool):
        self.context_manager = context_manager
        self.condition = condition

    def __enter__(self):
        if self.condition:
            return self.context_manager.__enter__()

    def __exit__(self, exc_type, exc_value, traceback):
        if self.condition:
            return self.context_manager.__exit__(exc_type, exc_value, traceback)


class timed:
    """Wall-clock timer: ``with timed() as t: ...`` sets ``t.start``, ``t.end``,
    ``t.elapsed`` (seconds).

    >>> with timed() as t:
    ...     pass
    >>> t.elapsed >= 0
    True
    """

    def __enter__(self, timer=time.perf_counter):
        self.start = timer()
        return self

    def __exit__(self, *exc, timer=time.perf_counter):
        self.end = timer()
        self.elapsed = self.end - self.start
        return None


def torch_isnan(x: Union[torch.Tensor, numbers.Number]) -> Union[bool, torch.Tensor]:
    """Whether ``x`` holds any NaN (a 0-dim bool tensor for tensors, a bool for numbers).

    >>> torch_isnan(float("nan")), torch_isnan(torch.tensor([1.0, float("nan")]))
    (True, tensor(True))
    """
    if isinstance(x, numbers.Number):
        return x != x
    return torch.isnan(x).any()


def torch_isinf(x: Union[torch.Tensor, numbers.Number]) -> Union[bool, torch.Tensor]:
    """Whether ``x`` holds any +inf or -inf (a 0-dim bool tensor for tensors).

    >>> torch_isinf(-math.inf), torch_isinf(torch.tensor([1.0, 2.0]))
    (True, tensor(False))
    """
    if isinstance(x, numbers.Number):
        return x in (math.inf, -math.inf)
    return (x == math.inf).any() | (x == -math.inf).any()


def _caller_location(depth: int = 2) -> Tuple[str, int]:
    frame = sys._getframe(depth)
    return frame.f_code.co_filename, frame.f_lineno


def warn_if_nan(
    value: Union[torch.Tensor, numbers.Number],
    msg: str = "",
    *,
    filename: Optional[str] = None,
    lineno: Optional[int] = None,
) -> Union[torch.Tensor, numbers.Number]:
    """Warn ``"Encountered NaN: {msg}"`` if ``value`` (or, later, its gradient) has a NaN;
    returns ``value``. The warning points at the caller's line (or ``filename:lineno``).

    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     _ = warn_if_nan(torch.tensor([0.0, float("nan")]), "loss")
    >>> str(w[0].message)
    'Encountered NaN: loss'
    """
    if filename is None:
        filename, lineno = _caller_location()
    if isinstance(value, torch.Tensor) and value.requires_grad:
        value.register_hook(
            lambda g: warn_if_nan(g, "backward " + msg, filename=filename, lineno=lineno)
        )
    if torch_isnan(value):
        warnings.warn_explicit(f"Encountered NaN: {msg}", UserWarning, filename, lineno)
    return value


def warn_if_inf(
    value: Union[torch.Tensor, numbers.Number],
    msg: str = "",
    allow_posinf: bool = False,
    allow_neginf: bool = False,
    *,
    filename: Optional[str] = None,
    lineno: Optional[int] = None,
) -> Union[torch.Tensor, numbers.Number]:
    """Warn ``"Encountered +inf: {msg}"`` / ``"Encountered -inf: {msg}"`` if ``value`` (or,
    later, its gradient) has an infinity not allowed; returns ``value``.

    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     _ = warn_if_inf(torch.tensor([math.inf, -math.inf]), "lp", allow_posinf=True)
    >>> [str(x.message) for x in w]
    ['Encountered -inf: lp']
    """
    if filename is None:
        filename, lineno = _caller_location()
    if isinstance(value, torch.Tensor) and value.requires_grad:
        value.register_hook(
            lambda g: warn_if_inf(
                g,
                "backward " + msg,
                allow_posinf,
                allow_neginf,
                filename=filename,
                lineno=lineno,
            )
        )
    for sign, bound, allowed in (("+", math.inf, allow_posinf), ("-", -math.inf, allow_neginf)):
        if allowed:
            continue
        found = value == bound if isinstance(value, numbers.Number) else (value == bound).any()
        if found:
            warnings.warn_explicit(f"Encountered {sign}inf: {msg}", UserWarning, filename, lineno)
    return value


def torch_float(x: Union[torch.Tensor, float, int]) -> Union[torch.Tensor, float]:
    """``x`` as a float tensor (tensors) or a Python float (numbers).

    >>> torch_float(3), torch_float(torch.tensor([1, 2]))
    (3.0, tensor([1., 2.]))
    """
    return x.float() if isinstance(x, torch.Tensor) else float(x)


def check_site_shape(site: dict, max_plate_nesting: Optional[int]) -> None:
    """Check a site's log-prob batch dims against its plates (``pyrolite.poutine.util``)."""
    poutine_check_site_shape(site, max_plate_nesting)


def check_model_guide_match(model_trace, guide_trace, max_plate_nesting: float = math.inf) -> None:
    """Warn about, or raise on, where a model and a guide trace disagree: latent sites in
    one only, plates of the guide missing from the model, event dims and shapes.
    ``max_plate_nesting`` is accepted for Pyro's signature (shapes are checked whole)."""
    infer_check_model_guide_match(model_trace, guide_trace)
    model_plates = _plate_names(model_trace)
    extra = sorted(_plate_names(guide_trace) - model_plates)
    if extra:
        warnings.warn(
            f"Found plate statements in guide but not model: {extra}. Open the same plates "
            "in the model (same names), or remove them from the guide.",
            stacklevel=2,
        )


def _plate_names(trace) -> set:
    names = set()
    for site in trace.nodes.values():
        if site["type"] == "sample":
            names.update(f.name for f in site["cond_indep_stack"] if f.vectorized)
            if site_is_subsample(site):
                names.add(site["name"])
    return names


def check_traces_match(trace1, trace2) -> None:
    """Both traces have the same sample sites, with the same value shapes at each site."""
    names1 = [n for n, s in trace1.nodes.items() if s["type"] == "sample"]
    names2 = [n for n, s in trace2.nodes.items() if s["type"] == "sample"]
    if set(names1) != set(names2):
        raise ValueError(
            f"The traces' sample sites differ: {sorted(set(names1) ^ set(names2))} appear in "
            "only one of them. Both programs must sample the same site names."
        )
    for name in names1:
        shape1 = tuple(trace1.nodes[name]["value"].shape)
        shape2 = tuple(trace2.nodes[name]["value"].shape)
        if shape1 != shape2:
            raise ValueError(f"Site dims disagree at site '{name}': {shape1} vs {shape2}")


def check_if_enumerated(guide_trace) -> None:
    """Warn when ``guide_trace`` has sites configured for enumeration that an estimator
    without enumeration would only sample.

    >>> from pyrolite.poutine.trace_struct import Trace
    >>> tr = Trace(); tr.add_node("z", type="sample", infer={"enumerate": "parallel"})
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     check_if_enumerated(tr)
    >>> str(w[0].message).splitlines()[0]
    'Found sample sites configured for enumeration: z'
    """
    names = [
        name
        for name, site in guide_trace.nodes.items()
        if site["type"] == "sample" and site["infer"].get("enumerate")
    ]
    if names:
        warnings.warn(
            "Found sample sites configured for enumeration: "
            + ", ".join(names)
            + "\nIf you want to enumerate sites, you need to use TraceEnum_ELBO instead.",
            stacklevel=2,
        )


def check_traceenum_requirements(model_trace, guide_trace) -> None:
    """Warn (``RuntimeWarning``) where a site follows a guide-enumerated site inside a
    plate the later site is not in: TraceEnum_ELBO enumerates synchronized products, so
    such a site may depend on every element of the plate at once. Sampling it before the
    enumerated site avoids the question.
    """
    enumerated = {
        name
        for name, site in guide_trace.nodes.items()
        if site["type"] == "sample" and site["infer"].get("enumerate")
    }
    if not enumerated:
        return
    for role, trace in (("model", model_trace), ("guide", guide_trace)):
        seen = []  # (name, plate names) of the enumerated sites met so far
        for name, site in trace.nodes.items():
            if site["type"] != "sample":
                continue
            plates = frozenset(f.name for f in site["cond_indep_stack"] if f.vectorized)
            groups: Dict[frozenset, List[str]] = {}
            for other, other_plates in seen:
                if plates < other_plates:
                    groups.setdefault(other_plates - plates, []).append(other)
            for missing, others in groups.items():
                warnings.warn(
                    f'at {role} site "{name}", possibly invalid dependency.\n'
                    f'  Expected site "{name}" to precede sites "'
                    + '", "'.join(others)
                    + '"\n  to avoid breaking independence of plates "'
                    + '", "'.join(sorted(missing))
                    + '"',
                    RuntimeWarning,
                    stacklevel=2,
                )
            if name in enumerated:
                seen.append((name, plates))
