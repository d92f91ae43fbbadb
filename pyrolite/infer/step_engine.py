"""How an SVI step is taken: the sequence every step engine runs, and its hooks.

::

    collect the params read ─► gradients ─► hooks.combine (reduce_grads; finite?; agree)
        ─► update (applied whole, or not at all) ─► hooks.after_update, elbo.after_update

``EagerStep`` runs it with torch's optimizers; ``CompiledStep``
(:mod:`pyrolite.infer.compiled_step`) runs the same sequence inside one compiled
graph. ``StepHooks`` is where other parts plug in (gradient all-reduce for
data-parallel SVI); ``StepLedger`` lets ``fit`` read each step's verdict per batch
of steps instead of per step, with the same "nothing applied" guarantee.
"""

import functools
import signal
import threading
from contextlib import contextmanager
from typing import List, Optional, Tuple

import numpy as np
import torch

from ..params.param_store import get_param_store
from ..poutine.param_reads_messenger import ParamReadsMessenger


class StepHooks:
    """Points of every step where other parts plug in; all no-ops here.

    Subclass and pass ``SVI(..., hooks=MyHooks())``. Override ``reduce_grads`` and
    ``agree`` for the simple cases, or ``combine`` to see the whole step (loss, gradients
    and the params' names) at once, e.g. to all-reduce it in one message
    (:class:`~pyrolite.infer.distributed.DistributedSVI`). A compiled step with such a
    hook runs as two graphs (gradients; update) with the hook between.
    """

    def reduce_grads(self, grads: List[Optional[torch.Tensor]]) -> None:
        """Combine gradients in place before the update (e.g. average across processes)."""

    def agree(self, ok: torch.Tensor) -> torch.Tensor:
        """The step's finite verdict (a bool tensor) as every participant must see it."""
        return ok

    def combine(
        self, loss: torch.Tensor, grads: List[Optional[torch.Tensor]], names: List[str]
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The step as every participant must see it: ``(loss, ok)``, the gradients of
        the params ``names`` reduced in place (None: no gradient) and ``ok`` the finite
        verdict. This one calls ``reduce_grads``, then ``agree`` on the verdict."""
        self.reduce_grads(grads)
        return loss, self.agree(finite_verdict(loss, grads))

    def after_update(self, applied: Optional[torch.Tensor]) -> None:
        """After the update; ``applied`` is None (applied) or a bool tensor (see ELBO)."""

    @functools.cached_property
    def combines(self) -> bool:
        """Whether a step must go through ``combine`` (it or a method it calls is
        overridden): the compiled step then splits at it."""
        return any(
            getattr(type(self), name) is not getattr(StepHooks, name)
            for name in ("reduce_grads", "agree", "combine")
        )


def finite_verdict(loss: torch.Tensor, grads) -> torch.Tensor:
    """A bool tensor: the loss and every gradient are finite (a finite loss can have a NaN
    or infinite gradient, e.g. ``sqrt`` at 0: such a step must not be applied either)."""
    ok = torch.isfinite(loss).all()
    present = [g for g in grads if g is not None]
    if len(present) > 1 and sum(g.numel() for g in present) <= _CAT_LIMIT:
        # Many small gradients: one check over their concatenation (3 kernels, not 2 per
        # param); where they are on one device and of one dtype.
        first = present[0]
        if all(g.device == first.device and g.dtype == first.dtype for g in present):
            flat = torch.cat([g.reshape(-1) for g in present])
            return ok & torch.isfinite(flat).all()
    for g in present:
        ok = ok & torch.isfinite(g).all()
    return ok


_CAT_LIMIT = 1 << 20  # elements: above it, checking each gradient costs less than a copy


def nonfinite_grads(names: List[str], grads) -> List[str]:
    """The names of the params whose gradients are not finite (reads them on the host: for
    the error path only)."""
    return [n for n, g in zip(names, grads) if g is not None and not bool(torch.isfinite(g).all())]


@contextmanager
def applied_whole():
    """Hold back Ctrl-C (SIGINT) until the block ends, so an interrupt cannot leave a step
    half-applied (one optimizer's params updated and the next one's not); it is raised
    once the step is complete. Outside the main thread (no signal handlers there) the block
    runs as is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(frame))
    except (ValueError, OSError):  # no signals here (e.g. an embedded interpreter)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            if callable(previous):
                previous(signal.SIGINT, received[0])
            else:
                raise KeyboardInterrupt


class StepLedger:
    """``fit``'s record of steps whose losses and verdicts are still on the device.

    A deferred step records its loss and ``applied`` flag (a bool tensor); the update
    was masked by it on the device. Without ``stable_update`` the first non-finite step
    also masks every later one (``healthy`` latches False), so when :meth:`resolve`
    reads the batch (one host transfer) and finds it, params and optimizer state are
    exactly as before that step, and the error is raised then.
    """

    def __init__(self, stable_update: bool):
        self.stable_update = stable_update
        self.healthy: Optional[torch.Tensor] = None
        self._losses: List[torch.Tensor] = []
        self._applied: List[Optional[torch.Tensor]] = []
        self._done: List[np.ndarray] = []

    def __len__(self) -> int:
        return len(self._losses)

    def gate(self) -> Optional[torch.Tensor]:
        """What a deferred step's own verdict is and-ed with (None: nothing)."""
        return None if self.stable_update else self.healthy

    def settle(self, applied: torch.Tensor) -> None:
        """Note the flag a deferred step was applied under."""
        if not self.stable_update:
            self.healthy = applied

    def admit(self, ok: torch.Tensor) -> torch.Tensor:
        """The flag a deferred step is applied under, given its own verdict ``ok``."""
        gate = self.gate()
        applied = ok if gate is None else ok & gate
        self.settle(applied)
        return applied

    def record(self, loss: torch.Tensor, applied: Optional[torch.Tensor]) -> None:
        self._losses.append(loss.detach().reshape(()))
        self._applied.append(applied)

    def resolve(self, svi) -> None:
        """Read the pending steps (one host transfer) and settle SVI's counts; raise if a
        deferred step was not finite (nothing of it or after it was applied)."""
        if not self._losses:
            return
        losses = torch.stack(self._losses)
        flags = [
            torch.ones((), dtype=torch.bool, device=losses.device) if a is None else a
            for a in self._applied
        ]
        both = torch.stack([losses, torch.stack(flags).to(losses.device, losses.dtype)])
        values, applied = both.cpu().numpy()
        deferred = [a is not None for a in self._applied]
        self._losses, self._applied = [], []
        self.healthy = None
        rejected = [i for i, (a, d) in enumerate(zip(applied, deferred)) if d and not a]
        if not rejected:
            self._done.append(values)
            return
        if self.stable_update:
            svi.step_count -= len(rejected)
            svi.skipped_steps += len(rejected)
            self._done.append(values)
            return
        first = rejected[0]
        later = sum(deferred[first:])
        svi.step_count -= later
        self._done.append(values[:first])
        raise svi.nonfinite_error(float(values[first]))

    def take(self) -> np.ndarray:
        """The losses resolved since the last call."""
        done = np.concatenate(self._done) if self._done else np.zeros(0)
        self._done = []
        return done


def rejected(
    svi, loss, ok, stable_update: bool, ledger: Optional[StepLedger], bad_grads=None
) -> bool:
    """Act on a step read on the host as not finite: skip it (True) under
    ``stable_update``, else raise naming the culprit (``bad_grads``: the params whose
    gradients are not finite, where known). False for a finite step."""
    if bool(ok):
        return False
    if not stable_update:
        raise svi.nonfinite_error(loss.item(), bad_grads)
    svi.skipped_steps += 1
    if ledger is not None:
        ledger.record(loss, None)
    return True


def finish_step(svi, loss, applied: Optional[torch.Tensor], ledger: Optional[StepLedger]):
    """Count an updated step (``applied``: its device-side flag if deferred, else None),
    record it for ``fit`` and run the after-update hooks; returns ``loss``."""
    svi.step_count += 1
    if ledger is not None:
        ledger.record(loss, applied)
    svi.after_update(applied)
    return loss


class EagerStep:
    """The step with torch's optimizers (and the ELBO's own ``backward``)."""

    def __init__(self, svi):
        self.svi = svi
        self.reads = ParamReadsMessenger()

    @property
    def param_names(self) -> List[str]:
        """The params the latest step read, in first-read order."""
        return list(self.reads.names)

    def __call__(
        self, args, kwargs, stable_update: bool, ledger: Optional[StepLedger]
    ) -> torch.Tensor:
        svi = self.svi
        store = get_param_store()
        params: List[torch.Tensor] = []
        try:
            with self.reads:
                loss = svi.backward(*args, **kwargs)
            named = [(n, p) for n, p in zip(self.reads.names, store.leaves(self.reads.names))]
            named = [(n, p) for n, p in named if p is not None]
            params = [p for _, p in named]
            grads = [p.grad for p in params]
            combines = svi.hooks.combines
            if combines:
                loss, ok = svi.hooks.combine(loss, grads, [n for n, _ in named])
            else:
                ok = finite_verdict(loss, grads)
            if ledger is None and not stable_update and not combines:
                # step() reads the loss now anyway: read the verdict with it, in one transfer.
                both = torch.stack([loss.detach().reshape(()).double(), ok.double()]).cpu()
                loss, ok = both[0], bool(both[1])
            if ledger is not None:
                if svi.optim.can_mask(params):
                    applied = ledger.admit(ok)
                    with applied_whole():
                        svi.optim.step_unless(params, ~applied)
                        return finish_step(svi, loss, applied, ledger)
                # This step cannot be masked on the device: settle the pending ones first,
                # so that it is never applied after a step that failed.
                ledger.resolve(svi)
            bad = None if bool(ok) else nonfinite_grads([n for n, _ in named], grads)
            if rejected(svi, loss, ok, stable_update, ledger, bad):
                return loss
            with applied_whole():
                svi.optim(params)
                return finish_step(svi, loss, None, ledger)
        finally:
            if not params:
                params = [p for p in store.leaves(self.reads.names) if p is not None]
            for p in params:
                p.grad = None
