"""How a worker measures: one-thread settings, memory from /proc, and the timing-block loop.

Memory is read from ``/proc/self/status``. The *baseline* is VmRSS after the framework's imports,
torch's lazy first-backward imports, the data creation and a heap trim; the peak (VmHWM) is reset
to it by writing ``5`` to ``/proc/self/clear_refs``. glibc keeps freed blocks and moves its mmap
threshold at run time, which makes VmHWM of a plain run wander by tens of MB between identical
runs; so after timing, the worker pins large blocks to mmap (freed memory goes straight back to
the OS), trims the heap and runs a few more steps: their VmHWM minus the baseline is the
steady-state peak, close to the live bytes of params, optimizer state and one step's tensors.
"""

from __future__ import annotations

import ctypes
import gc
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List

# Environment for every worker process, set before its interpreter starts.
SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    "JAX_PLATFORMS": "cpu",
}


# glibc malloc with fixed thresholds (the default with ``--malloc steady``): by default glibc
# moves its mmap and trim thresholds as a process frees large blocks, so steps that make
# many ~1 MB temporaries page-fault a varying amount per step depending on the process's
# allocation history (W3/W6 rows swung by up to 2x between identical runs). Fixed
# thresholds measure the steady-state step, the same way for every framework's worker.
STEADY_MALLOC_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(32 * 1024 * 1024),
    "MALLOC_TRIM_THRESHOLD_": str(128 * 1024 * 1024),
}


class SkipConfig(Exception):
    """Raised by a builder when a config cannot run here (e.g. an API not written yet)."""


def set_torch_single_thread() -> int:
    import torch

    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set once in this process
        pass
    return torch.get_num_threads()


def warm_torch_lazy_imports() -> None:
    """Run one throwaway backward and Adam step on a 1-element tensor.

    The first ``backward()`` in a process imports hundreds of modules (~80 MB RSS); doing it
    before the baseline keeps that one-off cost out of every framework's peak-memory figure.
    """
    import torch

    param = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.Adam([param], lr=1e-3)
    (param * 2).sum().backward()
    optimizer.step()


def read_memory_kb() -> Dict[str, int]:
    """VmRSS and VmHWM of this process in kB."""
    values = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values


def _libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: trimming and pinning are skipped, figures are plain VmHWM
        return None


def release_free_heap() -> None:
    """Collect garbage and hand glibc's free heap pages back to the OS."""
    gc.collect()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def pin_large_allocations_to_mmap(threshold: int = 64 * 1024) -> bool:
    """Serve blocks >= ``threshold`` bytes by mmap from now on, so RSS follows live memory.

    Only used after timing: fresh pages for every large tensor would slow the steps down.
    """
    libc = _libc()
    if libc is None:
        return False
    # Transparent huge pages would round each large tensor's pages up to 2 MB, differently
    # from run to run depending on alignment; 4 kB pages keep the count to the bytes touched.
    pr_set_thp_disable = 41  # from linux/prctl.h
    libc.prctl(pr_set_thp_disable, 1, 0, 0, 0)
    m_mmap_threshold = -3  # from glibc's malloc.h
    return libc.mallopt(m_mmap_threshold, threshold) == 1


def steady_state_peak_kb(trainer, baseline_kb: int, steps: int = 3) -> tuple:
    """Peak RSS above ``baseline_kb`` over about ``steps`` more steps, large blocks on mmap.

    Returns ``(peak_kb, steps_run)``.
    """
    pin_large_allocations_to_mmap()
    release_free_heap()
    reset_peak_memory()
    calls = max(1, steps // trainer.steps_per_call)
    for _ in range(calls):
        trainer.step()
    return read_memory_kb()["VmHWM"] - baseline_kb, calls * trainer.steps_per_call


def reset_peak_memory() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


@dataclass
class Timing:
    """What the block loop measured, all times in microseconds or milliseconds as named."""

    first_step_ms: float
    block_us_per_step: List[float] = field(default_factory=list)
    steps_done: int = 0

    @property
    def us_per_step(self) -> float:
        return statistics.median(self.block_us_per_step)


def time_blocks(
    build: Callable[[], object],
    block_steps: int,
    blocks: int,
    warmup_blocks: int = 1,
) -> tuple:
    """Build a trainer, time its first step, one warm-up block, then ``blocks`` timed blocks.

    ``build()`` returns an object with ``step()`` (runs ``steps_per_call`` steps and syncs)
    and ``steps_per_call``. The first-step time covers building plus the first call, so lazy
    initialisation and compilation land there. Returns ``(trainer, Timing)``.
    """
    start = time.perf_counter()
    trainer = build()
    trainer.step()
    timing = Timing(first_step_ms=(time.perf_counter() - start) * 1e3)
    per_call = trainer.steps_per_call
    calls = max(1, block_steps // per_call)
    timing.steps_done = per_call
    for block in range(warmup_blocks + blocks):
        start = time.perf_counter()
        for _ in range(calls):
            trainer.step()
        elapsed = time.perf_counter() - start
        timing.steps_done += calls * per_call
        if block >= warmup_blocks:
            timing.block_us_per_step.append(elapsed * 1e6 / (calls * per_call))
    return trainer, timing
