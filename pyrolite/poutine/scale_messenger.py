"""``scale``: multiply the log-probs of the sites inside by a positive factor."""

import numbers
from typing import Union

import torch

from .messenger import Messenger
from .runtime import Message


class ScaleMessenger(Messenger):
    """Scale log-probs, e.g. by ``N / batch_size`` for hand-rolled minibatching.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> def model():
    ...     pyrolite.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor(0.0))
    >>> tr = poutine.trace(poutine.scale(model, scale=2.0)).get_trace()
    >>> round(tr.log_prob_sum().item(), 4)
    -1.8379
    """

    def __init__(self, scale: Union[float, torch.Tensor]):
        if isinstance(scale, numbers.Number):
            if not scale > 0:
                raise ValueError(f"poutine.scale expects a positive scale, got {scale}")
        elif isinstance(scale, torch.Tensor):
            if scale.device.type == "cpu" and not bool((scale > 0).all()):
                raise ValueError(f"poutine.scale expects positive scales, got {scale}")
        else:
            raise TypeError(f"poutine.scale expects a number or tensor, got {type(scale).__name__}")
        self.scale = scale

    def _pyro_sample(self, msg: Message) -> None:
        msg["scale"] = self.scale * msg["scale"]

    def _pyro_param(self, msg: Message) -> None:
        msg["scale"] = self.scale * msg["scale"]
