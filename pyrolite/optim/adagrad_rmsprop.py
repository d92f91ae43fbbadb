"""``AdagradRMSProp``: ADVI's step-size sequence (Kucukelbir et al. 2017, eqs. 10-11).

The torch optimizer behind :func:`pyrolite.optim.AdagradRMSProp` (Pyro's semantics).
"""

from typing import Callable, Iterable, Optional, Union

import torch
from torch.optim import Optimizer


class AdagradRMSProp(Optimizer):
    """Adagrad's decaying step with an RMSProp running average of the squared gradient.

    With ``s_1 = g_1**2`` and ``s_k = t * g_k**2 + (1 - t) * s_{k-1}``, step ``k`` moves the
    parameter by ``-eta * k**(-1/2 + delta) * g_k / (1 + sqrt(s_k))``.

    :param params: parameters or parameter groups to optimize.
    :param eta: step-size scale (default ``1.0``).
    :param delta: modulates the exponent of the step-size decay (default ``1e-16``).
    :param t: weight of the newest squared gradient in the running average (default ``0.1``).

    >>> import torch
    >>> w = torch.zeros(1, requires_grad=True)
    >>> opt = AdagradRMSProp([w], eta=1.0)
    >>> w.grad = torch.tensor([3.0])
    >>> opt.step()  # -1 * 3 / (1 + 3)
    >>> w.detach()
    tensor([-0.7500])
    """

    def __init__(
        self,
        params: Iterable[Union[torch.Tensor, dict]],
        eta: float = 1.0,
        delta: float = 1e-16,
        t: float = 0.1,
    ) -> None:
        if eta <= 0.0:
            raise ValueError(f"AdagradRMSProp: invalid eta={eta}; use eta > 0")
        if not 0.0 < t <= 1.0:
            raise ValueError(f"AdagradRMSProp: invalid t={t}; use 0 < t <= 1")
        super().__init__(params, dict(eta=eta, delta=delta, t=t))

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], float]] = None) -> Optional[float]:
        """Perform one optimization step on every parameter that has a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            eta, delta, t = group["eta"], group["delta"], group["t"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = 0
                    state["sum"] = grad * grad
                else:
                    state["sum"] = t * grad * grad + (1.0 - t) * state["sum"]
                state["step"] += 1
                lr = eta * state["step"] ** (-0.5 + delta)
                p.addcdiv_(grad, state["sum"].sqrt().add_(1.0), value=-lr)
        return loss
