"""``CSIS``: compiled sequential importance sampling (Le et al. 2017, inference compilation).

Training fits the guide to ``KL(p(z | x) || q(z | x))`` averaged over the model's own
draws ``(z, x)``: the loss is ``-log q(z | x)`` at those draws, the guide given the drawn
observations as ``observations={site: value}``. Inference is :class:`Importance` with the
trained guide as proposal.
"""

from typing import Callable, List, Optional

import torch

from ..params.param_store import get_param_store
from ..poutine.param_reads_messenger import ParamReadsMessenger
from ..poutine.trace_messenger import run_traced
from ..poutine.trace_struct import Trace
from ..poutine.uncondition_messenger import UnconditionMessenger
from ..poutine.util import prune_subsample_sites_
from .importance import Importance
from .util import check_model_guide_match


class CSIS(Importance):
    """Compiled sequential importance sampling, as Pyro's ``CSIS``.

    :param model: takes the observed values as a keyword argument ``observations``
        (a dict by site name).
    :param guide: also takes ``observations``.
    :param optim: a pyrolite optimizer (``pyrolite.optim.Adam({...})``).
    :param num_inference_samples: importance samples drawn by ``run``.
    :param training_batch_size: model draws per ``step``.
    :param validation_batch_size: model draws in the validation batch.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite.optim import Adam
    >>> pyrolite.clear_param_store()
    >>> def model(observations={"x": torch.tensor(0.0)}):
    ...     z = pyrolite.sample("z", dist.Normal(0.0, 1.0))
    ...     pyrolite.sample("x", dist.Normal(z, 1.0), obs=observations["x"])
    >>> def guide(observations=None):
    ...     loc = pyrolite.param("w", torch.tensor(0.0)) * observations["x"]
    ...     pyrolite.sample("z", dist.Normal(loc, 1.0))
    >>> csis = CSIS(model, guide, Adam({"lr": 0.01}), training_batch_size=4)
    >>> isinstance(csis.step(), float)
    True
    """

    def __init__(
        self,
        model: Callable,
        guide: Callable,
        optim,
        num_inference_samples: int = 10,
        training_batch_size: int = 10,
        validation_batch_size: int = 20,
    ):
        super().__init__(model, guide, num_inference_samples)
        self.model, self.guide, self.optim = model, guide, optim
        self.training_batch_size = training_batch_size
        self.validation_batch_size = validation_batch_size
        self.validation_batch: Optional[List[Trace]] = None

    def set_validation_batch(self, *args, **kwargs) -> None:
        """Draw ``validation_batch_size`` model traces and keep them for
        :meth:`validation_loss`."""
        self.validation_batch = [
            self._sample_from_joint(*args, **kwargs) for _ in range(self.validation_batch_size)
        ]

    def step(self, *args, **kwargs) -> float:
        """One gradient step on a fresh training batch; returns its loss."""
        with ParamReadsMessenger() as reads:
            loss = self.loss_and_grads(True, None, *args, **kwargs)
        store = get_param_store()
        names = [n for n in dict.fromkeys(reads.names) if n in store]
        # Only the guide's params get gradients (the model's draws are taken without).
        params = [p for p in (store.unconstrained(n) for n in names) if p.grad is not None]
        self.optim(params)
        for p in params:
            p.grad = None
        return loss

    def loss_and_grads(self, grads: bool, batch: Optional[List[Trace]], *args, **kwargs) -> float:
        """``E_p(z, x)[-log q(z | x)]`` estimated on ``batch`` (model traces; a fresh
        ``training_batch_size`` of them when None); with ``grads``, its gradient is
        accumulated into the guide's params' ``.grad``."""
        if batch is None:
            batch = [
                self._sample_from_joint(*args, **kwargs) for _ in range(self.training_batch_size)
            ]
        total = 0.0
        for model_trace in batch:
            with torch.set_grad_enabled(grads):
                guide_trace = self._matched_guide_trace(model_trace, *args, **kwargs)
                guide_trace.compute_log_prob()
                particle = -sum(
                    site["log_prob_sum"]
                    for site in guide_trace.nodes.values()
                    if site["type"] == "sample" and not site["is_observed"]
                ) / len(batch)
            if grads and isinstance(particle, torch.Tensor) and particle.requires_grad:
                particle.backward()
            total += float(particle.detach()) if isinstance(particle, torch.Tensor) else particle
        return total

    def validation_loss(self, *args, **kwargs) -> float:
        """The loss on the validation batch (drawn first if not set)."""
        if self.validation_batch is None:
            self.set_validation_batch(*args, **kwargs)
        return self.loss_and_grads(False, self.validation_batch, *args, **kwargs)

    def _sample_from_joint(self, *args, **kwargs) -> Trace:
        with torch.no_grad():
            return run_traced(UnconditionMessenger()(self.model), args, kwargs)

    def _matched_guide_trace(self, model_trace: Trace, *args, **kwargs) -> Trace:
        model_trace = model_trace.copy()  # the batch's traces stay as drawn
        observations = {}
        for name, site in model_trace.nodes.items():
            if site["type"] == "sample" and site["infer"].get("was_observed"):
                site["is_observed"] = True  # observed again: the guide need not sample it
                observations[name] = site["value"]
        guide_trace = run_traced(
            self.guide, args, dict(kwargs, observations=observations), replay_trace=model_trace
        )
        check_model_guide_match(model_trace, guide_trace)
        prune_subsample_sites_(guide_trace)
        return guide_trace
