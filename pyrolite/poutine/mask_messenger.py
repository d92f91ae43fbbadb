"""``mask``: zero the log-probs of the sites (or entries) where the mask is False."""

from typing import Union

import torch

from .messenger import Messenger
from .runtime import Message


class MaskMessenger(Messenger):
    """Combine ``mask`` (bool or bool tensor) with each site's mask.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> def model():
    ...     with pyrolite.plate("d", 2):
    ...         pyrolite.sample("x", dist.Normal(0.0, 1.0), obs=torch.zeros(2))
    >>> tr = poutine.trace(poutine.mask(model, mask=torch.tensor([True, False]))).get_trace()
    >>> round(tr.log_prob_sum().item(), 4)
    -0.9189
    """

    def __init__(self, mask: Union[bool, torch.Tensor]):
        if isinstance(mask, torch.Tensor):
            if mask.dtype != torch.bool:
                raise TypeError(
                    f"poutine.mask expects a bool tensor, got dtype {mask.dtype}; "
                    "convert with mask.bool()"
                )
        elif not isinstance(mask, bool):
            raise TypeError(
                f"poutine.mask expects a bool or bool tensor, got {type(mask).__name__}"
            )
        self.mask = mask

    def _combine(self, mask):
        return self.mask if mask is None else mask & self.mask

    def _pyro_sample(self, msg: Message) -> None:
        msg["mask"] = self._combine(msg["mask"])

    def _pyro_get_mask(self, msg: Message) -> None:
        msg["value"] = self._combine(msg["value"])
