"""Render ``RESULTS.md``: machine header, method, one table per workload, the issue targets.

The CPU section comes from ``results.json``, then the data-parallel section from
``results-distributed.json`` (``python -m benchmarks.distributed``), then a GPU section from
``results-cuda.json``, each where present; a run with ``--malloc both`` adds an allocator table
to its section, and a workload with steps-to-converge results (the JSON file's ``convergence``
list) a table of them after its timing table.
``python -m benchmarks.report [DIR]`` re-renders ``DIR/RESULTS.md`` (default ``benchmarks/``) from
the JSON files alone, e.g. after fetching ``results-cuda.json`` from a GPU machine.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import re
import sys
from pathlib import Path
from typing import Dict, List

from .measure import CUDA_ENV, SINGLE_THREAD_ENV, malloc_settings
from .registry import (
    CONVERGENCE_TARGETS,
    RATIO_NOTES,
    REFERENCE_KEYS,
    SCALING_TARGETS,
    TARGETS,
    WORKLOADS,
    find_config,
    malloc_comparison,
)
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
  W1 |E_q[f] - 16/30| (exact Beta(16, 14) posterior mean); W4 max(|alpha_q - 16|, |beta_q - 14|);
  W2/W3/W6 max abs error of the guide means of (alpha, beta) against float64 least squares on
  the same data; W5 max abs error of the sorted MAP component means against the means the
  data were drawn from, W7-W9 the same for the HMM's state means. The step budget is small, so
  quality shows that every framework optimises the same objective, not that it converged.
* **Steps to converge** (W4, its own table): a separate run per config, after the timing rounds,
  in a fresh worker: for each seed (`torch.manual_seed(seed)` for the hand-written step,
  `pyro.set_rng_seed(seed)` for Pyro and pyrolite, a fresh param store), the first step k
  (counting from 1) after which |alpha_q - 16| < 0.8 and |beta_q - 14| < 0.8 (seed 004's check,
  after every step, params read with `.item()`; none of this is in the timed blocks), at most
  10,000 steps. The table gives the mean over seeds (a seed that never converged counts as the
  limit) and its ratio to the Pyro row with the same baseline setting.
* **Ratios** divide µs/step by the hand-written PyTorch row and by the Pyro row of the same
  workload (its estimator in the column header: `Trace_ELBO`, W4's `TraceGraph_ELBO`, W5/W7/W8's
  `TraceEnum_ELBO`, W9's `DiscreteHMM`); the issue targets below name the row each ratio divides
  by. A row whose target divides by another row also gives that ratio in its notes:
  `TraceMeanField_ELBO` (analytic KL where torch has one) against pyrolite's `Trace_ELBO` and
  Pyro's `TraceMeanField_ELBO`; `RenyiELBO(alpha=0)` with 10 vectorized particles (the IWAE
  bound) against the hand-written IWAE step `hand-iwae` (the `Trace_ELBO` step's draws,
  log-weights combined by `logsumexp`) and Pyro's `RenyiELBO`; the JIT rows against Pyro's JIT
  row; W9's `DiscreteHMM` rows against W8's sequential pyrolite row run again in W9
  (`pyrolite-markov`). The HMM's T-scaling targets divide a config's W8 (T=1000) µs/step by
  its W7 (T=100) µs/step.
* **Enumeration workloads** (W5, W7-W9): the hand-written steps compute exactly what
  `TraceEnum_ELBO` does for these models (W5: minus the log joint at the MAP guide's params,
  each assignment summed out by `logsumexp`; W7-W9: minus the log marginal likelihood by the
  forward algorithm); at the initial params their loss equals Pyro's to float32 rounding.
* **The hand-written step** scores every observation the way the issue specifies, as an
  element-wise log-density summed at the end. pyrolite sums a Normal site with one scale (or one
  per particle) without the per-element tensor (`-sum((y - mu)^2) / (2 sigma^2) - n log sigma
  - ...`) when the guide is fully reparameterized, so on W2, W3 and W6 it can run below that
  "floor": the ratio says how the step compares with the naive hand-written one, not how
  close it is to the best possible eager step.
* **Allocator.** With `--malloc steady` (the default) every worker, whatever its framework,
  runs with glibc's thresholds fixed (`MALLOC_MMAP_THRESHOLD_=33554432`,
  `MALLOC_TRIM_THRESHOLD_=134217728`). glibc's default moves them as a process frees large
  blocks, so steps that make many ~1 MB temporaries (W3, W6) page-fault a varying amount per
  step depending on each fresh process's allocation history: identical configs swung by up to
  2x between runs, and the steady setting roughly halved the hand step's W3 time too.
  `--malloc default` reproduces glibc's default behaviour. `--malloc both` runs every row with
  the steady setting and, in the same shuffled rounds, the W2/W3 hand and pyrolite rows with
  glibc's default as well: the *Allocator* table shows the two side by side (each ratio divides
  by the hand row under the same setting), and the workload tables show the steady rows.
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


def _jax_gpu_plugins() -> List[str]:
    names = set()
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").lower()
        if name.startswith("jax-cuda") and name.endswith("plugin"):
            names.add(f"{name} {dist.version}")
    return sorted(names)


def environment(gpu: dict | None = None) -> dict:
    """The date, machine and versions a run's header shows; stored with the run's settings."""
    libs = ", ".join(
        [
            f"{name} {_version(dist)}"
            for name, dist in [
                ("torch", "torch"),
                ("pyro-ppl", "pyro-ppl"),
                ("numpyro", "numpyro"),
                ("jax", "jax"),
                ("jaxlib", "jaxlib"),
            ]
        ]
        + _jax_gpu_plugins()
    )
    env = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{_cpu_model()}, {os.cpu_count()} cores visible, "
        f"{platform.system()} {platform.release()}",
        "software": f"Python {platform.python_version()}; {libs}; pyrolite {_pyrolite_version()}",
    }
    if gpu is not None:
        env["gpu"] = gpu
    return env


def _legacy_environment(markdown: Path | None) -> dict:
    """The CPU header of an existing ``RESULTS.md``, for a ``results.json`` written before the
    environment was stored with it, so re-rendering elsewhere keeps the machine that ran it."""
    if markdown is None or not markdown.exists():
        return {}
    text = markdown.read_text().split("\n# GPU", 1)[0]
    date = re.search(r"^\* Date: (\S+);", text, re.M)
    machine = re.search(r"^\* Machine: (.+)$", text, re.M)
    software = re.search(r"^\* (Python \S+; .+)$", text, re.M)
    if not (date and machine and software):
        return {}
    return {"date": date.group(1), "machine": machine.group(1), "software": software.group(1)}


def _command(settings: dict, device: str = "") -> str:
    """The ``benchmarks.run`` command line that made ``settings`` (mode and allocator flags)."""
    flags = device + (" --quick" if settings["quick"] else "")
    if settings.get("malloc", "steady") != "steady":
        flags += f" --malloc {settings['malloc']}"
    return f"`python -m benchmarks.run{flags}`"


def header(settings: dict, env: dict | None = None) -> List[str]:
    mode = "quick" if settings["quick"] else "full"
    env = env or settings.get("env") or environment()
    return [
        "# pyrolite benchmarks",
        "",
        f"Regenerated by {_command(settings)} (see `benchmarks/README.md`); raw numbers in "
        "`benchmarks/results.json`.",
        "",
        f"* Date: {env['date']}; mode: **{mode}**; "
        f"malloc: **{settings.get('malloc', 'default')}**; wall time {settings['wall_s']:.0f} s",
        f"* Machine: {env['machine']}",
        f"* {env['software']}",
        "",
    ]


def gpu_header(settings: dict) -> List[str]:
    mode = "quick" if settings["quick"] else "full"
    env = settings.get("env") or {}
    gpu = env.get("gpu") or {}
    name = gpu.get("gpu", "unknown GPU")
    details = ", ".join(
        part
        for part in [
            f"{gpu['gpu_memory_gib']} GiB" if gpu.get("gpu_memory_gib") else "",
            f"compute capability {gpu['capability']}" if gpu.get("capability") else "",
            f"driver {gpu['driver']}" if gpu.get("driver") else "",
            f"torch built for CUDA {gpu['torch_cuda']}" if gpu.get("torch_cuda") else "",
        ]
        if part
    )
    return [
        f"# GPU: {name}",
        "",
        f"Regenerated by {_command(settings, ' --device cuda')} on a GPU machine; raw numbers "
        "in `benchmarks/results-cuda.json`. The same workloads, data, configs and step budgets as "
        "the CPU section above; what differs is listed in the GPU method below. "
        "`python -m benchmarks.report` re-renders this file from both JSON files.",
        "",
        f"* Date: {env.get('date', '?')}; mode: **{mode}**; "
        f"malloc: **{settings.get('malloc', 'default')}**; wall time {settings['wall_s']:.0f} s",
        f"* GPU: **{name}**" + (f" ({details})" if details else ""),
        f"* JAX device: {gpu.get('jax_device', '?')}",
        f"* Host: {env.get('machine', '?')}",
        f"* {env.get('software', '?')}",
        "",
    ]


def _fmt(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _ratio(value: float | None, reference: float | None) -> str:
    return "—" if value is None or not reference else f"{value / reference:.2f}×"


def _quality(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


def _cell(text: str) -> str:
    """``text`` for one markdown table cell or list item: one line, pipes escaped (an error
    message may span lines, e.g. torch's with the offending tensor printed)."""
    return " ".join(text.split()).replace("|", "\\|")


def _notes(row: dict, ratios: List[str] = ()) -> str:
    parts = []
    if row["status"] != "ok":
        parts.append(f"**{row['status']}**")
    parts += [_cell(error) for error in row["errors"]]
    parts += ratios
    if row.get("note"):
        parts.append(row["note"])
    if row.get("compile_fallback"):
        why = _cell("; ".join(row["compile_fallback"]))
        parts.append(f"**compile fell back to eager**: {why}")
    if row["status"] == "ok" and row.get("device_name"):
        if row.get("device_memory") is None:
            parts.append("no device memory stats")
        elif row.get("device_peak_since_start"):
            parts.append("memory: JAX peak since process start")
    spread = row["us_per_step_rounds"]
    if len(spread) > 1:
        parts.append(f"rounds {min(spread):,.0f}–{max(spread):,.0f} µs")
    if row["steps"]:
        parts.append(f"{row['steps']} steps")
    return "; ".join(parts)


def _target_ratios(row: dict, by_key: Dict[str, dict]) -> List[str]:
    """The row's time ratios to the rows its targets (and ``RATIO_NOTES``) divide by, where no
    column shows them."""
    references = [
        target.reference
        for target in TARGETS
        if (target.workload, target.config) == (row["workload"], row["config"])
        and target.malloc is None
    ]
    references += RATIO_NOTES.get((row["workload"], row["config"]), ())
    ratios = []
    for key in references:
        if key in REFERENCE_KEYS.values():
            continue
        reference = by_key.get(key, {}).get("us_per_step")
        if row["us_per_step"] is not None and reference:
            ratios.append(f"{_ratio(row['us_per_step'], reference)} `{key}`")
    return list(dict.fromkeys(ratios))


def workload_table(
    workload: str, rows: List[dict], settings: dict, prefix: str = "", memory: str = ""
) -> List[str]:
    spec = WORKLOADS[workload]
    by_key = {row["config"]: row for row in rows}
    hand = by_key.get(REFERENCE_KEYS["hand"], {}).get("us_per_step")
    pyro = by_key.get(REFERENCE_KEYS["pyro"], {}).get("us_per_step")
    steps = sorted({v for k, v in settings["block_steps"].items() if k.startswith(workload + "/")})
    lines = [
        f"## {prefix}{workload}: {spec.title}",
        "",
        spec.description,
        f"Steps per timing block B: {', '.join(map(str, steps))}. Quality: {spec.quality_name}.",
        "",
        f"| config | µs/step median | × hand | × Pyro {spec.estimator} | first step ms | "
        f"{memory}peak MB (steps) | {memory}peak MB (run) | quality | notes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['label']} (`{row['config']}`) | {_fmt(row['us_per_step'])} | "
            f"{_ratio(row['us_per_step'], hand)} | {_ratio(row['us_per_step'], pyro)} | "
            f"{_fmt(row['first_step_ms'], 1)} | {_fmt(row['peak_mb'], 1)} | "
            f"{_fmt(row['run_peak_mb'], 1)} | "
            f"{_quality(row['quality'])} | {_notes(row, _target_ratios(row, by_key))} |"
        )
    return lines + [""]


def _baseline_option(workload: str, key: str):
    """A config's ``baseline`` option, or KeyError's stand-in for a key no longer registered."""
    try:
        return find_config(workload, key).option("baseline")
    except KeyError:
        return KeyError


def _pyro_counterpart(row: dict, by_key: Dict[str, dict]) -> dict | None:
    """The Pyro steps-to-converge row with the same ``baseline`` option as ``row``."""
    baseline = _baseline_option(row["workload"], row["config"])
    for other in by_key.values():
        same = _baseline_option(other["workload"], other["config"]) == baseline
        if other["framework"] == "pyro" and same and baseline is not KeyError:
            return other
    return None


def _seed_range(seeds: List[int]) -> str:
    if seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"seeds {seeds[0]}–{seeds[-1]}"
    return "seeds " + ", ".join(map(str, seeds))


def convergence_table(workload: str, rows: List[dict], prefix: str = "") -> List[str]:
    """Steps to converge per config (``Convergence``), with the ratio to Pyro's."""
    if not rows:
        return []
    by_key = {row["config"]: row for row in rows}
    first = rows[0]
    lines = [
        f"### {prefix}{workload}: steps to converge",
        "",
        f"First step k after which |alpha_q - 16| < {first['tolerance']} and "
        f"|beta_q - 14| < {first['tolerance']}, checked after every step, at most "
        f"{first['max_steps']:,} steps; {_seed_range(first['seeds'])}, one fresh fit per seed, "
        "separately from the timing runs. Mean over seeds (a seed that never converged counts as "
        "the limit); × Pyro divides by the Pyro row with the same baseline setting.",
        "",
        "| config | mean steps | × Pyro | not converged | steps per seed | fit s (total) |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for row in rows:
        if row["status"] != "ok":
            errors = _cell("; ".join(row["errors"]))
            lines.append(
                f"| {row['label']} (`{row['config']}`) | — | — | — | "
                f"**{row['status']}**; {errors} | — |"
            )
            continue
        pyro = _pyro_counterpart(row, by_key) or {}
        steps = ", ".join("—" if k is None else str(k) for k in row["steps"])
        lines.append(
            f"| {row['label']} (`{row['config']}`) | {_fmt(row['mean_steps'], 1)} | "
            f"{_ratio(row['mean_steps'], pyro.get('mean_steps'))} | {row['not_converged']} | "
            f"{steps} | {_fmt(sum(row['seconds']), 1)} |"
        )
    return lines + [""]


def convergence_target_lines(convergence: List[dict]) -> List[str]:
    by_key = {(r["workload"], r["config"]): r for r in convergence or []}
    lines = []
    for target in CONVERGENCE_TARGETS:
        mine = by_key.get((target.workload, target.config))
        ref = by_key.get((target.workload, target.reference))
        if not mine or not ref or mine.get("mean_steps") is None or ref.get("mean_steps") is None:
            errors = (mine or {}).get("errors") or (ref or {}).get("errors")
            why = _cell("; ".join(errors)) if errors else "steps to converge not measured"
            lines.append(f"- [ ] {target.text}: {why}")
            continue
        ratio = mine["mean_steps"] / ref["mean_steps"]
        met = ratio <= target.max_ratio
        lines.append(
            f"- [{'x' if met else ' '}] {target.text}: `{target.config}` / `{target.reference}` "
            f"mean steps to converge {mine['mean_steps']:,.1f} / {ref['mean_steps']:,.1f} = "
            f"{ratio:.2f}× (target ≤ {target.max_ratio:.3g}×)"
        )
    return lines


def _ran_malloc(settings: dict) -> tuple:
    """The allocator settings a run's rows ran under, its main (workload tables') one first."""
    return malloc_settings(settings.get("malloc", "default"))


def _by_malloc(rows: List[dict], settings: dict) -> Dict[tuple, dict]:
    """Rows by (workload, config, malloc setting); rows from before ``--malloc both`` had none."""
    main = _ran_malloc(settings)[0]
    return {(r["workload"], r["config"], r.get("malloc", main)): r for r in rows}


def main_rows(rows: List[dict], settings: dict) -> List[dict]:
    """The rows of the run's main allocator setting: what the workload tables show."""
    main = _ran_malloc(settings)[0]
    return [r for r in rows if r.get("malloc", main) == main]


def target_lines(
    rows: List[dict],
    settings: dict,
    title: str = "Issue targets",
    convergence: List[dict] | None = None,
) -> List[str]:
    by_key = _by_malloc(rows, settings)
    ran = _ran_malloc(settings)
    lines = [f"## {title}", ""]
    for target in TARGETS:
        malloc = target.malloc or ran[0]
        mine = by_key.get((target.workload, target.config, malloc))
        ref = by_key.get((target.workload, target.reference, malloc))
        if not mine or not ref or mine["us_per_step"] is None or ref["us_per_step"] is None:
            why = _cell("; ".join(mine["errors"])) if mine and mine["errors"] else "not measured"
            if malloc not in ran:
                why += f" (run with `--malloc {malloc}` or `--malloc both`)"
            lines.append(f"- [ ] {target.text}: {why}")
            continue
        time_ratio = mine["us_per_step"] / ref["us_per_step"]
        if target.max_time_ratio is None:  # a memory-only target
            met = True
            measured = f"`{target.config}` / `{target.reference}` time {time_ratio:.2f}×"
        else:
            met = time_ratio <= target.max_time_ratio
            measured = (
                f"`{target.config}` / `{target.reference}` time {time_ratio:.2f}× "
                f"(target ≤ {target.max_time_ratio:.3g}×)"
            )
        if target.max_memory_ratio is not None and (
            mine["peak_mb"] is None or ref["peak_mb"] is None
        ):
            met = False
            measured += ", peak memory not measured"
        elif target.max_memory_ratio is not None:
            memory_ratio = mine["peak_mb"] / max(ref["peak_mb"], 1e-9)
            met = met and memory_ratio <= target.max_memory_ratio
            measured += f", peak memory {memory_ratio:.2f}× (target ≤ {target.max_memory_ratio}×)"
        lines.append(f"- [{'x' if met else ' '}] {target.text}: {measured}")
    lines += scaling_target_lines(by_key, ran[0])
    return lines + convergence_target_lines(convergence) + [""]


def scaling_target_lines(by_key: Dict[tuple, dict], malloc: str) -> List[str]:
    """``SCALING_TARGETS``: a config's µs/step on the long workload over the short one's."""
    lines = []
    for target in SCALING_TARGETS:
        short = by_key.get((target.short, target.config, malloc))
        long = by_key.get((target.long, target.config, malloc))
        if not short or not long or short["us_per_step"] is None or long["us_per_step"] is None:
            errors = [e for row in (short, long) if row for e in row["errors"]]
            why = _cell("; ".join(dict.fromkeys(errors))) if errors else "not measured"
            lines.append(f"- [ ] {target.text}: {why}")
            continue
        ratio = long["us_per_step"] / short["us_per_step"]
        met = ratio <= target.max_ratio
        lines.append(
            f"- [{'x' if met else ' '}] {target.text}: {_fmt(long['us_per_step'])} / "
            f"{_fmt(short['us_per_step'])} µs = {ratio:.2f}× for {target.factor:.3g}× the length "
            f"(target ≤ {target.max_ratio:.3g}×)"
        )
    return lines


def allocator_lines(rows: List[dict], settings: dict, prefix: str = "") -> List[str]:
    """``malloc_comparison()``'s rows under each allocator setting, side by side; nothing
    unless the run used ``--malloc both``."""
    ran = _ran_malloc(settings)
    if len(ran) < 2:
        return []
    by_key = _by_malloc(rows, settings)
    lines = [
        f"## {prefix}Allocator: " + " and ".join(f"`--malloc {m}`" for m in ran),
        "",
        "The same configs, interleaved in the same rounds (`--malloc both`, see the method); "
        "× hand divides by the hand row under the same setting.",
        "",
        "| workload | config | "
        + " | ".join(f"`{m}` µs/step | `{m}` × hand" for m in ran)
        + " | rounds (µs/step) |",
        "|---|---|" + "---:|---:|" * len(ran) + "---|",
    ]
    for workload, keys in malloc_comparison().items():
        for key in keys:
            found = [by_key.get((workload, key, m)) for m in ran]
            if not any(found):
                continue
            cells, spreads = [], []
            for malloc, row in zip(ran, found):
                hand = by_key.get((workload, REFERENCE_KEYS["hand"], malloc), {})
                us = (row or {}).get("us_per_step")
                cells += [_fmt(us), _ratio(us, hand.get("us_per_step"))]
                spread = (row or {}).get("us_per_step_rounds") or []
                if len(spread) > 1:
                    spreads.append(f"{malloc} {min(spread):,.0f}–{max(spread):,.0f}")
            lines.append(f"| {workload} | `{key}` | {' | '.join(cells)} | {'; '.join(spreads)} |")
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


def _workload_sections(
    rows: List[dict], settings: dict, convergence: List[dict] | None, gpu: bool
) -> List[str]:
    """One timing table per workload (the main allocator setting's rows), each followed by its
    steps-to-converge table where there is one."""
    prefix, memory = ("GPU ", "GPU ") if gpu else ("", "")
    shown = main_rows(rows, settings)
    convergence = convergence or []
    lines = []
    workloads = [row["workload"] for row in shown + convergence]
    for workload in sorted(dict.fromkeys(workloads), key=list(WORKLOADS).index):
        timed = [r for r in shown if r["workload"] == workload]
        if timed:
            lines += workload_table(workload, timed, settings, prefix=prefix, memory=memory)
        else:  # only steps to converge were run (``--converge only``)
            spec = WORKLOADS[workload]
            lines += [f"## {prefix}{workload}: {spec.title}", "", spec.description, ""]
        lines += convergence_table(
            workload, [r for r in convergence if r["workload"] == workload], prefix=prefix
        )
    return lines


def cpu_lines(
    rows: List[dict],
    settings: dict,
    env: dict | None = None,
    convergence: List[dict] | None = None,
) -> List[str]:
    """The CPU section: header, method, targets, the allocator table, one table per workload
    (and its steps-to-converge table)."""
    env_text = ", ".join(f"`{k}={v}`" for k, v in SINGLE_THREAD_ENV.items())
    lines = header(settings, env)
    lines += ["## Method", ""]
    lines += [
        METHOD.format(
            env=env_text,
            rounds=settings["rounds"],
            blocks=settings["blocks"],
            memory_steps=MEMORY_STEPS,
        )
    ]
    lines += [""]
    lines += target_lines(rows, settings, convergence=convergence)
    lines += allocator_lines(rows, settings)
    lines += _workload_sections(rows, settings, convergence, gpu=False)
    lines += earlier_lines()
    planned = [w for w in WORKLOADS.values() if w.planned]
    if planned:
        lines += ["## Planned workloads (not built yet)", ""]
        lines += [f"* {w.name}: {w.title}. {w.description}" for w in planned] + [""]
    return lines


GPU_METHOD = """\
As in the CPU method above, except:

* **Device.** The data are drawn on the CPU exactly as for the CPU runs and copied to the GPU
  before the baseline. The hand-written step's params, constants and random draws, and
  pyrolite's and Pyro's param inits and prior parameters, are GPU tensors made once (no
  `torch.set_default_device`, which would add a Python hook to every op); NumPyro's data are
  `jax.device_put` on the GPU. Quality is scored on the CPU, as above.
* **Environment.** The same one-thread settings, and for JAX {cuda_env}: JAX on the GPU,
  allocating device memory as it goes instead of taking 75% of the GPU at start, and multiplying
  float32 matrices in full float32 as torch does by default (JAX's GPU default is TF32).
* **Time per step.** The same blocks. A torch block (and the first step) ends with
  `torch.cuda.synchronize()` inside the timed span: a step's `loss.item()` waits for its
  forward pass, but Pyro's step returns before its optimizer update has run on the GPU.
  NumPyro's `float(loss)` waits for the whole jitted update (loss and new state are outputs of
  one XLA program).
* **Memory**: device memory, in MB above a *baseline* taken after the imports, a throwaway GPU
  step with small matrix products forward and backward + Adam (CUDA context, allocator, the
  cuBLAS workspaces of the forward and the autograd threads: 32 MiB each on an H100) and the
  data's copy on the GPU. Host RSS is not in the tables; `results-cuda.json` has it
  (`rss_peak_mb`, `rss_run_peak_mb`) and the device bytes still live after the last step
  (`device_live_mb`: params, optimizer state, caches).
  * torch rows: live tensor bytes in torch's caching allocator (`torch.cuda.memory_allocated`;
    neither its cached blocks nor the CUDA context). *GPU peak MB (steps)*:
    `torch.cuda.reset_peak_memory_stats()` after the timed blocks, {memory_steps} more steps,
    then `torch.cuda.max_memory_allocated()` minus the baseline. *GPU peak MB (run)*: the same
    peak over building, the first step and the timed blocks (`torch.compile`/JIT temporaries
    included).
  * NumPyro rows: the JAX GPU allocator's `device.memory_stats()`, `peak_bytes_in_use` minus
    the baseline's `bytes_in_use`. JAX cannot reset its peak, so both columns are the peak
    since the process started (XLA compilation and autotuning scratch may be in it): an upper
    bound, not the steady-state figure the torch rows give.
* **Issue targets** are set for the CPU runs; the GPU checklist applies the same ratios, for
  information.
"""


def gpu_lines(rows: List[dict], settings: dict, convergence: List[dict] | None = None) -> List[str]:
    cuda_env = ", ".join(f"`{k}={v}`" for k, v in CUDA_ENV.items())
    lines = gpu_header(settings)
    lines += ["## GPU method", ""]
    lines += [
        GPU_METHOD.format(cuda_env=cuda_env, memory_steps=MEMORY_STEPS),
        f"Rounds: {settings['rounds']}; timed blocks per run: {settings['blocks']}.",
        "",
    ]
    lines += target_lines(
        rows,
        settings,
        "GPU issue targets (for information; set for the CPU runs)",
        convergence=convergence,
    )
    lines += allocator_lines(rows, settings, prefix="GPU ")
    lines += _workload_sections(rows, settings, convergence, gpu=True)
    return lines


DISTRIBUTED_METHOD = """\
`python -m benchmarks.distributed{flags}` (see `benchmarks/README.md`); raw numbers in
`benchmarks/results-distributed.json`. W6's data (N = {num_data:,}), model, guide, Adam and
`Trace_ELBO`, on the machine of the CPU section above, run these ways:

* **Processes and threads.** Each row runs in fresh processes (`python -m benchmarks.distributed
  --worker`), one per rank, with the suite's worker environment (one thread, `--malloc steady`);
  the 2-process rows join a gloo group over `tcp://127.0.0.1` (`GLOO_SOCKET_IFNAME=lo`), one torch
  thread each; the 2-thread row sets `OMP_NUM_THREADS=2` and `torch.set_num_threads(2)`. Every
  process draws the W6 data (torch seed 42); with `local_plates` each keeps its half
  (`tensor_split`), with `shard_plates` all of it.
* **Rounds and blocks** as in the main suite: a round runs every row once in a shuffled order,
  {rounds} round(s); within a run, build + first step (*first step ms*), one untimed warm-up
  block, then {blocks} timed blocks of {block_steps} steps (`measure.time_blocks`), µs/step the
  median over blocks, of the slower rank (with `DistributedSVI` the ranks wait for each other
  every step; the 2-process rows start their timing after a barrier). Each figure is the median
  over rounds. *Rows/s* is N / µs per step (every row processes all N rows per step, in one
  process or split over two); *× 1 process* divides by the 1-process, 1-thread `SVI` row of the
  same run. `svi-2proc-nocomm` is the ceiling: two plain `SVI` processes, each fitting its own
  half with no communication at all, side by side; it shows what two processes of this workload
  get from these two cores before any all-reduce.
* **Correctness.** After the timed blocks (the same {steps} steps from `set_rng_seed({seed})` in
  every row), every rank's unconstrained params are compared with the 1-process row's of the same
  round: a row whose params differ by more than {atol:g} + {rtol:g}·|ref| in any element is marked
  **failed**. The two ranks' params are compared with each other too (they must be identical).
* **All-reduce overhead**, measured in the same 2 processes after the timed blocks, two ways:
  (1) *instrumented*: {instrumented} more blocks of steps with `AllReduceHooks.combine` timed as a
  whole and `torch.distributed.all_reduce` as `pyrolite.infer.distributed` calls it timed per
  buffer (the int64 header, 3 values: status, digest, -digest, over the gloo group; then the one
  flat buffer of gradients + loss + the ranks' verdicts); *all-reduce* is header + flat per
  step, *combine local* the rest of `combine` (plan lookup, header tensor, finite verdict, the
  `cat`, the averaged copy-back).
  A collective's time includes any wait for the other rank to reach it (load imbalance), so the
  table gives the mean of the two ranks' medians, and each rank's in its *per rank* column.
  (2) *collectives alone*: after a barrier, {reps} back-to-back pairs of the same two
  all-reduces (same groups, dtypes and sizes) with no compute between: their latency on this
  machine without any waiting.
* **Load.** *other processes* (notes) is how many cores the rest of the machine kept busy during
  the row's runs (busy CPU time from `/proc/stat` minus the CPU time of the run's own processes,
  over its wall time; median over rounds). The machine has 2 cores and is shared: above ~0.1 the
  row's processes competed with others for them.
"""


def distributed_lines(raw: dict) -> List[str]:
    """The *Data-parallel* section from ``results-distributed.json``'s contents."""
    settings, rows = raw["settings"], raw["rows"]
    env = settings.get("env") or {}
    flags = " --quick" if settings.get("quick") else ""
    if settings["num_data"] != 1_000_000:
        flags += f" --num-data {settings['num_data']}"
    tolerance = settings["params_tolerance"]
    steps = next((r["steps"] for r in rows if r.get("steps")), "the")
    lines = [
        f"## Data-parallel ({settings['workload']}, 2 processes)",
        "",
        f"* Date: {env.get('date', '?')}; mode: **{'quick' if settings['quick'] else 'full'}**; "
        f"wall time {settings['wall_s']:.0f} s",
        f"* Machine: {env.get('machine', '?')}",
        f"* {env.get('software', '?')}" + _code_text(settings.get("code")),
        "",
        DISTRIBUTED_METHOD.format(
            flags=flags,
            num_data=settings["num_data"],
            rounds=settings["rounds"],
            blocks=settings["blocks"],
            block_steps=settings["block_steps"],
            steps=steps,
            seed=settings["seed"],
            atol=tolerance["atol"],
            rtol=tolerance["rtol"],
            instrumented=settings["instrumented_blocks"],
            reps=settings["collective_reps"],
        ),
    ]
    lines += distributed_target_lines(raw) + [""]
    lines += [
        "| config | processes × threads | rows per process | µs/step median | rows/s | "
        "× 1 process | first step ms | params vs 1 process (max abs diff) | notes |",
        "|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for row in rows:
        held = row["rows_per_process"]
        lines.append(
            f"| {row['label']} (`{row['key']}`) | {row['processes']} × {row['threads']} | "
            f"{held:,} | {_fmt(row['us_per_step'])} | {_fmt(row['rows_per_s'])} | "
            f"{_fmt_ratio(row.get('throughput_ratio'))} | {_fmt(row['first_step_ms'], 1)} | "
            f"{_params_check(row, settings)} | {_distributed_notes(row)} |"
        )
    lines += [""]
    parallel = [r for r in rows if r.get("allreduce_us") is not None]
    if parallel:
        lines += [
            "All-reduce overhead per step (µs): each rank's median over the instrumented steps, "
            "its median over rounds, then the mean of the two ranks. Each column is its own "
            "median (all-reduce is the median of each step's header + flat), so the parts need "
            "not add up.",
            "",
            "| config | all-reduce (header + flat) | header | flat buffer | combine local | "
            "combine total | step (instrumented) | collectives alone | per rank |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for row in parallel:
            per_rank = row["per_rank"]
            ranks = "; ".join(
                f"rank {k}: all-reduce {_fmt(a)}, combine {_fmt(c)}"
                for k, (a, c) in enumerate(zip(per_rank["allreduce_us"], per_rank["combine_us"]))
            )
            lines.append(
                f"| `{row['key']}` | {_fmt(row['allreduce_us'])} | {_fmt(row['header_us'])} | "
                f"{_fmt(row['flat_us'])} ({row['flat_numel']} × {row['flat_dtype']}) | "
                f"{_fmt(row['local_us'])} | {_fmt(row['combine_us'])} | {_fmt(row['step_us'])} | "
                f"{_fmt(row['collectives_alone_us'])} | {ranks} |"
            )
        lines += [""] + _breakdown_lines(raw)
    return lines


def _breakdown_lines(raw: dict) -> List[str]:
    """Where the target row's step goes, against the step the target asks for and the
    no-communication ceiling (computed from the figures above)."""
    target = raw["settings"]["target"]
    by_key = {r["key"]: r for r in raw["rows"]}
    mine, ref = by_key.get(target["row"]), by_key.get(target["reference"])
    if not mine or not ref or mine.get("combine_us") is None or not ref.get("us_per_step"):
        return []
    step, combine = mine["step_us"], mine["combine_us"]
    text = (
        f"Where `{target['row']}`'s step goes (instrumented steps): {_fmt(step)} µs = "
        f"{_fmt(step - combine)} µs outside `combine` (model, guide, backward and Adam on its "
        f"rows) + {_fmt(combine)} µs in `combine` ({_fmt(mine['allreduce_us'])} all-reduce, "
        f"{_fmt(mine['local_us'])} local work). The target asks for ≤ "
        f"{_fmt(ref['us_per_step'] / target['min_ratio'])} µs/step ({_fmt(ref['us_per_step'])} / "
        f"{target['min_ratio']:.3g})"
    )
    ceiling = next((r for r in raw["rows"] if not r.get("compare", True)), None)
    if ceiling and ceiling.get("us_per_step"):
        text += (
            f"; two processes with no communication at all (`{ceiling['key']}`) take "
            f"{_fmt(ceiling['us_per_step'])} µs/step, "
            f"{_fmt_ratio(ceiling.get('throughput_ratio'))} the 1-process throughput"
        )
    return [text + ".", ""]


def _code_text(code: dict | None) -> str:
    if not code or not code.get("commit"):
        return ""
    state = "with uncommitted changes" if code.get("distributed_py_modified") else "as committed"
    return (
        f"; commit {code['commit']}, `pyrolite/infer/distributed.py` {state} "
        f"(sha1 {code['distributed_py_sha1']})"
    )


def _fmt_ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def _params_check(row: dict, settings: dict) -> str:
    if row["key"] == settings["reference"]:
        return "reference"
    if not row.get("compare", True):
        return "— (not the same estimator)"
    if row.get("params_ok") is None:
        return "not checked"
    diff = f"{row['params_max_abs_diff']:.2g}"
    if row.get("ranks_max_abs_diff") is not None:
        diff += f"; ranks differ by {row['ranks_max_abs_diff']:.2g}"
    return ("equal" if row["params_ok"] else "**differ**") + f" ({diff})"


def _distributed_notes(row: dict) -> str:
    parts = [f"**{row['status']}**"] if row["status"] != "ok" else []
    parts += [_cell(error) for error in row["errors"]]
    if row.get("note"):
        parts.append(row["note"])
    spread = row["us_per_step_rounds"]
    if len(spread) > 1:
        parts.append(f"rounds {min(spread):,.0f}–{max(spread):,.0f} µs")
    ranks = row.get("rank_us_per_step") or []
    if len(ranks) > 1:
        parts.append("per rank " + " / ".join(f"{_fmt(us)}" for us in ranks) + " µs")
    if row.get("steps"):
        parts.append(f"{row['steps']} steps")
    if row.get("other_cores") is not None:
        parts.append(f"other processes {row['other_cores']:.2f} cores")
    return "; ".join(parts)


def distributed_target_lines(raw: dict) -> List[str]:
    target = raw["settings"]["target"]
    by_key = {r["key"]: r for r in raw["rows"]}
    mine, ref = by_key.get(target["row"]), by_key.get(target["reference"])
    if not mine or not ref or mine.get("rows_per_s") is None or not ref.get("rows_per_s"):
        errors = [e for r in (mine, ref) if r for e in r["errors"]]
        why = _cell("; ".join(errors)) if errors else "not measured"
        return [f"- [ ] {target['text']}: {why}"]
    ratio = mine["rows_per_s"] / ref["rows_per_s"]
    correct = mine.get("params_ok") is True
    met = ratio >= target["min_ratio"] and correct
    text = (
        f"- [{'x' if met else ' '}] {target['text']}: `{target['row']}` / `{target['reference']}` "
        f"throughput {_fmt(mine['rows_per_s'])} / {_fmt(ref['rows_per_s'])} rows/s = "
        f"{ratio:.2f}× (target ≥ {target['min_ratio']:.3g}×)"
    )
    if mine.get("allreduce_us") is not None:
        text += (
            f"; all-reduce overhead {_fmt(mine['allreduce_us'])} µs/step (collectives alone "
            f"{_fmt(mine['collectives_alone_us'])} µs)"
        )
    if not correct:
        failed = mine.get("params_ok") is False
        text += "; **params differ from the 1-process run's**" if failed else "; params not checked"
    return [text]


def write_report(
    path: Path,
    rows: List[dict],
    settings: dict,
    gpu: dict | None = None,
    env: dict | None = None,
    convergence: List[dict] | None = None,
    distributed: dict | None = None,
) -> None:
    """Write ``RESULTS.md``: the CPU section from ``rows``/``settings`` (and the steps-to-converge
    rows ``convergence``), the data-parallel section from ``distributed`` (the raw
    ``results-distributed.json`` contents), then the GPU section from ``gpu`` (the raw
    ``results-cuda.json`` contents), each when given."""
    lines = cpu_lines(rows, settings, env, convergence) if rows is not None else []
    if distributed is not None:
        lines += distributed_lines(distributed)
    if gpu is not None:
        lines += gpu_lines(gpu["rows"], gpu["settings"], gpu.get("convergence"))
    path.write_text("\n".join(lines))


# Where each device's raw results go, in the output folder.
RESULT_FILES = {"cpu": "results.json", "cuda": "results-cuda.json"}
# The data-parallel benchmark's (``python -m benchmarks.distributed``).
DISTRIBUTED_FILE = "results-distributed.json"
# The distributions benchmark's (``python -m benchmarks.distributions``).
DISTRIBUTIONS_FILE = "results-distributions.json"


def write_reports(folder: Path, markdown: Path | None = None) -> str | None:
    """Render ``RESULTS.md`` in ``folder`` from whichever result files are there.

    Returns what was written (for a message), or None where there is no result file.
    """
    markdown = markdown or folder / "RESULTS.md"
    loaded = {}
    for device, name in RESULT_FILES.items():
        if (folder / name).exists():
            loaded[device] = json.loads((folder / name).read_text())
    distributed = None
    if (folder / DISTRIBUTED_FILE).exists():
        distributed = json.loads((folder / DISTRIBUTED_FILE).read_text())
    if not loaded and distributed is None:
        return None
    cpu = loaded.get("cpu")
    env = None
    if cpu is not None and "env" not in cpu["settings"]:
        env = _legacy_environment(markdown) or None
    write_report(
        markdown,
        cpu["rows"] if cpu else None,
        cpu["settings"] if cpu else {},
        gpu=loaded.get("cuda"),
        env=env,
        convergence=cpu.get("convergence") if cpu else None,
        distributed=distributed,
    )
    sources = [RESULT_FILES[d] for d in loaded] + [DISTRIBUTED_FILE] * bool(distributed)
    if (folder / DISTRIBUTIONS_FILE).exists():
        # The distributions benchmark renders its own section (it imports the frameworks,
        # so it is imported only when its results are there).
        from . import distributions

        raw = json.loads((folder / DISTRIBUTIONS_FILE).read_text())
        distributions.write_section(markdown, distributions.section_lines(raw))
        sources.append(DISTRIBUTIONS_FILE)
    return f"{markdown} (from {', '.join(sources)})"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a.startswith("-") for a in argv) or len(argv) > 1:
        print("usage: python -m benchmarks.report [FOLDER]   (default: benchmarks/)")
        return 2
    folder = Path(argv[0]) if argv else Path(__file__).resolve().parent
    written = write_reports(folder)
    if written is None:
        print(f"no {' or '.join(RESULT_FILES.values())} in {folder}", file=sys.stderr)
        return 1
    print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
