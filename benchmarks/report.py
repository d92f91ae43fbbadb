"""Render ``RESULTS.md``: machine header, method, one table per workload, the issue targets."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import re
from pathlib import Path
from typing import Dict, List

from .measure import SINGLE_THREAD_ENV
from .registry import REFERENCE_KEYS, TARGETS, WORKLOADS
from .worker import MEMORY_STEPS

# µs/step at 1 thread, measured earlier by the team on this kind of machine (for sanity checks).
EARLIER_FIGURES = {
    "hand": {"W1": 711, "W2": 1073, "W3": 5525, "W6": 14681},
    "pyro": {"W1": 2240, "W2": 4011, "W3": 13504},
    "pyro-jit": {"W1": 1148, "W2": 1505},
    "numpyro": {"W1": 85, "W2": 183, "W6": 8487},
    "numpyro-scan": {"W2": 37},
}

METHOD = """\
* **Processes and threads.** Every (workload, config) run is a fresh `python -m benchmarks.worker`
  process with {env}, and `torch.set_num_threads(1)` / `set_num_interop_threads(1)`.
* **Rounds.** A round runs every selected config once, in a shuffled order; rounds repeat
  {rounds} time(s). Each number in the tables is the median over rounds.
* **Time per step.** Within a run: build the SVI object and run the first step (timed as *first
  step ms*: includes lazy initialisation, JIT tracing and XLA compilation; for NumPyro also
  `svi.init`), then one untimed warm-up block, then {blocks} timed blocks of *B* steps (B per
  workload below). A run's µs/step is the median over its blocks of block time / B. Every step
  waits for its loss (`svi.step()` returns a float; NumPyro's loss is converted with `float()`),
  except the `lax.scan` row, which runs a whole block in one jitted call.
* **Memory**, from `/proc/self/status`, in MB above a *baseline*: VmRSS after the framework's
  imports, one throwaway 1-element backward + Adam step (a process's first backward imports ~800
  modules, ~80 MB, which would otherwise land in every torch row), the data creation, and a
  `gc.collect()` + `malloc_trim(0)`. VmHWM is reset to the baseline by writing `5` to
  `/proc/self/clear_refs`.
  * *peak MB (steps)*, the figure the targets use: after the timed blocks, the worker turns off
    transparent huge pages, pins blocks >= 64 kB to mmap (freed tensors go straight back to the
    OS), trims the heap, resets VmHWM and runs {memory_steps} more steps; their VmHWM minus the
    baseline. It covers params, optimizer state, caches and one step's tensors, not compilation.
  * *peak MB (run)*: VmHWM over building, the first step and all timed blocks, with the default
    allocator; includes JIT/XLA compilation, but also whatever glibc kept, so it wanders by tens
    of MB between identical runs. Even the steps figure moves by ~10 MB on W6; use medians.
* **Quality** is measured after all steps of a run (first + warm-up + timed; *steps* column):
  W1 |E_q[f] - 16/30| (exact Beta(16, 14) posterior mean); W2/W3/W6 max abs error of the guide
  means of (alpha, beta) against float64 least squares on the same data. The step budget is small,
  so quality shows that every framework optimises the same objective, not that it converged.
* **Ratios** divide µs/step by the hand-written PyTorch row and by Pyro's `Trace_ELBO` row of the
  same workload; the issue targets below name the row each ratio divides by.
* **Allocator.** With `--malloc steady` (the default) every worker, whatever its framework,
  runs with glibc's thresholds fixed (`MALLOC_MMAP_THRESHOLD_=33554432`,
  `MALLOC_TRIM_THRESHOLD_=134217728`). glibc's default moves them as a process frees large
  blocks, so steps that make many ~1 MB temporaries (W3, W6) page-fault a varying amount per
  step depending on each fresh process's allocation history: identical configs swung by up to
  2x between runs, and the steady setting roughly halved the hand step's W3 time too.
  `--malloc default` reproduces glibc's default behaviour.
"""


def _version(dist_name: str) -> str:
    try:
        return importlib.metadata.version(dist_name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _pyrolite_version() -> str:
    init = Path(__file__).resolve().parent.parent / "pyrolite" / "__init__.py"
    if not init.exists():
        return "missing"
    match = re.search(r'^__version__ = "(.*)"', init.read_text(), re.M)
    return match.group(1) if match else "unversioned"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def header(settings: dict) -> List[str]:
    mode = "quick" if settings["quick"] else "full"
    libs = ", ".join(
        f"{name} {_version(dist)}"
        for name, dist in [
            ("torch", "torch"),
            ("pyro-ppl", "pyro-ppl"),
            ("numpyro", "numpyro"),
            ("jax", "jax"),
            ("jaxlib", "jaxlib"),
        ]
    )
    return [
        "# pyrolite benchmarks",
        "",
        "Regenerated by `python -m benchmarks.run"
        + (" --quick" if settings["quick"] else "")
        + "` (see `benchmarks/README.md`); raw numbers in `benchmarks/results.json`.",
        "",
        f"* Date: {datetime.date.today().isoformat()}; mode: **{mode}**; "
        f"malloc: **{settings.get('malloc', 'default')}**; wall time {settings['wall_s']:.0f} s",
        f"* Machine: {_cpu_model()}, {os.cpu_count()} cores visible, "
        f"{platform.system()} {platform.release()}",
        f"* Python {platform.python_version()}; {libs}; pyrolite {_pyrolite_version()}",
        "",
    ]


def _fmt(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _ratio(value: float | None, reference: float | None) -> str:
    return "—" if value is None or not reference else f"{value / reference:.2f}×"


def _quality(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


def _notes(row: dict) -> str:
    parts = []
    if row["status"] != "ok":
        parts.append(f"**{row['status']}**")
    parts += [error.replace("|", "\\|") for error in row["errors"]]
    if row["note"]:
        parts.append(row["note"])
    spread = row["us_per_step_rounds"]
    if len(spread) > 1:
        parts.append(f"rounds {min(spread):,.0f}–{max(spread):,.0f} µs")
    if row["steps"]:
        parts.append(f"{row['steps']} steps")
    return "; ".join(parts)


def workload_table(workload: str, rows: List[dict], settings: dict) -> List[str]:
    spec = WORKLOADS[workload]
    by_key = {row["config"]: row for row in rows}
    hand = by_key.get(REFERENCE_KEYS["hand"], {}).get("us_per_step")
    pyro = by_key.get(REFERENCE_KEYS["pyro"], {}).get("us_per_step")
    steps = sorted({v for k, v in settings["block_steps"].items() if k.startswith(workload + "/")})
    lines = [
        f"## {workload}: {spec.title}",
        "",
        spec.description,
        f"Steps per timing block B: {', '.join(map(str, steps))}. Quality: {spec.quality_name}.",
        "",
        "| config | µs/step median | × hand | × Pyro Trace_ELBO | first step ms | "
        "peak MB (steps) | peak MB (run) | quality | notes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['label']} (`{row['config']}`) | {_fmt(row['us_per_step'])} | "
            f"{_ratio(row['us_per_step'], hand)} | {_ratio(row['us_per_step'], pyro)} | "
            f"{_fmt(row['first_step_ms'], 1)} | {_fmt(row['peak_mb'], 1)} | "
            f"{_fmt(row['run_peak_mb'], 1)} | "
            f"{_quality(row['quality'])} | {_notes(row)} |"
        )
    return lines + [""]


def target_lines(rows: List[dict]) -> List[str]:
    by_key: Dict[tuple, dict] = {(r["workload"], r["config"]): r for r in rows}
    lines = ["## Issue targets", ""]
    for target in TARGETS:
        mine = by_key.get((target.workload, target.config))
        ref = by_key.get((target.workload, target.reference))
        if not mine or not ref or mine["us_per_step"] is None or ref["us_per_step"] is None:
            why = "; ".join(mine["errors"]) if mine and mine["errors"] else "not measured"
            lines.append(f"- [ ] {target.text}: {why}")
            continue
        time_ratio = mine["us_per_step"] / ref["us_per_step"]
        met = time_ratio <= target.max_time_ratio
        measured = (
            f"`{target.config}` / `{target.reference}` time {time_ratio:.2f}× "
            f"(target ≤ {target.max_time_ratio:.3g}×)"
        )
        if target.max_memory_ratio is not None:
            memory_ratio = mine["peak_mb"] / max(ref["peak_mb"], 1e-9)
            met = met and memory_ratio <= target.max_memory_ratio
            measured += f", peak memory {memory_ratio:.2f}× (target ≤ {target.max_memory_ratio}×)"
        lines.append(f"- [{'x' if met else ' '}] {target.text}: {measured}")
    return lines + [""]


def earlier_lines() -> List[str]:
    lines = [
        "## Earlier team figures (µs/step, 1 thread), for a sanity check",
        "",
        "| config | " + " | ".join(w for w in ("W1", "W2", "W3", "W6")) + " |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, figures in EARLIER_FIGURES.items():
        cells = " | ".join(_fmt(figures.get(w)) for w in ("W1", "W2", "W3", "W6"))
        lines.append(f"| `{key}` | {cells} |")
    return lines + [""]


def write_report(path: Path, rows: List[dict], settings: dict) -> None:
    env = ", ".join(f"`{k}={v}`" for k, v in SINGLE_THREAD_ENV.items())
    lines = header(settings)
    lines += ["## Method", ""]
    lines += [
        METHOD.format(
            env=env,
            rounds=settings["rounds"],
            blocks=settings["blocks"],
            memory_steps=MEMORY_STEPS,
        )
    ]
    lines += [""]
    lines += target_lines(rows)
    for workload in dict.fromkeys(row["workload"] for row in rows):
        lines += workload_table(workload, [r for r in rows if r["workload"] == workload], settings)
    lines += earlier_lines()
    planned = [w for w in WORKLOADS.values() if w.planned]
    lines += ["## Planned workloads (not built yet)", ""]
    lines += [f"* {w.name}: {w.title}. {w.description}" for w in planned] + [""]
    path.write_text("\n".join(lines))
