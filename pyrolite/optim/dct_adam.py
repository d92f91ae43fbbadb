"""``DCTAdam``: ClippedAdam that also steps time-series parameters in the frequency domain.

The torch optimizer behind :func:`pyrolite.optim.DCTAdam` (Pyro's semantics, experimental).
"""

import math
from typing import Callable, Iterable, Optional, Tuple, Union

import torch
from torch.optim import Optimizer

from ..ops.tensor_utils import dct, idct


def _to_frequency(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``x`` and its DCT side by side along ``dim``: twice as long there."""
    spectrum = dct(x, dim)
    return torch.cat([x, spectrum], dim)


def _from_frequency(y: torch.Tensor, dim: int) -> torch.Tensor:
    """The adjoint of :func:`_to_frequency`: the time half plus the inverse DCT of the rest."""
    time, spectrum = y.chunk(2, dim)
    return time + idct(spectrum, dim)


class DCTAdam(Optimizer):
    """:class:`~pyrolite.optim.clipped_adam.ClippedAdam` (without weight decay) that, for a
    parameter carrying ``._pyro_dct_dim`` (a negative time dimension), runs Adam on the
    gradient concatenated with its orthonormal DCT along that dimension, and maps the step
    back with the transform's adjoint, so slow modes of a time series move as fast as fast
    ones.

    :param params: parameters or parameter groups to optimize.
    :param lr: learning rate (default ``1e-3``).
    :param betas: running-average coefficients for the gradient and its square.
    :param eps: added to the denominator for numerical stability.
    :param clip_norm: elementwise bound on the gradient, applied (in place, to ``p.grad``,
        as Pyro does) before the transform.
    :param lrd: learning-rate decay factor applied once per step (default ``1.0``).
    :param subsample_aware: update the squared-gradient average only where the gradient is
        nonzero (elements outside a subsample), default ``False``.

    >>> import torch
    >>> w = torch.zeros(2, requires_grad=True)
    >>> opt = DCTAdam([w], lr=0.1)
    >>> w.grad = torch.tensor([100.0, -1.0])
    >>> opt.step()
    >>> w.detach()
    tensor([-0.1000,  0.1000])
    """

    def __init__(
        self,
        params: Iterable[Union[torch.Tensor, dict]],
        lr: float = 1e-3,
        betas: Tuple = (0.9, 0.999),
        eps: float = 1e-8,
        clip_norm: float = 10.0,
        lrd: float = 1.0,
        subsample_aware: bool = False,
    ) -> None:
        if lr < 0.0:
            raise ValueError(f"DCTAdam: invalid learning rate lr={lr}; use lr >= 0")
        if clip_norm <= 0.0:
            raise ValueError(f"DCTAdam: invalid clip_norm={clip_norm}; use clip_norm > 0")
        if not 0.0 <= betas[0] < 1.0 or not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"DCTAdam: invalid betas={betas}; each must lie in [0, 1)")
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            clip_norm=clip_norm,
            lrd=lrd,
            subsample_aware=subsample_aware,
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
            group["lr"] *= group["lrd"]
            for p in group["params"]:
                if p.grad is not None:
                    self._step_param(group, p)
        return loss

    def _step_param(self, group: dict, p: torch.Tensor) -> None:
        # As in Pyro, the clamp is applied to ``p.grad`` itself.
        grad = p.grad.clamp_(-group["clip_norm"], group["clip_norm"])
        time_dim = getattr(p, "_pyro_dct_dim", None)
        if time_dim is not None:
            if time_dim >= 0:
                raise ValueError(
                    f"DCTAdam: param._pyro_dct_dim={time_dim} must be a negative dimension "
                    f"(counted from the right) of the param's shape {tuple(p.shape)}"
                )
            grad = _to_frequency(grad, time_dim)
        state = self.state[p]
        if len(state) == 0:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(grad)
            state["exp_avg_sq"] = torch.zeros_like(grad)
        subsample = getattr(p, "_pyro_subsample", None) if group["subsample_aware"] else None
        if subsample and time_dim is not None:
            raise NotImplementedError(
                "DCTAdam: subsample_aware=True with a param that has both _pyro_subsample and "
                "_pyro_dct_dim is not supported; subsample another dimension or turn it off"
            )
        if not subsample:
            state["step"] += 1
            step = state["step"]
            beta1, beta2 = group["betas"]
            exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
            exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            step_size = group["lr"] * math.sqrt(1 - beta2**step) / (1 - beta1**step)
            denom = exp_avg_sq.sqrt().add_(group["eps"])
            if time_dim is None:
                p.addcdiv_(exp_avg, denom, value=-step_size)
            else:
                p.add_(_from_frequency(exp_avg / denom, time_dim), alpha=-step_size)
            return
        # Only the subsampled slices were seen: each element counts its own steps, so bias
        # correction follows how often that element appeared.
        if not isinstance(state["step"], torch.Tensor):
            state["step"] = torch.full_like(p, float(state["step"]))
        parts = {k: state[k] for k in ("step", "exp_avg", "exp_avg_sq")}
        target = p
        for dim, index in subsample.items():
            grad = grad.index_select(dim, index)
            target = target.index_select(dim, index)
            parts = {k: v.index_select(dim, index) for k, v in parts.items()}
        step = parts["step"] + 1
        new_p, exp_avg, exp_avg_sq = self._adam(group, target, grad, parts, step, None)
        for name, value in (("step", step), ("exp_avg", exp_avg), ("exp_avg_sq", exp_avg_sq)):
            _scatter(state[name], subsample, value)
        _scatter(p, subsample, new_p)

    @staticmethod
    def _adam(group, p, grad, state, step, time_dim):
        """ClippedAdam's step on a subsample (out of place, to be scattered back): the new
        param and running averages; ``step`` is a per-element tensor."""
        beta1, beta2 = group["betas"]
        exp_avg = state["exp_avg"] * beta1 + (1 - beta1) * grad
        exp_avg_sq = state["exp_avg_sq"] * beta2 + (1 - beta2) * grad * grad
        if isinstance(step, torch.Tensor):
            step_size = group["lr"] * (1 - beta2**step).sqrt() / (1 - beta1**step)
        else:
            step_size = group["lr"] * math.sqrt(1 - beta2**step) / (1 - beta1**step)
        update = exp_avg / (exp_avg_sq.sqrt() + group["eps"])
        if time_dim is not None:
            update = _from_frequency(update, time_dim)
        return p - step_size * update, exp_avg, exp_avg_sq


def _scatter(dest: torch.Tensor, subsample: dict, value: torch.Tensor) -> None:
    """Write ``value`` into the slices of ``dest`` picked by ``{dim: index}``."""
    if not subsample:
        dest.copy_(value)
        return
    (dim, index), *rest = subsample.items()
    part = dest.index_select(dim, index)
    _scatter(part, dict(rest), value)
    dest.index_copy_(dim, index, part)
