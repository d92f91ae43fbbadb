"""Optimizer update rules as functions of tensors: one step of Adam, SGD and ClippedAdam.

Each rule updates a param and its optimizer state (torch's own layout: ``step``,
``exp_avg``, ``exp_avg_sq``, ``momentum_buffer``) in place, computing exactly what the
optimizer's ``step()`` does. Written against tensors only, they run eagerly
(``ClippedAdam.step``) and inside a ``torch.compile``-d SVI step alike. ``ok`` (a bool
tensor, or None) masks the whole update on the device: where it is False nothing
changes, so a non-finite step is dropped without a host sync.

>>> import torch
>>> p, g = torch.zeros(2), torch.tensor([100.0, -1.0])
>>> exp_avg, exp_avg_sq = torch.zeros(2), torch.zeros(2)
>>> hyper = ClippedAdamHyper(betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, clip_norm=10.0,
...                          centered_variance=False)
>>> clipped_adam_update(p, g, (exp_avg, exp_avg_sq), clipped_adam_step_size(0.1, 1, hyper), hyper)
>>> p
tensor([-0.1000,  0.1000])
"""

import math
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch

Scalar = Union[float, torch.Tensor]


class AdamHyper(NamedTuple):
    betas: Tuple[float, float]
    eps: float
    weight_decay: float
    decoupled_weight_decay: bool
    maximize: bool


class SGDHyper(NamedTuple):
    momentum: float
    dampening: float
    nesterov: bool
    weight_decay: float
    maximize: bool


class ClippedAdamHyper(NamedTuple):
    betas: Tuple[float, float]
    eps: float
    weight_decay: float
    clip_norm: float
    centered_variance: bool


def _assign(target: torch.Tensor, value: torch.Tensor, ok: Optional[torch.Tensor]) -> None:
    value = value if ok is None else torch.where(ok, value, target)
    if target.dim() == 0:
        # torch.compile (2.13) drops in-place writes to a 0-dim float64 graph input; a
        # write through a 1-element view of it is kept.
        target, value = target.view(1), value.reshape(1)
    target.copy_(value)


def adam_update(p, g, state: Sequence[torch.Tensor], lr: Scalar, hyper: AdamHyper, ok=None):
    """torch.optim.Adam's single-tensor step; ``state`` is ``(step, exp_avg, exp_avg_sq)``."""
    step_t, exp_avg, exp_avg_sq = state
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
    _assign(step_t, step, ok)
    _assign(exp_avg, new_avg, ok)
    _assign(exp_avg_sq, new_avg_sq, ok)
    _assign(p, new_p, ok)


def sgd_update(p, g, state: Sequence[torch.Tensor], lr: Scalar, hyper: SGDHyper, ok=None):
    """torch.optim.SGD's single-tensor step; ``state`` is ``(momentum_buffer,)`` or ``()``."""
    momentum, dampening, nesterov, weight_decay, maximize = hyper
    if maximize:
        g = -g
    if weight_decay != 0:
        g = g + weight_decay * p
    if momentum != 0:
        (buf,) = state
        new_buf = buf * momentum + (1 - dampening) * g
        g = g + momentum * new_buf if nesterov else new_buf
        _assign(buf, new_buf, ok)
    lr = lr.to(p.dtype) if isinstance(lr, torch.Tensor) else lr
    _assign(p, p - lr * g, ok)


def clipped_adam_step_size(lr: float, step: int, hyper: ClippedAdamHyper) -> float:
    """ClippedAdam's bias-corrected step size at (1-based) ``step`` for the decayed ``lr``."""
    beta1, beta2 = hyper.betas
    return lr * math.sqrt(1 - beta2**step) / (1 - beta1**step)


def clipped_adam_update(
    p, g, state: Sequence[torch.Tensor], step_size: Scalar, hyper: ClippedAdamHyper, ok=None
):
    """ClippedAdam's step; ``state`` is ``(exp_avg, exp_avg_sq)``, ``step_size`` from
    :func:`clipped_adam_step_size` (host-side: ClippedAdam keeps a Python step count)."""
    exp_avg, exp_avg_sq = state
    (beta1, beta2), eps, weight_decay, clip_norm, centered = hyper
    g = g.clamp(-clip_norm, clip_norm)
    if weight_decay != 0:
        g = g + weight_decay * p
    new_avg = exp_avg * beta1 + (1 - beta1) * g
    spread = g - new_avg if centered else g
    new_avg_sq = exp_avg_sq * beta2 + (1 - beta2) * spread * spread
    if isinstance(step_size, torch.Tensor):
        step_size = step_size.to(p.dtype)
    new_p = p - step_size * new_avg / (new_avg_sq.sqrt() + eps)
    _assign(exp_avg, new_avg, ok)
    _assign(exp_avg_sq, new_avg_sq, ok)
    _assign(p, new_p, ok)


class UpdateRule(NamedTuple):
    """How to step one param functionally: the update, its constants and its state."""

    update: Callable[..., None]
    hyper: Tuple
    state: List[torch.Tensor]
    host_step: bool  # True: the step size depends on a host-side counter (ClippedAdam)


class UnsupportedRule(Exception):
    """The optimizer (or one of its options) has no functional update rule."""


def has_update_rule(optimizer_class) -> bool:
    """Whether optimizers of this class have a functional rule (some options may still
    lack one: :func:`update_rule` says so per param)."""
    return optimizer_class in (torch.optim.Adam, torch.optim.SGD) or hasattr(
        optimizer_class, "functional_rule"
    )


def update_rule(optimizer: torch.optim.Optimizer, group: Dict[str, Any], state) -> UpdateRule:
    """The functional rule reproducing ``optimizer.step()`` for one param of ``group``.

    Raises :class:`UnsupportedRule` (saying why) for optimizers and options without one.
    """
    for flag in ("amsgrad", "differentiable"):
        if group.get(flag):
            raise UnsupportedRule(f"optimizer option {flag}=True has no functional rule")
    own_rule = getattr(optimizer, "functional_rule", None)
    if own_rule is not None:  # e.g. ClippedAdam, whose step() is built on its rule
        return own_rule(group, state)
    kind = type(optimizer)
    if kind is torch.optim.Adam:
        if isinstance(group["lr"], torch.Tensor):
            raise UnsupportedRule("a tensor lr has no functional rule")
        if not (state and isinstance(state.get("step"), torch.Tensor)):
            raise UnsupportedRule("Adam state has no tensor 'step'")
        hyper = AdamHyper(
            group["betas"],
            group["eps"],
            group["weight_decay"],
            bool(group.get("decoupled_weight_decay")),
            bool(group.get("maximize")),
        )
        tensors = [state["step"], state["exp_avg"], state["exp_avg_sq"]]
        return UpdateRule(adam_update, hyper, tensors, False)
    if kind is torch.optim.SGD:
        hyper = SGDHyper(
            group["momentum"],
            group["dampening"],
            group["nesterov"],
            group["weight_decay"],
            bool(group.get("maximize")),
        )
        buf = state.get("momentum_buffer") if state else None
        if hyper.momentum != 0 and buf is None:
            raise UnsupportedRule("SGD momentum buffer is missing")
        return UpdateRule(sgd_update, hyper, [] if buf is None else [buf], False)
    raise UnsupportedRule(
        f"optimizer {kind.__name__} has no functional update (supported: Adam, SGD, ClippedAdam)"
    )


def clipped_adam_hyper(group: Dict[str, Any]) -> ClippedAdamHyper:
    return ClippedAdamHyper(
        group["betas"],
        group["eps"],
        group["weight_decay"],
        group["clip_norm"],
        group["centered_variance"],
    )
