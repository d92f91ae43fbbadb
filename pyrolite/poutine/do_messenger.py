"""``do``: causal intervention; the program continues with the intervened value."""

import numbers
from typing import Dict

import torch

from .messenger import Messenger
from .runtime import Message, apply_stack


class DoMessenger(Messenger):
    """Intervene on the sites named in ``data``.

    Unlike ``condition``, the intervened value does not enter the log-joint: the
    site is still sampled under its own name (its factual value is recorded), and
    the program downstream receives the intervention. The intervened copy is
    named ``<name>__CF`` and hidden from outer handlers.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> def model():
    ...     z = pyrolite.sample("z", dist.Normal(0.0, 1.0))
    ...     return z + 1
    >>> poutine.do(model, data={"z": torch.tensor(2.0)})()
    tensor(3.)
    """

    def __init__(self, data: Dict):
        if not isinstance(data, dict):
            raise TypeError(f"poutine.do expects data as a dict, got {type(data).__name__}")
        self.data = data

    def _pyro_sample(self, msg: Message) -> None:
        intervention = self.data.get(msg["name"])
        if intervention is None or msg.get("_intervened_by") is self:
            return
        if not isinstance(intervention, (numbers.Number, torch.Tensor)):
            raise TypeError(
                f"poutine.do: the intervention for site '{msg['name']}' must be a number or "
                f"tensor, got {type(intervention).__name__}"
            )
        # Sample the factual site through the whole stack under its own name.
        factual = msg.copy()
        factual["_intervened_by"] = self
        # The inner handlers see it afresh: reset what they set, so plates and scales
        # inside this handler are not applied twice.
        factual["cond_indep_stack"] = ()
        factual["scale"] = 1.0
        factual["mask"] = None
        factual["infer"] = dict(msg["infer"])
        apply_stack(factual)
        msg["name"] = msg["name"] + "__CF"
        msg["value"] = intervention
        msg["is_observed"] = True
        msg["stop"] = True
