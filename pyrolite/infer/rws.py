"""``ReweightedWakeSleep``: Reweighted Wake-Sleep (Bornschein & Bengio 2015; Le et al. 2019).

Two losses from ``K`` guide draws with log weights ``log w_k = log p(x, z_k) - log q(z_k)``
(the draws detached: no pathwise gradients): wake-theta ``-log(1/K Σ w_k)`` (the IWAE
bound, for the model's params) and wake-phi ``-Σ_k w̄_k log q(z_k)`` (``w̄`` the normalized
weights, fixed), an importance-sampled estimate of the gradient of ``KL(p(z|x) || q)``
for the guide's params; with ``insomnia < 1`` the guide loss mixes in sleep-phi,
``-log q(z | x)`` at draws ``(z, x)`` from the model.
"""

import math
from typing import Callable, List, NamedTuple, Optional, Tuple

import torch

from ..distributions.util import scale_and_mask
from ..poutine.plate_messenger import vectorize
from ..poutine.trace_messenger import run_traced
from ..poutine.trace_struct import Trace, sum_all_but
from ..poutine.uncondition_messenger import UnconditionMessenger
from ..poutine.util import prune_subsample_sites_
from .elbo import ELBO, PARTICLE_PLATE, TracePair, sum_terms


class _Particle(NamedTuple):
    log_w: torch.Tensor  # (particles or 1,): gradients reach the model's params only
    log_q: torch.Tensor  # (particles or 1,): log q at the detached draws (guide's params)


class InvalidOption(ValueError, AssertionError):
    """A bad ``ReweightedWakeSleep`` option (Pyro raises ``AssertionError`` for these)."""


class ReweightedWakeSleep(ELBO):
    """Reweighted Wake-Sleep, as Pyro's ``ReweightedWakeSleep``.

    :param num_particles: ``K`` guide draws per estimate (> 1).
    :param insomnia: the guide loss is ``insomnia * wake_phi + (1 - insomnia) * sleep_phi``
        (in ``[0, 1]``; 1 by default: wake-phi only).
    :param model_has_params: False skips the wake phase when ``insomnia == 0`` (pure
        sleep: nothing to learn in the model).
    :param num_sleep_particles: model draws for sleep-phi (default ``num_particles``).
    :param vectorize_particles: draw the particles at once (default True).

    ``loss`` and ``loss_and_grads`` return ``(wake_theta_loss, phi_loss)``; as an SVI loss
    the step's loss is their sum (the gradients of each reach only its own params). For
    sleep-phi the guide must take the observations as a keyword argument
    ``observations`` (a dict by site name), as in Pyro.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> pyrolite.clear_param_store()
    >>> def model():
    ...     pyrolite.sample("z", dist.Normal(0.0, 1.0))
    >>> def guide():
    ...     pyrolite.sample("z", dist.Normal(0.0, 1.0))
    >>> theta_loss, phi_loss = ReweightedWakeSleep(num_particles=3).loss(model, guide)
    >>> abs(float(theta_loss))  # q == p: every weight is 1, log of their mean is 0
    0.0
    """

    log_probs = "none"
    guide_log_probs = "none"

    def __init__(
        self,
        num_particles: int = 2,
        insomnia: float = 1.0,
        model_has_params: bool = True,
        num_sleep_particles: Optional[int] = None,
        vectorize_particles: bool = True,
        max_plate_nesting: float = float("inf"),
        strict_enumeration_warning: bool = True,
    ):
        if not 0.0 <= insomnia <= 1.0:
            raise InvalidOption(f"insomnia should be in [0, 1], got {insomnia!r}")
        if not isinstance(num_particles, int) or num_particles < 2:
            raise InvalidOption(
                "Reweighted Wake Sleep needs to be run with more than one particle "
                f"(num_particles={num_particles!r}): its weights are normalized over them."
            )
        super().__init__(
            num_particles=num_particles,
            max_plate_nesting=max_plate_nesting,
            vectorize_particles=vectorize_particles,
            strict_enumeration_warning=strict_enumeration_warning,
        )
        self.insomnia = insomnia
        self.model_has_params = model_has_params
        self.num_sleep_particles = (
            num_particles if num_sleep_particles is None else num_sleep_particles
        )
        self._losses: Optional[Tuple[torch.Tensor, torch.Tensor]] = None

    # --- wake: the guide's draws, detached, replayed in the model -------------------------

    def run_pair(self, model: Callable, guide: Callable, args, kwargs) -> TracePair:
        guide_trace = run_traced(guide, args, kwargs)
        # The model sees the draws detached: wake-theta's gradient is the model's only.
        model_trace = run_traced(model, args, kwargs, replay_trace=guide_trace.copy().detach_())
        prune_subsample_sites_(guide_trace)
        prune_subsample_sites_(model_trace)
        self.last_traces = (model_trace, guide_trace)
        return model_trace, guide_trace

    def particle(self, plan, model_trace: Trace, guide_trace: Trace) -> _Particle:
        keep = (-1 - int(self.max_plate_nesting),) if self.vectorized else ()
        log_p = [
            model_trace.log_prob_sum_keeping(name, keep)
            for name, site in model_trace.nodes.items()
            if site["type"] == "sample"
        ]
        log_q = []
        for site in guide_trace.nodes.values():
            if site["type"] != "sample":
                continue
            value = site["value"]
            value = value.detach() if isinstance(value, torch.Tensor) else value
            lq = site["fn"].log_prob(value, *site["args"], **site["kwargs"])
            log_q.append(sum_all_but(scale_and_mask(lq, site["scale"], site["mask"]), keep))
        log_p_total, log_q_total = sum_terms(log_p), sum_terms(log_q)
        log_w = torch.as_tensor(log_p_total - log_q_total.detach() if log_q else log_p_total)
        log_q_total = torch.as_tensor(log_q_total)
        return _Particle(log_w.reshape(-1), log_q_total.reshape(-1))

    def combine(self, results: List[_Particle]):
        log_w = torch.cat([r.log_w for r in results])
        log_q = torch.cat([r.log_q for r in results])
        theta = -(torch.logsumexp(log_w, 0) - math.log(log_w.numel()))
        weights = torch.softmax(log_w.detach(), 0)
        wake_phi = -(weights * log_q).sum()
        return theta, wake_phi

    # --- the estimate: wake, then sleep ---------------------------------------------------

    def _estimate(self, model, guide, args, kwargs):
        wake = self.insomnia > 0 or self.model_has_params
        theta = phi = torch.zeros(())
        if wake:
            theta, phi = super()._estimate(model, guide, args, kwargs)
            phi = self.insomnia * phi
        if self.insomnia < 1:
            phi = phi + (1.0 - self.insomnia) * self.sleep_phi_loss(model, guide, args, kwargs)
        self._losses = (theta.detach(), phi.detach())
        total = theta + phi
        return total.detach(), total

    def sleep_phi_loss(self, model: Callable, guide: Callable, args, kwargs) -> torch.Tensor:
        """``-log q(z | x)`` averaged over draws ``(z, x)`` of the model (its observed
        sites sampled), the guide given ``observations={site: x}``."""
        model = UnconditionMessenger()(model)
        count = self.num_sleep_particles
        if self.vectorize_particles and count > 1:
            if self.max_plate_nesting == float("inf"):
                self.max_plate_nesting = self._guess_max_plate_nesting(model, guide, args, kwargs)
            dim = -1 - int(self.max_plate_nesting)
            model = vectorize(model, PARTICLE_PLATE, count, dim)
            guide = vectorize(guide, PARTICLE_PLATE, count, dim)
            runs = 1
        else:
            runs = count
        total = []
        for _ in range(runs):
            with torch.no_grad():
                model_trace = run_traced(model, args, kwargs)
            observations = {
                name: site["value"]
                for name, site in model_trace.nodes.items()
                if site["type"] == "sample" and site["infer"].get("was_observed")
            }
            guide_kwargs = dict(kwargs, observations=observations)
            guide_trace = run_traced(guide, args, guide_kwargs, replay_trace=model_trace)
            prune_subsample_sites_(guide_trace)
            guide_trace.compute_log_prob()
            total.append(
                sum_terms(
                    [
                        site["log_prob_sum"]
                        for site in guide_trace.nodes.values()
                        if site["type"] == "sample" and not site["is_observed"]
                    ]
                )
            )
        return -sum_terms(total) / count

    def loss(self, model, guide, *args, **kwargs) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(wake_theta_loss, phi_loss)``, no gradients."""
        super().loss(model, guide, *args, **kwargs)
        return self._losses

    def loss_and_grads(self, model, guide, *args, **kwargs) -> Tuple[float, float]:
        """``(wake_theta_loss, phi_loss)``; accumulates each one's gradient into its params'
        ``.grad`` (the model's and the guide's)."""
        super().loss_and_grads(model, guide, *args, **kwargs)
        theta, phi = self._losses
        return float(theta), float(phi)
