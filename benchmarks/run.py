"""Run the benchmark suite and regenerate ``benchmarks/RESULTS.md`` and ``results.json``.

    python -m benchmarks.run [--quick] [--workloads W1,W2] [--frameworks hand,pyro] [--rounds R]
    python -m benchmarks.run --device cuda [...]   # on a GPU: writes results-cuda.json
    python -m benchmarks.run --malloc both         # also W2/W3 hand/pyrolite under glibc's default
    python -m benchmarks.run --report-only         # re-render RESULTS.md from the JSON files

Every (workload, config) runs in its own fresh worker process with one thread; rounds interleave
the configs (each round runs every selected config once, in a shuffled order), and the report
takes the median over rounds. With ``--malloc both`` a round also runs the allocator comparison's
configs (``registry.malloc_comparison``) under glibc's default malloc, interleaved with the rest;
their rows carry ``"malloc": "default"``. After the rounds, each selected config of a workload's
``Convergence`` (W4) runs once more in its own worker to measure steps to converge over the
workload's seeds (``--converge``); those results go to the JSON file's ``convergence`` list.
``RESULTS.md`` is rendered from ``results.json`` (CPU) and ``results-cuda.json`` (GPU), whichever
are in the output folder.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

from .measure import STEADY_MALLOC_ENV, device_env, malloc_settings
from .registry import (
    CONFIGS,
    FRAMEWORKS,
    WORKLOADS,
    Config,
    convergence_configs,
    malloc_comparison,
    runnable_workloads,
)
from .report import RESULT_FILES, environment, write_reports
from .worker import RESULT_PREFIX

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small step budget, one round")
    parser.add_argument("--workloads", default=",".join(runnable_workloads()))
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    parser.add_argument("--configs", default="", help="only these config keys (comma list)")
    parser.add_argument("--rounds", type=int, default=None, help="default 3, quick 1")
    parser.add_argument("--blocks", type=int, default=None, help="timed blocks; default 5/2")
    parser.add_argument("--timeout", type=float, default=None, help="per-run seconds")
    parser.add_argument("--out", type=Path, default=BENCH_DIR, help="where reports go")
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="where the steps run; cuda writes results-cuda.json (the GPU section)",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the other (workload, config) rows of the existing results file: run the "
        "suite in parts (e.g. one --workloads group per command) with the same settings",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: re-render RESULTS.md from the JSON files in --out",
    )
    parser.add_argument(
        "--malloc",
        choices=("steady", "default", "both"),
        default="steady",
        help="glibc malloc thresholds for the workers: fixed (steady) or glibc's moving default; "
        "both: steady, plus the allocator comparison's rows (W2/W3 hand, pyrolite) with default",
    )
    parser.add_argument(
        "--converge",
        choices=("on", "off", "only"),
        default="on",
        help="steps-to-converge runs (workloads with a Convergence: W4) after the timing rounds: "
        "on, off, or only them (no timing rounds)",
    )
    parser.add_argument("--list", action="store_true", help="print the configs and exit")
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.blocks = args.blocks or (2 if args.quick else 5)
    args.timeout = args.timeout or (180.0 if args.quick else 600.0)
    return args


def select(args) -> List[Tuple[str, Config]]:
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    for name in workloads:
        if name not in WORKLOADS:
            raise SystemExit(f"unknown workload {name!r}; known: {', '.join(WORKLOADS)}")
        if WORKLOADS[name].planned:
            raise SystemExit(f"workload {name} is planned but not built yet")
    frameworks = set(args.frameworks.split(","))
    keys = set(filter(None, args.configs.split(",")))
    return [
        (w, c)
        for w in workloads
        for c in CONFIGS[w]
        if c.framework in frameworks and (not keys or c.key in keys)
    ]


def plan(selected: List[Tuple[str, Config]], malloc: str) -> List[Tuple[str, Config, str]]:
    """Every run of a round as (workload, config, malloc setting): the selection under the main
    setting, and for ``--malloc both`` the selected configs of ``malloc_comparison()`` again
    under glibc's default."""
    main, *others = malloc_settings(malloc)
    compared = malloc_comparison()
    runs = [(w, c, main) for w, c in selected]
    return runs + [(w, c, m) for m in others for w, c in selected if c.key in compared.get(w, ())]


def converge_plan(selected: List[Tuple[str, Config]], choice: str) -> List[Tuple[str, Config]]:
    """The selected configs whose steps to converge are measured (``--converge`` on/only)."""
    if choice == "off":
        return []
    return [(w, c) for w, c in selected if c.key in convergence_configs(w)]


def converge_spec(workload: str, config: Config, args) -> dict:
    convergence = WORKLOADS[workload].convergence
    spec = {
        "workload": workload,
        "config": config.key,
        "mode": "converge",
        "seeds": list(convergence.run_seeds(args.quick)),
        "max_steps": convergence.max_steps,
        "tolerance": convergence.tolerance,
    }
    if args.device != "cpu":
        spec["device"] = args.device
    return spec


def run_convergence(converging: List[Tuple[str, Config]], args) -> List[dict]:
    """One worker per config, all its seeds in it; returns one summary row per config."""
    rows = []
    for workload, config in converging:
        spec = converge_spec(workload, config, args)
        result = run_worker(spec, args.timeout * len(spec["seeds"]))
        rows.append(summarize_convergence(config, spec, result))
        print(converge_line(rows[-1]), flush=True)
    return rows


def summarize_convergence(config: Config, spec: dict, result: dict) -> dict:
    """A steps-to-converge row: the result with its label, mean and count of misses.

    A seed that did not converge within ``max_steps`` counts as ``max_steps`` in the mean.
    """
    row = {
        "workload": spec["workload"],
        "config": config.key,
        "label": config.label,
        "framework": config.framework,
        "note": config.note,
        "status": result.get("status", "missing"),
        "seeds": spec["seeds"],
        "max_steps": spec["max_steps"],
        "tolerance": spec["tolerance"],
        "errors": [result["error"]] if result.get("status") != "ok" else [],
        "wall_s": result.get("wall_s"),
        "versions": result.get("versions", {}),
    }
    if result.get("status") == "ok":
        steps = result["converge_steps"]
        counted = [spec["max_steps"] if k is None else k for k in steps]
        row.update(
            steps=steps,
            seconds=result["converge_seconds"],
            mean_steps=statistics.mean(counted),
            not_converged=sum(k is None for k in steps),
        )
    return row


def converge_line(row: dict) -> str:
    head = f"[converge] {row['workload']:<3} {row['config']:<28}"
    if row["status"] != "ok":
        return f"{head} {row['status']}: {'; '.join(row['errors'])}"
    missed = f", {row['not_converged']} not converged" if row["not_converged"] else ""
    return (
        f"{head} mean {row['mean_steps']:,.1f} steps over {len(row['seeds'])} seeds{missed}  "
        f"{row.get('wall_s') or 0:.1f} s"
    )


def block_steps(workload: str, config: Config, quick: bool) -> int:
    spec = WORKLOADS[workload]
    base = spec.quick_block_steps if quick else spec.block_steps
    return max(1, round(base * config.step_scale))


def worker_env(malloc: str = "steady", device: str = "cpu") -> Dict[str, str]:
    env = dict(os.environ, **device_env(device))
    if malloc == "steady":
        env.update(STEADY_MALLOC_ENV)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


# Run in a fresh process with the worker environment before a cuda run: one clear answer
# instead of one traceback per worker, and the names and versions for the report's header.
CUDA_PROBE = r"""
import json, subprocess
info = {}
try:
    import torch
    info["torch"] = torch.__version__
    info["torch_cuda"] = torch.version.cuda
    info["available"] = torch.cuda.is_available()
    if info["available"]:
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_count"] = torch.cuda.device_count()
        props = torch.cuda.get_device_properties(0)
        info["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        info["capability"] = "%d.%d" % (props.major, props.minor)
except Exception as error:
    info["available"] = False
    info["error"] = "%s: %s" % (type(error).__name__, error)
try:
    smi = subprocess.run(
        ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
        capture_output=True, text=True, timeout=30,
    )
    info["driver"] = smi.stdout.strip().splitlines()[0] if smi.returncode == 0 else None
except Exception:
    info["driver"] = None
print(json.dumps(info))
"""

JAX_PROBE = r"""
import json
try:
    import jax
    device = jax.devices()[0]
    info = {"jax_device": "%s (%s)" % (getattr(device, "device_kind", device), device.platform)}
except Exception as error:
    info = {"jax_device": "unavailable: %s: %s" % (type(error).__name__, str(error)[:200])}
print(json.dumps(info))
"""


def _probe(code: str, device: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=worker_env("default", device),
        capture_output=True,
        text=True,
        timeout=300,
    )
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"available": False, "error": f"probe exit {proc.returncode}: {tail[0]}"}


def probe_cuda() -> dict:
    """The GPU's name and versions; exits with one message where torch sees no CUDA device."""
    info = _probe(CUDA_PROBE, "cuda")
    if not info.get("available"):
        why = info.get("error") or (
            f"torch {info.get('torch')} (CUDA build: {info.get('torch_cuda')}) "
            "reports torch.cuda.is_available() == False"
        )
        raise SystemExit(f"--device cuda: CUDA not available: {why}")
    info.update(_probe(JAX_PROBE, "cuda"))
    return info


def run_worker(spec: dict, timeout: float, malloc: str = "steady") -> dict:
    """Run one spec in a fresh process; any failure comes back as a result row."""
    command = [sys.executable, "-m", "benchmarks.worker", json.dumps(spec)]
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            command,
            cwd=REPO_ROOT,
            env=worker_env(malloc, spec.get("device", "cpu")),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {**spec, "status": "error", "error": f"timed out after {timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX) :])
            result["wall_s"] = time.perf_counter() - started
            return result
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
    return {**spec, "status": "error", "error": f"worker exit {proc.returncode}: {tail[0]}"}


def run_rounds(planned, args) -> Dict[Tuple[str, str, str], List[dict]]:
    runs: Dict[Tuple[str, str, str], List[dict]] = {(w, c.key, m): [] for w, c, m in planned}
    for round_index in range(args.rounds):
        order = list(planned)
        random.Random(round_index).shuffle(order)
        for workload, config, malloc in order:
            spec = {
                "workload": workload,
                "config": config.key,
                "block_steps": block_steps(workload, config, args.quick),
                "blocks": args.blocks,
            }
            if args.device != "cpu":
                spec["device"] = args.device
            result = run_worker(spec, args.timeout, malloc)
            result["round"], result["malloc"] = round_index + 1, malloc
            runs[(workload, config.key, malloc)].append(result)
            print(progress_line(round_index + 1, args.rounds, result), flush=True)
    return runs


def progress_line(round_no: int, rounds: int, result: dict) -> str:
    config = result["config"] + (" (malloc default)" if result["malloc"] == "default" else "")
    head = f"[round {round_no}/{rounds}] {result['workload']:<3} {config:<28}"
    if result.get("status") != "ok":
        return f"{head} {result.get('status')}: {result.get('error', '')}"
    where = "GPU " if result.get("device", "cpu") != "cpu" else ""
    return (
        f"{head} {result['us_per_step']:>11,.1f} us/step  {where}peak {_mb(result['peak_mb'])} "
        f"(run {_mb(result['run_peak_mb'])})  {result.get('wall_s', 0):.1f} s"
    )


def _mb(value) -> str:
    return "— MB" if value is None else f"{value:.1f} MB"


def _median(rows: List[dict], key: str):
    values = [r[key] for r in rows if r.get("status") == "ok" and r.get(key) is not None]
    return statistics.median(values) if values else None


def summarize(planned, runs) -> List[dict]:
    """One row per (workload, config, malloc setting): medians over the rounds that succeeded."""
    rows = []
    for workload, config, malloc in planned:
        results = runs[(workload, config.key, malloc)]
        ok = [r for r in results if r.get("status") == "ok"]
        problems = sorted({r.get("error", "") for r in results if r.get("status") != "ok"})
        rows.append(
            {
                "workload": workload,
                "config": config.key,
                "label": config.label,
                "framework": config.framework,
                "note": config.note,
                "malloc": malloc,
                "status": "ok" if ok else (results[0].get("status") if results else "missing"),
                "rounds_ok": len(ok),
                "us_per_step": _median(results, "us_per_step"),
                "us_per_step_rounds": [r["us_per_step"] for r in ok],
                "first_step_ms": _median(results, "first_step_ms"),
                "peak_mb": _median(results, "peak_mb"),
                "run_peak_mb": _median(results, "run_peak_mb"),
                "baseline_mb": _median(results, "baseline_mb"),
                "quality": _median(results, "quality"),
                "steps": ok[0]["steps"] if ok else None,
                "errors": problems,
                "versions": ok[0].get("versions", {}) if ok else {},
            }
        )
        if any(r.get("device", "cpu") != "cpu" for r in results):
            rows[-1].update(
                device_name=ok[0].get("device_name") if ok else None,
                device_memory=ok[0].get("device_memory") if ok else None,
                device_peak_since_start=ok[0].get("device_peak_since_start") if ok else None,
                device_baseline_mb=_median(results, "device_baseline_mb"),
                device_live_mb=_median(results, "device_live_mb"),
                rss_peak_mb=_median(results, "rss_peak_mb"),
                rss_run_peak_mb=_median(results, "rss_run_peak_mb"),
            )
        fallback = sorted({why for r in ok for why in r.get("compile_fallback", [])})
        if any(r.get("compiled_graphs") == 0 for r in ok) or fallback:
            rows[-1]["compile_fallback"] = fallback or ["no graph compiled"]
    return rows


_MERGE_KEYS = ("quick", "rounds", "blocks", "malloc", "device")
_CONVERGE_SETTINGS = ("seeds", "max_steps", "tolerance")


def _row_order(row: dict) -> tuple:
    workloads = list(WORKLOADS)
    keys = [c.key for c in CONFIGS.get(row["workload"], [])]
    config_index = keys.index(row["config"]) if row["config"] in keys else len(keys)
    return (workloads.index(row["workload"]), config_index, row.get("malloc") == "default")


def _row_id(row: dict, settings: dict) -> tuple:
    """(workload, config, malloc setting); rows from before ``--malloc both`` had no malloc."""
    main = malloc_settings(settings.get("malloc", "default"))[0]
    return (row["workload"], row["config"], row.get("malloc", main))


def _comparable(args) -> dict:
    """The settings a merge must share, for the check before anything runs."""
    settings = {"quick": args.quick, "rounds": args.rounds, "blocks": args.blocks}
    return {
        **settings,
        "malloc": args.malloc,
        "device": args.device,
        "block_steps": {},
        "wall_s": 0,
    }


def merge_results(old: dict, new: dict) -> dict:
    """``new`` plus the rows and runs of ``old`` for the (workload, config, malloc) it lacks."""
    before = {"device": "cpu", **old["settings"]}
    mismatch = [k for k in _MERGE_KEYS if before.get(k) != new["settings"].get(k)]
    if mismatch:
        was = ", ".join(f"{k}={before.get(k)!r}" for k in mismatch)
        raise SystemExit(
            f"--merge: the existing results were made with {was}; run with the same "
            "settings, or without --merge to start afresh"
        )
    fresh = {_row_id(r, new["settings"]) for r in new["rows"]}
    kept_rows = [r for r in old["rows"] if _row_id(r, before) not in fresh]
    kept_runs = [r for r in old["runs"] if _row_id(r, before) not in fresh]
    converged = {(r["workload"], r["config"]) for r in new.get("convergence", [])}
    kept_convergence = [
        r for r in old.get("convergence", []) if (r["workload"], r["config"]) not in converged
    ]
    settings = dict(new["settings"])
    settings["block_steps"] = {**old["settings"]["block_steps"], **new["settings"]["block_steps"]}
    settings["convergence"] = {
        **old["settings"].get("convergence", {}),
        **new["settings"].get("convergence", {}),
    }
    settings["wall_s"] = round(old["settings"]["wall_s"] + new["settings"]["wall_s"], 1)
    return {
        "settings": settings,
        "rows": sorted(kept_rows + new["rows"], key=_row_order),
        "runs": sorted(kept_runs + new["runs"], key=_row_order),
        "convergence": sorted(kept_convergence + new.get("convergence", []), key=_row_order),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.report_only:
        written = write_reports(args.out)
        if written is None:
            raise SystemExit(f"no {' or '.join(RESULT_FILES.values())} in {args.out}")
        print(f"wrote {written}")
        return 0
    selected = select(args)
    planned = plan(selected, args.malloc) if args.converge != "only" else []
    converging = converge_plan(selected, args.converge)
    if args.list:
        for workload, config, malloc in planned:
            print(f"{workload}  {config.key:<28} {malloc:<8} {config.label}")
        for workload, config in converging:
            seeds = len(converge_spec(workload, config, args)["seeds"])
            print(f"{workload}  {config.key:<28} {'converge':<8} {config.label} ({seeds} seeds)")
        return 0
    name = RESULT_FILES[args.device]
    previous = None
    if args.merge and (args.out / name).exists():
        previous = json.loads((args.out / name).read_text())
        merge_results(previous, {"settings": _comparable(args), "rows": [], "runs": []})
    gpu = probe_cuda() if args.device == "cuda" else None
    if gpu is not None:
        print(
            f"GPU: {gpu['gpu']}; torch {gpu['torch']} (CUDA {gpu['torch_cuda']}); "
            f"JAX: {gpu.get('jax_device')}",
            flush=True,
        )
    started = time.time()
    runs = run_rounds(planned, args)
    rows = summarize(planned, runs)
    convergence = run_convergence(converging, args)
    timed = dict.fromkeys((w, c) for w, c, _ in planned)
    settings = {
        "quick": args.quick,
        "rounds": args.rounds,
        "malloc": args.malloc,
        "blocks": args.blocks,
        "block_steps": {f"{w}/{c.key}": block_steps(w, c, args.quick) for w, c in timed},
        "convergence": {
            w: {k: v for k, v in converge_spec(w, c, args).items() if k in _CONVERGE_SETTINGS}
            for w, c in converging
        },
        "wall_s": round(time.time() - started, 1),
        "device": args.device,
        "env": environment(gpu),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    raw = {
        "settings": settings,
        "rows": rows,
        "runs": [r for v in runs.values() for r in v],
        "convergence": convergence,
    }
    if previous is not None:
        raw = merge_results(previous, raw)
    (args.out / name).write_text(json.dumps(raw, indent=1) + "\n")
    written = write_reports(args.out)
    print(f"wrote {written} and {name} in {settings['wall_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
