"""``SVI``: the training loop: ``step``, ``fit``, ``run``, and whole-state checkpoints.

One step: the ELBO backpropagates its surrogate, the params read during the step
are handed to the optimizer, and their grads are cleared. A step that fails (an
exception, or a non-finite loss) leaves the ParamStore and optimizer untouched.
"""

import math
import random
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Union

import numpy as np
import torch

from ..optim import PyroOptim
from ..params.param_store import _PARAM_STORE
from ..params.serialization import load_weights_only, save_atomic
from ..poutine.block_messenger import BlockMessenger
from ..poutine.messenger import Messenger
from ..poutine.runtime import Message
from ..poutine.trace_messenger import run_traced
from ..util import validation_disabled
from .abstract_infer import TracePosterior
from .compiled_step import CompiledStep
from .elbo import ELBO

CHECKPOINT_FORMAT = "pyrolite.svi.checkpoint"
CHECKPOINT_VERSION = 1


class ParamCollector(Messenger):
    """Remember the names of the params read while active (in first-read order)."""

    def __enter__(self):
        self.names: Dict[str, None] = {}
        return super().__enter__()

    def _pyro_post_param(self, msg: Message) -> None:
        self.names[msg["name"]] = None


class SVIRunResult(NamedTuple):
    """What ``SVI.fit`` returns: constrained params, final state, and the loss of every step."""

    params: Dict[str, torch.Tensor]
    state: Dict[str, Any]
    losses: np.ndarray


class SVI(TracePosterior):
    """Stochastic variational inference.

    :param model: the model function.
    :param guide: the guide (variational family) function.
    :param optim: a ``pyrolite.optim`` optimizer (e.g. ``pyrolite.optim.Adam({"lr": 1e-2})``).
    :param loss: an ``ELBO`` instance, or a callable ``loss(model, guide, *args)``.
    :param loss_and_grads: optional callable doing loss and backward for a callable loss.
    :param num_samples: traces drawn by ``run`` (seed-003 style posterior).
    :param num_steps: steps taken by ``run`` before drawing.
    :param compile: take each step as one ``torch.compile``-d graph (loss, gradients and
        Adam/SGD/ClippedAdam update) after one eager step per new argument shape; True,
        or a dict of ``torch.compile`` options. Falls back to eager, with a warning, where
        the step cannot be compiled. See :mod:`pyrolite.infer.compiled_step`.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite.infer import SVI, Trace_ELBO
    >>> from pyrolite.optim import Adam
    >>> pyrolite.clear_param_store()
    >>> def model(x):
    ...     loc = pyrolite.sample("loc", dist.Normal(0.0, 10.0))
    ...     with pyrolite.plate("data", len(x)):
    ...         pyrolite.sample("x", dist.Normal(loc, 1.0), obs=x)
    >>> def guide(x):
    ...     m = pyrolite.param("m", torch.tensor(0.0))
    ...     pyrolite.sample("loc", dist.Normal(m, 0.1))
    >>> svi = SVI(model, guide, Adam({"lr": 0.1}), Trace_ELBO())
    >>> x = torch.full((20,), 3.0)
    >>> for _ in range(300):
    ...     _ = svi.step(x)
    >>> abs(pyrolite.param("m").item() - 3.0) < 0.1
    True
    """

    def __init__(
        self,
        model: Callable,
        guide: Callable,
        optim,
        loss,
        loss_and_grads: Optional[Callable] = None,
        num_samples: int = 0,
        num_steps: int = 0,
        compile: Union[bool, Dict[str, Any]] = False,
        **kwargs,
    ):
        if not isinstance(optim, PyroOptim):
            hint = ""
            if isinstance(optim, type) or isinstance(optim, torch.optim.Optimizer):
                hint = " (got a torch.optim optimizer: use pyrolite.optim.Adam({'lr': ...}))"
            raise TypeError(f"optim must be a pyrolite.optim.PyroOptim{hint}, got {optim!r}")
        if not (isinstance(loss, ELBO) or callable(loss)):
            raise TypeError(f"loss must be an ELBO (e.g. Trace_ELBO()) or a callable, got {loss!r}")
        super().__init__(**kwargs)
        self.model, self.guide, self.optim = model, guide, optim
        self.num_samples, self.num_steps = num_samples, num_steps
        self.step_count = 0
        self.skipped_steps = 0
        if isinstance(loss, ELBO):
            self.loss = loss.loss
            self._backward = lambda args, kwargs: loss._backward(model, guide, args, kwargs)
            self._elbo: Optional[ELBO] = loss
        else:
            self.loss = loss
            self._elbo = None
            if loss_and_grads is None:

                def loss_and_grads(model, guide, *args, **kwargs):
                    value = loss(model, guide, *args, **kwargs)
                    value.backward()
                    return value

            self._backward = lambda args, kwargs: torch.as_tensor(
                loss_and_grads(model, guide, *args, **kwargs)
            ).detach()
        self.loss_and_grads = loss_and_grads
        self._collector = ParamCollector()
        self._step_args = None
        # compile=True (or torch.compile options): see pyrolite.infer.compiled_step.
        self._compiled_step = (
            CompiledStep(self, compile if isinstance(compile, dict) else None) if compile else None
        )

    # --- one step ------------------------------------------------------------------

    def step(self, *args, **kwargs) -> float:
        """Take one gradient step; returns the loss estimate (-ELBO) before the step."""
        return self._step(args, kwargs, stable_update=False, check_finite=True).item()

    def _step(self, args, kwargs, stable_update: bool, check_finite: bool) -> torch.Tensor:
        self._step_args = (args, kwargs)  # for naming the culprit if the loss is not finite
        try:
            if self._compiled_step is not None:
                loss = self._compiled_step(args, kwargs, stable_update, check_finite)
                if loss is not None:
                    return loss
            return self._eager_step(args, kwargs, stable_update, check_finite)
        finally:
            self._step_args = None

    def _eager_step(self, args, kwargs, stable_update: bool, check_finite: bool) -> torch.Tensor:
        params: List[torch.Tensor] = []
        try:
            with self._collector:
                loss = self._backward(args, kwargs)
            store = _PARAM_STORE
            params = [store.unconstrained(n) for n in self._collector.names if n in store]
            if stable_update:
                if not _all_finite(loss, params):
                    self.skipped_steps += 1
                    return loss
            elif check_finite and not math.isfinite(loss.item()):
                raise FloatingPointError(self._nonfinite_message(loss, params))
            self.optim(params)
            self.step_count += 1
            if self._elbo is not None:
                # Kept only to name a culprit; holding them would keep this step's
                # largest tensors alive into the next step.
                self._elbo._last_traces = None
            return loss
        finally:
            if not params:
                store = _PARAM_STORE
                params = [store.unconstrained(n) for n in self._collector.names if n in store]
            for p in params:
                p.grad = None

    def _nonfinite_message(self, loss: torch.Tensor, params: List[torch.Tensor]) -> str:
        """Name the first param or site whose value or log-prob is not finite."""
        culprit = None
        for name in self._collector.names:
            if name in _PARAM_STORE and not bool(torch.isfinite(_PARAM_STORE[name]).all()):
                culprit = f"param '{name}' has non-finite values"
                break
        traces = self._elbo._last_traces if self._elbo is not None else None
        rerun = ""
        if culprit is None and traces is None and self._elbo is not None and self._step_args:
            # A compiled step leaves no traces: look again with one eager run (same RNG
            # state as the failed step, restored afterwards).
            traces, rerun = self._eager_traces(*self._step_args), " (found by an eager re-run)"
        if culprit is None and traces is not None:
            model_trace, guide_trace = traces
            for where, trace in (("guide", guide_trace), ("model", model_trace)):
                for name, site in trace.nodes.items():
                    lp = site.get("log_prob_sum")
                    if site["type"] == "sample" and lp is not None and not torch.isfinite(lp):
                        value = site["value"]
                        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else ()
                        culprit = (
                            f"{where} site '{name}' ({type(site['fn']).__name__}, value shape "
                            f"{shape}) has log_prob_sum {lp.item()}{rerun}"
                        )
                        break
                if culprit is not None:
                    break
        where = culprit or "no single site is non-finite (the sum overflowed)"
        return (
            f"SVI step {self.step_count}: loss is {loss.item()}; {where}. The step was not "
            "applied, so params and optimizer state are unchanged. Fixes: lower the learning "
            "rate, constrain scales (constraint=constraints.positive), check the data, or pass "
            "stable_update=True to fit() to skip such steps."
        )

    def _eager_traces(self, args, kwargs):
        state = torch.get_rng_state()
        try:
            with torch.no_grad(), BlockMessenger(), validation_disabled():
                return self._elbo._run_pair(self.model, self.guide, args, kwargs)
        except Exception:  # noqa: BLE001 - diagnosis is best effort; the error stands
            return None
        finally:
            torch.set_rng_state(state)

    def evaluate_loss(self, *args, **kwargs) -> float:
        """The loss estimate, without gradients or a step."""
        with torch.no_grad():
            value = self.loss(self.model, self.guide, *args, **kwargs)
        return float(value)

    # --- loops -------------------------------------------------------------------------

    def fit(
        self,
        num_steps: int,
        *args,
        progress_bar: bool = True,
        stable_update: bool = False,
        init_params: Optional[Dict[str, torch.Tensor]] = None,
        **kwargs,
    ) -> SVIRunResult:
        """Run ``num_steps`` steps (NumPyro's ``svi.run``); returns params and every loss.

        The progress bar shows the first loss and the running average. On a GPU the
        losses stay on the device and are fetched in batches (no sync every step).
        ``stable_update`` skips steps whose loss or grads are not finite.
        """
        from tqdm.auto import tqdm

        if init_params:
            for name, value in init_params.items():
                _PARAM_STORE[name] = value
        losses: List[torch.Tensor] = []
        pending: List[torch.Tensor] = []
        batch = max(1, min(100, num_steps // 50))
        init_loss = None
        with tqdm(total=num_steps, disable=not progress_bar, mininterval=0.2) as bar:
            for i in range(num_steps):
                loss = self._step(
                    args, kwargs, stable_update=stable_update, check_finite=not stable_update
                )
                pending.append(loss)
                if len(pending) == batch or i == num_steps - 1:
                    fetched = torch.stack(pending).cpu()
                    losses.append(fetched)
                    pending = []
                    if init_loss is None:
                        init_loss = fetched[0].item()
                    recent = torch.cat(losses)[-max(batch, num_steps // 20) :]
                    bar.set_postfix_str(
                        f"init loss: {init_loss:.4f}, avg. loss [{max(1, i + 2 - len(recent))}-"
                        f"{i + 1}]: {recent.mean().item():.4f}",
                        refresh=False,
                    )
                    bar.update(len(fetched))
        params = {name: value.detach().clone() for name, value in _PARAM_STORE.items()}
        all_losses = torch.cat(losses).numpy() if losses else np.zeros(0)
        return SVIRunResult(params, {"step": self.step_count}, all_losses)

    def run(self, *args, **kwargs) -> "SVI":
        """Train ``num_steps`` (if any), then draw ``num_samples`` guide/model traces."""
        for _ in range(self.num_steps):
            self.step(*args, **kwargs)
        return super().run(*args, **kwargs)

    def _traces(self, *args, **kwargs):
        for _ in range(self.num_samples):
            guide_trace = run_traced(self.guide, args, kwargs)
            model_trace = run_traced(self.model, args, kwargs, replay_trace=guide_trace)
            yield model_trace, 0.0

    # --- checkpoints ---------------------------------------------------------------------

    def get_state(self) -> Dict[str, Any]:
        """Everything needed to resume: params, optimizer, RNG streams, step count."""
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "step": self.step_count,
            "param_store": _PARAM_STORE.get_state(),
            "optim": self.optim.get_state(),
            "rng": _get_rng_state(),
        }

    def set_state(self, state: Dict[str, Any]) -> None:
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(
                "not a pyrolite SVI checkpoint (expected a dict with format="
                f"{CHECKPOINT_FORMAT!r}); param-store files load with "
                "pyrolite.get_param_store().load(path)"
            )
        if state.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"unsupported SVI checkpoint version {state.get('version')!r}")
        missing = {"step", "param_store", "optim", "rng"} - set(state)
        if missing:
            raise ValueError(f"SVI checkpoint is missing {sorted(missing)}")
        saved_params = _PARAM_STORE.get_state()
        saved_optim = self.optim.get_state()
        try:
            _PARAM_STORE.set_state(state["param_store"])
            self.optim.set_state(state["optim"])
            _set_rng_state(state["rng"])
        except Exception:
            _PARAM_STORE.clear()
            _PARAM_STORE.set_state(saved_params)
            self.optim.set_state(saved_optim)
            raise
        self.step_count = int(state["step"])

    def save(self, path) -> None:
        """Write the whole training state to ``path`` atomically (one file)."""
        save_atomic(self.get_state(), path)

    def load(self, path, map_location=None) -> None:
        """Restore a state written by ``save``; never executes code from the file."""
        state = load_weights_only(path, map_location=map_location, expected="an SVI checkpoint")
        self.set_state(state)


def _all_finite(loss: torch.Tensor, params: List[torch.Tensor]) -> bool:
    checks = [torch.isfinite(loss).all()]
    checks += [torch.isfinite(p.grad).all() for p in params if p.grad is not None]
    return bool(torch.stack(checks).all())


def _get_rng_state() -> Dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.cpu().numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
