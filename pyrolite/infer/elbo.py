"""``ELBO``: the one estimator pipeline every estimator plugs into.

::

    get_traces   one trace source: particles (sequential, or one vectorized plate),
                 plate-nesting guess, subsample pruning, validation, log-probs; the
                 estimator declares what it needs (``graph_type``, ``log_probs``,
                 extra handlers through ``wrap``)
    plan         work that depends only on a trace's structure, cached per structure
    particle     the per-particle tensor math -> whatever ``combine`` reads
    combine      merge the particles into (loss, surrogate): the mean by default

An estimator is a small subclass that implements ``particle`` (and, where it needs
them, ``plan``, ``combine``, ``wrap``). State kept between steps (the running averages
of ``TraceGraph_ELBO``'s baselines) lives in the estimator: read with ``read_state``,
proposed with ``propose_state`` during an estimate, and committed in place by
``after_update`` once the step is applied (so a failed step changes none of it); it is
part of ``get_state``/``set_state`` and so of SVI's checkpoints. ``loss``, ``loss_and_grads``,
``differentiable_loss``, ``backward`` and ``ELBOModule`` live here once; the ``Jit*``
variants come from ``jit_elbo.jit_variant``; SVI's step engines call
``loss_and_surrogate`` and ``after_update``.
"""

import math
from contextlib import contextmanager
from typing import Any, Callable, Dict, Hashable, Iterator, List, Mapping, Optional, Tuple

import torch

from ..distributions.util import is_identically_zero
from ..params.param_store import get_param_store
from ..poutine.block_messenger import BlockMessenger
from ..poutine.param_reads_messenger import ParamReadsMessenger
from ..poutine.plate_messenger import vectorize
from ..poutine.trace_messenger import run_traced
from ..poutine.trace_struct import Trace
from ..poutine.util import check_site_shape, max_plate_nesting_of, prune_subsample_sites_
from ..process_state import (
    get_rng_state,
    is_validation_enabled,
    set_rng_state,
    validation_disabled,
    validation_enabled,
    warn_once,
)
from .util import check_model_guide_match, observation_check

PARTICLE_PLATE = "num_particles_vectorized"

TracePair = Tuple[Trace, Trace]


class ELBOModule(torch.nn.Module):
    """``elbo(model, guide)``: an ``nn.Module`` whose forward is the differentiable loss.

    Its own parameters are the ParamStore leaves that model and guide read (known after
    the first forward), the very tensors the store holds, under their store names; the
    parameters of model/guide, if they are modules, come under ``model.``/``guide.``.
    So plain ``torch.optim`` loops, ``state_dict``/``load_state_dict`` (in place) and
    ``DistributedDataParallel`` act on the ParamStore. A pickled copy (a spawned worker)
    carries no params: run its loss once in that process before wrapping it in DDP.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite.infer import Trace_ELBO
    >>> pyrolite.clear_param_store()
    >>> def model():
    ...     pyrolite.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor(1.0))
    >>> def guide():
    ...     pyrolite.param("loc", torch.zeros(2))
    >>> loss_fn = Trace_ELBO()(model, guide)
    >>> _ = loss_fn()  # creates the params
    >>> [(name, p is pyrolite.get_param_store().unconstrained(name))
    ...  for name, p in loss_fn.named_parameters()]
    [('loc', True)]
    """

    def __init__(self, model: Callable, guide: Callable, elbo: "ELBO"):
        super().__init__()
        self.model, self.guide, self.elbo = model, guide, elbo
        self._param_names: Dict[str, None] = {}
        self._keys_loaded: List[str] = []
        self.register_load_state_dict_pre_hook(_load_store_leaves)
        self.register_load_state_dict_post_hook(_unmark_store_leaves_missing)

    def forward(self, *args, **kwargs) -> torch.Tensor:
        """The differentiable loss. State the estimator keeps between steps (baselines'
        running averages) advances here, with each forward: a plain torch loop has no
        "step applied" point to wait for."""
        with ParamReadsMessenger() as reads:
            loss = self.elbo.differentiable_loss(self.model, self.guide, *args, **kwargs)
        self._param_names.update(dict.fromkeys(reads.names))
        self._refresh_params()
        self.elbo.after_update(None)
        return loss

    def _refresh_params(self) -> None:
        """Make this module's own parameters the ParamStore leaves read so far, by name.

        Forward, ``named_parameters`` and ``state_dict`` call it, so a leaf the store
        replaced (``store[name] = value``, a clear) is picked up there; a wrapper built
        earlier (an optimizer, ``DistributedDataParallel``) keeps the leaves it was given.
        """
        store = get_param_store()
        owned = {id(p) for child in self.children() for p in child.parameters()}
        names = list(self._param_names)
        leaves = {}
        for name, leaf in zip(names, store.leaves(names)):
            if leaf is None or id(leaf) in owned:
                continue  # gone from the store, or reported by model/guide under their names
            if name not in self._parameters and hasattr(self, name):
                raise ValueError(
                    f"ELBOModule: param {name!r} has the name of an attribute of the module "
                    "(model, guide or an nn.Module attribute), so it cannot be one of its "
                    "parameters; rename the param"
                )
            leaves[name] = leaf
        # Torch's own walks (an outer module's parameters(), DDP's broadcast, state_dict)
        # read ``_parameters``; ``register_parameter`` would need an ``nn.Parameter``, a
        # new tensor, so the store's plain leaves go in directly (as PyroModule does).
        self._parameters.clear()
        self._parameters.update(leaves)

    def named_parameters(self, *args, **kwargs) -> Iterator[Tuple[str, torch.Tensor]]:
        self._refresh_params()
        return super().named_parameters(*args, **kwargs)

    def state_dict(self, *args, **kwargs) -> Dict[str, Any]:
        self._refresh_params()
        return super().state_dict(*args, **kwargs)

    def __getstate__(self) -> Dict[str, Any]:
        # The leaves are the process's ParamStore, which does not travel with the module:
        # an unpickled copy (a spawned worker) finds them in its own store on first use.
        state = super().__getstate__()
        state["_parameters"] = {}
        return state


def _load_store_leaves(
    module: ELBOModule,
    state_dict: Dict[str, Any],
    prefix: str,
    local_metadata: Dict[str, Any],
    strict: bool,
    missing_keys: List[str],
    unexpected_keys: List[str],
    error_msgs: List[str],
) -> None:
    """``load_state_dict`` pre-hook: write the store leaves' values in place.

    The keys are taken out of ``state_dict`` so that torch neither assigns new tensors
    (``assign=True``) nor reads a dotted store name (``"linear.weight"``) as a submodule;
    the post-hook then drops them from the missing keys torch reports for that.
    """
    for name, leaf in module.named_parameters(recurse=False):
        key = prefix + name
        if key not in state_dict:
            continue  # torch reports it missing
        value = state_dict.pop(key)
        module._keys_loaded.append(key)
        if not isinstance(value, torch.Tensor):
            error_msgs.append(f"param {key!r}: expected a tensor, got {type(value).__name__}")
        elif value.shape != leaf.shape:
            error_msgs.append(
                f"size mismatch for {key}: copying a param with shape {tuple(value.shape)} "
                f"from checkpoint, the shape in current model is {tuple(leaf.shape)}."
            )
        else:
            with torch.no_grad():
                leaf.copy_(value)


def _unmark_store_leaves_missing(module: ELBOModule, incompatible_keys: Any) -> None:
    """``load_state_dict`` post-hook: the keys the pre-hook loaded are not missing."""
    loaded = set(module._keys_loaded)
    module._keys_loaded.clear()
    incompatible_keys.missing_keys[:] = [
        k for k in incompatible_keys.missing_keys if k not in loaded
    ]


class ELBO:
    """The base of every estimator: common options and the pipeline.

    :param num_particles: samples per gradient estimate.
    :param max_plate_nesting: how many plate dims model/guide use (guessed from one run
        if needed and not given).
    :param vectorize_particles: draw all particles at once in one extra outer plate
        (no Python loop); with one particle there is nothing to vectorize and no plate.
    :param strict_enumeration_warning: warn when sites ask for enumeration that this
        estimator does not do (or, for enumerating estimators, when none is asked for).
    :param ignore_jit_warnings: for the ``Jit*`` variants: drop the tracer's warnings.
    :param jit_options: for the ``Jit*`` variants: keyword arguments of ``torch.jit.trace``.
    :param retain_graph: passed to ``backward``.
    :param tail_adaptive_beta: the exponent of Pyro's ``TraceTailAdaptive_ELBO``, in
        ``[-1, 0)``; stored for it, unused by the other estimators.

    What a subclass declares (class attributes):

    * ``graph_type``: ``"flat"``, or ``"dense"`` for traces with an edge from every
      earlier sample site to every later one (dependency tracking).
    * ``log_probs``: the model log-probs ``particle`` reads: ``"elementwise"``
      (``site["log_prob"]``), ``"sums"`` (``site["log_prob_sum"]`` only, computed
      without the per-element tensor where a distribution can), ``"auto"`` (sums
      when no guide site has a score-function term), or ``"none"`` (``particle``
      computes what it needs).
    * ``guide_log_probs``: ``"all"`` (``score_parts`` and ``log_prob`` on every guide
      sample site) or ``"none"`` (``particle`` computes what it needs). A run with
      validation on computes every log-prob whatever is declared: the checks read them.
    * ``enumerates``: whether the estimator sums out sites marked for enumeration.
    * ``keeps_state``: whether estimates may read and propose state kept between steps
      (``read_state``/``propose_state``); the ``Jit*`` variants then pass it in and out
      of their graphs.
    """

    graph_type = "flat"
    log_probs = "auto"
    guide_log_probs = "all"
    enumerates = False
    keeps_state = False

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
        if not -1.0 <= tail_adaptive_beta < 0.0:
            raise ValueError(f"tail_adaptive_beta must lie in [-1, 0), got {tail_adaptive_beta!r}")
        self.num_particles = num_particles
        self.max_plate_nesting = max_plate_nesting
        self.vectorize_particles = vectorize_particles
        self.strict_enumeration_warning = strict_enumeration_warning
        self.ignore_jit_warnings = ignore_jit_warnings
        self.jit_options = jit_options
        self.retain_graph = retain_graph
        self.tail_adaptive_beta = tail_adaptive_beta
        # The traces of the latest eager particle, to name the culprit of a bad step.
        self.last_traces: Optional[TracePair] = None
        # Structures already validated: validation runs once per model/guide structure.
        self._validated: set = set()
        self._last_key: Optional[tuple] = None
        self._trusting = False  # inside an estimate that skips the checks of a known structure
        # Observations checked on the device in estimates of a known structure: this
        # estimate's (site, value, bool tensor), and the values already found valid.
        self._checks: List[Tuple[int, str, torch.Tensor, Tuple[str, str], torch.Tensor]] = []
        # Set by the Jit* variants while they trace with validation on: put the observation
        # checks in the graph (the tracer itself runs with validation off).
        self.graph_checks = False
        self._checked: Dict[Tuple[int, str], Tuple[torch.Tensor, int]] = {}
        self._plans: Dict[Hashable, Any] = {}
        # State kept between steps, the values the latest estimate proposes for it, and
        # (inside a compiled graph) the graph's inputs standing for it.
        self._state: Dict[str, torch.Tensor] = {}
        # State belongs with the params: ``clear_param_store()`` starts it afresh (Pyro keeps
        # its baselines' averages in the ParamStore).
        self._state_clears = get_param_store().clear_count
        self._pending: Dict[str, torch.Tensor] = {}
        self._state_inputs: Optional[Mapping[str, torch.Tensor]] = None
        self._program: Optional[tuple] = None  # the current estimate's (model, guide, args, kwargs)

    def __call__(self, model: Callable, guide: Callable) -> ELBOModule:
        return ELBOModule(model, guide, self)

    def __getstate__(self) -> Dict[str, Any]:
        # The latest estimate's traces and (model, guide, args, kwargs) hold its autograd
        # graph and wrapped closures: scratch of that step, which a pickle (a spawned
        # worker's copy) does not need and could not carry.
        state = self.__dict__.copy()
        state["last_traces"] = state["_program"] = None
        return state

    @property
    def vectorized(self) -> bool:
        """Whether particles are drawn at once, in one plate (more than one particle)."""
        return self.vectorize_particles and self.num_particles > 1

    # --- what an estimator implements ---------------------------------------------------

    def wrap(self, model: Callable, guide: Callable) -> Tuple[Callable, Callable]:
        """Extra handlers around model and guide (enumeration); the identity here."""
        return model, guide

    def plan(self, model_trace: Trace, guide_trace: Trace) -> Any:
        """Work that depends only on the traces' structure; cached per structure."""
        return None

    def particle(self, plan: Any, model_trace: Trace, guide_trace: Trace) -> Any:
        """The tensor math of one particle (or of all, vectorized): what ``combine`` reads.

        The default ``combine`` reads ``(loss, surrogate)``: the detached -ELBO and a
        tensor whose gradient is the gradient estimate.
        """
        raise NotImplementedError

    def combine(self, results: List[Any]) -> Tuple[Any, Any]:
        """Merge the particles' results into ``(loss, surrogate)``: their mean.

        ``results`` holds one entry per sequential particle, or a single entry holding
        the sum over all vectorized particles.
        """
        if self.num_particles == 1:
            return results[0]
        loss, surrogate = results[0]
        same = surrogate is loss
        for particle_loss, particle_surrogate in results[1:]:
            same = same and particle_surrogate is particle_loss
            loss = loss + particle_loss
            surrogate = loss if same else surrogate + particle_surrogate
        loss = loss / self.num_particles
        return loss, (loss if same else surrogate / self.num_particles)

    def after_update(self, applied: Optional[torch.Tensor] = None) -> None:
        """Commit the state the latest estimate proposed (``propose_state``), in place.

        Called by SVI after each applied optimizer step; ``applied`` is None (applied), or
        a bool tensor saying on the device whether the step was applied (then the state
        keeps its old value where it is False). ``loss_and_grads`` and ``ELBOModule``
        call it themselves. Overrides must call this one.
        """
        if applied is None:
            self.commit_checks()
        pending = self.take_pending()
        if not pending:
            return
        with torch.no_grad():
            for name, new in pending.items():
                old = self._state[name]
                old.copy_(new if applied is None else torch.where(applied, new, old))

    # --- state kept between steps ---------------------------------------------------------

    def read_state(self, name: str, init: Callable[[], torch.Tensor]) -> torch.Tensor:
        """State ``name`` as this estimate sees it; created from ``init()`` if absent (or if
        the ParamStore was cleared since it was made)."""
        if self._state_inputs is not None and name in self._state_inputs:
            return self._state_inputs[name]
        self._check_cleared()
        value = self._state.get(name)
        if value is None:
            with torch.no_grad():
                value = self._state[name] = init().detach().clone()
        return value

    def propose_state(self, name: str, value: torch.Tensor) -> None:
        """The value state ``name`` takes if this estimate's step is applied."""
        self._pending[name] = value.detach()

    def state_tensors(self) -> Dict[str, torch.Tensor]:
        """The state's own tensors (not copies), by name: what a compiled graph takes in."""
        self._check_cleared()
        return dict(self._state)

    def _check_cleared(self) -> None:
        clears = get_param_store().clear_count
        if clears != self._state_clears:
            self._state_clears = clears
            self._state = {}
            self._pending = {}

    def take_pending(self) -> Dict[str, torch.Tensor]:
        """The latest estimate's proposals, handed over (a compiled graph's outputs)."""
        pending, self._pending = self._pending, {}
        return pending

    def set_pending(self, pending: Mapping[str, torch.Tensor]) -> None:
        """Proposals made elsewhere (by a compiled graph), committed by ``after_update``."""
        self._pending = dict(pending)

    @contextmanager
    def state_inputs(self, inputs: Mapping[str, torch.Tensor]):
        """Read state from ``inputs`` (a compiled graph's inputs) inside the block."""
        saved, self._state_inputs = self._state_inputs, inputs
        try:
            yield
        finally:
            self._state_inputs = saved

    def get_state(self) -> Dict[str, torch.Tensor]:
        """Copies of the state kept between steps (empty for most estimators)."""
        self._check_cleared()
        return {name: value.detach().clone() for name, value in self._state.items()}

    def set_state(self, state: Mapping[str, torch.Tensor]) -> None:
        """Restore ``get_state``'s output: in place where the state exists (same shape and
        dtype required), else as new entries. Checks everything before changing anything."""
        if not isinstance(state, Mapping):
            raise ValueError(f"{type(self).__name__} state must be a dict, got {type(state)}")
        for name, value in state.items():
            where = f"{type(self).__name__} state {name!r}"
            if not isinstance(name, str) or not isinstance(value, torch.Tensor):
                raise ValueError(f"{where}: expected a tensor under a str name, got {value!r}")
            if not value.dtype.is_floating_point or not bool(torch.isfinite(value).all()):
                raise ValueError(f"{where}: expected finite floating-point values")
            old = self._state.get(name)
            if old is not None and (old.shape != value.shape or old.dtype != value.dtype):
                raise ValueError(
                    f"{where} has shape {tuple(value.shape)} and dtype {value.dtype} in the "
                    f"checkpoint but {tuple(old.shape)} and {old.dtype} here"
                )
        self._check_cleared()
        self._pending = {}
        with torch.no_grad():
            for name, value in state.items():
                old = self._state.get(name)
                if old is None:
                    self._state[name] = value.detach().clone()
                else:
                    old.copy_(value)

    # --- the trace source ---------------------------------------------------------------

    def get_traces(self, model: Callable, guide: Callable, args, kwargs) -> Iterator[TracePair]:
        """Every (model_trace, guide_trace) pair of one estimate, log-probs computed."""
        model, guide = self.wrap(model, guide)
        if self.vectorized:
            if self.max_plate_nesting == float("inf"):
                self.max_plate_nesting = self._guess_max_plate_nesting(model, guide, args, kwargs)
            size, dim = self.num_particles, -1 - self.max_plate_nesting
            model = vectorize(model, PARTICLE_PLATE, size, dim)
            guide = vectorize(guide, PARTICLE_PLATE, size, dim)
            self._program = (model, guide, args, kwargs)
            yield self._trace_pair(model, guide, args, kwargs)
            return
        self._program = (model, guide, args, kwargs)
        for _ in range(self.num_particles):
            yield self._trace_pair(model, guide, args, kwargs)

    def run_pair(self, model: Callable, guide: Callable, args, kwargs) -> TracePair:
        """One guide run and the model replayed against it, pruned, with log-probs."""
        guide_trace = run_traced(guide, args, kwargs, graph_type=self.graph_type)
        model_trace = run_traced(
            model, args, kwargs, replay_trace=guide_trace, graph_type=self.graph_type
        )
        # Both traces are this step's own: prune in place rather than copy them.
        prune_subsample_sites_(guide_trace)
        prune_subsample_sites_(model_trace)
        self.last_traces = (model_trace, guide_trace)
        # A validating run computes every log-prob: the shape and support checks read them.
        validating = is_validation_enabled()
        if validating or self.guide_log_probs == "all":
            guide_trace.compute_score_parts()
        needs = self.log_probs
        if needs == "none" and validating:
            needs = "elementwise"
        if needs == "auto":
            # The loss reads only the model's per-site sums; score-function costs need the
            # per-element log-probs (Rao-Blackwellization by plates).
            guide_trace.compute_score_parts()  # (a no-op where already computed)
            needs = "sums" if _all_reparameterized(guide_trace) else "elementwise"
        if needs == "sums":
            model_trace.compute_log_prob_sums()
        elif needs == "elementwise":
            model_trace.compute_log_prob()
        return model_trace, guide_trace

    def replay_pair(self, guide_trace: Trace, guide_handler, model_handler) -> TracePair:
        """The current estimate's guide run again replaying ``guide_trace`` under
        ``guide_handler``, and its model replaying that under ``model_handler`` (each
        entered outside its trace), with log-probs.

        For plans that need more than the traces show (``TraceGraph_ELBO``'s provenance
        run). Runs without gradients, hidden from outer handlers, validation off, and
        leaves the RNG streams as they were.
        """
        model, guide, args, kwargs = self._program
        state = get_rng_state()
        try:
            with torch.no_grad(), BlockMessenger(), validation_disabled():
                with guide_handler:
                    new_guide = run_traced(guide, args, kwargs, replay_trace=guide_trace)
                with model_handler:
                    new_model = run_traced(model, args, kwargs, replay_trace=new_guide)
                for trace in (new_guide, new_model):
                    prune_subsample_sites_(trace)
                    trace.compute_log_prob()
        finally:
            set_rng_state(state)
        return new_model, new_guide

    def _trace_pair(self, model, guide, args, kwargs) -> TracePair:
        pair = self.run_pair(model, guide, args, kwargs)
        if is_validation_enabled():
            self._validate(*pair)
            if torch.jit.is_tracing() or torch.compiler.is_compiling():
                self._check_observations(*pair)  # the graph will run on new values
        elif self._trusting:
            if _names_key(*pair) not in self._validated:
                raise _StructureChanged
            self._check_observations(*pair)
        elif self.graph_checks and (torch.jit.is_tracing() or torch.compiler.is_compiling()):
            self._check_observations(*pair)  # a graph traced with validation off around it
        return pair

    def _check_observations(self, model_trace: Trace, guide_trace: Trace) -> None:
        """Validation on every step, kept cheap: each observed value not checked before
        (a new tensor, or one changed in place) gets its shape checked against its plates
        now (shapes are known on the host) and its support checked on the device; the
        verdict is folded into the loss (see :meth:`loss_and_surrogate`), so it travels with
        the one host transfer a step makes. Inside a compiled graph every observation is
        checked (the graph runs on new values each call)."""
        compiled = torch.jit.is_tracing() or torch.compiler.is_compiling()
        nesting = None if self.max_plate_nesting == float("inf") else int(self.max_plate_nesting)
        if nesting is not None and self.vectorized:
            nesting += 1
        for side, trace in enumerate((model_trace, guide_trace)):
            for name, site in trace.nodes.items():
                if site["type"] != "sample" or not site["is_observed"]:
                    continue
                value = site["value"]
                if not isinstance(value, torch.Tensor):
                    continue
                if not compiled:
                    # (not read inside a graph: the graph would guard on this dict, which
                    # changes after every step, and recompile)
                    seen = self._checked.get((side, name))
                    if seen is not None and seen[0] is value and seen[1] == value._version:
                        continue
                # (a compiled graph's shapes were checked when it was made)
                ok = observation_check(site, nesting, shapes=not compiled)
                if ok is not None:
                    # names and the value only: a compiled graph may not keep its tensors
                    support = type(getattr(site["fn"], "support", None)).__name__.lstrip("_")
                    described = (type(site["fn"]).__name__, support)
                    self._checks.append((side, name, value, described, ok))

    def _fold_checks(self, loss):
        """The loss, NaN where an observation check of this estimate failed (so the step's
        finite verdict rejects it and the step is not applied)."""
        if not self._checks or not isinstance(loss, torch.Tensor):
            return loss
        verdict = self._checks[0][-1]
        for *_, ok in self._checks[1:]:
            verdict = verdict & ok
        loss = loss.detach()  # a value only: the surrogate carries the gradient
        return torch.where(verdict, loss, torch.full_like(loss, float("nan")))

    def validation_failure(self) -> Optional[str]:
        """Why the latest estimate's observation checks failed (reads them on the host: the
        error path only), or None if they passed or there were none."""
        for _, name, value, (family, support), ok in self._checks:
            if not bool(ok):
                return (
                    f"site '{name}': the observation (shape {tuple(value.shape)}, dtype "
                    f"{value.dtype}) is outside the support of {family} ({support}). Fix "
                    "the data, or choose a distribution whose support contains it."
                )
        return None

    def find_invalid(self, model, guide, args, kwargs) -> Optional[str]:
        """One estimate with every check on (torch's argument and support validation, the
        site shapes), no gradients, the RNG and state as they were: what it raises, as a
        message, or None. For naming the culprit of a step whose checks ran inside a
        compiled graph."""
        state = get_rng_state()
        saved = self._validated, self._last_key, self._pending, self._checks
        self._validated, self._last_key = set(), None
        try:
            with torch.no_grad(), BlockMessenger(), validation_enabled():
                ELBO.loss_and_surrogate(self, model, guide, args, kwargs)
        except ValueError as e:
            return str(e)
        except Exception:  # noqa: BLE001 - diagnosis is best effort
            return None
        finally:
            self._validated, self._last_key, self._pending, self._checks = saved
            set_rng_state(state)
        return None

    def drop_checks(self) -> None:
        """Forget the latest estimate's observation checks (a compiled graph's are stale)."""
        self._checks = []

    def raise_if_invalid(self) -> None:
        """Raise the latest estimate's observation-check failure, if any (one host read of
        the checks; none when there were none)."""
        if self._checks:
            failure = self.validation_failure()
            if failure is not None:
                self._checks = []
                raise ValueError(f"{type(self).__name__}: {failure}")

    def commit_checks(self) -> None:
        """Remember the latest estimate's checked observations as valid (after a step that
        was applied, so known to have passed)."""
        for side, name, value, _, _ in self._checks:
            self._checked[(side, name)] = (value, value._version)
        self._checks = []

    def _guess_max_plate_nesting(self, model, guide, args, kwargs) -> int:
        with torch.no_grad(), BlockMessenger():
            guide_trace = run_traced(guide, args, kwargs)
            model_trace = run_traced(model, args, kwargs, replay_trace=guide_trace)
        return max_plate_nesting_of(model_trace, guide_trace)

    def _validate(self, model_trace: Trace, guide_trace: Trace) -> None:
        key = _names_key(model_trace, guide_trace)
        self._last_key = key
        if key in self._validated:
            return
        check_model_guide_match(model_trace, guide_trace)
        nesting = None if self.max_plate_nesting == float("inf") else self.max_plate_nesting
        if nesting is None:
            nesting = max_plate_nesting_of(model_trace, guide_trace)
        if self.vectorized:
            nesting += 1
        for trace in (model_trace, guide_trace):
            for site in trace.nodes.values():
                if site["type"] == "sample":
                    check_site_shape(site, nesting)
        if self.strict_enumeration_warning and not self.enumerates:
            self._warn_unused_enumeration(model_trace, guide_trace)
        self._validated.add(key)

    def _warn_unused_enumeration(self, model_trace: Trace, guide_trace: Trace) -> None:
        marked = sorted(
            {
                name
                for trace in (model_trace, guide_trace)
                for name, site in trace.nodes.items()
                if site["type"] == "sample"
                and not site["is_observed"]
                and site["infer"].get("enumerate")
            }
        )
        if marked:
            name = type(self).__name__
            warn_once(
                ("enumeration_unused", name, tuple(marked)),
                f"{name} does not enumerate, but sites {marked} are marked with "
                "infer={'enumerate': ...}: they are sampled instead. Use TraceEnum_ELBO to "
                "sum them out, or pass strict_enumeration_warning=False to silence this.",
            )

    # --- the pipeline -------------------------------------------------------------------

    def loss_and_surrogate(self, model: Callable, guide: Callable, args, kwargs):
        """(detached -ELBO, surrogate): the estimate and what its gradient is taken of.

        Validation (torch's argument/support checks, model-guide matching, site shapes)
        runs in full for each new model/guide structure; once a structure has passed, its
        later estimates run with it off (a non-finite loss is still caught by SVI and
        traced to its site), and a changed structure is estimated again with checks on.
        """
        self._pending = {}
        self._checks = []
        if is_validation_enabled() and self._last_key in self._validated:
            self._trusting = True
            try:
                with validation_disabled():
                    loss, surrogate = self._estimate(model, guide, args, kwargs)
                return self._fold_checks(loss), surrogate
            except _StructureChanged:
                self._checks = []
            finally:
                self._trusting = False
        loss, surrogate = self._estimate(model, guide, args, kwargs)
        return self._fold_checks(loss), surrogate

    def _estimate(self, model: Callable, guide: Callable, args, kwargs):
        results = [self._particle_of(*pair) for pair in self.get_traces(model, guide, args, kwargs)]
        return self.combine(results)

    def one_particle(self, model: Callable, guide: Callable, args, kwargs) -> Any:
        """One sequential particle's result (what ``combine`` reads), from fresh draws: the
        unit the ``Jit*`` variants compile when particles are drawn one by one."""
        model, guide = self.wrap(model, guide)
        self._program = (model, guide, args, kwargs)
        return self._particle_of(*self._trace_pair(model, guide, args, kwargs))

    def _particle_of(self, model_trace: Trace, guide_trace: Trace) -> Any:
        needs_plan = type(self).plan is not ELBO.plan
        plan = self._plan_for(model_trace, guide_trace) if needs_plan else None
        return self.particle(plan, model_trace, guide_trace)

    def _plan_for(self, model_trace: Trace, guide_trace: Trace) -> Any:
        key = structure_key(model_trace, guide_trace)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self.plan(model_trace, guide_trace)
        return plan

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        """-ELBO as a tensor whose gradient is the estimator's gradient."""
        loss, surrogate = self.loss_and_surrogate(model, guide, args, kwargs)
        if not isinstance(surrogate, torch.Tensor) or not surrogate.requires_grad:
            return loss if isinstance(loss, torch.Tensor) else torch.tensor(loss)
        if surrogate is loss:
            return surrogate
        return loss.detach() + (surrogate - surrogate.detach())

    def loss(self, model, guide, *args, **kwargs) -> float:
        """-ELBO estimate, no gradients (and no change to state kept between steps)."""
        with torch.no_grad():
            loss, _ = self.loss_and_surrogate(model, guide, args, kwargs)
        self._pending = {}
        self.raise_if_invalid()
        self.commit_checks()
        loss = float(loss)
        if math.isnan(loss):
            self._raise_invalid(model, guide, args, kwargs)
        return loss

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        """-ELBO estimate; accumulates the gradient estimate into the params' ``.grad``.

        For loops that step an optimizer themselves: state kept between steps
        (baselines) advances here, as in Pyro. SVI calls ``backward`` instead and
        commits the state only once the step is applied.
        """
        loss = self.backward(model, guide, args, kwargs)
        self.raise_if_invalid()
        if math.isnan(float(loss)):
            self._pending = {}
            self._raise_invalid(model, guide, args, kwargs)
        self.after_update(None)
        return float(loss)

    def _raise_invalid(self, model, guide, args, kwargs) -> None:
        """A NaN estimate: raise the validation error behind it, if there is one."""
        if is_validation_enabled():
            failure = self.find_invalid(model, guide, args, kwargs)
            if failure is not None:
                raise ValueError(failure)

    def backward(self, model, guide, args, kwargs) -> torch.Tensor:
        """Backpropagate the surrogate; return the detached loss tensor (no host sync)."""
        loss, surrogate = self.loss_and_surrogate(model, guide, args, kwargs)
        if isinstance(surrogate, torch.Tensor) and surrogate.requires_grad:
            surrogate.backward(retain_graph=self.retain_graph)
        if not isinstance(loss, torch.Tensor):
            loss = torch.tensor(float(loss))
        return loss.detach()


class _StructureChanged(Exception):
    """An estimate that skipped validation met a structure not validated yet."""


def structure_key(model_trace: Trace, guide_trace: Trace) -> tuple:
    """What a plan depends on: each sample site's name, plates and whether it is
    reparameterized, in both traces."""
    return tuple(
        tuple(
            (name, site["cond_indep_stack"], getattr(site["fn"], "has_rsample", False))
            for name, site in trace.nodes.items()
            if site["type"] == "sample"
        )
        for trace in (model_trace, guide_trace)
    )


def _names_key(model_trace: Trace, guide_trace: Trace) -> tuple:
    return tuple(model_trace.nodes), tuple(guide_trace.nodes)


def _all_reparameterized(guide_trace: Trace) -> bool:
    """Whether no guide site has a score-function term."""
    for site in guide_trace.nodes.values():
        if site["type"] == "sample" and not is_identically_zero(site["score_parts"][1]):
            return False
    return True


def sum_terms(terms: list):
    """``terms[0] + terms[1] + ...``, without a ``0.0 +`` start (one op fewer); 0.0 for none."""
    if not terms:
        return 0.0
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def detach(value):
    return value.detach() if isinstance(value, torch.Tensor) else value
