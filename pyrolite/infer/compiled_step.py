"""``CompiledStep``: a whole SVI step (loss, gradients, optimizer update) as one compiled graph.

``SVI(..., compile=True)`` routes ``step`` here. The first step for each new *key* (the
shapes/dtypes/devices of the arguments, the set of params, the optimizer hyper-parameters)
runs eagerly: it creates every param and the optimizer state and validates the model/guide.
Later steps call one ``torch.compile``-d function that reads each param from a leaf passed
in as an input (``ParamLeavesMessenger`` answers every ``param`` site, so the ParamStore is
not touched inside the graph), runs the ELBO's ``loss_and_surrogate``, takes
``torch.autograd.grad`` of the surrogate and applies the optimizer package's functional
update rules (``pyrolite.optim.functional``: Adam, SGD, ClippedAdam, against torch's own
state layout), mutating the ParamStore leaves and the optimizer state in place. It runs
the same sequence as the eager step (``step_engine``); with hooks that reduce gradients
or agree on the verdict it runs as two graphs, gradients and update, with the hooks
between. State the ELBO keeps between steps (``TraceGraph_ELBO``'s decaying averages) is
read inside the graph and proposed as its outputs; ``ELBO.after_update`` commits it after
the step, eagerly (one masked copy per average), so a step that is not applied leaves it
as it was. Anything that cannot be compiled warns once, saying why, and runs eagerly.
"""

import types
import warnings
from typing import Any, Callable, Dict, Hashable, List, Optional, Tuple

import torch

from ..optim import PyroOptim
from ..optim.functional import (
    UnsupportedRule,
    clipped_adam_step_size,
    has_update_rule,
    update_rule,
)
from ..params.param_store import get_param_store
from ..poutine.param_leaves_messenger import MissingLeaf, ParamLeavesMessenger
from ..process_state import is_validation_enabled, validation_disabled
from .elbo import ELBO
from .step_engine import EagerStep, StepLedger, finish_step, finite_verdict, rejected


class _Unsupported(Exception):
    """Why this SVI (or this key) cannot take compiled steps; it runs eagerly instead."""


class _ParamSlot:
    """One param as the compiled step sees it: its leaf, optimizer, group, state and rule."""

    __slots__ = ("name", "leaf", "optimizer", "group", "state", "rule")

    def __init__(self, name: str, leaf: torch.Tensor, optim: PyroOptim):
        self.name, self.leaf = name, leaf
        self.optimizer = optim.torch_optimizer(leaf)
        if self.optimizer is None:
            raise KeyError(name)  # not stepped yet: the next eager step starts it
        self.group = optim.param_group(leaf)
        self.state = self.optimizer.state.get(leaf)
        try:
            self.rule = update_rule(self.optimizer, self.group, self.state)
        except UnsupportedRule as e:
            raise _Unsupported(f"param {name!r}: {e}") from None

    def current(self, optim: PyroOptim, leaf: Optional[torch.Tensor]) -> bool:
        """Whether ``leaf`` (the store's now), its optimizer and its state are still the
        ones captured."""
        return (
            leaf is self.leaf
            and optim.torch_optimizer(leaf) is self.optimizer
            and self.optimizer.state.get(leaf) is self.state
        )

    def scalar(self) -> float:
        """This step's lr (Adam, SGD), or bias-corrected step size (ClippedAdam)."""
        group = self.group
        if self.rule.host_step:
            lr = group["lr"] * group["lrd"]
            return clipped_adam_step_size(lr, self.state["step"] + 1, self.rule.hyper)
        return group["lr"]


def _signature(value: Any) -> Hashable:
    """What a compiled graph is specialized on: tensor metadata, or the value itself."""
    if isinstance(value, torch.Tensor):
        return (tuple(value.shape), value.dtype, value.device, value.requires_grad)
    if isinstance(value, (tuple, list)):
        return (type(value), tuple(_signature(v) for v in value))
    if isinstance(value, dict):
        return (dict, tuple((k, _signature(v)) for k, v in value.items()))
    try:
        hash(value)
    except TypeError:
        return ("id", id(value))
    return (type(value), value)


def _make_step_fns(elbo: ELBO, model, guide, slots: List[_ParamSlot]):
    """The pure step functions of a plan.

    ``grads_fn(leaves, args, kwargs) -> (loss, grads)``;
    ``update_fn(leaves, grads, states, scalars, ok)`` applies every rule masked by ``ok``;
    ``step_fn(leaves, states, scalars, gate, args, kwargs) -> (loss, applied)`` is both,
    with ``applied = finite & gate`` (``gate``: no earlier deferred step failed).
    """
    store = get_param_store()
    names = [s.name for s in slots]
    transforms = {name: store.transform(name) for name in names}
    rules = [(s.rule.update, s.rule.hyper) for s in slots]

    def grads_fn(leaves, args, kwargs):
        with torch.enable_grad():
            with ParamLeavesMessenger(dict(zip(names, leaves)), transforms):
                loss, surrogate = elbo.loss_and_surrogate(model, guide, args, kwargs)
            grads = torch.autograd.grad(surrogate, leaves, allow_unused=True)
        # The traces hold graph intermediates; keeping them would make them graph outputs.
        elbo.last_traces = None
        return loss.detach(), grads

    def update_fn(leaves, grads, states, scalars, ok):
        with torch.no_grad():
            for i, (update, hyper) in enumerate(rules):
                if grads[i] is not None:  # torch optimizers skip params without a grad
                    update(leaves[i], grads[i], states[i], scalars[i], hyper, ok)

    def step_fn(leaves, states, scalars, gate, args, kwargs):
        loss, grads = grads_fn(leaves, args, kwargs)
        with torch.no_grad():
            applied = finite_verdict(loss, grads) & gate
        update_fn(leaves, grads, states, scalars, applied)
        return loss, applied

    return grads_fn, update_fn, step_fn


def _with_own_code(fn: Callable) -> Callable:
    """A copy of ``fn`` with its own code object.

    Dynamo keeps compiled graphs (and counts recompilations, up to a small limit) per
    code object; every plan gets its own, so plans of many SVIs and keys never evict each
    other, and a plan's graphs are freed with it.
    """
    global _PLAN_COUNT
    _PLAN_COUNT += 1
    code = fn.__code__.replace(co_name=f"{fn.__name__}_{_PLAN_COUNT}")
    copy = types.FunctionType(code, fn.__globals__, code.co_name, fn.__defaults__, fn.__closure__)
    copy.__qualname__ = code.co_name
    return copy


_PLAN_COUNT = 0


def _describe(e: Exception) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0] if lines else ''}"


def _is_compile_error(e: Exception) -> bool:
    """Whether ``e`` came from tracing/compiling (a recompile), not from running the graph."""
    dynamo_exc = getattr(torch._dynamo, "exc", None)
    return dynamo_exc is not None and isinstance(e, dynamo_exc.TorchDynamoException)


class _Stage:
    """One compiled function of a plan, with its life cycle: the first call runs it
    uncompiled (warming the lazily built Python caches that compiled code guards on), the
    second compiles it (``torch.autograd.grad`` tracing on), later calls run the graph
    (recompiling if a guard fails). Raises ``_Unsupported`` where it cannot compile."""

    def __init__(self, fn: Callable, options: Dict[str, Any]):
        self.fn = _with_own_code(fn)
        self.compiled = torch.compile(self.fn, **options)
        self.warm = False
        self.compiled_once = False

    def __call__(self, *inputs):
        if not self.warm:
            try:
                result = self.fn(*inputs)
            except Exception as e:  # the eager step will raise it again if it is real
                raise _Unsupported(_describe(e)) from e
            self.warm = True
            return result
        if not self.compiled_once:
            result = self._compile_and_run(inputs)
            self.compiled_once = True
            return result
        try:
            return self.compiled(*inputs)
        except Exception as e:
            if not _is_compile_error(e):
                raise
            return self._compile_and_run(inputs)  # a guard failed: retrace

    def _compile_and_run(self, inputs):
        """(Re)compile with ``torch.autograd.grad`` tracing on, then run; or say why not.

        The switch is on only while tracing: a compiled graph needs it no more, and
        toggling the config on every step would cost more than the step.
        """
        config = torch._dynamo.config
        saved = config.trace_autograd_ops
        config.trace_autograd_ops = True
        try:
            return self.compiled(*inputs)
        except Exception as e:
            raise _Unsupported(_describe(e)) from e
        finally:
            config.trace_autograd_ops = saved


class _Plan:
    """The compiled step for one key: its stages and the slots whose tensors they read."""

    def __init__(self, svi, slots: List[_ParamSlot], options):
        grads_fn, update_fn, step_fn = _make_step_fns(svi.elbo, svi.model, svi.guide, slots)
        # Hooks between gradients and update run eagerly, between two graphs.
        self.split = svi.hooks.combines
        if self.split:
            self.grads = _Stage(grads_fn, options)
            self.update = _Stage(update_fn, options)
        else:
            self.step = _Stage(step_fn, options)
        self.slots = slots
        self.names = [s.name for s in slots]
        self.leaves = [s.leaf for s in slots]
        self.states = [s.rule.state for s in slots]
        self.host_step = any(s.rule.host_step for s in slots)
        # ClippedAdam decays lr once per group and step; Adam/SGD read lr as an input.
        self.groups = list({id(s.group): s.group for s in slots}.values())
        self.scalar_values: Optional[List[float]] = None  # the rates ``scalars`` holds
        self.scalars: Optional[torch.Tensor] = None
        self.true = torch.ones((), dtype=torch.bool, device=self.leaves[0].device)

    def current(self, optim: PyroOptim) -> bool:
        """Whether every slot's leaf, optimizer and state are still the captured ones."""
        leaves = get_param_store().leaves(self.names)
        return all(s.current(optim, leaf) for s, leaf in zip(self.slots, leaves))

    @property
    def compiled_once(self) -> bool:
        stages = (self.grads, self.update) if self.split else (self.step,)
        return all(stage.compiled_once for stage in stages)

    def scalars_tensor(self) -> torch.Tensor:
        """Per-param lr (Adam, SGD) or step size (ClippedAdam) for this step."""
        values = [slot.scalar() for slot in self.slots]
        # Adam/SGD rates rarely change: reuse the tensor (on a GPU, no copy to the device
        # per step) until they do.
        if values != self.scalar_values:
            self.scalar_values = values
            self.scalars = torch.tensor(values, dtype=torch.float64, device=self.leaves[0].device)
        return self.scalars


class CompiledStep:
    """``SVI(..., compile=True)``'s step engine; returns None where the eager one must run.

    :param svi: the ``SVI`` whose model, guide, ELBO, optimizer and hooks are compiled.
    :param eager: its eager engine (which knows the params the initializing step read).
    :param options: keyword arguments for ``torch.compile`` (``fullgraph=True`` and
        ``dynamic=False`` unless given), e.g. ``{"backend": "aot_eager"}``.

    Per key: step 1 runs eagerly (creates params and optimizer state), step 2 runs the
    step function uncompiled (warms Python-side caches), later steps run the compiled
    graph. Randomness stays random per call (inductor draws fresh seeds every call).

    Use it as ``SVI(model, guide, Adam({"lr": 0.01}), Trace_ELBO(), compile=True)``;
    ``tests/infer/test_compiled_step.py`` and ``tutorials/compiled_speedups.py`` show it
    end to end (a doctest cannot: dynamo resolves a doctest's globals by module name).
    """

    def __init__(self, svi, eager: EagerStep, options: Optional[Dict[str, Any]] = None):
        self.svi, self.eager = svi, eager
        self.options = {"fullgraph": True, "dynamic": False, **(options or {})}
        self._plans: Dict[Hashable, _Plan] = {}
        self._eager_keys: Dict[Hashable, str] = {}  # key -> why it runs eagerly
        self._init_key: Optional[Hashable] = None
        self._init_count = -1
        self._warned: set = set()
        self._disabled: Optional[str] = self._why_not_compilable()  # why no key compiles

    # ------------------------------------------------------------------ public

    @property
    def num_compiled(self) -> int:
        """How many keys have a compiled step."""
        return sum(1 for p in self._plans.values() if p.compiled_once)

    @property
    def fallback_reasons(self) -> Tuple[str, ...]:
        """Why steps ran eagerly (for the whole SVI first, then per key)."""
        reasons = sorted(set(self._eager_keys.values()))
        return tuple(([self._disabled] if self._disabled else []) + reasons)

    def __call__(
        self,
        args,
        kwargs,
        stable_update: bool,
        ledger: Optional[StepLedger] = None,
    ):
        if self._disabled is not None:
            self._warn(self._disabled)
            return None
        # (one graph serves stable_update either way: it only changes what the host does
        # with a rejected step)
        key = (_signature(args), _signature(kwargs))
        if key in self._eager_keys:
            return None
        plan = self._plans.get(key)
        if plan is None or not plan.current(self.svi.optim):
            plan = self._plan(key)
            if plan is None:
                return None
        try:
            return self._run(plan, args, kwargs, stable_update, ledger)
        except _Unsupported as e:
            self._eager_keys[key] = str(e)
            self._plans.pop(key, None)
            self._warn(str(e))
            return None

    # ------------------------------------------------------------------ internals

    def _why_not_compilable(self) -> Optional[str]:
        svi = self.svi
        if svi.elbo is None:
            return "the loss is a plain callable, not an ELBO"
        if type(svi.optim) is not PyroOptim:
            return f"{type(svi.optim).__name__} (e.g. an LR scheduler) has no compiled update"
        if svi.optim.pt_clip_args:
            return "clip_args (gradient clipping in PyroOptim) are not compiled"
        if not has_update_rule(svi.optim.pt_optim_constructor):
            name = getattr(svi.optim.pt_optim_constructor, "__name__", "this optimizer")
            return f"{name} has no compiled update (supported: Adam, SGD, ClippedAdam)"
        if not hasattr(torch._dynamo.config, "trace_autograd_ops"):
            return f"torch {torch.__version__} cannot compile torch.autograd.grad"
        return None

    def _plan(self, key: Hashable) -> Optional[_Plan]:
        """Build the plan for ``key`` after its initializing eager step, else ask for one."""
        svi = self.svi
        if self._init_key != key or svi.step_count != self._init_count + 1:
            self._init_key, self._init_count = key, svi.step_count
            return None
        try:
            names = self.eager.param_names
            leaves = get_param_store().leaves(names)
            slots = [_ParamSlot(n, leaf, svi.optim) for n, leaf in zip(names, leaves)]
            if not slots:
                raise _Unsupported("the step reads no params")
            plan = _Plan(svi, slots, self.options)
        except KeyError:
            self._init_key, self._init_count = key, svi.step_count
            return None
        except _Unsupported as e:
            self._eager_keys[key] = str(e)
            self._warn(str(e))
            return None
        self._plans[key] = plan
        return plan

    def _run(self, plan: _Plan, args, kwargs, stable_update, ledger):
        svi = self.svi
        defer = ledger is not None and not plan.host_step
        if ledger is not None and not defer:
            ledger.resolve(svi)  # never apply this step after a deferred one that failed
        gate = ledger.gate() if defer else None
        if gate is None:
            gate = plan.true
        scalars = plan.scalars_tensor()
        # torch's checks stay out of the graph; the ELBO's observation checks go in it
        # (their verdict folds into the loss) when validation is on.
        svi.elbo.graph_checks = is_validation_enabled()
        with validation_disabled():
            try:
                if plan.split:
                    loss, grads = plan.grads(plan.leaves, args, kwargs)
                    grads = list(grads)
                    loss, ok = svi.hooks.combine(loss, grads, plan.names)
                    applied = ok & gate
                    plan.update(plan.leaves, grads, plan.states, scalars, applied)
                else:
                    loss, applied = plan.step(plan.leaves, plan.states, scalars, gate, args, kwargs)
            except MissingLeaf as e:
                raise _Unsupported(str(e)) from e
        if defer:
            ledger.settle(applied)
            return finish_step(svi, loss, applied, ledger)
        if ledger is None:
            # step() reads the loss now anyway: read the verdict with it, in one transfer
            # (as the eager step does), not in two.
            both = torch.stack([loss.reshape(()).double(), applied.double()]).cpu()
            loss, applied = both[0], bool(both[1])
        if rejected(svi, loss, applied, stable_update, ledger):
            return loss
        for slot in plan.slots:
            if slot.rule.host_step:
                slot.state["step"] += 1
        for group in plan.groups:
            if "lrd" in group:
                group["lr"] *= group["lrd"]
        return finish_step(svi, loss, None, ledger)

    def _warn(self, reason: str) -> None:
        if reason in self._warned:
            return
        self._warned.add(reason)
        warnings.warn(
            f"SVI(compile=True): the step cannot be compiled ({reason}); "
            "running the eager step instead.",
            RuntimeWarning,
            stacklevel=4,
        )
