"""``CompiledStep``: a whole SVI step (loss, gradients, optimizer update) as one compiled graph.

``SVI(..., compile=True)`` routes ``step`` here. The first step for each new *key* (the
shapes/dtypes/devices of the arguments, the set of params, the optimizer hyper-parameters)
runs eagerly: it creates every param and the optimizer state and validates the model/guide.
Later steps call one ``torch.compile``-d function that reads each param from a leaf passed
in as an input (a ``param`` handler answers every ``param`` site, so the ParamStore is not
touched inside the graph), runs the ELBO's ``_loss_and_surrogate``, takes
``torch.autograd.grad`` of the surrogate and applies a functional Adam / SGD / ClippedAdam
written against torch's own state (``step``, ``exp_avg``, ``exp_avg_sq``,
``momentum_buffer``), mutating the ParamStore leaves and the optimizer state in place.
Anything that cannot be compiled warns once, saying why, and runs the eager step instead.
"""

import math
import types
import warnings
from typing import Any, Callable, Dict, Hashable, List, Optional, Tuple

import torch

from ..optim import PyroOptim
from ..optim.clipped_adam import ClippedAdam
from ..params.param_store import _PARAM_STORE
from ..poutine.messenger import Messenger
from ..poutine.runtime import Message
from ..util import validation_disabled
from .elbo import ELBO

_ADAM, _SGD, _CLIPPED_ADAM = "adam", "sgd", "clipped_adam"
# The update rules below reproduce these optimizers' step() exactly (same state layout).
_RULE_OF = {torch.optim.Adam: _ADAM, torch.optim.SGD: _SGD, ClippedAdam: _CLIPPED_ADAM}


class _Unsupported(Exception):
    """Why this SVI (or this key) cannot take compiled steps; it runs eagerly instead."""


class _LeafParams(Messenger):
    """Answer every ``param`` site from ``leaves`` (name -> unconstrained tensor).

    Inside the compiled graph the leaves are graph inputs, so reading them here (rather
    than through the ParamStore, which attaches weak references to its values) keeps
    the traced code free of Python-side effects.
    """

    def __init__(self, leaves: Dict[str, torch.Tensor], transforms: Dict[str, Any]):
        self.leaves, self.transforms = leaves, transforms

    def _pyro_param(self, msg: Message) -> None:
        name = msg["name"]
        if name not in self.leaves:
            raise _Unsupported(f"param {name!r} was not read by the initializing eager step")
        transform = self.transforms[name]
        leaf = self.leaves[name]
        msg["value"] = leaf if transform is None else transform(leaf)
        msg["done"] = True


class _ParamSlot:
    """One param as the compiled step sees it: its leaf, optimizer, group and state."""

    __slots__ = ("name", "leaf", "optimizer", "group", "state", "rule")

    def __init__(self, name: str, leaf: torch.Tensor, optim: PyroOptim):
        self.name, self.leaf = name, leaf
        self.optimizer = optim._optimizer_of.get(leaf)
        if self.optimizer is None:
            raise KeyError(name)  # not stepped yet: the next eager step starts it
        self.group = optim._group_of[leaf]
        self.state = self.optimizer.state.get(leaf)
        self.rule = _RULE_OF.get(type(self.optimizer))
        if self.rule is None:
            raise _Unsupported(
                f"optimizer {type(self.optimizer).__name__} has no compiled update "
                "(supported: Adam, SGD, ClippedAdam)"
            )
        _check_settings(name, self.rule, self.group, self.state)

    def current(self, optim: PyroOptim) -> bool:
        """Whether the leaf, its optimizer and its state are still the ones captured."""
        entry = _PARAM_STORE._entries.get(self.name)
        return (
            entry is not None
            and entry.leaf is self.leaf
            and optim._optimizer_of.get(self.leaf) is self.optimizer
            and self.optimizer.state.get(self.leaf) is self.state
        )

    def hyper(self) -> Tuple:
        """The hyper-parameters baked into the graph as constants (lr is an input)."""
        g = self.group
        if self.rule == _ADAM:
            decoupled = g.get("decoupled_weight_decay")
            return (g["betas"], g["eps"], g["weight_decay"], decoupled, g.get("maximize"))
        if self.rule == _SGD:
            return (
                g["momentum"],
                g["dampening"],
                g["nesterov"],
                g["weight_decay"],
                g.get("maximize"),
            )
        return (g["betas"], g["eps"], g["weight_decay"], g["clip_norm"], g["centered_variance"])

    def tensors(self) -> List[torch.Tensor]:
        """The optimizer-state tensors the graph reads and updates in place."""
        if self.rule == _ADAM:
            return [self.state["step"], self.state["exp_avg"], self.state["exp_avg_sq"]]
        if self.rule == _SGD:
            buf = self.state.get("momentum_buffer") if self.state else None
            return [] if buf is None else [buf]
        return [self.state["exp_avg"], self.state["exp_avg_sq"]]


def _check_settings(name: str, rule: str, group: Dict[str, Any], state) -> None:
    # fused/foreach/capturable pick torch's implementation, not the math: all compile alike.
    for flag in ("amsgrad", "differentiable"):
        if group.get(flag):
            raise _Unsupported(f"param {name!r}: optimizer option {flag}=True is not compiled")
    if rule == _ADAM and isinstance(group["lr"], torch.Tensor):
        raise _Unsupported(f"param {name!r}: a tensor lr is not compiled")
    if rule == _ADAM and not (state and isinstance(state.get("step"), torch.Tensor)):
        raise _Unsupported(f"param {name!r}: Adam state has no tensor 'step'")
    if rule == _CLIPPED_ADAM and not state:
        raise _Unsupported(f"param {name!r}: ClippedAdam state is missing")
    if rule == _SGD and group["momentum"] != 0 and not (state and "momentum_buffer" in state):
        raise _Unsupported(f"param {name!r}: SGD momentum buffer is missing")


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


# --------------------------------------------------------------------------- update rules
# Each rule reproduces one torch optimizer's single-tensor step; ``ok`` (a bool tensor)
# masks the whole update so that a non-finite step changes nothing, as in eager SVI.


def _adam_update(p, g, tensors, lr, hyper, ok) -> None:
    step_t, exp_avg, exp_avg_sq = tensors
    (beta1, beta2), eps, weight_decay, decoupled, maximize = hyper
    if maximize:
        g = -g
    param = p
    if weight_decay != 0:
        if decoupled:
            param = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
    step = step_t + 1
    new_avg = torch.lerp(exp_avg, g, 1 - beta1)
    new_avg_sq = exp_avg_sq * beta2 + (1 - beta2) * g * g
    step64 = step.to(torch.float64)
    bias_correction1 = 1 - beta1**step64
    bias_correction2_sqrt = (1 - beta2**step64).sqrt()
    step_size = (lr / bias_correction1).to(p.dtype)
    denom = new_avg_sq.sqrt() / bias_correction2_sqrt.to(p.dtype) + eps
    new_p = param - step_size * new_avg / denom
    step_t.copy_(torch.where(ok, step, step_t))
    exp_avg.copy_(torch.where(ok, new_avg, exp_avg))
    exp_avg_sq.copy_(torch.where(ok, new_avg_sq, exp_avg_sq))
    p.copy_(torch.where(ok, new_p, p))


def _sgd_update(p, g, tensors, lr, hyper, ok) -> None:
    momentum, dampening, nesterov, weight_decay, maximize = hyper
    if maximize:
        g = -g
    if weight_decay != 0:
        g = g + weight_decay * p
    if momentum != 0:
        (buf,) = tensors
        new_buf = buf * momentum + (1 - dampening) * g
        g = g + momentum * new_buf if nesterov else new_buf
        buf.copy_(torch.where(ok, new_buf, buf))
    p.copy_(torch.where(ok, p - lr.to(p.dtype) * g, p))


def _clipped_adam_update(p, g, tensors, step_size, hyper, ok) -> None:
    exp_avg, exp_avg_sq = tensors
    (beta1, beta2), eps, weight_decay, clip_norm, centered = hyper
    g = g.clamp(-clip_norm, clip_norm)
    if weight_decay != 0:
        g = g + weight_decay * p
    new_avg = exp_avg * beta1 + (1 - beta1) * g
    spread = g - new_avg if centered else g
    new_avg_sq = exp_avg_sq * beta2 + (1 - beta2) * spread * spread
    new_p = p - step_size.to(p.dtype) * new_avg / (new_avg_sq.sqrt() + eps)
    exp_avg.copy_(torch.where(ok, new_avg, exp_avg))
    exp_avg_sq.copy_(torch.where(ok, new_avg_sq, exp_avg_sq))
    p.copy_(torch.where(ok, new_p, p))


_UPDATE = {_ADAM: _adam_update, _SGD: _sgd_update, _CLIPPED_ADAM: _clipped_adam_update}


def _make_step_fn(elbo: ELBO, model, guide, slots: List[_ParamSlot], stable_update: bool):
    """The pure step: (leaves, state tensors, per-param scalars, args, kwargs) -> (loss, ok)."""
    names = [s.name for s in slots]
    transforms = {s.name: _PARAM_STORE._entries[s.name].transform for s in slots}
    rules = [(_UPDATE[s.rule], s.hyper()) for s in slots]

    def step_fn(leaves, states, scalars, args, kwargs):
        with torch.enable_grad():
            with _LeafParams(dict(zip(names, leaves)), transforms):
                loss, surrogate = elbo._loss_and_surrogate(model, guide, args, kwargs)
            grads = torch.autograd.grad(surrogate, leaves, allow_unused=True)
        # The traces hold graph intermediates; keeping them would make them graph outputs.
        elbo._last_traces = None
        with torch.no_grad():
            loss = loss.detach()
            ok = torch.isfinite(loss)
            if stable_update:
                for g in grads:
                    if g is not None:
                        ok = ok & torch.isfinite(g).all()
            for i, (update, hyper) in enumerate(rules):
                if grads[i] is not None:  # torch optimizers skip params without a grad
                    update(leaves[i], grads[i], states[i], scalars[i], hyper, ok)
        return loss, ok

    return _with_own_code(step_fn)


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


class _Plan:
    """The compiled step for one key, with the slots whose tensors it reads."""

    def __init__(self, step_fn: Callable, fn: Callable, slots: List[_ParamSlot]):
        self.step_fn, self.fn, self.slots = step_fn, fn, slots
        self.leaves = [s.leaf for s in slots]
        self.states = [s.tensors() for s in slots]
        self.warm = False  # ran once uncompiled
        self.compiled_once = False
        # ClippedAdam decays lr once per group and step; Adam/SGD read lr as an input.
        self.groups = list({id(s.group): s.group for s in slots}.values())
        self.scalar_values: Optional[List[float]] = None  # the rates ``scalars`` holds
        self.scalars: Optional[torch.Tensor] = None


class CompiledStep:
    """``SVI(..., compile=True)``'s step; returns None where the eager step must run.

    :param svi: the ``SVI`` whose model, guide, ELBO and optimizer are compiled.
    :param options: keyword arguments for ``torch.compile`` (``fullgraph=True`` and
        ``dynamic=False`` unless given), e.g. ``{"backend": "aot_eager"}``.

    Per key: step 1 runs eagerly (creates params and optimizer state), step 2 runs the
    step function uncompiled (warms Python-side caches), later steps run the compiled
    graph. Randomness stays random per call (inductor draws fresh seeds every call).

    Use it as ``SVI(model, guide, Adam({"lr": 0.01}), Trace_ELBO(), compile=True)``;
    ``tests/infer/test_compiled_step.py`` and ``tutorials/compiled_speedups.py`` show it
    end to end (a doctest cannot: dynamo resolves a doctest's globals by module name).
    """

    def __init__(self, svi, options: Optional[Dict[str, Any]] = None):
        self.svi = svi
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
        """How many keys have a compiled step (one graph each)."""
        return sum(1 for p in self._plans.values() if p.compiled_once)

    def __call__(self, args, kwargs, stable_update: bool, check_finite: bool):
        if self._disabled is not None:
            self._warn(self._disabled)
            return None
        key = (_signature(args), _signature(kwargs), stable_update)
        if key in self._eager_keys:
            return None
        plan = self._plans.get(key)
        if plan is None or not all(s.current(self.svi.optim) for s in plan.slots):
            plan = self._plan(key, stable_update)
            if plan is None:
                return None
        return self._run(key, plan, args, kwargs, stable_update, check_finite)

    # ------------------------------------------------------------------ internals

    def _why_not_compilable(self) -> Optional[str]:
        svi = self.svi
        if svi._elbo is None:
            return "the loss is a plain callable, not an ELBO"
        if type(svi.optim) is not PyroOptim:
            return f"{type(svi.optim).__name__} (e.g. an LR scheduler) has no compiled update"
        if svi.optim.pt_clip_args:
            return "clip_args (gradient clipping in PyroOptim) are not compiled"
        if getattr(svi.optim.pt_optim_constructor, "__name__", None) not in (
            "Adam",
            "SGD",
            "ClippedAdam",
        ):
            name = getattr(svi.optim.pt_optim_constructor, "__name__", "this optimizer")
            return f"{name} has no compiled update (supported: Adam, SGD, ClippedAdam)"
        if not hasattr(torch._dynamo.config, "trace_autograd_ops"):
            return f"torch {torch.__version__} cannot compile torch.autograd.grad"
        return None

    def _plan(self, key: Hashable, stable_update: bool) -> Optional[_Plan]:
        """Build the plan for ``key`` after its initializing eager step, else ask for one."""
        svi = self.svi
        if self._init_key != key or svi.step_count != self._init_count + 1:
            self._init_key, self._init_count = key, svi.step_count
            return None
        try:
            store = _PARAM_STORE._entries
            slots = [_ParamSlot(n, store[n].leaf, svi.optim) for n in svi._collector.names]
            fn = _make_step_fn(svi._elbo, svi.model, svi.guide, slots, stable_update)
        except KeyError:
            self._init_key, self._init_count = key, svi.step_count
            return None
        except _Unsupported as e:
            self._eager_keys[key] = str(e)
            self._warn(str(e))
            return None
        plan = _Plan(fn, torch.compile(fn, **self.options), slots)
        self._plans[key] = plan
        return plan

    def _scalars(self, plan: _Plan) -> torch.Tensor:
        """Per-param lr (Adam, SGD) or step size (ClippedAdam) for this step."""
        values = []
        for slot in plan.slots:
            group = slot.group
            if slot.rule == _CLIPPED_ADAM:
                lr = group["lr"] * group["lrd"]
                beta1, beta2 = group["betas"]
                step = slot.state["step"] + 1
                values.append(lr * math.sqrt(1 - beta2**step) / (1 - beta1**step))
            else:
                values.append(group["lr"])
        # Adam/SGD rates rarely change: reuse the tensor (on a GPU, no copy to the device
        # per step) until they do.
        if values != plan.scalar_values:
            plan.scalar_values = values
            plan.scalars = torch.tensor(values, dtype=torch.float64, device=plan.leaves[0].device)
        return plan.scalars

    def _run(self, key, plan: _Plan, args, kwargs, stable_update: bool, check_finite: bool):
        svi = self.svi
        inputs = (plan.leaves, plan.states, self._scalars(plan), args, kwargs)
        with validation_disabled():
            if not plan.warm:
                # One uncompiled run of the same function first: it fills the lazily built
                # Python caches (handler dispatch tables, ...) that compiled code guards on.
                try:
                    loss, ok = plan.step_fn(*inputs)
                except Exception as e:  # the eager step will raise it again if it is real
                    return self._give_up(key, _describe(e))
                plan.warm = True
            elif not plan.compiled_once:
                result = self._compile_and_run(plan, inputs)
                if isinstance(result, str):
                    return self._give_up(key, result)
                loss, ok = result
                plan.compiled_once = True
            else:
                try:
                    loss, ok = plan.fn(*inputs)
                except Exception as e:
                    if not _is_compile_error(e):
                        raise
                    result = self._compile_and_run(plan, inputs)  # a guard failed: retrace
                    if isinstance(result, str):
                        return self._give_up(key, result)
                    loss, ok = result
        if stable_update or check_finite:
            if not bool(ok):
                if stable_update:
                    svi.skipped_steps += 1
                    return loss
                raise FloatingPointError(svi._nonfinite_message(loss, plan.leaves))
        for slot in plan.slots:
            if slot.rule == _CLIPPED_ADAM:
                slot.state["step"] += 1
        for group in plan.groups:
            if "lrd" in group:
                group["lr"] *= group["lrd"]
        svi.step_count += 1
        return loss

    @staticmethod
    def _compile_and_run(plan: _Plan, inputs):
        """(Re)compile with ``torch.autograd.grad`` tracing on, then run; or say why not.

        The switch is on only while tracing: a compiled graph needs it no more, and
        toggling the config on every step would cost more than the step.
        """
        config = torch._dynamo.config
        saved = config.trace_autograd_ops
        config.trace_autograd_ops = True
        try:
            return plan.fn(*inputs)
        except Exception as e:
            return _describe(e)
        finally:
            config.trace_autograd_ops = saved

    def _give_up(self, key: Hashable, reason: str) -> None:
        self._eager_keys[key] = reason
        self._plans.pop(key, None)
        self._warn(reason)
        return None

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
