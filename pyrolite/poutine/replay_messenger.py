"""``replay``: reuse the sample values of an earlier trace (and, optionally, param values)."""

from typing import Dict, Optional

from .messenger import Messenger
from .runtime import Message


class ReplayMessenger(Messenger):
    """Give each latent sample site the value it has in ``trace``.

    This is how an ELBO scores the model at the guide's draws: the model is run
    under ``replay(model, trace=guide_trace)``.
    """

    def __init__(self, trace=None, params: Optional[Dict] = None):
        if trace is None and params is None:
            raise ValueError("poutine.replay needs a trace or params to replay")
        self.trace = trace
        self.params = params

    def _pyro_sample(self, msg: Message) -> None:
        if self.trace is None or msg["is_observed"]:
            return
        guide_site = self.trace.nodes.get(msg["name"])
        if guide_site is None:
            return
        if guide_site["type"] != "sample" or guide_site["is_observed"]:
            raise RuntimeError(
                f"site '{msg['name']}' must be a latent sample site in the replayed trace, "
                f"but it is {'observed' if guide_site['type'] == 'sample' else guide_site['type']} "
                "there; rename one of the two sites."
            )
        msg["done"] = True
        msg["value"] = guide_site["value"]
        msg["infer"] = guide_site["infer"]

    def _pyro_param(self, msg: Message) -> None:
        if self.params is not None and msg["name"] in self.params:
            msg["done"] = True
            msg["value"] = self.params[msg["name"]]
