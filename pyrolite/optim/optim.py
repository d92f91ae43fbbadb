"""``PyroOptim``: steps the ParamStore's unconstrained tensors with torch optimizers.

Parameters are created lazily by models and guides, so the optimizer learns about each one
the first time ``SVI`` passes it in. Parameters whose optimizer arguments are equal share one
torch optimizer (and one param group while their hyperparameters stay equal), so a step costs
one dictionary lookup per parameter plus one ``torch.optim.Optimizer.step`` per distinct
argument dict. State is exported per parameter *name*, in the same layout as Pyro's.
"""

import inspect
import warnings
from typing import Any, Callable, Dict, Hashable, Iterable, List, Optional, Tuple, Union

import torch
from torch.nn.utils import clip_grad_norm_, clip_grad_value_
from torch.optim import Optimizer

from pyrolite.params.serialization import load_weights_only, save_atomic

ArgsOrFn = Union[Dict[str, Any], Callable[..., Dict[str, Any]]]

# The ParamStore joins a module's name and a parameter's name with this divider
# (``pyro.module("enc", net)`` registers "enc$$$fc.weight"); two-argument per-param
# callables receive the two halves, one-argument callables the dotted name.
_MODULE_DIVIDER = "$$$"


def _param_name(param: torch.Tensor) -> Optional[str]:
    """The ParamStore name of an unconstrained tensor, or None when it is not in the store."""
    from pyrolite.params.param_store import get_param_store

    return get_param_store().param_name(param)


def _store_clear_count() -> int:
    from pyrolite.params.param_store import get_param_store

    return get_param_store().clear_count


def _positional_arity(fn: Callable) -> int:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in signature.parameters.values() if p.kind in kinds)


def _call_per_param(fn: Callable, arity: int, name: Optional[str], what: str) -> Dict[str, Any]:
    if name is None:
        raise ValueError(
            f"{what} is a per-parameter callable, which needs each parameter's ParamStore "
            "name, but a tensor passed to the optimizer is not in the ParamStore; register it "
            "with pyro.param(...) or pass a dict instead"
        )
    if arity >= 2:
        module_name, _, short_name = name.rpartition(_MODULE_DIVIDER)
        result = fn(module_name or name, short_name)
    else:
        result = fn(name.replace(_MODULE_DIVIDER, "."))
    if not isinstance(result, dict):
        raise TypeError(f"{what} callable must return a dict for param {name!r}, got {result!r}")
    return result


def _freeze(value: Any) -> Hashable:
    """A hashable key such that equal argument dicts give equal keys."""
    if isinstance(value, dict):
        return ("dict", tuple(sorted((str(k), _freeze(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_freeze(v) for v in value))
    if isinstance(value, torch.Tensor):
        return ("tensor", id(value))
    try:
        hash(value)
    except TypeError:
        return ("object", id(value))
    return value


def _snapshot(value: Any) -> Any:
    """Copy nested state so later steps do not mutate what was returned."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return type(value)((k, _snapshot(v)) for k, v in value.items())
    if isinstance(value, list):
        return [_snapshot(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_snapshot(v) for v in value)
    return value


def _group_settings(group: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in group.items() if k != "params"}


def _check_optimizer_state(name: str, entry: Any) -> None:
    problem = None
    if not isinstance(entry, dict):
        problem = f"expected a dict, got {type(entry).__name__}"
    elif "scheduler" in entry and "optimizer" in entry:
        problem = "it was saved by a PyroLRScheduler; load it into a PyroLRScheduler"
    elif not isinstance(entry.get("state"), dict) or not isinstance(
        entry.get("param_groups"), list
    ):
        problem = "expected a torch optimizer state_dict with 'state' and 'param_groups'"
    elif len(entry["param_groups"]) != 1 or not isinstance(entry["param_groups"][0], dict):
        problem = f"expected exactly one param group, got {len(entry['param_groups'])}"
    elif len(entry["param_groups"][0].get("params", ())) != 1:
        problem = "expected a param group holding exactly one parameter"
    elif list(entry["param_groups"][0]["params"]) != [0] or any(k != 0 for k in entry["state"]):
        problem = "expected the state of parameter index 0 only"
    elif not all(isinstance(v, dict) for v in entry["state"].values()):
        problem = "expected the parameter's state to be a dict"
    if problem is not None:
        raise ValueError(f"invalid optimizer state for param {name!r}: {problem}")


def _same_kind(value: Any, default: Any) -> bool:
    """Whether a restored hyperparameter has the type of the optimizer's default."""
    if isinstance(default, bool) or default is None:
        return value is None or isinstance(value, bool)
    if isinstance(default, (int, float)):
        if isinstance(value, torch.Tensor):
            return value.dim() == 0 and value.is_floating_point()
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, (tuple, list)):
        return (
            isinstance(value, (tuple, list))
            and len(value) == len(default)
            and all(_same_kind(v, d) for v, d in zip(value, default))
        )
    return True


def _checked_state(
    where: str, param: torch.Tensor, state: Dict[str, Any], reference: Optional[Dict[str, Any]]
) -> Dict[str, Any]:
    """``state`` with each tensor checked against ``reference`` (what a fresh optimizer
    keeps): same keys, shapes, dtypes and devices; 0-dim counters are cast to the
    reference's dtype and device. Without a reference only tensor layouts are checked."""
    if reference is not None:
        missing = sorted(map(str, set(reference) - set(state)))
        extra = sorted(map(str, set(state) - set(reference)))
        if missing or extra:
            raise ValueError(
                f"saved {where}: keys {sorted(map(str, state))} do not match the keys "
                f"{sorted(map(str, reference))} it keeps (missing {missing}, unexpected {extra})"
            )
    checked = {}
    for key, value in state.items():
        want = None if reference is None else reference[key]
        if isinstance(value, torch.Tensor):
            if value.layout != torch.strided or value.device.type == "meta":
                raise ValueError(
                    f"saved {where}: {key!r} is a {value.layout} tensor on {value.device}; "
                    "expected a dense tensor with data"
                )
            value = value.detach()
            if not value.is_contiguous():
                value = value.clone(memory_format=torch.contiguous_format)
        if isinstance(want, torch.Tensor):
            if not isinstance(value, torch.Tensor):
                raise ValueError(
                    f"saved {where}: {key!r} is a {type(value).__name__}, expected a tensor "
                    f"of shape {tuple(want.shape)}"
                )
            if value.shape != want.shape:
                raise ValueError(
                    f"saved {where}: {key!r} has shape {tuple(value.shape)}, but the param has "
                    f"shape {tuple(param.shape)} and needs {key!r} of shape "
                    f"{tuple(want.shape)}; the checkpoint was tampered with or is from another "
                    "model"
                )
            if want.dim() == 0 and not (value.is_complex() or value.dtype == torch.bool):
                value = value.to(dtype=want.dtype, device=want.device)
            elif value.dtype != want.dtype or value.device != want.device:
                raise ValueError(
                    f"saved {where}: {key!r} has dtype {value.dtype} on {value.device}, but "
                    f"needs dtype {want.dtype} on {want.device} (the param's)"
                )
        elif isinstance(want, (int, float)) and not isinstance(want, bool):
            if isinstance(value, torch.Tensor) and value.numel() == 1 and value.dim() == 0:
                value = value.item()
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ValueError(
                    f"saved {where}: {key!r} is {type(value).__name__}, expected a number"
                )
        elif want is None and reference is not None and value is not None:
            raise ValueError(f"saved {where}: {key!r} should be None, got {type(value).__name__}")
        checked[key] = value
    return checked


class _Arrival:
    """Everything needed to start optimizing a parameter seen for the first time."""

    __slots__ = ("param", "name", "args", "args_key", "clip", "settings", "state", "extra")

    def __init__(self, param, name, args, clip):
        self.param = param
        self.name = name
        self.args = args
        self.args_key = _freeze(args)
        self.clip = clip
        self.settings: Optional[Dict[str, Any]] = None  # restored group hyperparameters
        self.state: Optional[Dict[str, Any]] = None  # restored per-parameter state
        self.extra: Any = None  # restored subclass state (a scheduler's)


class PyroOptim:
    """Wraps a ``torch.optim.Optimizer`` class so it can optimize ParamStore parameters.

    :param optim_constructor: a ``torch.optim.Optimizer`` subclass, e.g. ``torch.optim.Adam``.
    :param optim_args: keyword arguments for the constructor: a dict, or a callable taking a
        parameter name (``fn(name)``, module params as ``"module.weight"``) or
        ``fn(module_name, param_name)`` and returning a dict, for per-parameter arguments.
    :param clip_args: ``{"clip_norm": ..., "clip_value": ...}`` (either key optional), or a
        callable like ``optim_args``; each parameter's gradient is clipped on its own before
        the step (norm first, then value).

    Calling ``optim(params)`` steps exactly the given tensors, which must have ``.grad`` set;
    unseen tensors get fresh optimizer state (or the state waiting from :meth:`set_state`).
    Other parameters sharing a torch optimizer are untouched as long as their ``.grad`` is
    ``None``, which ``SVI`` ensures.

    >>> import torch
    >>> w = torch.zeros(2, requires_grad=True)
    >>> optim = PyroOptim(torch.optim.SGD, {"lr": 0.1})
    >>> (w - 1.0).pow(2).sum().backward()
    >>> optim([w])
    >>> w.detach()
    tensor([0.2000, 0.2000])
    """

    def __init__(
        self,
        optim_constructor: Callable[..., Optimizer],
        optim_args: ArgsOrFn,
        clip_args: Optional[ArgsOrFn] = None,
    ) -> None:
        if not (callable(optim_args) or isinstance(optim_args, dict)):
            raise TypeError(
                f"optim_args must be a dict or a callable returning one, got {optim_args!r}"
            )
        if clip_args is None:
            clip_args = {}
        if not (callable(clip_args) or isinstance(clip_args, dict)):
            raise TypeError(
                f"clip_args must be a dict or a callable returning one, got {clip_args!r}"
            )
        if isinstance(clip_args, dict):
            self._check_clip_args(clip_args, None)
        self.pt_optim_constructor = optim_constructor
        self.pt_optim_args = optim_args
        self.pt_clip_args = clip_args
        self._optim_arity = _positional_arity(optim_args) if callable(optim_args) else 0
        self._clip_arity = _positional_arity(clip_args) if callable(clip_args) else 0
        # LBFGS caches its parameter list at construction, so it cannot grow.
        self._one_optimizer_per_param = isinstance(optim_constructor, type) and issubclass(
            optim_constructor, torch.optim.LBFGS
        )

        self._optimizers: Dict[Hashable, Optimizer] = {}  # args key -> shared optimizer
        self._optimizer_of: Dict[torch.Tensor, Optimizer] = {}
        self._group_of: Dict[torch.Tensor, Dict[str, Any]] = {}
        self._name_of: Dict[torch.Tensor, Optional[str]] = {}
        self._clip_of: Dict[torch.Tensor, Tuple[Optional[float], Optional[float]]] = {}
        # state from set_state/load, consumed when its parameter is first seen
        self._state_waiting_to_be_consumed: Dict[str, Any] = {}
        self._clears_seen = _store_clear_count()

    # ----------------------------------------------------------------- stepping

    def __call__(self, params: Iterable[torch.Tensor], *args: Any, **kwargs: Any) -> None:
        """Take one optimizer step on ``params``; ``args``/``kwargs`` go to ``step()``."""
        optimizer_of = self._optimizer_of
        clip_of = self._clip_of
        touched: Dict[Optimizer, None] = {}
        new: Optional[Dict[torch.Tensor, None]] = None
        for p in params:
            optimizer = optimizer_of.get(p)
            if optimizer is None:
                if new is None:
                    new = {}
                new[p] = None
                continue
            if clip_of:
                clip = clip_of.get(p)
                if clip is not None:
                    self._clip_grad(p, *clip)
            touched[optimizer] = None
        if new is not None:
            self._start(list(new))
            for p in new:
                clip = clip_of.get(p)
                if clip is not None:
                    self._clip_grad(p, *clip)
                touched[optimizer_of[p]] = None
        for optimizer in touched:
            optimizer.step(*args, **kwargs)

    @staticmethod
    def _clip_grad(
        param: torch.Tensor, clip_norm: Optional[float], clip_value: Optional[float]
    ) -> None:
        if clip_norm is not None:
            clip_grad_norm_(param, clip_norm)
        if clip_value is not None:
            clip_grad_value_(param, clip_value)

    def _start(self, params: List[torch.Tensor]) -> None:
        # Prepare every new parameter first, so a bad restored state raises before anything
        # is changed.
        arrivals = [self._prepare(p) for p in params]
        self._drop_replaced({a.name for a in arrivals if a.name is not None})
        self._place(arrivals)
        for a in arrivals:
            self._name_of[a.param] = a.name
            if a.clip is not None:
                self._clip_of[a.param] = a.clip
            if a.name is not None:
                self._state_waiting_to_be_consumed.pop(a.name, None)

    def _drop_replaced(self, arriving: set) -> None:
        """Forget the tensors the ParamStore no longer holds under their name (cleared by
        ``clear_param_store()``, or replaced by a new tensor of that name): their state
        would otherwise live as long as this optimizer. Runs only when params arrive."""
        from pyrolite.params.param_store import get_param_store

        store = get_param_store()
        cleared = store.clear_count != self._clears_seen
        self._clears_seen = store.clear_count
        if not (cleared or any(n in arriving for n in self._name_of.values())):
            return
        for p, name in list(self._name_of.items()):
            if name is not None and (cleared or name in arriving) and store.param_name(p) != name:
                self._forget(p)

    def _prepare(self, param: torch.Tensor) -> _Arrival:
        name = _param_name(param)
        if callable(self.pt_optim_args):
            args = _call_per_param(self.pt_optim_args, self._optim_arity, name, "optim_args")
        else:
            args = self.pt_optim_args
        if callable(self.pt_clip_args):
            clip_args = _call_per_param(self.pt_clip_args, self._clip_arity, name, "clip_args")
            self._check_clip_args(clip_args, name)
        else:
            clip_args = self.pt_clip_args
        clip = None
        if clip_args.get("clip_norm") is not None or clip_args.get("clip_value") is not None:
            clip = (clip_args.get("clip_norm"), clip_args.get("clip_value"))
        arrival = _Arrival(param, name, args, clip)
        saved = self._state_waiting_to_be_consumed.get(name) if name is not None else None
        if saved is not None:
            self._restore_into(arrival, saved)
        return arrival

    def _restore_into(self, arrival: _Arrival, saved: Dict[str, Any]) -> None:
        arrival.settings, arrival.state = self._cast_optimizer_state(arrival, saved)

    def _cast_optimizer_state(self, arrival: _Arrival, saved: Dict[str, Any]):
        return self._fit_state(arrival.name, arrival.param, arrival.args, saved)

    def _fit_state(self, name: Optional[str], param: torch.Tensor, args, saved: Dict[str, Any]):
        """Load a one-parameter state_dict through a scratch optimizer, which casts the state
        to the parameter's device and dtype and fills settings added by newer torch; then
        check every state tensor against the one a fresh optimizer keeps for ``param``
        (fused kernels read state unchecked: a wrong shape crashes the process)."""
        scratch = self.pt_optim_constructor([param], **args)
        fresh = _group_settings(scratch.param_groups[0])
        needed = set(fresh)
        try:
            scratch.load_state_dict(saved)
        except (ValueError, KeyError, TypeError, RuntimeError, IndexError) as e:
            raise ValueError(
                f"saved optimizer state for param {name!r} does not fit "
                f"{type(scratch).__name__} on a tensor of shape {tuple(param.shape)}: {e}"
            ) from e
        settings = _group_settings(scratch.param_groups[0])
        missing = sorted(needed - set(settings))
        if missing:
            raise ValueError(
                f"saved optimizer state for param {name!r} lacks {missing}, which "
                f"{type(scratch).__name__} needs; was it saved from a different optimizer?"
            )
        for key, default in fresh.items():
            if not _same_kind(settings[key], default):
                raise ValueError(
                    f"saved optimizer state for param {name!r}: setting {key!r} is "
                    f"{settings[key]!r}, but {type(scratch).__name__} needs a value like "
                    f"{default!r}"
                )
        state = scratch.state.get(param)
        if not state:
            return settings, None
        reference = self._reference_state(param, args, settings)
        where = f"{type(scratch).__name__} state for param {name!r}"
        return settings, _checked_state(where, param, dict(state), reference)

    def _reference_state(self, param: torch.Tensor, args, settings) -> Optional[Dict[str, Any]]:
        """The state a fresh optimizer with ``settings`` keeps for ``param`` after one step
        (None where one cannot be taken without a closure or a sparse gradient: LBFGS)."""
        standin = torch.zeros_like(param, memory_format=torch.contiguous_format)
        standin.requires_grad_()
        try:
            optimizer = self.pt_optim_constructor(
                [{**settings, "params": [standin]}], **_with_fused_default(self, args, standin)
            )
            standin.grad = torch.zeros_like(standin)
            optimizer.step()
        except Exception:  # noqa: BLE001 - no reference: only the generic checks apply
            return None
        return dict(optimizer.state.get(standin) or {})

    def check_state(self, state_dict: Any, params: Dict[str, torch.Tensor]) -> None:
        """Check state for :meth:`set_state` against the tensors it will step, changing
        nothing: ``params`` maps names to unconstrained tensors (shape, dtype, device); an
        entry whose param is not given is checked when the param is first seen."""
        self._check_state(state_dict)
        for name, entry in state_dict.items():
            param = params.get(name)
            if param is None:
                continue
            if callable(self.pt_optim_args):
                args = _call_per_param(self.pt_optim_args, self._optim_arity, name, "optim_args")
            else:
                args = self.pt_optim_args
            standin = torch.zeros_like(param.detach(), memory_format=torch.contiguous_format)
            self._fit_state(name, standin.requires_grad_(), args, self._torch_state(entry))

    @staticmethod
    def _torch_state(entry: Dict[str, Any]) -> Dict[str, Any]:
        """The torch optimizer state_dict inside a saved entry (a scheduler nests it)."""
        return entry

    def _place(self, arrivals: List[_Arrival]) -> None:
        for a in arrivals:
            p = a.param
            optimizer = self._optimizers.get(a.args_key)
            if optimizer is None:
                group = {"params": [p]} if a.settings is None else {**a.settings, "params": [p]}
                optimizer = self.pt_optim_constructor(
                    [group], **_with_fused_default(self, a.args, p)
                )
                if not self._one_optimizer_per_param:
                    self._optimizers[a.args_key] = optimizer
                group = optimizer.param_groups[0]
            else:
                wanted = optimizer.defaults if a.settings is None else a.settings
                wanted_key = _freeze(wanted)
                for group in optimizer.param_groups:
                    if _freeze(_group_settings(group)) == wanted_key:
                        group["params"].append(p)
                        break
                else:
                    optimizer.add_param_group({**wanted, "params": [p]})
                    group = optimizer.param_groups[-1]
            if a.state is not None:
                optimizer.state[p] = a.state
            self._optimizer_of[p] = optimizer
            self._group_of[p] = group

    @staticmethod
    def _check_clip_args(clip_args: Dict[str, Any], name: Optional[str]) -> None:
        unknown = set(clip_args) - {"clip_norm", "clip_value"}
        if unknown:
            where = f" for param {name!r}" if name else ""
            raise ValueError(
                f"clip_args{where} has unknown keys {sorted(unknown)}; "
                "use 'clip_norm' and/or 'clip_value'"
            )

    # ----------------------------------------------------------------- state

    def get_state(self) -> Dict[str, Any]:
        """Optimizer state keyed by parameter name: for each, a one-parameter torch
        ``state_dict`` (current hyperparameters included). Tensors are copies. State loaded
        with :meth:`set_state` whose parameter has not been seen yet is included as is."""
        state = _snapshot(self._state_waiting_to_be_consumed)
        unnamed = 0
        for p, name in self._name_of.items():
            if name is None:
                unnamed += 1
                continue
            state[name] = self._param_state(p)
        if unnamed:
            warnings.warn(
                f"get_state: {unnamed} optimized tensor(s) are not in the ParamStore and have "
                "no name, so their optimizer state is not included",
                RuntimeWarning,
            )
        return state

    def _param_state(self, param: torch.Tensor) -> Dict[str, Any]:
        optimizer = self._optimizer_of[param]
        state = optimizer.state.get(param)
        return _snapshot(
            {
                "state": {0: state} if state else {},
                "param_groups": [{**_group_settings(self._group_of[param]), "params": [0]}],
            }
        )

    def set_state(self, state_dict: Dict[str, Any]) -> None:
        """Restore state from :meth:`get_state`. Each parameter's state is applied when it is
        next passed to the optimizer; parameters already being optimized restart from it."""
        self._check_state(state_dict)
        by_name = {name: p for p, name in self._name_of.items() if name is not None}
        for name in state_dict:
            if name in by_name:
                self._forget(by_name[name])
        # copy: the caller's tensors may keep changing before each parameter is seen
        self._state_waiting_to_be_consumed.update(_snapshot(state_dict))

    def _check_state(self, state_dict: Any) -> None:
        if not isinstance(state_dict, dict):
            raise ValueError(
                f"optimizer state must be a dict keyed by parameter name, got "
                f"{type(state_dict).__name__}"
            )
        for name, entry in state_dict.items():
            if not isinstance(name, str):
                raise ValueError(f"optimizer state keys must be parameter names, got {name!r}")
            self._check_entry(name, entry)

    def _check_entry(self, name: str, entry: Any) -> None:
        _check_optimizer_state(name, entry)

    def _forget(self, param: torch.Tensor) -> None:
        """Stop optimizing ``param`` so that its next appearance starts it afresh."""
        optimizer = self._optimizer_of.pop(param)
        group = self._group_of.pop(param)
        self._name_of.pop(param, None)
        self._clip_of.pop(param, None)
        optimizer.state.pop(param, None)
        group["params"] = [q for q in group["params"] if q is not param]
        if not group["params"]:
            optimizer.param_groups = [g for g in optimizer.param_groups if g is not group]
            if not optimizer.param_groups:
                self._drop_optimizer(optimizer)

    def _drop_optimizer(self, optimizer: Optimizer) -> None:
        self._optimizers = {k: o for k, o in self._optimizers.items() if o is not optimizer}

    def save(self, filename: str) -> None:
        """Write :meth:`get_state` to ``filename`` atomically (temporary file + rename)."""
        save_atomic(self.get_state(), filename)

    def load(self, filename: str, map_location: Any = None) -> None:
        """Read state written by :meth:`save` (or by Pyro) and :meth:`set_state` it.

        The file is read with ``torch.load(weights_only=True)``, so it cannot run code. A
        corrupt or foreign file raises ``ValueError`` and leaves this optimizer unchanged.
        """
        state = load_weights_only(filename, map_location, expected="an optimizer state")
        try:
            self._check_state(state)
        except ValueError as e:
            raise ValueError(f"{filename!r} is not a valid optimizer checkpoint: {e}") from e
        self.set_state(state)

    # ----------------------------------------------------------------- public view of a param

    def torch_optimizer(self, param: torch.Tensor) -> Optional[Optimizer]:
        """The torch optimizer stepping ``param`` (None before its first step)."""
        return self._optimizer_of.get(param)

    def param_group(self, param: torch.Tensor) -> Optional[Dict[str, Any]]:
        """The torch param group holding ``param`` (its live hyper-parameters), or None."""
        return self._group_of.get(param)

    def can_mask(self, params: Iterable[torch.Tensor]) -> bool:
        """Whether :meth:`step_unless` can step ``params``: every one already has a fused
        torch optimizer (whose kernel skips the whole update on the device) and no clipping."""
        for p in params:
            group = self._group_of.get(p)
            if group is None or not group.get("fused") or p in self._clip_of:
                return False
        return True

    def step_unless(self, params: Iterable[torch.Tensor], skip: torch.Tensor) -> None:
        """Step ``params`` unless the 0-dim tensor ``skip`` is nonzero, decided on the device
        (no host sync); needs :meth:`can_mask`. Params and state are untouched when skipped."""
        optimizers = {self._optimizer_of[p]: None for p in params}
        skip = skip.to(torch.float32)
        for optimizer in optimizers:
            # torch's fused kernels read these (as set by GradScaler) and skip on found_inf.
            optimizer.grad_scale, optimizer.found_inf = None, skip
            try:
                optimizer.step()
            finally:
                del optimizer.grad_scale, optimizer.found_inf


# torch optimizers with a fused (single-kernel) implementation: one kernel call updates
# every param of a group, instead of a Python loop of small ops per param (W2's six
# params: 80 us vs 257 us per Adam step on one CPU thread).
_FUSED_CAPABLE = (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD, torch.optim.Adagrad)
_IMPLEMENTATION_KEYS = ("fused", "foreach", "differentiable", "capturable")


def _with_fused_default(optim: "PyroOptim", args: Dict[str, Any], param: torch.Tensor):
    """``args`` plus ``fused=True`` where torch supports it and the user chose nothing."""
    ctor = optim.pt_optim_constructor
    if (
        isinstance(ctor, type)
        and issubclass(ctor, _FUSED_CAPABLE)
        and not any(k in args for k in _IMPLEMENTATION_KEYS)
        and param.dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16)
        and param.device.type in ("cpu", "cuda")
        and not param.is_sparse
    ):
        return {**args, "fused": True}
    return args
