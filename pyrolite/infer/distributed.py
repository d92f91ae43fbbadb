"""``DistributedSVI``: SVI data-parallel over the processes of ``torch.distributed``.

Launch one process per CPU core group or GPU with ``torchrun`` (or
``torch.multiprocessing.spawn``), call ``torch.distributed.init_process_group`` (gloo
on CPU, NCCL on GPU), and build ``DistributedSVI`` where a one-process program builds
``SVI``. Every process runs the same model and guide; what differs is the data:

* a plate that draws a subsample (``subsample_size``) is split: the global batch is
  drawn as one process would draw it and each process takes its equal part
  (``shard_plates`` names the plates to split instead, full ones included: data held
  whole by every process, computed in parts);
* a plate named in ``local_plates`` is the process's own part of the data (each loads
  its own rows);
* every other plate is computed alike by every process.

Log-probs are weighed so that the average of the processes' estimates is the
one-process estimate (see :mod:`pyrolite.poutine.shard_messenger`). Every step then
runs the one-process step with one more stage on the step engine's
:meth:`~pyrolite.infer.step_engine.StepHooks.combine` hook:

1. a header: whether every process got this far, and a digest of the params, shapes
   and dtypes it read, so processes running different models fail fast with an error
   naming the first param that differs (instead of exchanging buffers of different
   sizes), and a process whose step raised ends every process's step with its error.
   It goes as its own small all-reduce over a CPU (gloo) group at each layout's first
   step (and every step on a GPU, where reading it back from the buffer would wait for
   the device); after that, on the CPU, it rides in the tail of the buffer below;
2. one all-reduce of one flat buffer: the gradients, the state the ELBO proposes
   (baselines' averages), the loss and each process's finite verdict, averaged.
   Every process then holds the same gradients, loss and verdict: all apply the step
   or none does, and their ParamStores stay identical.

A layout that changes on one process alone while the others keep theirs (a
data-dependent structure) makes it send a header while they send buffers: gloo then
aborts on the size mismatch, or the digest bytes in the buffers disagree and the
processes raise; the run ends either way, but maybe without the message naming the
param.

Params are created by rank 0: a param a step reads for the first time is broadcast
from rank 0, and the step is taken again from the same RNG state. The RNG streams of
every process are rank 0's (at construction and after ``load``), so the processes
draw the same global latents and the same global batch, as one process would.
``save`` writes from rank 0 only (every process calls it); ``load`` reads the file on
every process.
"""

import contextlib
import datetime
import hashlib
import warnings
import weakref
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.distributed as dist

from ..params.param_store import get_param_store
from ..poutine.shard_messenger import FingerprintMessenger, ShardMessenger
from ..process_state import get_rng_state, set_rng_state
from .step_engine import StepHooks, finite_verdict
from .svi import SVI

_OK, _FAILED = 0, 1
_PIECES = 3  # digest bytes in each flat buffer
_TAIL = 2 + 2 * _PIECES  # failed-ranks bits, raised count, digest bytes and squares


class _Plan:
    """What a step of one layout sends: the layout and its ``digest`` (the header), the
    dtype of its flat buffer, the leaves to take from rank 0 before its first step, and
    (weakly) the leaves it was made for (a param replaced since needs a new plan).
    ``checked``: a header has confirmed every process runs this layout."""

    __slots__ = (
        "layout",
        "digest",
        "dtype",
        "new_leaves",
        "leaves",
        "checked",
        "pieces",
        "size",
        "tail",
    )

    def __init__(self, layout, digest: int, dtype: torch.dtype, size: int, new_leaves, leaves):
        self.layout, self.digest, self.dtype = layout, digest, dtype
        self.size = size  # gradient, state and loss elements of its flat buffer
        self.new_leaves, self.leaves = new_leaves, leaves
        self.checked = False
        self.tail: Optional[torch.Tensor] = None  # its tail's template, on the device
        # The digest's low bytes, and their squares, ride in every flat buffer: exact in
        # float32 sums over up to 256 processes.
        bytes_ = [float(digest >> (8 * i) & 0xFF) for i in range(_PIECES)]
        self.pieces = bytes_ + [b * b for b in bytes_]


class RankFailed(RuntimeError):
    """Another process's step raised: this process's step was not applied either."""


class _ParamsAppeared(Exception):
    """A step read params not yet taken from rank 0; they were, and the step runs again."""


class AllReduceHooks(StepHooks):
    """The step-engine hooks of :class:`DistributedSVI` (see the module docstring)."""

    def __init__(self, svi: "DistributedSVI"):
        self.svi = svi
        self.group, self.header_group = svi.process_group, svi.header_group
        self.rank, self.world_size = svi.rank, svi.world_size
        #: Which ranks' own step was not finite at the latest combine: the sum of
        #: ``2**rank`` over them (a device tensor; see ``ranks_failed``).
        self.failed_ranks: Optional[torch.Tensor] = None
        #: Whether this process has sent its part of the current step (header or buffer).
        self.communicated = False
        #: The plan of the latest step whose header rode in its flat buffer (CPU).
        self.steady_plan: Optional[_Plan] = None
        self._synced: Dict[str, weakref.ref] = {}
        self._plans: Dict[tuple, _Plan] = {}

    # ------------------------------------------------------------------ the header

    def send_header(self, status: int, layout: Sequence[tuple], digest: int) -> None:
        """Exchange ``status`` and the ``digest`` of ``layout`` with every process; raise
        what a process that failed raised, or name the first param that differs."""
        self.communicated = True
        header = torch.tensor([status, digest, -digest], dtype=torch.int64)
        dist.all_reduce(header, op=dist.ReduceOp.MAX, group=self.header_group)
        worst, high, low = header.tolist()
        if worst != _OK:
            raise self.gather_failure(None)
        if high != -low:
            raise self.layout_error(layout)

    def send_failure(self, error: BaseException, steady: bool) -> None:
        """Tell every process this one's step raised ``error``: in the flat buffer the
        others are sending (``steady``: the latest layout's, on the CPU), else in place of
        a header; then hand them the error."""
        self.communicated = True
        plan = self.steady_plan if steady else None
        if plan is not None:
            flat = torch.zeros(plan.size + _TAIL, dtype=plan.dtype)
            flat[-_TAIL:] = torch.tensor([0.0, 1.0, *plan.pieces], dtype=plan.dtype)
            dist.all_reduce(flat, group=self.group)
        else:
            header = torch.tensor([_FAILED, 0, 0], dtype=torch.int64)
            dist.all_reduce(header, op=dist.ReduceOp.MAX, group=self.header_group)
        self.gather_failure(error)

    def gather_failure(self, mine: Optional[BaseException]) -> RankFailed:
        """Every process's error of this step (None for a process that did not fail),
        gathered; the error to raise on a process that did not fail."""
        text = None if mine is None else f"{type(mine).__name__}: {mine}"
        errors: List[Optional[str]] = [None] * self.world_size
        dist.all_gather_object(errors, text, group=self.header_group)
        failed = [(r, e) for r, e in enumerate(errors) if e is not None]
        shown = "\n".join(f"  rank {r}: {e}" for r, e in failed)
        return RankFailed(
            f"DistributedSVI step {self.svi.step_count}: the step raised on rank(s) "
            f"{[r for r, _ in failed]}, so no process applied it:\n{shown}"
        )

    def layout_error(self, layout) -> ValueError:
        layouts: List[Optional[list]] = [None] * self.world_size
        dist.all_gather_object(layouts, list(layout), group=self.header_group)
        first = layouts[0]
        for rank, other in enumerate(layouts[1:], start=1):
            if other == first:
                continue
            i = next(
                (i for i, (a, b) in enumerate(zip(first, other)) if a != b),
                min(len(first), len(other)),
            )
            mine = _describe(first, i)
            theirs = _describe(other, i)
            return ValueError(
                f"DistributedSVI step {self.svi.step_count}: rank 0 and rank {rank} read "
                f"different params: at position {i} rank 0 has {mine} and rank {rank} has "
                f"{theirs}. Every process must run the same model and guide (the same "
                "params with the same shapes and dtypes, and the same plates); nothing of "
                "this step was applied."
            )
        return ValueError("DistributedSVI: the processes disagree on the step's params")

    # ------------------------------------------------------------------ the step

    def combine(self, loss, grads, names):
        elbo = self.svi.elbo
        leaves = get_param_store().leaves(names)
        pending = elbo.take_pending() if elbo is not None else {}
        key = (
            tuple(names),
            tuple(g is not None for g in grads),
            tuple((n, v.shape, v.dtype) for n, v in pending.items()),
        )
        plan = self._plans.get(key)
        if plan is None or not all(r() is p for r, p in zip(plan.leaves, leaves)):
            plan = self.plan(key, loss, grads, leaves, pending)
        # On the CPU the header rides in the flat buffer once every process has confirmed
        # this layout (reading it back costs no device sync); on a GPU it goes ahead of the
        # buffer, over the CPU group, every step.
        host = loss.device.type == "cpu"
        if not (host and plan.checked):
            self.send_header(_OK, plan.layout, plan.digest)
            plan.checked = True
        if plan.new_leaves:
            # Read for the first time: take rank 0's values, and the step again.
            self.compare_observations()
            self.take_from_rank0(plan.new_leaves)
            for n, p in zip(names, leaves):
                self._synced[n] = weakref.ref(p)
            self._plans.pop(key)
            raise _ParamsAppeared()
        present = [g for g in grads if g is not None]
        state = list(pending.values())
        dtype = plan.dtype
        failed = (~finite_verdict(loss, grads)).to(dtype) * float(2**self.rank)
        if plan.tail is None:  # made once: no host-to-device copy per step
            plan.tail = torch.tensor([0.0, 0.0, *plan.pieces], dtype=dtype, device=loss.device)
        tail = plan.tail.clone()
        tail[0] = failed
        parts = [g.reshape(-1).to(dtype) for g in present]
        parts += [v.reshape(-1).to(dtype) for v in state]
        parts += [loss.detach().reshape(1).to(dtype), tail]
        flat = torch.cat(parts)
        self.communicated = True
        dist.all_reduce(flat, group=self.group)
        if host:
            self.check_tail(flat[-_TAIL:].tolist(), plan)
            self.steady_plan = plan
        else:
            self.steady_plan = None
        # The tail's first slot: the sum of 2**rank over the ranks whose step was not finite.
        self.failed_ranks = flat[-_TAIL]
        averaged = flat[:-_TAIL].div_(self.world_size)
        offset = 0
        for g in present + state:
            n = g.numel()
            g.copy_(averaged[offset : offset + n].view_as(g))
            offset += n
        if pending:
            elbo.set_pending(pending)
        return averaged[offset].to(loss.dtype), self.failed_ranks == 0

    def check_tail(self, tail: List[float], plan: _Plan) -> None:
        """Act on the header that rode in the flat buffer: a process raised, or (a layout
        one process changed alone) the processes sent different layouts."""
        if tail[1] > 0:
            raise self.gather_failure(None)
        w = self.world_size
        sums, squares = tail[2 : 2 + _PIECES], tail[2 + _PIECES :]
        # Every process sent the same bytes iff w * sum(d^2) == sum(d)^2, for each byte.
        if any(w * q != d * d for d, q in zip(sums, squares)):
            raise self.layout_error(plan.layout)

    def plan(self, key, loss, grads, leaves, pending) -> "_Plan":
        """What a step of this layout sends (made once per layout)."""
        names = key[0]
        layout = [
            ("param", n, tuple(p.shape), str(p.dtype), g is not None)
            for n, p, g in zip(names, leaves, grads)
        ]
        layout += [("state", n, tuple(v.shape), str(v.dtype), True) for n, v in pending.items()]
        present = [g for g in grads if g is not None]
        devices = {g.device for g in present} | {loss.device}
        if len(devices) > 1:
            raise ValueError(
                "DistributedSVI: the step's gradients and loss are on different devices "
                f"({', '.join(sorted(map(str, devices)))}); keep every param and the data on "
                "one device per process"
            )
        dtype = loss.dtype
        for t in present + list(pending.values()):
            dtype = torch.promote_types(dtype, t.dtype)
        synced = self._synced
        new = [p for n, p in zip(names, leaves) if (r := synced.get(n)) is None or r() is not p]
        size = sum(t.numel() for t in present + list(pending.values())) + 1  # + the loss
        refs = tuple(weakref.ref(p) for p in leaves)
        plan = self._plans[key] = _Plan(layout, _digest(layout), dtype, size, new, refs)
        return plan

    def compare_observations(self) -> None:
        """Warn about observed sites outside the sharded plates whose data differ across
        processes (each process's part then counts 1/world_size: a forgotten
        ``local_plates``). Once, at a step that takes params from rank 0."""
        recorded = self.svi.fingerprints
        seen = recorded.seen if recorded is not None else {}
        mine = {n: (float(v), plates) for n, (v, plates) in seen.items()}
        everyone: List[Optional[dict]] = [None] * self.world_size
        dist.all_gather_object(everyone, mine, group=self.header_group)
        for name, (_, plates) in mine.items():
            values = [other.get(name, (None,))[0] for other in everyone]
            if all(v == values[0] for v in values):
                continue
            where = f"in plate(s) {plates} " if plates else ""
            hint = f"local_plates=[{plates[-1]!r}]" if plates else "local_plates"
            warnings.warn(
                f"DistributedSVI: observed site '{name}' {where}has different data on "
                "different processes, but it is in no split or local plate, so the average "
                f"over processes weighs each process's data 1/{self.world_size}: the "
                f"posterior of 1/{self.world_size} of the data. If each process holds its own "
                f"part of the data, pass {hint}.",
                UserWarning,
                stacklevel=6,
            )

    def ranks_failed(self) -> List[int]:
        """The ranks whose own latest step was not finite (reads the device: error path)."""
        if self.failed_ranks is None:
            return []
        mask = int(self.failed_ranks.item())
        return [r for r in range(self.world_size) if mask >> r & 1]

    def take_from_rank0(self, leaves: List[torch.Tensor]) -> None:
        """Overwrite ``leaves`` in place with rank 0's values (one broadcast per dtype)."""
        by_dtype: Dict[torch.dtype, List[torch.Tensor]] = {}
        for p in leaves:
            by_dtype.setdefault(p.dtype, []).append(p)
        with torch.no_grad():
            for group in by_dtype.values():
                flat = torch.cat([p.detach().reshape(-1) for p in group])
                dist.broadcast(flat, src=global_rank0(self.group), group=self.group)
                offset = 0
                for p in group:
                    p.copy_(flat[offset : offset + p.numel()].view_as(p))
                    offset += p.numel()


def global_rank0(group) -> int:
    """The global rank of ``group``'s rank 0 (what broadcasts name as their source)."""
    return 0 if group is None else dist.get_global_rank(group, 0)


class DistributedSVI(SVI):
    """``SVI`` data-parallel over the processes of a ``torch.distributed`` process group.

    :param model, guide, optim, loss: as for :class:`~pyrolite.infer.svi.SVI` (every
        process passes the same ones).
    :param shard_plates: names of the plates whose batch is split across processes;
        None (default): every plate that draws a subsample.
    :param local_plates: names of the plates over which each process holds its own part
        of the data (e.g. ``plate("data", len(my_rows))``).
    :param process_group: the group to run over (default: the whole world).
    :param timeout: for a group that is not gloo (NCCL): the timeout of the CPU group
        made for the header, i.e. how long a process waits there for the others before
        the run fails. A gloo group carries the header itself, under the timeout given
        to ``init_process_group``.
    :param kwargs: the other ``SVI`` options (``compile=``, ``num_samples=``...).

    ``torch.distributed.init_process_group`` must have run first. Every process calls
    ``step``/``fit``/``evaluate_loss``/``save``/``load`` in the same order; ``load``
    restores a checkpoint of any number of processes, each process reading the file
    itself (so it must be visible to all of them).
    ``svi.model``/``svi.guide`` are the sharded wrappers; ``svi.user_model`` and
    ``svi.user_guide`` are the functions passed in (for ``Predictive``). See
    ``tutorials/distributed_regression.py`` for a whole program launched by torchrun.
    """

    def __init__(
        self,
        model: Callable,
        guide: Callable,
        optim,
        loss,
        shard_plates: Optional[Sequence[str]] = None,
        local_plates: Sequence[str] = (),
        process_group=None,
        timeout: datetime.timedelta = datetime.timedelta(minutes=5),
        **kwargs,
    ):
        if not dist.is_available() or not dist.is_initialized():
            raise RuntimeError(
                "DistributedSVI needs torch.distributed initialized first: call "
                "torch.distributed.init_process_group('gloo') (CPU) or ('nccl') (GPU) in "
                "every process, e.g. launched by torchrun --nproc_per_node=2 script.py"
            )
        if kwargs.get("hooks") is not None:
            raise TypeError("DistributedSVI takes no hooks: its own all-reduce the step")
        self.process_group = process_group
        self.rank = dist.get_rank(process_group)
        self.world_size = dist.get_world_size(process_group)
        backend = dist.get_backend(process_group)
        # The header is host data: on a GPU group it goes over a CPU group of its own, so
        # reading it never waits for the GPU.
        if backend == "gloo":
            self.header_group = process_group
        else:
            ranks = None if process_group is None else dist.get_process_group_ranks(process_group)
            self.header_group = dist.new_group(ranks=ranks, backend="gloo", timeout=timeout)
        self.sharding = ShardMessenger(self.rank, self.world_size, shard_plates, local_plates)
        self.user_model, self.user_guide = model, guide
        super().__init__(self.sharding(model), self.sharding(guide), optim, loss, **kwargs)
        self.hooks = AllReduceHooks(self)
        self._installs_seen: Optional[int] = None
        #: Records the observations during a step that may meet new params (else None).
        self.fingerprints: Optional[FingerprintMessenger] = None
        self.take_rng_from_rank0()

    def take_rng_from_rank0(self) -> None:
        """Set every process's RNG streams to rank 0's (all draw alike from here on)."""
        state = [get_rng_state() if self.rank == 0 else None]
        dist.broadcast_object_list(
            state, src=global_rank0(self.header_group), group=self.header_group
        )
        set_rng_state(state[0])

    def _step(self, args, kwargs, stable_update, ledger=None):
        hooks, store = self.hooks, get_param_store()
        for _ in range(2):
            # A step can meet params not taken from rank 0 only if some were installed
            # since the last step: only then is the RNG state kept to take it again.
            rng = get_rng_state() if store.install_count != self._installs_seen else None
            # ... and only then are the observations recorded, to compare if it does.
            self.fingerprints = FingerprintMessenger(self.sharding) if rng is not None else None
            hooks.communicated = False
            try:
                with self.fingerprints or contextlib.nullcontext():
                    loss = super()._step(args, kwargs, stable_update, ledger)
                self._installs_seen = store.install_count
                return loss
            except _ParamsAppeared:
                # Rank 0's values are in place now: take the step again, drawing alike.
                if self.elbo is not None:
                    self.elbo.take_pending()
                if rng is not None:
                    set_rng_state(rng)
            except RankFailed:
                raise
            except Exception as e:
                if hooks.communicated:
                    raise  # every process has met this step's exchange: each raises its own
                # The others expect the latest layout's buffer unless this step may have
                # met new params (then every process starts with a header).
                hooks.send_failure(e, steady=rng is None)
                raise
        raise RuntimeError("DistributedSVI: params kept appearing; is the model's structure fixed?")

    def nonfinite_error(self, loss: float, bad_grads=None) -> Exception:
        ranks = self.hooks.ranks_failed()
        if ranks and self.rank not in ranks:
            return FloatingPointError(
                f"DistributedSVI step {self.step_count}: the step was not finite on rank(s) "
                f"{ranks} (their error names the site or param); it was finite here. No "
                "process applied it, so params and optimizer state are unchanged everywhere."
            )
        return super().nonfinite_error(loss, bad_grads)

    def evaluate_loss(self, *args, **kwargs) -> float:
        """The loss estimate averaged over the processes, without gradients or a step."""
        value = torch.tensor([super().evaluate_loss(*args, **kwargs)], dtype=torch.float64)
        dist.all_reduce(value, group=self.header_group)
        return float(value) / self.world_size

    def save(self, path) -> None:
        """Write the training state from rank 0 (every process calls it; it returns once
        the file is complete)."""
        if self.rank == 0:
            super().save(path)
        dist.barrier(group=self.header_group)


def _digest(layout) -> int:
    text = repr(list(layout)).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1


def _describe(layout: list, i: int) -> str:
    if i >= len(layout):
        return "no more params"
    kind, name, shape, dtype, has_grad = layout[i]
    what = "param" if kind == "param" else "ELBO state"
    return f"{what} '{name}' (shape {shape}, {dtype})" + ("" if has_grad else " without a gradient")
