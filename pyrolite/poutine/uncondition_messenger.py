"""``uncondition``: turn observed sites back into latent ones (e.g. to sample them)."""

from .messenger import Messenger
from .runtime import Message


class UnconditionMessenger(Messenger):
    """Sample observed sites; the observation is kept in ``infer["obs"]``.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> model = lambda: pyrolite.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor(9.0))
    >>> tr = poutine.trace(poutine.uncondition(model)).get_trace()
    >>> tr.nodes["x"]["is_observed"], tr.nodes["x"]["infer"]["was_observed"]
    (False, True)
    """

    def _pyro_sample(self, msg: Message) -> None:
        if msg["is_observed"]:
            msg["is_observed"] = False
            msg["infer"]["was_observed"] = True
            msg["infer"]["obs"] = msg["value"]
            msg["value"] = None
            msg["done"] = False
