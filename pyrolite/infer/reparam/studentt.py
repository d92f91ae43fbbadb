"""``StudentTReparam``: a StudentT as a Normal whose precision is Gamma distributed."""

from ... import primitives as pyro
from ...distributions.torch import Gamma, Normal
from .reparam import Reparam


class StudentTReparam(Reparam):
    """Replace ``x ~ StudentT(df, loc, scale)`` by ``x_gamma ~ Gamma(df/2, df/2)`` and
    ``x ~ Normal(loc, scale / sqrt(x_gamma))`` (observed sites stay observed).

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> from pyrolite.poutine.reparam_messenger import ReparamMessenger
    >>> def model():
    ...     return pyrolite.sample("x", dist.StudentT(3.0, 0.0, 1.0))
    >>> tr = poutine.trace(ReparamMessenger({"x": StudentTReparam()})(model)).get_trace()
    >>> [(n, type(tr.nodes[n]["fn"]).__name__) for n in ("x_gamma", "x")]
    [('x_gamma', 'Gamma'), ('x', 'Normal')]
    """

    def apply(self, msg):
        name, fn = msg["name"], msg["fn"]
        fn, event_dim = self._unwrap(fn)
        half_df = 0.5 * fn.df
        gamma = pyro.sample(f"{name}_gamma", self._wrap(Gamma(half_df, half_df), event_dim))
        new_fn = self._wrap(Normal(fn.loc, fn.scale * gamma.rsqrt()), event_dim)
        return {"fn": new_fn, "value": msg["value"], "is_observed": msg["is_observed"]}
