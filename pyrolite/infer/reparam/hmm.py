"""``LinearHMMReparam``: make a ``LinearHMM`` with non-Gaussian noise a ``GaussianHMM``
conditioned on auxiliary variables, by reparameterizing its noise distributions."""

from typing import Optional

import torch

from ...distributions.gaussian_hmm import GaussianHMM, LinearHMM
from ...distributions.torch import MultivariateNormal, TransformedDistribution
from .reparam import Reparam


def _to_mvn(reparam: Reparam, name: str, part: str, fn) -> MultivariateNormal:
    """A Gaussian noise distribution (one event dim) as a ``MultivariateNormal``."""
    if isinstance(fn, torch.distributions.MultivariateNormal):
        return fn
    base, event_dim = reparam._unwrap(fn)
    if isinstance(base, torch.distributions.Normal) and event_dim == 1:
        loc, scale = torch.broadcast_tensors(base.loc, base.scale)
        return MultivariateNormal(loc, scale_tril=torch.diag_embed(scale))
    raise ValueError(
        f"LinearHMMReparam at site '{name}': the {part} distribution is "
        f"{type(base).__name__} (event_dim {event_dim}), not Gaussian; pass a component "
        f"reparameterizer for it, e.g. LinearHMMReparam({part}=StudentTReparam()) or "
        "StableReparam(), that makes it Normal given auxiliary variables."
    )


class LinearHMMReparam(Reparam):
    """Reparameterize the ``init``, ``trans`` and ``obs`` noise of a ``LinearHMM`` with
    the given component reparameterizers (their sites are named ``{name}_init_...``,
    ``{name}_trans_...``, ``{name}_obs_...``), so that, given those auxiliary variables,
    the site is a ``GaussianHMM`` (in a ``TransformedDistribution`` when the observation
    distribution carried elementwise transforms) with a ``log_prob``.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> from pyrolite.poutine.reparam_messenger import ReparamMessenger
    >>> from pyrolite.infer.reparam.studentt import StudentTReparam
    >>> normal = lambda n: dist.Normal(torch.zeros(n), 1.0).to_event(1)
    >>> hmm = LinearHMM(normal(2), torch.eye(2), dist.StudentT(3.0, torch.zeros(2), 1.0)
    ...                 .to_event(1), torch.ones(2, 1), normal(1), duration=4)
    >>> def model():
    ...     return pyrolite.sample("x", hmm, obs=torch.zeros(4, 1))
    >>> rep = ReparamMessenger({"x": LinearHMMReparam(trans=StudentTReparam())})
    >>> tr = poutine.trace(rep(model)).get_trace()
    >>> [(n, type(tr.nodes[n]["fn"]).__name__) for n in ("x_trans_gamma", "x")]
    [('x_trans_gamma', 'Independent'), ('x', 'GaussianHMM')]
    """

    def __init__(
        self,
        init: Optional[Reparam] = None,
        trans: Optional[Reparam] = None,
        obs: Optional[Reparam] = None,
    ):
        self.init = init
        self.trans = trans
        self.obs = obs

    def _component(self, reparam, name: str, fn):
        if reparam is None:
            return fn
        previous, reparam.args_kwargs = reparam.args_kwargs, self.args_kwargs
        try:
            result = reparam.apply({"name": name, "fn": fn, "value": None, "is_observed": False})
        finally:
            reparam.args_kwargs = previous
        return result["fn"]

    def apply(self, msg):
        name, fn = msg["name"], msg["fn"]
        fn, event_dim = self._unwrap(fn)
        if not isinstance(fn, LinearHMM):
            raise TypeError(f"LinearHMMReparam at site '{name}' needs a LinearHMM, got {fn}")
        if fn.duration is None:
            raise ValueError(
                f"LinearHMMReparam at site '{name}' needs a LinearHMM with a duration; pass "
                "duration=T to LinearHMM."
            )
        batch_shape = fn.batch_shape
        time_shape = batch_shape + (fn.duration,)
        init = self._component(self.init, f"{name}_init", fn.initial_dist.expand(batch_shape))
        # Over time, the noise is one site with the time dim as an event dim.
        trans = self._component(
            self.trans, f"{name}_trans", fn.transition_dist.expand(time_shape).to_event(1)
        )
        obs = self._component(
            self.obs, f"{name}_obs", fn.observation_dist.expand(time_shape).to_event(1)
        )
        trans, obs = self._unwrap_time(trans), self._unwrap_time(obs)
        hmm = GaussianHMM(
            _to_mvn(self, name, "init", init),
            fn.transition_matrix,
            _to_mvn(self, name, "trans", trans),
            fn.observation_matrix,
            _to_mvn(self, name, "obs", obs),
            duration=fn.duration,
        )
        new_fn = TransformedDistribution(hmm, list(fn.transforms)) if fn.transforms else hmm
        new_fn = self._wrap(new_fn, event_dim)
        return {"fn": new_fn, "value": msg["value"], "is_observed": msg["is_observed"]}

    def _unwrap_time(self, fn):
        """Give back the time dim as a batch dim (a component's ``fn`` has it as an event)."""
        base, event_dim = self._unwrap(fn)
        if isinstance(base, torch.distributions.MultivariateNormal):
            return base
        return base.to_event(event_dim - 1) if event_dim > 1 else base
