"""``ProjectedNormalReparam``: a ProjectedNormal as a normalized Normal vector."""

from ... import primitives as pyro
from ...distributions.delta import Delta
from ...distributions.torch import Normal
from .reparam import Reparam


class ProjectedNormalReparam(Reparam):
    """Replace ``x ~ ProjectedNormal(concentration)`` by ``x_normal ~ Normal(0, 1)`` (over
    the event) and ``x = normalize(concentration + x_normal)``. Latent sites only.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> from pyrolite.poutine.reparam_messenger import ReparamMessenger
    >>> from pyrolite.distributions.projected_normal import ProjectedNormal
    >>> def model():
    ...     return pyrolite.sample("x", ProjectedNormal(torch.tensor([1.0, 0.0])))
    >>> with ReparamMessenger({"x": ProjectedNormalReparam()}):
    ...     with poutine.condition(data={"x_normal": torch.tensor([2.0, 4.0])}):
    ...         x = model()
    >>> x
    tensor([0.6000, 0.8000])
    """

    def apply(self, msg):
        name, fn, value = msg["name"], msg["fn"], msg["value"]
        if msg["is_observed"]:
            raise NotImplementedError(
                f"ProjectedNormalReparam at site '{name}' cannot reparameterize an observed "
                "site (its value does not determine the normal draw); drop it from config."
            )
        fn, event_dim = self._unwrap(fn)
        concentration = fn.concentration
        normal = Normal(concentration.new_zeros(()), 1.0).expand(concentration.shape)
        x = pyro.sample(f"{name}_normal", self._wrap(normal.to_event(1), event_dim))
        x = concentration + x
        value = x / x.norm(dim=-1, keepdim=True)
        new_fn = Delta(value, event_dim=1 + event_dim).mask(False)
        return {"fn": new_fn, "value": value, "is_observed": True}
