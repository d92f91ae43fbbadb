"""``infer_config``: add entries to each site's ``infer`` dict."""

from typing import Callable

from .messenger import Messenger
from .runtime import Message


class InferConfigMessenger(Messenger):
    """``config_fn(msg) -> dict`` is merged into ``msg["infer"]`` of sample and param sites.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> model = lambda: pyrolite.sample("b", dist.Bernoulli(0.5))
    >>> cfg = poutine.infer_config(model, lambda msg: {"enumerate": "parallel"})
    >>> poutine.trace(cfg).get_trace().nodes["b"]["infer"]
    {'enumerate': 'parallel'}
    """

    def __init__(self, config_fn: Callable[[Message], dict]):
        if not callable(config_fn):
            raise TypeError("poutine.infer_config expects config_fn(msg) -> dict")
        self.config_fn = config_fn

    def _pyro_sample(self, msg: Message) -> None:
        msg["infer"].update(self.config_fn(msg))

    def _pyro_param(self, msg: Message) -> None:
        msg["infer"].update(self.config_fn(msg))
