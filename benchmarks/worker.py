"""One benchmark run in a fresh process: ``python -m benchmarks.worker '<json spec>'``.

The spec names a workload, a config key, the steps per timing block, the number of timed
blocks and the device ("cpu", the default, or "cuda"). A spec with ``"mode": "converge"`` names
``seeds``, ``max_steps`` and ``tolerance`` instead of the blocks, and measures steps to converge
(``measure.steps_to_converge``; no timing blocks, no memory figures). The worker prints one line
``BENCH_RESULT <json>`` and exits 0, also when the framework fails (status "error") or cannot run
the config (status "skipped": an API it lacks, or its package is not installed), so one broken
framework never stops the suite.

On "cuda", ``peak_mb`` and ``run_peak_mb`` are device-memory figures (``TorchCudaMemory`` or
``JaxDeviceMemory`` in ``measure``), ``device_live_mb`` the device bytes still live after the
last step (params, optimizer state, caches); the RSS figures are kept as ``rss_peak_mb`` and
``rss_run_peak_mb``.
"""

from __future__ import annotations

import json
import sys
import traceback

from .measure import (
    JaxDeviceMemory,
    SkipConfig,
    TorchCudaMemory,
    read_memory_kb,
    release_free_heap,
    reset_peak_memory,
    set_torch_single_thread,
    steady_state_peak_kb,
    steps_to_converge,
    time_blocks,
    warm_torch_device,
    warm_torch_lazy_imports,
)

MEMORY_STEPS = 3

RESULT_PREFIX = "BENCH_RESULT "

# Packages whose absence makes a config "skipped" rather than an error (not installed here).
OPTIONAL_PACKAGES = {"pyro": "pyro-ppl", "numpyro": "numpyro", "jax": "jax", "jaxlib": "jaxlib"}


def _error_text(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    where = f" at {frames[-1].filename.split('/')[-1]}:{frames[-1].lineno}" if frames else ""
    return f"{type(error).__name__}: {error}{where}"[:400]


def run(spec: dict) -> dict:
    from . import data as bench_data
    from .frameworks import framework_module
    from .registry import WORKLOADS, find_config

    device = spec.get("device", "cpu")
    workload, config = spec["workload"], find_config(spec["workload"], spec["config"])
    result = {"workload": workload, "config": config.key, "framework": config.framework}
    if device != "cpu":
        result["device"] = device
    result["torch_threads"] = set_torch_single_thread()
    module = framework_module(config.framework)
    result["versions"] = module.prepare(config.framework)
    warm_torch_lazy_imports()
    sync = _prepare_device(module, device, result)
    dataset = bench_data.make_data(workload, WORKLOADS[workload].num_data)
    if device != "cpu":
        dataset = module.to_device(dataset, device)
    release_free_heap()
    baseline = read_memory_kb()["VmRSS"]
    result["peak_reset"] = reset_peak_memory()
    memory = _device_memory(module, device)
    build_kwargs = {} if device == "cpu" else {"device": device}
    trainer, timing = time_blocks(
        lambda: module.build(
            config.framework, workload, config, dataset, spec["block_steps"], **build_kwargs
        ),
        block_steps=spec["block_steps"],
        blocks=spec["blocks"],
        sync=sync,
    )
    run_peak = read_memory_kb()["VmHWM"]  # before scoring: least squares on W6 allocates a lot
    if memory is not None:
        device_run_peak = memory.peak_above_baseline()
        memory.reset_peak()
    step_peak, memory_steps = steady_state_peak_kb(trainer, baseline, MEMORY_STEPS)
    result.update(
        status="ok",
        us_per_step=timing.us_per_step,
        block_us_per_step=timing.block_us_per_step,
        first_step_ms=timing.first_step_ms,
        steps=timing.steps_done + memory_steps,
        baseline_mb=baseline / 1024,
        peak_mb=step_peak / 1024,
        run_peak_mb=(run_peak - baseline) / 1024,
    )
    if memory is not None:  # device-memory figures in the table columns, RSS kept aside
        device_step_peak = memory.peak_above_baseline()
        result.update(
            peak_mb=_mb(device_step_peak),
            run_peak_mb=_mb(device_run_peak),
            device_baseline_mb=_mb(memory.baseline),
            device_live_mb=_mb(memory.live_above_baseline()),
            device_memory=memory.source if device_step_peak is not None else None,
            device_peak_since_start=memory.peak_since_start,
            rss_peak_mb=step_peak / 1024,
            rss_run_peak_mb=(run_peak - baseline) / 1024,
        )
    result.update(trainer.info())
    _score(trainer, result)
    return result


def converge(spec: dict) -> dict:
    """Steps to converge of one config, one fresh build per seed, in this one process."""
    from . import data as bench_data
    from .frameworks import framework_module
    from .registry import WORKLOADS, find_config

    device = spec.get("device", "cpu")
    workload, config = spec["workload"], find_config(spec["workload"], spec["config"])
    result = {"workload": workload, "config": config.key, "framework": config.framework}
    result["mode"] = "converge"
    if device != "cpu":
        result["device"] = device
    result["torch_threads"] = set_torch_single_thread()
    module = framework_module(config.framework)
    result["versions"] = module.prepare(config.framework)
    _prepare_device(module, device, result)
    dataset = bench_data.make_data(workload, WORKLOADS[workload].num_data)
    if device != "cpu":
        dataset = module.to_device(dataset, device)
    build_kwargs = {} if device == "cpu" else {"device": device}
    runs = steps_to_converge(
        lambda seed: module.build(
            config.framework, workload, config, dataset, 1, seed=seed, **build_kwargs
        ),
        seeds=spec["seeds"],
        max_steps=spec["max_steps"],
        tolerance=spec["tolerance"],
    )
    result.update(
        status="ok",
        seeds=[r.seed for r in runs],
        converge_steps=[r.steps for r in runs],
        converge_seconds=[r.seconds for r in runs],
        max_steps=spec["max_steps"],
        tolerance=spec["tolerance"],
    )
    return result


def _prepare_device(module, device: str, result: dict):
    """Warm ``device`` up and name it in ``result``; returns the block's sync, or None."""
    if device == "cpu":
        return None
    if module.ARRAYS == "jax":
        import jax

        result["device_name"] = getattr(jax.devices()[0], "device_kind", str(jax.devices()[0]))
        return None
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("CUDA not available to torch in the worker")
    warm_torch_device(device)
    result["device_name"] = torch.cuda.get_device_name(torch.device(device))
    return lambda: torch.cuda.synchronize(device)


def _device_memory(module, device: str):
    if device == "cpu":
        return None
    return TorchCudaMemory(device) if module.ARRAYS == "torch" else JaxDeviceMemory()


def _score(trainer, result: dict) -> None:
    try:
        result["quality"] = trainer.quality()
    except Exception as error:  # noqa: BLE001 - keep the timings when only scoring fails
        result["quality_error"] = _error_text(error)


def _mb(value):
    return None if value is None else value / 2**20


def _missing_package(error: BaseException):
    """The pip name of an optional package whose import failed, else None."""
    if isinstance(error, ModuleNotFoundError) and error.name:
        return OPTIONAL_PACKAGES.get(error.name.split(".")[0])
    return None


def run_soft(spec: dict) -> dict:
    """``run`` (or ``converge``, by the spec's mode) that turns every failure into a result row
    instead of an exception."""
    try:
        result = converge(spec) if spec.get("mode") == "converge" else run(spec)
    except SkipConfig as skip:
        return {**spec, "status": "skipped", "error": str(skip)}
    except ModuleNotFoundError as error:
        package = _missing_package(error)
        if package is None:
            traceback.print_exc()
            return {**spec, "status": "error", "error": _error_text(error)}
        return {**spec, "status": "skipped", "error": f"{package} not installed"}
    except Exception as error:  # noqa: BLE001 - any framework failure becomes a table row
        traceback.print_exc()
        return {**spec, "status": "error", "error": _error_text(error)}
    return result


def main(argv) -> int:
    spec = json.loads(argv[1])
    result = run_soft(spec)
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
