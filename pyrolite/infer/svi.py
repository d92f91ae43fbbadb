"""``SVI``: the training loop: ``step``, ``fit``, ``run``, and whole-state checkpoints.

One step: the ELBO backpropagates its surrogate, the params read during the step
are handed to the optimizer, and their grads are cleared. A step that fails (an
exception, or a non-finite loss) leaves the ParamStore and optimizer untouched.
"""

import math
import warnings
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple, Union

import numpy as np
import torch

from ..optim import PyroOptim
from ..params.param_store import get_param_store
from ..params.serialization import load_weights_only, save_atomic
from ..poutine.block_messenger import BlockMessenger
from ..poutine.param_reads_messenger import ParamReadsMessenger
from ..poutine.trace_messenger import run_traced
from ..process_state import get_rng_state, is_validation_enabled, set_rng_state, validation_disabled
from .abstract_infer import TracePosterior
from .compiled_step import CompiledStep
from .elbo import ELBO
from .step_engine import EagerStep, StepHooks, StepLedger, nonfinite_grads

CHECKPOINT_FORMAT = "pyrolite.svi.checkpoint"


def _is_device_mismatch(e: RuntimeError) -> bool:
    """Whether torch raised ``e`` for tensors on different devices."""
    text = str(e)
    return "device" in text and any(
        m in text for m in ("same device", "expected device", "different from other tensors")
    )


CHECKPOINT_VERSION = 1


class CompileInfo(NamedTuple):
    """What ``SVI(compile=True)`` did: whether it is on, how many graphs it compiled, and
    why some steps ran eagerly."""

    enabled: bool
    compiled_graphs: int
    fallback_reasons: Tuple[str, ...]


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
        the step cannot be compiled. See :mod:`pyrolite.infer.compiled_step`;
        ``svi.compile_info`` says what compiled.
    :param hooks: a :class:`~pyrolite.infer.step_engine.StepHooks` whose methods run at
        fixed points of every step (gradient reduction, the finite verdict, after the
        update), eager and compiled alike.

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
        hooks: Optional[StepHooks] = None,
        **kwargs,
    ):
        if not isinstance(optim, PyroOptim):
            hint = ""
            if isinstance(optim, type) or isinstance(optim, torch.optim.Optimizer):
                hint = " (got a torch.optim optimizer: use pyrolite.optim.Adam({'lr': ...}))"
            raise TypeError(f"optim must be a pyrolite.optim.PyroOptim{hint}, got {optim!r}")
        if not (isinstance(loss, ELBO) or callable(loss)):
            raise TypeError(f"loss must be an ELBO (e.g. Trace_ELBO()) or a callable, got {loss!r}")
        if hooks is not None and not isinstance(hooks, StepHooks):
            raise TypeError(f"hooks must be a pyrolite.infer.StepHooks, got {hooks!r}")
        super().__init__(**kwargs)
        self.model, self.guide, self.optim = model, guide, optim
        self.num_samples, self.num_steps = num_samples, num_steps
        self.step_count = 0
        self.skipped_steps = 0
        self.hooks = hooks if hooks is not None else StepHooks()
        #: The ELBO when ``loss`` is one (None for a plain callable loss).
        self.elbo: Optional[ELBO] = loss if isinstance(loss, ELBO) else None
        if self.elbo is not None:
            self.loss = loss.loss
        else:
            self.loss = loss
            if loss_and_grads is None:

                def loss_and_grads(model, guide, *args, **kwargs):
                    value = loss(model, guide, *args, **kwargs)
                    value.backward()
                    return value

        self.loss_and_grads = loss_and_grads
        self._step_args = None
        self._loaded_from: Optional[Tuple[str, set]] = None  # (file, param names) of a load
        self._eager = EagerStep(self)
        # compile=True (or torch.compile options): see pyrolite.infer.compiled_step.
        self._compiled = (
            CompiledStep(self, self._eager, compile if isinstance(compile, dict) else None)
            if compile
            else None
        )

    # --- the interface the step engines use ------------------------------------------

    def backward(self, *args, **kwargs) -> torch.Tensor:
        """Compute the loss and backpropagate its gradient estimate; the detached loss."""
        if self.elbo is not None:
            return self.elbo.backward(self.model, self.guide, args, kwargs)
        value = self.loss_and_grads(self.model, self.guide, *args, **kwargs)
        return torch.as_tensor(value).detach()

    def after_update(self, applied: Optional[torch.Tensor]) -> None:
        """Run the hooks that follow an update (see ``ELBO.after_update``)."""
        if self._loaded_from is not None:
            self._warn_unused_loaded()
        self.hooks.after_update(applied)
        if self.elbo is not None:
            self.elbo.after_update(applied)
            # Kept only to name a culprit; holding them would keep this step's largest
            # tensors alive into the next step.
            self.elbo.last_traces = None

    def _warn_unused_loaded(self) -> None:
        path, loaded = self._loaded_from
        self._loaded_from = None
        unused = sorted(loaded - set(self._eager.param_names))
        if unused and self._eager.param_names:
            warnings.warn(
                f"SVI.load({path!r}): the checkpoint's params {unused} are not read by this "
                "model and guide (a checkpoint of another model?). They stay in the "
                "ParamStore; remove them with del pyrolite.get_param_store()[name].",
                UserWarning,
                stacklevel=4,
            )

    @property
    def compile_info(self) -> CompileInfo:
        """What ``compile=True`` did so far (``enabled`` is False without it)."""
        if self._compiled is None:
            return CompileInfo(False, 0, ())
        return CompileInfo(True, self._compiled.num_compiled, self._compiled.fallback_reasons)

    # --- one step ------------------------------------------------------------------

    def step(self, *args, **kwargs) -> float:
        """Take one gradient step; returns the loss estimate (-ELBO) before the step."""
        return self._step(args, kwargs, stable_update=False).item()

    def _step(
        self,
        args,
        kwargs,
        stable_update: bool,
        ledger: Optional[StepLedger] = None,
    ) -> torch.Tensor:
        self._step_args = (args, kwargs)  # for naming the culprit if the loss is not finite
        try:
            if self._compiled is not None:
                loss = self._compiled(args, kwargs, stable_update, ledger)
                if loss is not None:
                    return loss
            return self._eager(args, kwargs, stable_update, ledger)
        except RuntimeError as e:
            if not _is_device_mismatch(e):
                raise
            raise self.device_error(e, args, kwargs) from e
        finally:
            self._step_args = None

    def device_error(self, error: Exception, args, kwargs) -> ValueError:
        """The error for tensors of a step met on different devices: which devices the
        data and the params read so far are on, and the fix."""
        data: Dict[str, str] = {}
        for where, value in [
            *((f"argument {i}", a) for i, a in enumerate(args)),
            *((f"argument {k!r}", v) for k, v in kwargs.items()),
        ]:
            if isinstance(value, torch.Tensor):
                data[where] = str(value.device)
        store = get_param_store()
        names = self._eager.param_names
        params = {n: str(p.device) for n, p in zip(names, store.leaves(names)) if p is not None}
        data_devices = sorted(set(data.values()))
        off = {n: d for n, d in params.items() if d not in data_devices}
        shown = ", ".join(f"{w} on {d}" for w, d in data.items()) or "no tensor arguments"
        if off:
            where = ", ".join(f"param '{n}' on {d}" for n, d in off.items())
        else:
            where = ", ".join(f"param '{n}' on {d}" for n, d in params.items()) or "no params"
        return ValueError(
            f"SVI step {self.step_count}: tensors on different devices met ({error}). The "
            f"data: {shown}; {where}. Create params on the data's device (e.g. "
            "pyrolite.param('w', torch.zeros(2, device=x.device))), or move the data and "
            "the model with .to(device). Nothing of the step was applied."
        )

    def nonfinite_error(self, loss: float, bad_grads: Optional[List[str]] = None) -> Exception:
        """The error for a step that was not applied: a ``ValueError`` naming the site where
        an observation check failed (the checks fold a failure into the loss as NaN), else
        a ``FloatingPointError`` naming the non-finite param, site or gradients."""
        if math.isnan(loss) and self.elbo is not None and is_validation_enabled():
            failure = self.elbo.validation_failure()
            if failure is None and self._step_args:
                failure = self.elbo.find_invalid(self.model, self.guide, *self._step_args)
            if failure is not None:
                return ValueError(
                    f"SVI step {self.step_count}: {failure} The step was not applied, so "
                    "params and optimizer state are unchanged."
                )
        return FloatingPointError(self.describe_nonfinite(loss, bad_grads))

    def describe_nonfinite(self, loss: float, bad_grads: Optional[List[str]] = None) -> str:
        """Why the latest step was not finite: the first param or site that is not, or (a
        finite loss) the params whose gradients are not (``bad_grads`` where the step knows
        them, else found by one eager re-run)."""
        if math.isfinite(loss):
            if bad_grads is None and self.elbo is not None and self._step_args:
                bad_grads = self._eager_nonfinite_grads(*self._step_args)
            names = ", ".join(f"'{n}'" for n in bad_grads) if bad_grads else "some params"
            return (
                f"SVI step {self.step_count}: the loss is finite ({loss}) but the gradients "
                f"of {names} are not (NaN or infinite). The step was not applied, so params "
                "and optimizer state are unchanged. Fixes: look for a log, sqrt or division "
                "at 0 (e.g. torch.where(a > 0, a.log(), a) still differentiates a.log() at "
                "a = 0), clamp inputs, or pass stable_update=True to fit() to skip such steps."
            )
        store = get_param_store()
        culprit = None
        for name in self._eager.param_names:
            if name in store and not bool(torch.isfinite(store[name]).all()):
                culprit = f"param '{name}' has non-finite values"
                break
        traces = self.elbo.last_traces if self.elbo is not None else None
        rerun = ""
        if culprit is None and traces is None and self.elbo is not None and self._step_args:
            # A compiled or deferred step leaves no traces: look again with one eager run
            # (from the current RNG state, restored afterwards).
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
            f"SVI step {self.step_count}: loss is {loss}; {where}. The step was not "
            "applied, so params and optimizer state are unchanged. Fixes: lower the learning "
            "rate, constrain scales (constraint=constraints.positive), check the data, or pass "
            "stable_update=True to fit() to skip such steps."
        )

    def _eager_nonfinite_grads(self, args, kwargs) -> Optional[List[str]]:
        """The params whose gradients are not finite, from one eager re-run (the RNG state
        restored afterwards); None where the re-run fails."""
        state = get_rng_state()
        try:
            with validation_disabled(), ParamReadsMessenger() as reads:
                loss = self.elbo.differentiable_loss(self.model, self.guide, *args, **kwargs)
            names = list(reads.names)
            leaves = get_param_store().leaves(names)
            pairs = [(n, p) for n, p in zip(names, leaves) if p is not None]
            grads = torch.autograd.grad(loss, [p for _, p in pairs], allow_unused=True)
            return nonfinite_grads([n for n, _ in pairs], grads)
        except Exception:  # noqa: BLE001 - diagnosis is best effort; the error stands
            return None
        finally:
            self.elbo.take_pending()  # the re-run's proposals are not a step's
            set_rng_state(state)

    def _eager_traces(self, args, kwargs):
        state = get_rng_state()
        try:
            with torch.no_grad(), BlockMessenger(), validation_disabled():
                return self.elbo.run_pair(self.model, self.guide, args, kwargs)
        except Exception:  # noqa: BLE001 - diagnosis is best effort; the error stands
            return None
        finally:
            set_rng_state(state)

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

        The progress bar shows the first loss and the running average. Losses and each
        step's finite verdict stay on the device and are read in batches of steps (one
        host transfer per batch, not per step): a non-finite step is masked on the device
        (with fused optimizers and the compiled step; others are checked per step), and
        every step after it too, so the error raised at the batch's end leaves params and
        optimizer state as they were before it. ``stable_update`` skips such steps instead.
        """
        if progress_bar:
            from tqdm.auto import tqdm
        else:  # tqdm.auto warns in a notebook without ipywidgets, even for a hidden bar
            from tqdm import tqdm

        store = get_param_store()
        if init_params:
            for name, value in init_params.items():
                store[name] = value
        losses = []
        batch = max(1, min(100, num_steps // 50))
        ledger = StepLedger(stable_update)
        init_loss = None
        window = max(batch, num_steps // 20)
        with tqdm(total=num_steps, disable=not progress_bar, mininterval=0.2) as bar:
            for i in range(num_steps):
                self._step(args, kwargs, stable_update, ledger)
                if len(ledger) == batch or i == num_steps - 1:
                    self._step_args = (args, kwargs)  # to name a culprit by an eager re-run
                    try:
                        ledger.resolve(self)
                    finally:
                        self._step_args = None
                        fetched = ledger.take()
                        losses.append(fetched)
                    if init_loss is None and len(fetched):
                        init_loss = float(fetched[0])
                    recent = np.concatenate(losses)[-window:]
                    bar.set_postfix_str(
                        f"init loss: {init_loss:.4f}, avg. loss [{max(1, i + 2 - len(recent))}-"
                        f"{i + 1}]: {recent.mean():.4f}",
                        refresh=False,
                    )
                    bar.update(len(fetched))
        params = {name: value.detach().clone() for name, value in store.items()}
        all_losses = np.concatenate(losses) if losses else np.zeros(0)
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
        """Everything needed to resume: params, optimizer, RNG streams, step count, and the
        state the ELBO keeps between steps (e.g. decaying-average baselines)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "step": self.step_count,
            "param_store": get_param_store().get_state(),
            "optim": self.optim.get_state(),
            "rng": get_rng_state(),
            "elbo": self.elbo.get_state() if self.elbo is not None else {},
        }

    def set_state(self, state: Dict[str, Any]) -> None:
        """Restore a :meth:`get_state` result. Every tensor is checked first (params, and
        optimizer state against the params it will step: shape, dtype, device); a bad state
        raises ``ValueError`` and leaves params, optimizer, ELBO state and RNG unchanged."""
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
        step = state["step"]
        if isinstance(step, torch.Tensor) and step.numel() == 1 and not step.is_floating_point():
            step = step.item()
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise ValueError(f"SVI checkpoint: 'step' must be an int >= 0, got {step!r}")
        elbo_state = state.get("elbo", {})  # absent from checkpoints of older versions
        if elbo_state and self.elbo is None:
            raise ValueError("the checkpoint holds ELBO state, but this SVI's loss is no ELBO")
        store = get_param_store()
        incoming = store.parse_state(state["param_store"])
        leaves = {name: store.unconstrained(name) for name in store.keys()}
        self.optim.check_state(state["optim"], {**leaves, **incoming})
        saved_rng = get_rng_state()
        try:
            set_rng_state(state["rng"])
        except Exception as e:
            set_rng_state(saved_rng)
            raise ValueError(f"SVI checkpoint: invalid RNG state ({type(e).__name__}: {e})") from e
        saved_params = store.get_state()
        saved_optim = self.optim.get_state()
        saved_elbo = self.elbo.get_state() if self.elbo is not None else {}
        if self.elbo is not None:
            try:
                self.elbo.set_state(elbo_state)  # checks everything before changing anything
            except Exception:
                set_rng_state(saved_rng)
                raise
        try:
            store.set_state(state["param_store"])
            self.optim.set_state(state["optim"])
        except Exception:
            store.clear()
            store.set_state(saved_params)
            self.optim.set_state(saved_optim)
            if self.elbo is not None:
                self.elbo.set_state(saved_elbo)
            set_rng_state(saved_rng)
            raise
        self.step_count = step

    def save(self, path) -> None:
        """Write the whole training state to ``path`` atomically (one file)."""
        save_atomic(self.get_state(), path)

    def load(self, path, map_location=None) -> None:
        """Restore a state written by ``save``; never executes code from the file."""
        state = load_weights_only(path, map_location=map_location, expected="an SVI checkpoint")
        try:
            self.set_state(state)
        except Exception as e:  # noqa: BLE001 - whatever a tampered file holds, name the file
            raise ValueError(f"cannot load SVI checkpoint {str(path)!r}: {e}") from e
        # After the next applied step: say which loaded params the model and guide never read.
        names = state["param_store"]["params"]
        self._loaded_from = (str(path), set(names))
