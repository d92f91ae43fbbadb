"""``condition``: fix sample sites to observed values."""

from typing import Dict, Union

from .messenger import Messenger
from .runtime import Message
from .trace_struct import Trace


class ConditionMessenger(Messenger):
    """Treat the sites named in ``data`` as observed at the given values.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> def model():
    ...     return pyrolite.sample("z", dist.Normal(0.0, 1.0))
    >>> poutine.condition(model, data={"z": torch.tensor(0.5)})()
    tensor(0.5000)
    """

    def __init__(self, data: Union[Dict, Trace]):
        if not isinstance(data, (dict, Trace)):
            raise TypeError(
                f"poutine.condition expects data as a dict {{site name: value}} or a Trace, "
                f"got {type(data).__name__}"
            )
        self.data = data

    def _pyro_sample(self, msg: Message) -> None:
        name = msg["name"]
        if isinstance(self.data, Trace):
            if name not in self.data.nodes:
                return
            value = self.data.nodes[name]["value"]
        else:
            if name not in self.data:
                return
            value = self.data[name]
        msg["value"] = value
        msg["is_observed"] = value is not None
