"""``ClippedAdam``: Adam with elementwise gradient clamping and learning-rate decay.

The torch optimizer behind :func:`pyrolite.optim.ClippedAdam` (Pyro's semantics).
"""

from typing import Callable, Iterable, Optional, Tuple, Union

import torch
from torch.optim import Optimizer

from .functional import (
    UnsupportedRule,
    UpdateRule,
    clipped_adam_hyper,
    clipped_adam_step_size,
    clipped_adam_update,
)


class ClippedAdam(Optimizer):
    """Adam whose gradients are clamped elementwise to ``[-clip_norm, clip_norm]`` and whose
    learning rate is multiplied by ``lrd`` at the start of every step.

    :param params: parameters or parameter groups to optimize.
    :param lr: learning rate (default ``1e-3``).
    :param betas: running-average coefficients for the gradient and its square.
    :param eps: added to the denominator for numerical stability.
    :param weight_decay: L2 penalty added to the (clamped) gradient.
    :param clip_norm: elementwise bound on the gradient (default ``10.0``).
    :param lrd: learning-rate decay factor applied once per step (default ``1.0``).
    :param centered_variance: track the variance of ``grad - exp_avg`` instead of ``grad``.

    A group's learning rate decays only on steps where at least one of its parameters has a
    gradient, so a parameter that is skipped keeps its learning rate (as when Pyro keeps one
    optimizer per parameter). The clamp is applied to a copy; ``p.grad`` is left as it was.

    The first step moves each coordinate by ``lr * lrd`` against the sign of its gradient:

    >>> import torch
    >>> w = torch.zeros(2, requires_grad=True)
    >>> opt = ClippedAdam([w], lr=0.1, lrd=0.5)
    >>> w.grad = torch.tensor([100.0, -1.0])
    >>> opt.step()
    >>> w.detach()
    tensor([-0.0500,  0.0500])
    >>> opt.param_groups[0]["lr"]
    0.05
    """

    def __init__(
        self,
        params: Iterable[Union[torch.Tensor, dict]],
        lr: float = 1e-3,
        betas: Tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        clip_norm: float = 10.0,
        lrd: float = 1.0,
        centered_variance: bool = False,
    ) -> None:
        if lr < 0.0:
            raise ValueError(f"ClippedAdam: invalid learning rate lr={lr}; use lr >= 0")
        if clip_norm <= 0.0:
            raise ValueError(f"ClippedAdam: invalid clip_norm={clip_norm}; use clip_norm > 0")
        if not 0.0 <= betas[0] < 1.0 or not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"ClippedAdam: invalid betas={betas}; each must lie in [0, 1)")
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            clip_norm=clip_norm,
            lrd=lrd,
            centered_variance=centered_variance,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], float]] = None) -> Optional[float]:
        """Perform one optimization step on every parameter that has a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            group["lr"] *= group["lrd"]
            hyper = clipped_adam_hyper(group)
            for p in params:
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                step_size = clipped_adam_step_size(group["lr"], state["step"], hyper)
                state_tensors = (state["exp_avg"], state["exp_avg_sq"])
                clipped_adam_update(p, p.grad, state_tensors, step_size, hyper)
        return loss

    def functional_rule(self, group: dict, state) -> UpdateRule:
        """The functional form of :meth:`step` for one param (see ``optim.functional``)."""
        if not state:
            raise UnsupportedRule("ClippedAdam state is missing")
        tensors = [state["exp_avg"], state["exp_avg_sq"]]
        return UpdateRule(clipped_adam_update, clipped_adam_hyper(group), tensors, True)
