"""Data-parallel SVI on W6: ``DistributedSVI`` on 2 processes against ``SVI`` on 1.

    python -m benchmarks.distributed [--quick] [--rounds R] [--blocks K] [--num-data N] [--out DIR]

W6's data (N = 1,000,000, drawn as in ``data.regression_data``), model, guide, Adam and step
budget (``registry.WORKLOADS["W6"]``), run as each of ``ROWS``: one process with ``SVI`` (one
torch thread: the reference; two torch threads: what intra-op threading gives on the same
cores), and two processes of one thread each joined by a gloo group on loopback, running
``DistributedSVI`` with ``local_plates=["data"]`` (each process holds half the rows) or
``shard_plates=["data"]`` (each holds all rows; the model reads them by the plate's indices),
and the ceiling: two plain ``SVI`` processes side by side, each fitting its own half with no
communication (what two processes get from the cores before any all-reduce).

Every row runs in fresh processes (``python -m benchmarks.distributed --worker SPEC``, one per
rank, the suite's worker environment: one thread, steady malloc); rounds interleave the rows in
a shuffled order and the figures are medians over rounds of each run's median over timed blocks
(``measure.time_blocks``: the first step and one warm-up block untimed). Throughput is N over the
step time; ratios divide by the one-process row of the same run. After the timed blocks every
row's unconstrained params are compared with the one-process row's (same seed, same number of
steps; a row that differs by more than ``PARAMS_ATOL + PARAMS_RTOL * |ref|`` is marked failed),
and for two processes each rank's with the other's. Then the multi-process rows measure the
all-reduce overhead two ways (``instrument``): ``INSTRUMENTED_BLOCKS`` more blocks of steps with
``AllReduceHooks.combine`` and the module's ``dist.all_reduce`` timed (header, flat buffer, and
combine's local work: the rest of combine), and a loop of the two collectives alone on the same
groups, with the same dtypes and sizes, back to back (their latency without any wait for the
other rank's compute).

Raw numbers go to ``results-distributed.json``; ``RESULTS.md`` is re-rendered by
``report.write_reports`` with a *Data-parallel* section (the other sections come from their own
JSON files, unchanged).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List

from .measure import set_torch_single_thread, time_blocks, warm_torch_lazy_imports
from .registry import WORKLOADS

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULT_FILE = "results-distributed.json"
RESULT_PREFIX = "BENCH_RESULT "
WORKLOAD = "W6"
SEED = 0

# Params after the run vs the one-process row's: float32 sums in another order (two halves,
# or two threads) move the gradients by ~1e-7 relative; Adam keeps that small.
PARAMS_ATOL, PARAMS_RTOL = 1e-4, 1e-4
INSTRUMENTED_BLOCKS = 3  # blocks of steps timed inside combine, after the timed blocks
COLLECTIVE_REPS = 300  # header + flat all-reduce pairs in the collectives-alone loop


@dataclass(frozen=True)
class Row:
    """One way of running W6: ``processes`` processes of ``threads`` torch threads each;
    ``plates``: ``None`` (plain ``SVI``), ``"local"`` or ``"shard"`` (``DistributedSVI``)."""

    key: str
    label: str
    processes: int
    threads: int = 1
    plates: str | None = None
    note: str = ""
    compare: bool = True  # its params are checked against the reference's

    @property
    def halves(self) -> bool:
        """Each process holds its own part of the rows (local plates, or independent fits)."""
        return self.processes > 1 and self.plates != "shard"


ROWS = (
    Row("svi-1proc", "SVI, 1 process, 1 thread", 1),
    Row(
        "svi-1proc-2threads",
        "SVI, 1 process, 2 torch threads",
        1,
        threads=2,
        note="intra-op threads on the same 2 cores (`OMP_NUM_THREADS=2`, "
        "`torch.set_num_threads(2)`)",
    ),
    Row(
        "dsvi-local-2proc",
        "DistributedSVI(local_plates=['data']), 2 processes × 1 thread",
        2,
        plates="local",
        note="each process holds its half of the rows, `plate('data', N / 2)`",
    ),
    Row(
        "dsvi-shard-2proc",
        "DistributedSVI(shard_plates=['data']), 2 processes × 1 thread",
        2,
        plates="shard",
        note="each process holds all rows; `plate('data', N) as idx` split in two, the "
        "model reads `x[idx]`, `y[idx]` (a 16 MB gather per step)",
    ),
    Row(
        "svi-2proc-nocomm",
        "2 independent SVI processes × 1 thread, no communication",
        2,
        note="the ceiling: each process fits its own half of the rows with plain `SVI` "
        "(a different estimator, so no params check), both at once; what 2 processes give on "
        "these cores with no all-reduce at all",
        compare=False,
    ),
)
REFERENCE = "svi-1proc"
TARGET = {
    "row": "dsvi-local-2proc",
    "reference": REFERENCE,
    "min_ratio": 1.7,
    "text": "W6 (N = 1,000,000) on 2 processes (`DistributedSVI`, `local_plates`) at least "
    "1.7× one process's throughput (data rows per second)",
}


# ---------------------------------------------------------------------------- the worker


def _set_threads(threads: int) -> int:
    import torch

    if threads == 1:
        return set_torch_single_thread()
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    return torch.get_num_threads()


def _build(row: Row, x, y):
    """W6's model, guide, Adam and Trace_ELBO (as ``frameworks.pyro_family.build`` makes the
    ``pyrolite`` config), in ``SVI`` or ``DistributedSVI``; returns (trainer, svi)."""
    import pyrolite
    from pyrolite.infer import SVI, Trace_ELBO
    from pyrolite.infer.distributed import DistributedSVI

    from .data import NUM_FEATURES
    from .frameworks import Trainer
    from .frameworks.pyro_family import _backend, _import
    from .models import regression

    lib = _import("pyrolite")
    pyrolite.clear_param_store()
    pyrolite.set_rng_seed(SEED)
    pyrolite.enable_validation(True)
    model, guide = regression(_backend(lib), NUM_FEATURES, index_by_plate=row.plates == "shard")
    optimizer = lib.optim.Adam({"lr": WORKLOADS[WORKLOAD].lr})
    if row.plates is None:
        svi = SVI(model, guide, optimizer, Trace_ELBO())
    else:
        plates = {"local": {"local_plates": ["data"]}, "shard": {"shard_plates": ["data"]}}
        svi = DistributedSVI(model, guide, optimizer, Trace_ELBO(), **plates[row.plates])
    return Trainer(step=lambda: svi.step(x, y), quality=lambda: float("nan")), svi


def _params() -> Dict[str, list]:
    import pyrolite

    store = pyrolite.get_param_store()
    return {n: store.unconstrained(n).detach().reshape(-1).tolist() for n in sorted(store.keys())}


class _TimedDist:
    """``torch.distributed`` with ``all_reduce`` timed, by buffer: the int64 header or the
    flat buffer (put in ``pyrolite.infer.distributed.dist`` for the instrumented steps)."""

    def __init__(self, real):
        self.real = real
        self.seconds = {"header": 0.0, "flat": 0.0}
        self.flat = None  # (numel, dtype) of the latest flat buffer

    def __getattr__(self, name):
        return getattr(self.real, name)

    def all_reduce(self, tensor, *args, **kwargs):
        import torch

        start = time.perf_counter()
        work = self.real.all_reduce(tensor, *args, **kwargs)
        elapsed = time.perf_counter() - start
        kind = "header" if tensor.dtype == torch.int64 else "flat"
        self.seconds[kind] += elapsed
        if kind == "flat":
            self.flat = (tensor.numel(), tensor.dtype)
        return work


def _median_us(values: List[float]) -> float:
    return statistics.median(values) * 1e6


def instrument(trainer, svi, steps: int) -> dict:
    """Per step, medians in µs: the step, ``combine``, its header and flat all-reduces (each
    with any wait for the other rank), combine's local work (the rest); then the two
    collectives alone, back to back, with the same groups, dtypes and sizes."""
    import torch
    import torch.distributed as dist

    import pyrolite.infer.distributed as module

    hooks, timed = svi.hooks, _TimedDist(module.dist)
    combine, records = hooks.combine, []

    def timed_combine(*args, **kwargs):
        start = time.perf_counter()
        try:
            return combine(*args, **kwargs)
        finally:
            records[-1]["combine"] += time.perf_counter() - start

    module.dist, hooks.combine = timed, timed_combine
    try:
        for _ in range(steps):
            timed.seconds = {"header": 0.0, "flat": 0.0}
            records.append({"combine": 0.0})
            start = time.perf_counter()
            trainer.step()
            records[-1]["step"] = time.perf_counter() - start
            records[-1].update(timed.seconds)
    finally:
        module.dist = dist
        del hooks.combine
    numel, dtype = timed.flat
    header = torch.tensor([0, 1, -1], dtype=torch.int64)
    flat = torch.zeros(numel, dtype=dtype)
    dist.barrier(group=svi.header_group)
    alone = []
    for _ in range(COLLECTIVE_REPS):
        start = time.perf_counter()
        dist.all_reduce(header, op=dist.ReduceOp.MAX, group=svi.header_group)
        dist.all_reduce(flat, group=svi.process_group)
        alone.append(time.perf_counter() - start)
    return {
        "steps": steps,
        "step_us": _median_us([r["step"] for r in records]),
        "combine_us": _median_us([r["combine"] for r in records]),
        "header_us": _median_us([r["header"] for r in records]),
        "flat_us": _median_us([r["flat"] for r in records]),
        "allreduce_us": _median_us([r["header"] + r["flat"] for r in records]),
        "local_us": _median_us([r["combine"] - r["header"] - r["flat"] for r in records]),
        "flat_numel": numel,
        "flat_dtype": str(dtype),
        "collectives_alone_us": _median_us(alone),
        "collectives_alone_reps": COLLECTIVE_REPS,
    }


def worker(spec: dict) -> dict:
    """One rank of one row: build, time blocks, read the params, instrument (2+ processes)."""
    row = next(r for r in ROWS if r.key == spec["row"])
    rank, world = spec["rank"], row.processes
    result = {"row": row.key, "rank": rank, "world": world}
    result["torch_threads"] = _set_threads(row.threads)
    import torch
    import torch.distributed as dist

    import pyrolite

    from .data import regression_data

    result["versions"] = {"pyrolite": pyrolite.__version__, "torch": torch.__version__}
    warm_torch_lazy_imports()
    if world > 1:
        dist.init_process_group(
            "gloo",
            init_method=f"tcp://127.0.0.1:{spec['port']}",
            rank=rank,
            world_size=world,
            timeout=datetime.timedelta(seconds=spec["timeout"]),
        )
    try:
        data = regression_data(spec["num_data"])
        x, y = data.x, data.y
        if row.halves:
            x, y = x.tensor_split(world)[rank].clone(), y.tensor_split(world)[rank].clone()
        del data
        holder = {}

        def build():
            trainer, holder["svi"] = _build(row, x, y)
            return trainer

        if world > 1:
            dist.barrier()  # start together (independent fits run their blocks side by side)
        trainer, timing = time_blocks(build, spec["block_steps"], spec["blocks"])
        if world > 1:
            dist.barrier()
        result.update(
            status="ok",
            rows_held=int(x.shape[0]),
            us_per_step=timing.us_per_step,
            block_us_per_step=timing.block_us_per_step,
            first_step_ms=timing.first_step_ms,
            steps=timing.steps_done,
            params=_params(),
        )
        if row.plates is not None:
            steps = spec["block_steps"] * INSTRUMENTED_BLOCKS
            result["instrumented"] = instrument(trainer, holder["svi"], steps)
    finally:
        if world > 1:
            dist.destroy_process_group()
    return result


def _error_text(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    where = f" at {frames[-1].filename.split('/')[-1]}:{frames[-1].lineno}" if frames else ""
    return f"{type(error).__name__}: {error}{where}"[:400]


def worker_main(text: str) -> int:
    spec = json.loads(text)
    try:
        result = worker(spec)
    except Exception as error:  # noqa: BLE001 - the failure becomes the row's error
        traceback.print_exc()
        result = {"row": spec["row"], "rank": spec["rank"], "status": "error"}
        result["error"] = _error_text(error)
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


# ---------------------------------------------------------------------------- the launcher


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def row_env(row: Row) -> Dict[str, str]:
    from .run import worker_env

    env = worker_env("steady")
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(row.threads)
    env["GLOO_SOCKET_IFNAME"] = "lo"
    return env


def _busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent busy (``/proc/stat``; 0 where unreadable)."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_row(row: Row, args) -> List[dict]:
    """Run ``row`` once: one fresh process per rank; one result per rank."""
    spec = {
        "row": row.key,
        "num_data": args.num_data,
        "block_steps": args.block_steps,
        "blocks": args.blocks,
        "port": free_port(),
        "timeout": args.timeout,
    }
    procs, outputs = [], []
    started = time.perf_counter()
    busy, mine = _busy_cpu_seconds(), _children_cpu_seconds()
    for rank in range(row.processes):
        out = tempfile.TemporaryFile(mode="w+")
        command = [sys.executable, "-m", "benchmarks.distributed", "--worker"]
        command.append(json.dumps({**spec, "rank": rank}))
        procs.append(
            subprocess.Popen(command, cwd=REPO_ROOT, env=row_env(row), stdout=out, stderr=out)
        )
        outputs.append(out)
    deadline = time.monotonic() + args.timeout
    timed_out = False
    for proc in procs:
        try:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            timed_out = True
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    wall = time.perf_counter() - started
    # Cores the rest of the machine kept busy meanwhile: busy CPU time minus this run's own.
    others = (_busy_cpu_seconds() - busy - (_children_cpu_seconds() - mine)) / wall
    results = []
    for rank, (proc, out) in enumerate(zip(procs, outputs)):
        out.seek(0)
        text = out.read()
        out.close()
        found = [ln for ln in text.splitlines() if ln.startswith(RESULT_PREFIX)]
        if found:
            result = json.loads(found[-1][len(RESULT_PREFIX) :])
        else:
            tail = text.strip().splitlines()[-1:] or ["no output"]
            why = f"timed out after {args.timeout:.0f} s" if timed_out else tail[0]
            result = {"row": row.key, "rank": rank, "status": "error"}
            result["error"] = f"rank {rank} exit {proc.returncode}: {why}"
        result["wall_s"], result["other_cores"] = wall, max(0.0, others)
        results.append(result)
    return results


def params_difference(mine: dict, reference: dict) -> tuple:
    """(max |mine - reference| over every param element, whether it is within tolerance)."""
    if sorted(mine) != sorted(reference):
        return float("inf"), False
    worst, within = 0.0, True
    for name, values in reference.items():
        for a, b in zip(mine[name], values):
            worst = max(worst, abs(a - b))
            within = within and abs(a - b) <= PARAMS_ATOL + PARAMS_RTOL * abs(b)
    return worst, within


def check(row: Row, ranks: List[dict], reference: List[dict] | None) -> dict:
    """A run's correctness: its params (every rank's) against the one-process run's."""
    failed = any(r.get("status") != "ok" for r in ranks + (reference or []))
    if failed or not reference or not row.compare:
        return {"params_ok": None}
    ref = reference[0]["params"]
    diffs = [params_difference(r["params"], ref) for r in ranks]
    between = [params_difference(r["params"], ranks[0]["params"])[0] for r in ranks[1:]]
    return {
        "params_ok": all(ok for _, ok in diffs),
        "params_max_abs_diff": max(d for d, _ in diffs),
        "ranks_max_abs_diff": max(between) if between else None,
    }


def run_rounds(rows: List[Row], args) -> List[dict]:
    """Every row once per round, shuffled (the reference row first in no particular
    round); each run's correctness is checked against the same round's reference run."""
    runs = []
    for round_index in range(args.rounds):
        order = list(rows)
        random.Random(round_index).shuffle(order)
        done: Dict[str, List[dict]] = {}
        for row in order:
            done[row.key] = run_row(row, args)
            print(progress_line(round_index + 1, args.rounds, row, done[row.key]), flush=True)
        for row in rows:
            ranks = done[row.key]
            runs.append(
                {
                    "row": row.key,
                    "round": round_index + 1,
                    "ranks": ranks,
                    **check(row, ranks, done.get(REFERENCE)),
                }
            )
    return runs


def progress_line(round_no: int, rounds: int, row: Row, ranks: List[dict]) -> str:
    head = f"[round {round_no}/{rounds}] {row.key:<20}"
    bad = [r for r in ranks if r.get("status") != "ok"]
    if bad:
        return f"{head} error: {'; '.join(r.get('error', '') for r in bad)}"
    first = ranks[0]
    text = f"{head} {first['us_per_step']:>10,.0f} us/step"
    if "instrumented" in first:
        inst = first["instrumented"]
        text += (
            f"  all-reduce {inst['allreduce_us']:,.0f} us"
            f" (alone {inst['collectives_alone_us']:,.0f})  combine {inst['combine_us']:,.0f} us"
        )
    others = first.get("other_cores", 0)
    return text + f"  {first.get('wall_s', 0):.1f} s, others {others:.2f} cores"


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(rows: List[Row], runs: List[dict], num_data: int) -> List[dict]:
    """One row per ``Row``: medians over the rounds of a run's step time (the slowest rank's;
    with ``DistributedSVI`` the ranks wait for each other every step); the instrumented
    figures per rank, then the mean of the ranks' medians."""
    summary = []
    for row in rows:
        mine = [r for r in runs if r["row"] == row.key]
        ok = [r for r in mine if all(x.get("status") == "ok" for x in r["ranks"])]
        errors = sorted(
            {x.get("error", "") for r in mine for x in r["ranks"] if x.get("status") != "ok"}
        )
        checks = [r["params_ok"] for r in ok if r.get("params_ok") is not None]
        per_run = [max(x["us_per_step"] for x in r["ranks"]) for r in ok]
        us = _median(per_run)
        item = {
            **asdict(row),
            "rows_per_process": num_data // row.processes if row.halves else num_data,
            "status": "ok" if ok else "error",
            "rounds_ok": len(ok),
            "us_per_step": us,
            "us_per_step_rounds": per_run,
            "rank_us_per_step": [
                _median([r["ranks"][k]["us_per_step"] for r in ok]) for k in range(row.processes)
            ],
            "rows_per_s": num_data / (us * 1e-6) if us else None,
            "first_step_ms": _median([r["ranks"][0]["first_step_ms"] for r in ok]),
            "other_cores": _median([r["ranks"][0].get("other_cores") for r in mine]),
            "steps": ok[0]["ranks"][0]["steps"] if ok else None,
            "params_ok": all(checks) if checks else None,
            "params_max_abs_diff": _median([r.get("params_max_abs_diff") for r in ok]),
            "ranks_max_abs_diff": _median([r.get("ranks_max_abs_diff") for r in ok]),
            "errors": errors,
        }
        if row.key != REFERENCE and checks and not all(checks):
            item["status"] = "failed"
        if ok and "instrumented" in ok[0]["ranks"][0]:
            per_rank = {}
            for field in (
                "step_us",
                "combine_us",
                "header_us",
                "flat_us",
                "allreduce_us",
                "local_us",
                "collectives_alone_us",
            ):
                ranks = [
                    _median([r["ranks"][k]["instrumented"][field] for r in ok])
                    for k in range(row.processes)
                ]
                per_rank[field] = ranks
                item[field] = statistics.mean(ranks)
            item["per_rank"] = per_rank
            item["flat_numel"] = ok[0]["ranks"][0]["instrumented"]["flat_numel"]
            item["flat_dtype"] = ok[0]["ranks"][0]["instrumented"]["flat_dtype"]
        summary.append(item)
    reference = next((s for s in summary if s["key"] == REFERENCE), None)
    for item in summary:
        ref = reference["rows_per_s"] if reference else None
        item["throughput_ratio"] = item["rows_per_s"] / ref if item["rows_per_s"] and ref else None
    return summary


def code_version() -> dict:
    """The commit and whether ``pyrolite/infer/distributed.py`` differs from it (the figures
    belong to that file's version)."""
    import hashlib

    def git(*command):
        proc = subprocess.run(["git", *command], cwd=REPO_ROOT, capture_output=True, text=True)
        return proc.stdout.strip() if proc.returncode == 0 else None

    path = "pyrolite/infer/distributed.py"
    text = (REPO_ROOT / path).read_bytes()
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "distributed_py_modified": bool(git("status", "--porcelain", path)),
        "distributed_py_sha1": hashlib.sha1(text).hexdigest()[:12],
    }


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="W6's quick step budget, one round")
    parser.add_argument("--rounds", type=int, default=None, help="default 3, quick 1")
    parser.add_argument("--blocks", type=int, default=None, help="timed blocks; default 5/2")
    parser.add_argument("--block-steps", type=int, default=None, help="default: W6's budget")
    parser.add_argument("--num-data", type=int, default=WORKLOADS[WORKLOAD].num_data)
    parser.add_argument("--rows", default=",".join(r.key for r in ROWS), help="row keys")
    parser.add_argument("--timeout", type=float, default=600.0, help="per-run seconds")
    parser.add_argument("--out", type=Path, default=BENCH_DIR, help="where reports go")
    args = parser.parse_args(argv)
    spec = WORKLOADS[WORKLOAD]
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.blocks = args.blocks or (2 if args.quick else 5)
    args.block_steps = args.block_steps or (
        spec.quick_block_steps if args.quick else spec.block_steps
    )
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.worker is not None:
        return worker_main(args.worker)
    from .report import environment, write_reports

    keys = [k for k in args.rows.split(",") if k]
    unknown = sorted(set(keys) - {r.key for r in ROWS})
    if unknown:
        raise SystemExit(f"unknown rows {unknown}; known: {', '.join(r.key for r in ROWS)}")
    rows = [r for r in ROWS if r.key in keys or r.key == REFERENCE]
    started, code = time.time(), code_version()
    runs = run_rounds(rows, args)
    settings = {
        "workload": WORKLOAD,
        "num_data": args.num_data,
        "quick": args.quick,
        "rounds": args.rounds,
        "blocks": args.blocks,
        "block_steps": args.block_steps,
        "instrumented_blocks": INSTRUMENTED_BLOCKS,
        "collective_reps": COLLECTIVE_REPS,
        "params_tolerance": {"atol": PARAMS_ATOL, "rtol": PARAMS_RTOL},
        "seed": SEED,
        "reference": REFERENCE,
        "target": TARGET,
        "wall_s": round(time.time() - started, 1),
        "env": environment(),
        "code": code,
    }
    raw = {"settings": settings, "rows": summarize(rows, runs, args.num_data), "runs": runs}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / RESULT_FILE).write_text(json.dumps(raw, indent=1) + "\n")
    written = write_reports(args.out)
    print(f"wrote {written} and {RESULT_FILE} in {settings['wall_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
