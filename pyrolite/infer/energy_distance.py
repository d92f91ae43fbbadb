"""``EnergyDistance``: Pyro's likelihood-free posterior-predictive energy-distance loss.

``E||X - x||^β - ½ E||X - X'||^β - λ E log p(Z)`` with ``Z ~ q``, ``X ~ p(x | Z)``: the
observed sites are sampled (reparameterized) instead of scored, so the model's likelihood
needs no density. A callable loss (not an ELBO), as in Pyro: ``SVI`` takes it as one.
"""

import math
from typing import Callable

import torch

from ..poutine.block_messenger import BlockMessenger
from ..poutine.plate_messenger import vectorize
from ..poutine.trace_messenger import run_traced
from ..poutine.uncondition_messenger import UnconditionMessenger
from ..poutine.util import max_plate_nesting_of, prune_subsample_sites_

PARTICLE_PLATE = "num_particles_vectorized"


def _unconditioned(model: Callable) -> Callable:
    def run(*args, **kwargs):
        with UnconditionMessenger():
            return model(*args, **kwargs)

    return run


class EnergyDistance:
    """Posterior predictive energy distance, with optional regularization by the prior.

    :param beta: the exponent β, in the open interval (0, 2) (small for heavy tails).
    :param prior_scale: λ ≥ 0, the weight of ``-E_q log p(Z)`` (summed over the
        particles, as Pyro does); model params are trained only if it is positive.
    :param num_particles: particles drawn at once (≥ 2: the ``X - X'`` term needs pairs).
    :param max_plate_nesting: plate dims of model and guide (guessed by one run if not
        given); the particles sit in one more plate left of them.

    Needs a fully reparameterized guide and reparameterized likelihoods. ``loss`` is not
    implemented (as in Pyro): call the object, ``loss_fn(model, guide, *args)``, for the
    differentiable loss.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> pyrolite.clear_param_store()
    >>> data = torch.tensor([1.0, 2.0, 3.0])
    >>> def model():
    ...     loc = pyrolite.sample("loc", dist.Normal(0.0, 10.0))
    ...     with pyrolite.plate("data", 3):
    ...         pyrolite.sample("x", dist.Normal(loc, 1.0), obs=data)
    >>> def guide():
    ...     pyrolite.sample("loc", dist.Delta(pyrolite.param("m", torch.tensor(2.0))))
    >>> _ = pyrolite.set_rng_seed(0)
    >>> EnergyDistance(num_particles=4)(model, guide).shape
    torch.Size([])
    """

    def __init__(
        self,
        beta: float = 1.0,
        prior_scale: float = 0.0,
        num_particles: int = 2,
        max_plate_nesting: float = float("inf"),
    ):
        if not (isinstance(beta, (float, int)) and 0 < beta < 2):
            raise ValueError(f"Expected beta in (0,2), actual {beta}")
        if not (isinstance(prior_scale, (float, int)) and prior_scale >= 0):
            raise ValueError(f"Expected prior_scale >= 0, actual {prior_scale}")
        if not (isinstance(num_particles, int) and num_particles >= 2):
            raise ValueError(f"Expected num_particles >= 2, actual {num_particles}")
        self.beta = beta
        self.prior_scale = prior_scale
        self.num_particles = num_particles
        self.vectorize_particles = True
        self.max_plate_nesting = max_plate_nesting

    def _guess_max_plate_nesting(self, model: Callable, guide: Callable, args, kwargs) -> int:
        with torch.no_grad(), BlockMessenger():
            guide_trace = run_traced(guide, args, kwargs)
            model_trace = run_traced(model, args, kwargs, replay_trace=guide_trace)
        return max_plate_nesting_of(model_trace, guide_trace)

    def _traces(self, model: Callable, guide: Callable, args, kwargs):
        if self.max_plate_nesting == float("inf"):
            self.max_plate_nesting = self._guess_max_plate_nesting(model, guide, args, kwargs)
        dim = -1 - self.max_plate_nesting
        guide = vectorize(guide, PARTICLE_PLATE, self.num_particles, dim)
        model = vectorize(_unconditioned(model), PARTICLE_PLATE, self.num_particles, dim)
        guide_trace = run_traced(guide, args, kwargs)
        model_trace = run_traced(model, args, kwargs, replay_trace=guide_trace)
        prune_subsample_sites_(guide_trace)
        prune_subsample_sites_(model_trace)
        return model_trace, guide_trace, dim

    def __call__(self, model: Callable, guide: Callable, *args, **kwargs) -> torch.Tensor:
        """The differentiable loss (a scalar tensor) from ``num_particles`` fresh draws."""
        model_trace, guide_trace, dim = self._traces(model, guide, args, kwargs)
        draws, observed = [], []
        log_prior = 0.0
        for site in model_trace.nodes.values():
            if site["type"] != "sample":
                continue
            if site["infer"].get("was_observed"):
                x, obs = self._flat_draws(site, dim)
                draws.append(x)
                observed.append(obs)
            elif self.prior_scale > 0:
                log_prior = log_prior + _scaled_log_prob_sum(site)
        # One distance over all observed sites together: they are one data point.
        loss = self._energy(torch.cat(draws, -1), torch.cat(observed, -1))
        if self.prior_scale > 0:
            loss = loss - self.prior_scale * log_prior
        return torch.as_tensor(loss)

    def _flat_draws(self, site: dict, dim: int):
        """The site's draws as ``(num_particles, n)`` rows and its data as ``(n,)``."""
        data, samples = site["infer"]["obs"], site["value"]
        k = self.num_particles
        dim = dim - len(site["fn"].event_shape)  # the particle dim, counted from the right
        if samples.dim() < -dim:
            samples = samples.reshape((1,) * (-dim - samples.dim()) + samples.shape)
        right = samples.shape[samples.dim() + dim + 1 :]  # the dims right of the particles
        samples = samples.reshape((k,) + right)
        shape = torch.broadcast_shapes(right, data.shape)
        x = samples.expand((k,) + shape).reshape(k, -1)
        obs = data.expand(shape).reshape(-1)
        return x, obs

    def _energy(self, x: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        k = x.shape[0]
        to_data = (x - obs).norm(dim=-1).pow(self.beta).mean()
        # Pairs i < j only: the norm of a zero difference has no gradient (NaN).
        i, j = torch.triu_indices(k, k, offset=1, device=x.device)
        between = (x[i] - x[j]).norm(dim=-1).pow(self.beta).mean()
        return to_data - 0.5 * between

    def loss(self, *args, **kwargs) -> float:
        """Not implemented, as in Pyro: call the object for the (surrogate) loss."""
        raise NotImplementedError(
            "EnergyDistance implements only surrogate loss: call it, "
            "loss_fn(model, guide, *args), for a differentiable scalar"
        )


def _scaled_log_prob_sum(site: dict) -> torch.Tensor:
    log_prob = site["fn"].log_prob(site["value"])
    if site.get("mask") is not None:
        log_prob = log_prob * site["mask"]
    scale = site.get("scale", 1.0)
    if not (isinstance(scale, (int, float)) and math.isclose(scale, 1.0)):
        log_prob = log_prob * scale
    return log_prob.sum()
