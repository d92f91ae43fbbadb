"""``ELBO``: the base of every estimator: particles, plate nesting, traces, checks.

Subclasses implement ``_particle_loss(model_trace, guide_trace)`` returning the
(detached) negative ELBO of one particle and the surrogate whose gradient is
the unbiased gradient estimate; everything else (``loss``,
``loss_and_grads``, ``differentiable_loss``, vectorized particles, validation)
lives here once.
"""

from typing import Callable, Iterator, Optional, Tuple

import torch

from ..distributions.util import is_identically_zero
from ..poutine.block_messenger import BlockMessenger
from ..poutine.plate_messenger import PlateMessenger
from ..poutine.trace_messenger import run_traced
from ..poutine.trace_struct import Trace
from ..poutine.util import check_site_shape, prune_subsample_sites_
from ..util import is_validation_enabled, validation_disabled
from .util import check_model_guide_match


def _max_plate_nesting_of(*traces: Trace) -> int:
    nesting = 0
    for trace in traces:
        for site in trace.nodes.values():
            for frame in site.get("cond_indep_stack", ()):
                if frame.dim is not None:
                    nesting = max(nesting, -frame.dim)
    return nesting


class ELBOModule(torch.nn.Module):
    """``elbo(model, guide)``: an ``nn.Module`` whose forward is the differentiable loss.

    ``parameters()`` yields the ParamStore leaves that model and guide read (known
    after the first forward) plus the parameters of model/guide if they are modules,
    so plain ``torch.optim`` loops work.
    """

    def __init__(self, model: Callable, guide: Callable, elbo: "ELBO"):
        super().__init__()
        self.model, self.guide, self.elbo = model, guide, elbo
        self._param_names: list = []

    def forward(self, *args, **kwargs) -> torch.Tensor:
        from .svi import ParamCollector

        collector = ParamCollector()
        with collector:
            loss = self.elbo.differentiable_loss(self.model, self.guide, *args, **kwargs)
        for name in collector.names:
            if name not in self._param_names:
                self._param_names.append(name)
        return loss

    def parameters(self, recurse: bool = True):
        from ..params.param_store import _PARAM_STORE

        seen = set()
        for name in self._param_names:
            if name in _PARAM_STORE:
                leaf = _PARAM_STORE.unconstrained(name)
                if id(leaf) not in seen:
                    seen.add(id(leaf))
                    yield leaf
        for part in (self.model, self.guide):
            if isinstance(part, torch.nn.Module):
                for p in part.parameters(recurse):
                    if id(p) not in seen:
                        seen.add(id(p))
                        yield p


class ELBO:
    """Common options of the estimators.

    :param num_particles: samples per gradient estimate.
    :param max_plate_nesting: how many plate dims model/guide use (guessed from one run
        if needed and not given).
    :param vectorize_particles: draw all particles at once in one extra outer plate
        (no Python loop).
    :param strict_enumeration_warning: warn when enumeration is requested but unused.
    :param retain_graph: passed to ``backward``.
    """

    def __init__(
        self,
        num_particles: int = 1,
        max_plate_nesting: float = float("inf"),
        max_iarange_nesting: Optional[int] = None,
        vectorize_particles: bool = False,
        strict_enumeration_warning: bool = True,
        ignore_jit_warnings: bool = False,
        jit_options: Optional[dict] = None,
        retain_graph: Optional[bool] = None,
        tail_adaptive_beta: float = -1.0,
    ):
        if max_iarange_nesting is not None:
            max_plate_nesting = max_iarange_nesting
        if not isinstance(num_particles, int) or num_particles < 1:
            raise ValueError(f"num_particles must be a positive int, got {num_particles!r}")
        self.num_particles = num_particles
        self.max_plate_nesting = max_plate_nesting
        self.vectorize_particles = vectorize_particles
        self.strict_enumeration_warning = strict_enumeration_warning
        self.ignore_jit_warnings = ignore_jit_warnings
        self.jit_options = jit_options
        self.retain_graph = retain_graph
        self.tail_adaptive_beta = tail_adaptive_beta
        # Structures already validated: validation runs once per model/guide structure.
        self._validated: set = set()
        self._last_key: Optional[tuple] = None
        self._last_traces: Optional[Tuple[Trace, Trace]] = None

    def __call__(self, model: Callable, guide: Callable) -> ELBOModule:
        return ELBOModule(model, guide, self)

    # --- traces ------------------------------------------------------------------

    def _guess_max_plate_nesting(self, model, guide, args, kwargs) -> int:
        with torch.no_grad(), BlockMessenger():
            guide_trace = run_traced(guide, args, kwargs)
            model_trace = run_traced(model, args, kwargs, replay_trace=guide_trace)
        return _max_plate_nesting_of(model_trace, guide_trace)

    def _vectorized(self, fn: Callable) -> Callable:
        num_particles, dim = self.num_particles, -1 - self.max_plate_nesting

        def wrapped(*args, **kwargs):
            with PlateMessenger("num_particles_vectorized", num_particles, dim=dim):
                return fn(*args, **kwargs)

        return wrapped

    def _get_trace(self, model, guide, args, kwargs) -> Tuple[Trace, Trace]:
        """One (model_trace, guide_trace) pair with log-probs computed.

        Validation (torch's argument/support checks, model-guide matching, site
        shapes) runs in full for each new model/guide structure; once a structure
        has passed, its later steps skip it (a non-finite loss is still caught by
        SVI and traced to its site). A changed structure is re-run with checks on.
        """
        validate = is_validation_enabled()
        if validate and self._last_key in self._validated:
            with validation_disabled():
                model_trace, guide_trace = self._run_pair(model, guide, args, kwargs)
            if self._structure_key(model_trace, guide_trace) in self._validated:
                return model_trace, guide_trace
        model_trace, guide_trace = self._run_pair(model, guide, args, kwargs)
        if validate:
            self._validate(model_trace, guide_trace)
        return model_trace, guide_trace

    def _run_pair(self, model, guide, args, kwargs) -> Tuple[Trace, Trace]:
        guide_trace = run_traced(guide, args, kwargs)
        model_trace = run_traced(model, args, kwargs, replay_trace=guide_trace)
        # Both traces are this step's own: prune in place rather than copy them.
        prune_subsample_sites_(guide_trace)
        prune_subsample_sites_(model_trace)
        self._last_traces = (model_trace, guide_trace)
        self._compute_log_probs(model_trace, guide_trace)
        return model_trace, guide_trace

    @staticmethod
    def _structure_key(model_trace: Trace, guide_trace: Trace) -> tuple:
        return tuple(model_trace.nodes), tuple(guide_trace.nodes)

    def _compute_log_probs(self, model_trace: Trace, guide_trace: Trace) -> None:
        guide_trace.compute_score_parts()
        if _all_reparameterized(guide_trace):
            # The loss reads only the model's per-site sums; score-function costs need the
            # per-element log-probs (Rao-Blackwellization by plates).
            model_trace.compute_log_prob_sums()
        else:
            model_trace.compute_log_prob()

    def _validate(self, model_trace: Trace, guide_trace: Trace) -> None:
        key = self._structure_key(model_trace, guide_trace)
        self._last_key = key
        if key in self._validated:
            return
        check_model_guide_match(model_trace, guide_trace)
        nesting = None if self.max_plate_nesting == float("inf") else self.max_plate_nesting
        if nesting is None:
            nesting = _max_plate_nesting_of(model_trace, guide_trace)
        if self.vectorize_particles:
            nesting += 1
        for trace in (model_trace, guide_trace):
            for site in trace.nodes.values():
                if site["type"] == "sample":
                    check_site_shape(site, nesting)
        self._validated.add(key)

    def _get_traces(self, model, guide, args, kwargs) -> Iterator[Tuple[Trace, Trace]]:
        if self.vectorize_particles and self.num_particles > 1:
            if self.max_plate_nesting == float("inf"):
                self.max_plate_nesting = self._guess_max_plate_nesting(model, guide, args, kwargs)
            yield self._get_trace(self._vectorized(model), self._vectorized(guide), args, kwargs)
        else:
            for _ in range(self.num_particles):
                yield self._get_trace(model, guide, args, kwargs)

    # --- losses --------------------------------------------------------------------

    def _particle_loss(self, model_trace: Trace, guide_trace: Trace):
        """(detached -ELBO, surrogate loss) of one particle (or all vectorized ones)."""
        raise NotImplementedError

    def _loss_and_surrogate(self, model, guide, args, kwargs):
        if self.num_particles == 1:
            return self._particle_loss(*self._get_trace(model, guide, args, kwargs))
        loss, surrogate = 0.0, 0.0
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            particle_loss, particle_surrogate = self._particle_loss(model_trace, guide_trace)
            loss = loss + particle_loss
            surrogate = surrogate + particle_surrogate
        if self.num_particles > 1:
            loss, surrogate = loss / self.num_particles, surrogate / self.num_particles
        return loss, surrogate

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        """-ELBO as a tensor whose gradient is the estimator's gradient."""
        loss, surrogate = self._loss_and_surrogate(model, guide, args, kwargs)
        if not isinstance(surrogate, torch.Tensor) or not surrogate.requires_grad:
            return loss if isinstance(loss, torch.Tensor) else torch.tensor(loss)
        if surrogate is loss:
            return surrogate
        return loss.detach() + (surrogate - surrogate.detach())

    def loss(self, model, guide, *args, **kwargs) -> float:
        """-ELBO estimate, no gradients."""
        with torch.no_grad():
            loss, _ = self._loss_and_surrogate(model, guide, args, kwargs)
        return float(loss)

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        """-ELBO estimate; accumulates the gradient estimate into the params' ``.grad``."""
        return float(self._backward(model, guide, args, kwargs))

    def _backward(self, model, guide, args, kwargs) -> torch.Tensor:
        """Backpropagate the surrogate; return the detached loss tensor (no host sync)."""
        loss, surrogate = self._loss_and_surrogate(model, guide, args, kwargs)
        if isinstance(surrogate, torch.Tensor) and surrogate.requires_grad:
            surrogate.backward(retain_graph=self.retain_graph)
        if not isinstance(loss, torch.Tensor):
            loss = torch.tensor(float(loss))
        return loss.detach()


def _all_reparameterized(guide_trace: Trace) -> bool:
    """Whether no guide site has a score-function term."""
    for site in guide_trace.nodes.values():
        if site["type"] == "sample" and not is_identically_zero(site["score_parts"][1]):
            return False
    return True
