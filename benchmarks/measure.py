"""How a worker measures: one-thread settings, memory from /proc, and the timing-block loop.

Memory is read from ``/proc/self/status``: the *baseline* is VmRSS after the framework's imports
and the data creation; the peak high-water mark (VmHWM) is then reset to that level by writing
``5`` to ``/proc/self/clear_refs``, so VmHWM at the end minus the baseline is the peak memory the
SVI setup and steps added.
"""

from __future__ import annotations

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


def read_memory_kb() -> Dict[str, int]:
    """VmRSS and VmHWM of this process in kB."""
    values = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values


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
