"""``SMCFilter``: filtering by sequential importance resampling (a particle filter) over a
model and guide with ``init(state, ...)`` / ``step(state, ...)`` methods; ``SMCState`` holds
the particles' tensors and ``SMCFailed`` says every particle became impossible."""

import contextlib
from typing import Dict, Iterator

import torch

from ..distributions.empirical import Empirical
from ..poutine.plate_messenger import vectorize
from ..poutine.trace_messenger import run_traced
from ..poutine.trace_struct import Trace


class SMCFailed(ValueError):
    """Every particle has zero weight: no hypothesis explains the data seen so far."""


class SMCState(dict):
    """The particles' state: a dict of tensors whose leading dim is ``num_particles``.
    Models read and write it; guides only read it.

    >>> state = SMCState(3)
    >>> state["z"] = torch.zeros(3, 2)
    >>> state["z"].shape
    torch.Size([3, 2])
    """

    def __init__(self, num_particles: int):
        assert isinstance(num_particles, int) and num_particles > 0
        super().__init__()
        self._num_particles = num_particles
        self._log_weights = torch.zeros(num_particles)
        self._locked = False

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self._locked = True
        try:
            yield
        finally:
            self._locked = False

    def __setitem__(self, key, value) -> None:
        if self._locked:
            raise RuntimeError("Guide cannot write to SMCState: only the model may set state")
        if not isinstance(value, torch.Tensor):
            raise TypeError(
                f"Only Tensors can be stored in an SMCState, but got {type(value).__name__} "
                f"for key {key!r}"
            )
        if value.dim() == 0 or value.size(0) != self._num_particles:
            raise ValueError(
                f"Expected leading dim of size {self._num_particles} but got shape "
                f"{value.shape} for key {key!r}: state tensors are per particle"
            )
        super().__setitem__(key, value)

    def _resample(self, index: torch.Tensor) -> None:
        for key, value in self.items():
            super().__setitem__(key, value[index].contiguous())
        self._log_weights.zero_()


def _particle_log_prob(trace: Trace, num_particles: int, max_plate_nesting: int) -> torch.Tensor:
    """Each particle's log-prob summed over the trace's sample sites and their plates."""
    total = torch.zeros(num_particles)
    plate_dims = tuple(range(-max_plate_nesting, 0))
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or site["infer"].get("_subsample"):
            continue
        log_prob = site["fn"].log_prob(site["value"])
        mask = site.get("mask")
        if mask is not None and mask is not True:
            log_prob = log_prob * mask
        log_prob = log_prob * site.get("scale", 1.0)
        if plate_dims and log_prob.dim() >= max_plate_nesting:
            log_prob = log_prob.sum(plate_dims)
        if log_prob.dim() and log_prob.size(0) not in (1, num_particles):
            raise ValueError(
                f"SMCFilter: site '{name}' has log_prob shape {tuple(log_prob.shape)}, which "
                f"does not put the {num_particles} particles on dim {-1 - max_plate_nesting}; "
                "raise max_plate_nesting to the model's plate depth"
            )
        total = total.to(log_prob) + log_prob.reshape(-1)
    return total


class SMCFilter:
    """Particle filter over ``model`` and ``guide`` (objects with ``init(state, ...)`` and
    ``step(state, ...)``), resampling when the ESS falls below ``ess_threshold *
    num_particles``.

    :param model: the model; its methods write the particles' state.
    :param guide: the proposal; its methods may only read the state.
    :param num_particles: the number of particles.
    :param max_plate_nesting: the model's plate depth (the particles use the next dim left).
    :param ess_threshold: resample when ``ess < ess_threshold * num_particles``.

    A random walk observed with noise; the posterior mean after one observation is
    the Kalman filter's ``y / 2``:

    >>> import pyrolite, pyrolite.distributions as dist
    >>> class Model:
    ...     def init(self, state):
    ...         state["z"] = pyrolite.sample("z", dist.Normal(0.0, 1.0))
    ...     def step(self, state, y):
    ...         pyrolite.sample("y", dist.Normal(state["z"], 1.0), obs=y)
    >>> class Guide:
    ...     def init(self, state):
    ...         pyrolite.sample("z", dist.Normal(0.0, 1.0))
    ...     def step(self, state, y):
    ...         pass
    >>> smc = SMCFilter(Model(), Guide(), num_particles=1000, max_plate_nesting=0)
    >>> smc.init()
    >>> smc.step(torch.tensor(2.0))
    >>> abs(float(smc.get_empirical()["z"].mean) - 1.0) < 0.15
    True
    """

    def __init__(
        self,
        model,
        guide,
        num_particles: int,
        max_plate_nesting: int,
        *,
        ess_threshold: float = 0.5,
    ):
        assert 0 < ess_threshold <= 1
        self.model = model
        self.guide = guide
        self.num_particles = num_particles
        self.max_plate_nesting = max_plate_nesting
        self.ess_threshold = ess_threshold
        self.state = SMCState(num_particles)

    def init(self, *args, **kwargs) -> None:
        """Start the filter: run ``guide.init`` and ``model.init`` for all particles."""
        self.state = SMCState(self.num_particles)
        self._advance(self.model.init, self.guide.init, args, kwargs)

    def step(self, *args, **kwargs) -> None:
        """One filtering step: propose with ``guide.step``, reweight by ``model.step``,
        resample if the ESS is low."""
        self._advance(self.model.step, self.guide.step, args, kwargs)

    def _advance(self, model_fn, guide_fn, args, kwargs) -> None:
        def particles(fn):
            return vectorize(fn, "particles", self.num_particles, -1 - self.max_plate_nesting)

        with torch.no_grad():
            with self.state._lock():
                guide_trace = run_traced(particles(guide_fn), (self.state,) + args, kwargs)
            model_trace = run_traced(
                particles(model_fn), (self.state,) + args, kwargs, replay_trace=guide_trace
            )
            self._update_weights(model_trace, guide_trace)
            self._maybe_importance_resample()

    def _update_weights(self, model_trace: Trace, guide_trace: Trace) -> None:
        n, nesting = self.num_particles, self.max_plate_nesting
        log_w = self.state._log_weights + _particle_log_prob(model_trace, n, nesting)
        log_w = log_w - _particle_log_prob(guide_trace, n, nesting)
        top = log_w.max()
        if not torch.isfinite(top):
            sites = [name for name, site in model_trace.nodes.items() if site["type"] == "sample"]
            raise SMCFailed(
                f"Failed to find feasible hypothesis after sites {sites}: every particle's "
                f"log weight is {float(top)}; use a guide that proposes values the model allows"
            )
        self.state._log_weights = log_w

    def _maybe_importance_resample(self) -> None:
        log_w = self.state._log_weights
        log_w = log_w - log_w.logsumexp(0)
        self.state._log_weights = log_w
        ess = torch.exp(-torch.logsumexp(2 * log_w, 0))
        if ess < self.ess_threshold * self.num_particles:
            self._importance_resample(log_w.exp())

    def _importance_resample(self, probs: torch.Tensor) -> None:
        # systematic resampling: one uniform, N evenly spaced points on the weights' CDF
        # (lower variance than N independent multinomial draws)
        n = self.num_particles
        offset = 1 - torch.rand(1, dtype=probs.dtype)  # in (0, 1]: Pyro's draw
        positions = offset + torch.arange(n, dtype=probs.dtype)
        cdf = probs.cumsum(0) * n
        index = torch.searchsorted(cdf, positions, right=True).clamp(max=n - 1)
        self.state._resample(index)

    def get_empirical(self) -> Dict[str, Empirical]:
        """``{key: Empirical}`` over the particles of each state tensor, with their weights."""
        return {key: Empirical(value, self.state._log_weights) for key, value in self.state.items()}
