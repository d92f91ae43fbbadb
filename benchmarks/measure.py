"""How a worker measures: one-thread settings, memory from /proc, the timing-block loop, and
the steps-to-converge loop (a separate measurement: its per-step quality check reads params).

Memory is read from ``/proc/self/status``. The *baseline* is VmRSS after the framework's imports,
torch's lazy first-backward imports, the data creation and a heap trim; the peak (VmHWM) is reset
to it by writing ``5`` to ``/proc/self/clear_refs``. glibc keeps freed blocks and moves its mmap
threshold at run time, which makes VmHWM of a plain run wander by tens of MB between identical
runs; so after timing, the worker pins large blocks to mmap (freed memory goes straight back to
the OS), trims the heap and runs a few more steps: their VmHWM minus the baseline is the
steady-state peak, close to the live bytes of params, optimizer state and one step's tensors.

On a GPU (``--device cuda``) the peak figures come from the device allocator instead (see
``TorchCudaMemory`` and ``JaxDeviceMemory``); RSS is still recorded, as ``rss_*`` fields.
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

# What ``--device cuda`` changes in that environment: JAX runs on the GPU, allocates device
# memory as it goes (by default it grabs 75% of the GPU at start, which would leave nothing
# for the memory figure to say), and multiplies float32 matrices in full float32 as torch
# does by default (JAX's GPU default is TF32).
CUDA_ENV = {
    "JAX_PLATFORMS": "cuda",
    "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
    "JAX_DEFAULT_MATMUL_PRECISION": "highest",
}


def device_env(device: str) -> Dict[str, str]:
    """The worker environment for ``device``: the one-thread settings, plus ``CUDA_ENV``."""
    env = dict(SINGLE_THREAD_ENV)
    if device == "cuda":
        env.update(CUDA_ENV)
    return env


# glibc malloc with fixed thresholds (the default with ``--malloc steady``): by default glibc
# moves its mmap and trim thresholds as a process frees large blocks, so steps that make
# many ~1 MB temporaries page-fault a varying amount per step depending on the process's
# allocation history (W3/W6 rows swung by up to 2x between identical runs). Fixed
# thresholds measure the steady-state step, the same way for every framework's worker.
STEADY_MALLOC_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(32 * 1024 * 1024),
    "MALLOC_TRIM_THRESHOLD_": str(128 * 1024 * 1024),
}


def malloc_settings(choice: str) -> tuple:
    """The allocator settings ``--malloc choice`` runs under, the main tables' first: "both"
    is "steady" for every row plus "default" for the allocator comparison's rows."""
    return ("steady", "default") if choice == "both" else (choice,)


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


def warm_torch_device(device: str) -> None:
    """The same throwaway step on ``device``, with matrix products forward and backward.

    Creates the CUDA context, the caching allocator's first block, the autograd engine's
    device thread and the cuBLAS handles and workspaces (one per thread: the forward's and
    the backward thread's, 32 MiB each on an H100) before the baseline, so that none of them
    lands in a framework's peak figure (all torch frameworks would pay them once).
    """
    import torch

    matrix = torch.zeros(4, 4, requires_grad=True, device=device)
    vector = torch.zeros(4, requires_grad=True, device=device)
    optimizer = torch.optim.Adam([matrix, vector], lr=1e-3)
    ones = torch.ones(4, 4, device=device)
    ((ones @ matrix).sum() + (ones @ vector).sum() + (matrix @ vector).sum()).backward()
    optimizer.step()
    torch.cuda.synchronize(device)
    del matrix, vector, optimizer, ones


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


class TorchCudaMemory:
    """Bytes of live tensors in torch's CUDA caching allocator, above a baseline.

    ``torch.cuda.memory_allocated`` counts the tensors the allocator hands out, not the
    blocks it caches nor the CUDA context; its peak can be reset at any point.
    """

    source = "torch.cuda.max_memory_allocated"
    peak_since_start = False

    def __init__(self, device: str):
        import torch

        self.torch, self.device = torch, torch.device(device)
        self.baseline = self._synced_allocated()
        self.reset_peak()

    def _synced_allocated(self) -> int:
        self.torch.cuda.synchronize(self.device)
        return self.torch.cuda.memory_allocated(self.device)

    def reset_peak(self) -> None:
        self.torch.cuda.synchronize(self.device)
        self.torch.cuda.reset_peak_memory_stats(self.device)

    def peak_above_baseline(self) -> int:
        self.torch.cuda.synchronize(self.device)
        return self.torch.cuda.max_memory_allocated(self.device) - self.baseline

    def live_above_baseline(self) -> int:
        return self._synced_allocated() - self.baseline


class JaxDeviceMemory:
    """``bytes_in_use`` of a JAX device's allocator, from ``device.memory_stats()``.

    JAX offers no way to reset ``peak_bytes_in_use``, so every peak it gives is the peak
    since the process started (compilation and autotuning scratch included: compiling even a
    trivial jitted function on an H100 raised it by 64 MB), minus the baseline.
    ``available`` is False where the backend has no memory stats.
    """

    source = "jax memory_stats() peak_bytes_in_use"
    peak_since_start = True

    def __init__(self, device=None):
        import jax

        self.device = device if device is not None else jax.devices()[0]
        stats = self._stats()
        self.available = bool(stats) and "bytes_in_use" in stats
        self.baseline = stats["bytes_in_use"] if self.available else 0

    def _stats(self):
        try:
            return self.device.memory_stats()
        except Exception:  # noqa: BLE001 - a backend without stats: no figure
            return None

    def reset_peak(self) -> None:
        """Not possible in JAX; kept so both classes are used the same way."""

    def peak_above_baseline(self):
        stats = self._stats() if self.available else None
        if not stats or "peak_bytes_in_use" not in stats:
            return None
        return stats["peak_bytes_in_use"] - self.baseline

    def live_above_baseline(self):
        stats = self._stats() if self.available else None
        return stats["bytes_in_use"] - self.baseline if stats else None


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
    sync: Callable[[], object] | None = None,
) -> tuple:
    """Build a trainer, time its first step, one warm-up block, then ``blocks`` timed blocks.

    ``build()`` returns an object with ``step()`` (runs ``steps_per_call`` steps and syncs)
    and ``steps_per_call``. The first-step time covers building plus the first call, so lazy
    initialisation and compilation land there. ``sync`` (e.g. ``torch.cuda.synchronize``)
    runs after the first step and at the end of every block, inside the timed span, for a
    device where a step may return before all of its work is done. Returns
    ``(trainer, Timing)``.
    """
    start = time.perf_counter()
    trainer = build()
    trainer.step()
    if sync is not None:
        sync()
    timing = Timing(first_step_ms=(time.perf_counter() - start) * 1e3)
    per_call = trainer.steps_per_call
    calls = max(1, block_steps // per_call)
    timing.steps_done = per_call
    for block in range(warmup_blocks + blocks):
        start = time.perf_counter()
        for _ in range(calls):
            trainer.step()
        if sync is not None:
            sync()
        elapsed = time.perf_counter() - start
        timing.steps_done += calls * per_call
        if block >= warmup_blocks:
            timing.block_us_per_step.append(elapsed * 1e6 / (calls * per_call))
    return trainer, timing


@dataclass
class ConvergeRun:
    """One seed's steps-to-converge run: the steps done (``None``: not within the limit)."""

    seed: int
    steps: int | None
    seconds: float


def steps_to_converge(
    build: Callable[[int], object], seeds, max_steps: int, tolerance: float
) -> List[ConvergeRun]:
    """For each seed, build a trainer (``build(seed)``) and step it until its ``quality()``
    drops below ``tolerance``, checked after every step, at most ``max_steps`` steps.

    The trainer must run one step per call (``steps_per_call == 1``). A run's ``steps`` is the
    first k (counting from 1) after which the check holds.
    """
    runs = []
    for seed in seeds:
        start = time.perf_counter()
        trainer = build(seed)
        if trainer.steps_per_call != 1:
            raise ValueError("steps to converge needs a trainer that runs one step per call")
        done = None
        for k in range(1, max_steps + 1):
            trainer.step()
            if trainer.quality() < tolerance:
                done = k
                break
        runs.append(ConvergeRun(seed, done, time.perf_counter() - start))
    return runs
