"""``GumbelSoftmaxReparam``: a RelaxedOneHotCategorical from uniform noise."""

import torch

from ... import primitives as pyro
from ...distributions.delta import Delta
from ...distributions.torch import Uniform
from .reparam import Reparam


class GumbelSoftmaxReparam(Reparam):
    """Replace ``x ~ RelaxedOneHotCategorical(temperature, logits)`` by
    ``x_uniform ~ Uniform(0, 1)`` (over the event) and
    ``x = softmax((logits - log(-log(x_uniform))) / temperature)``. Latent sites only.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> from pyrolite.poutine.reparam_messenger import ReparamMessenger
    >>> def model():
    ...     d = dist.RelaxedOneHotCategorical(torch.tensor(1.0), logits=torch.zeros(2))
    ...     return pyrolite.sample("x", d)
    >>> with ReparamMessenger({"x": GumbelSoftmaxReparam()}):
    ...     with poutine.condition(data={"x_uniform": torch.tensor([0.5, 0.5])}):
    ...         x = model()
    >>> x
    tensor([0.5000, 0.5000])
    """

    def apply(self, msg):
        name, fn = msg["name"], msg["fn"]
        if msg["is_observed"]:
            raise NotImplementedError(
                f"GumbelSoftmaxReparam at site '{name}' cannot reparameterize an observed "
                "site; drop it from config."
            )
        fn, event_dim = self._unwrap(fn)
        if not isinstance(fn, torch.distributions.RelaxedOneHotCategorical):
            raise TypeError(
                f"GumbelSoftmaxReparam at site '{name}' needs a RelaxedOneHotCategorical, "
                f"got {type(fn).__name__}"
            )
        logits = fn.logits
        proto = logits.new_zeros(())
        uniform = Uniform(proto, proto + 1).expand(logits.shape).to_event(1)
        u = pyro.sample(f"{name}_uniform", self._wrap(uniform, event_dim))
        gumbel = -(-u.log()).log()
        value = ((logits + gumbel) / fn.temperature.unsqueeze(-1)).softmax(-1)
        new_fn = Delta(value, event_dim=1 + event_dim).mask(False)
        return {"fn": new_fn, "value": value, "is_observed": True}
