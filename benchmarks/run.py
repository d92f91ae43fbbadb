"""Run the benchmark suite and regenerate ``benchmarks/RESULTS.md`` and ``results.json``.

    python -m benchmarks.run [--quick] [--workloads W1,W2] [--frameworks hand,pyro] [--rounds R]

Every (workload, config) runs in its own fresh worker process with one thread; rounds interleave
the configs (each round runs every selected config once, in a shuffled order), and the report
takes the median over rounds.
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

from .measure import SINGLE_THREAD_ENV, STEADY_MALLOC_ENV
from .registry import CONFIGS, FRAMEWORKS, WORKLOADS, Config, runnable_workloads
from .report import write_report
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
        "--malloc",
        choices=("steady", "default"),
        default="steady",
        help="glibc malloc thresholds for the workers: fixed (steady) or glibc's moving default",
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


def block_steps(workload: str, config: Config, quick: bool) -> int:
    spec = WORKLOADS[workload]
    base = spec.quick_block_steps if quick else spec.block_steps
    return max(1, round(base * config.step_scale))


def worker_env(malloc: str = "steady") -> Dict[str, str]:
    env = dict(os.environ, **SINGLE_THREAD_ENV)
    if malloc == "steady":
        env.update(STEADY_MALLOC_ENV)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def run_worker(spec: dict, timeout: float, malloc: str = "steady") -> dict:
    """Run one spec in a fresh process; any failure comes back as a result row."""
    command = [sys.executable, "-m", "benchmarks.worker", json.dumps(spec)]
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            command,
            cwd=REPO_ROOT,
            env=worker_env(malloc),
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


def run_rounds(selected, args) -> Dict[Tuple[str, str], List[dict]]:
    runs: Dict[Tuple[str, str], List[dict]] = {(w, c.key): [] for w, c in selected}
    for round_index in range(args.rounds):
        order = list(selected)
        random.Random(round_index).shuffle(order)
        for workload, config in order:
            spec = {
                "workload": workload,
                "config": config.key,
                "block_steps": block_steps(workload, config, args.quick),
                "blocks": args.blocks,
            }
            result = run_worker(spec, args.timeout, args.malloc)
            result["round"] = round_index + 1
            runs[(workload, config.key)].append(result)
            print(progress_line(round_index + 1, args.rounds, result), flush=True)
    return runs


def progress_line(round_no: int, rounds: int, result: dict) -> str:
    head = f"[round {round_no}/{rounds}] {result['workload']:<3} {result['config']:<18}"
    if result.get("status") != "ok":
        return f"{head} {result.get('status')}: {result.get('error', '')}"
    return (
        f"{head} {result['us_per_step']:>11,.1f} us/step  peak {result['peak_mb']:.1f} MB "
        f"(run {result['run_peak_mb']:.1f} MB)  {result.get('wall_s', 0):.1f} s"
    )


def _median(rows: List[dict], key: str):
    values = [r[key] for r in rows if r.get("status") == "ok" and r.get(key) is not None]
    return statistics.median(values) if values else None


def summarize(selected, runs) -> List[dict]:
    """One row per (workload, config): medians over the rounds that succeeded."""
    rows = []
    for workload, config in selected:
        results = runs[(workload, config.key)]
        ok = [r for r in results if r.get("status") == "ok"]
        problems = sorted({r.get("error", "") for r in results if r.get("status") != "ok"})
        rows.append(
            {
                "workload": workload,
                "config": config.key,
                "label": config.label,
                "framework": config.framework,
                "note": config.note,
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
    return rows


def main(argv=None) -> int:
    args = parse_args(argv)
    selected = select(args)
    if args.list:
        for workload, config in selected:
            print(f"{workload}  {config.key:<18} {config.label}")
        return 0
    started = time.time()
    runs = run_rounds(selected, args)
    rows = summarize(selected, runs)
    settings = {
        "quick": args.quick,
        "rounds": args.rounds,
        "malloc": args.malloc,
        "blocks": args.blocks,
        "block_steps": {f"{w}/{c.key}": block_steps(w, c, args.quick) for w, c in selected},
        "wall_s": round(time.time() - started, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    raw = {"settings": settings, "rows": rows, "runs": [r for v in runs.values() for r in v]}
    (args.out / "results.json").write_text(json.dumps(raw, indent=1) + "\n")
    write_report(args.out / "RESULTS.md", rows, settings)
    print(f"wrote {args.out / 'RESULTS.md'} and results.json in {settings['wall_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
