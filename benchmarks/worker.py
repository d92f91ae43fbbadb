"""One benchmark run in a fresh process: ``python -m benchmarks.worker '<json spec>'``.

The spec names a workload, a config key, the steps per timing block and the number of timed
blocks. The worker prints one line ``BENCH_RESULT <json>`` and exits 0, also when the framework
fails (status "error") or cannot run the config (status "skipped"), so one broken framework never
stops the suite.
"""

from __future__ import annotations

import json
import sys
import traceback

from .measure import (
    SkipConfig,
    read_memory_kb,
    release_free_heap,
    reset_peak_memory,
    set_torch_single_thread,
    steady_state_peak_kb,
    time_blocks,
    warm_torch_lazy_imports,
)

MEMORY_STEPS = 3

RESULT_PREFIX = "BENCH_RESULT "


def _error_text(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    where = f" at {frames[-1].filename.split('/')[-1]}:{frames[-1].lineno}" if frames else ""
    return f"{type(error).__name__}: {error}{where}"[:400]


def run(spec: dict) -> dict:
    from . import data as bench_data
    from .frameworks import framework_module
    from .registry import WORKLOADS, find_config

    workload, config = spec["workload"], find_config(spec["workload"], spec["config"])
    result = {"workload": workload, "config": config.key, "framework": config.framework}
    result["torch_threads"] = set_torch_single_thread()
    module = framework_module(config.framework)
    result["versions"] = module.prepare(config.framework)
    warm_torch_lazy_imports()
    dataset = bench_data.make_data(workload, WORKLOADS[workload].num_data)
    release_free_heap()
    baseline = read_memory_kb()["VmRSS"]
    result["peak_reset"] = reset_peak_memory()
    trainer, timing = time_blocks(
        lambda: module.build(config.framework, workload, config, dataset, spec["block_steps"]),
        block_steps=spec["block_steps"],
        blocks=spec["blocks"],
    )
    run_peak = read_memory_kb()["VmHWM"]  # before scoring: least squares on W6 allocates a lot
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
    try:
        result["quality"] = trainer.quality()
    except Exception as error:  # noqa: BLE001 - keep the timings when only scoring fails
        result["quality_error"] = _error_text(error)
    return result


def run_soft(spec: dict) -> dict:
    """``run`` that turns every failure into a result row instead of an exception."""
    try:
        result = run(spec)
    except SkipConfig as skip:
        return {**spec, "status": "skipped", "error": str(skip)}
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
