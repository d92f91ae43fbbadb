"""What the processes of ``tests/infer/test_distributed.py`` run, and its one-process twins.

Run as ``python distributed_scenarios.py SCENARIO RANK WORLD PORT OUTDIR``: each process
joins a gloo group on loopback, runs ``SCENARIO`` and writes what it saw to
``OUTDIR/rank<RANK>.pt`` (an error is recorded there too, then raised: the process exits
non-zero). The test imports the same models to compute the one-process reference.
"""

import datetime
import os
import sys
import traceback
import warnings

import torch
import torch.distributed as dist

import pyrolite
import pyrolite.distributions as dist_
from pyrolite.distributions import constraints
from pyrolite.distributions.testing import fakes
from pyrolite.infer import SVI, JitTrace_ELBO, Trace_ELBO, TraceGraph_ELBO
from pyrolite.infer.distributed import DistributedSVI
from pyrolite.optim import Adam

N = 16
BATCH = 8
STEPS = 5
SEED = 7
AOT = {"backend": "aot_eager"}


def regression_data():
    g = torch.Generator().manual_seed(123)
    x = torch.randn(N, 2, generator=g)
    y = x @ torch.tensor([1.5, -0.7]) + 0.3 + 0.5 * torch.randn(N, generator=g)
    return x, y


def make_model(plate_kind: str):
    """A Bayesian linear regression whose data plate is ``plate_kind``: ``"subsample"``
    (draws a batch of ``BATCH``), ``"full"`` (all ``N``, indexed) or ``"own"`` (a plate
    over whatever rows it is given)."""

    def model(x, y):
        w = pyrolite.sample("w", dist_.Normal(torch.zeros(2), 2.0).to_event(1))
        b = pyrolite.sample("b", dist_.Normal(0.0, 2.0))
        if plate_kind == "own":
            with pyrolite.plate("data", len(x)):
                pyrolite.sample("y", dist_.Normal(x @ w + b, 0.5), obs=y)
            return
        size = BATCH if plate_kind == "subsample" else None
        with pyrolite.plate("data", N, subsample_size=size) as idx:
            pyrolite.sample("y", dist_.Normal(x[idx] @ w + b, 0.5), obs=y[idx])

    return model


def make_guide(init: float = 0.0, score_function: bool = False, extra: bool = False):
    """A mean-field Normal guide whose locs start at ``init``; ``score_function``: ``b``
    is drawn without reparameterization, with a decaying-average baseline."""

    def guide(x, y):
        w_loc = pyrolite.param("w_loc", torch.full((2,), init))
        w_scale = pyrolite.param("w_scale", torch.full((2,), 0.5), constraint=constraints.positive)
        b_loc = pyrolite.param("b_loc", torch.tensor(init))
        b_scale = pyrolite.param("b_scale", torch.tensor(0.5), constraint=constraints.positive)
        if extra:
            pyrolite.param("extra", torch.zeros(3))
        pyrolite.sample("w", dist_.Normal(w_loc, w_scale).to_event(1))
        if score_function:
            pyrolite.sample(
                "b",
                fakes.NonreparameterizedNormal(b_loc, b_scale),
                infer={"baseline": {"use_decaying_avg_baseline": True, "baseline_beta": 0.8}},
            )
        else:
            pyrolite.sample("b", dist_.Normal(b_loc, b_scale))

    return guide


#: name -> (plate kind, ELBO class, SVI options, score-function guide)
CONFIGS = {
    "eager": ("subsample", Trace_ELBO, {}, False),
    "jit": ("subsample", JitTrace_ELBO, {}, False),
    "compiled": ("subsample", Trace_ELBO, {"compile": AOT}, False),
    "full_split": ("full", Trace_ELBO, {}, False),
    "own_rows": ("own", Trace_ELBO, {}, False),
    "baseline": ("subsample", TraceGraph_ELBO, {}, True),
}


def store_state():
    store = pyrolite.get_param_store()
    return {name: store.unconstrained(name).detach().clone() for name in sorted(store.keys())}


def train(svi, x, y, steps=STEPS):
    """Losses and ParamStore states after every step."""
    losses, states = [], []
    for _ in range(steps):
        losses.append(svi.step(x, y))
        states.append(store_state())
    return losses, states


def reference(config: str, steps: int = STEPS):
    """The one-process run of ``config`` (rank 0's init and seed)."""
    kind, elbo_class, options, score = CONFIGS[config]
    pyrolite.clear_param_store()
    pyrolite.set_rng_seed(SEED)
    x, y = regression_data()
    svi = SVI(make_model(kind), make_guide(0.0, score), Adam({"lr": 0.05}), elbo_class(), **options)
    losses, states = train(svi, x, y, steps)
    return {"losses": losses, "states": states, "elbo_state": svi.elbo.get_state()}


def distributed_run(config: str, rank: int, world: int):
    kind, elbo_class, options, score = CONFIGS[config]
    pyrolite.clear_param_store()
    pyrolite.set_rng_seed(SEED + 1000 * rank)  # DistributedSVI takes rank 0's RNG
    x, y = regression_data()
    extra = {}
    if kind == "own":
        x, y = x.tensor_split(world)[rank], y.tensor_split(world)[rank]
        extra = {"local_plates": ["data"]}
    elif kind == "full":
        extra = {"shard_plates": ["data"]}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        svi = DistributedSVI(
            make_model(kind),
            make_guide(float(rank), score),  # rank-dependent init: rank 0's must win
            Adam({"lr": 0.05}),
            elbo_class(),
            **extra,
            **options,
        )
        losses, states = train(svi, x, y)
    return {
        "losses": losses,
        "states": states,
        "elbo_state": svi.elbo.get_state(),
        "warnings": [str(w.message) for w in caught if "DistributedSVI" in str(w.message)],
    }


# --- scenarios ---------------------------------------------------------------------------


def scenario_equivalence(rank, world, outdir):
    return {config: distributed_run(config, rank, world) for config in CONFIGS}


def scenario_fit(rank, world, outdir):
    pyrolite.set_rng_seed(SEED)
    x, y = regression_data()
    svi = DistributedSVI(make_model("subsample"), make_guide(), Adam({"lr": 0.05}), Trace_ELBO())
    result = svi.fit(12, x, y, progress_bar=False)
    evaluated = svi.evaluate_loss(x, y)
    return {"losses": torch.as_tensor(result.losses), "state": store_state(), "eval": evaluated}


def scenario_raises(rank, world, outdir):
    """Rank 1's model raises at the third step."""
    x, y = regression_data()
    model = make_model("subsample")

    def failing_model(x, y):
        if rank == 1 and svi.step_count == 2:
            raise KeyError("rank 1 lost its data")
        return model(x, y)

    svi = DistributedSVI(failing_model, make_guide(), Adam({"lr": 0.05}), Trace_ELBO())
    before = None
    try:
        for _ in range(5):
            before = store_state()
            svi.step(x, y)
    finally:
        record(outdir, rank, {"steps": svi.step_count, "before": before, "after": store_state()})


def scenario_mismatch(rank, world, outdir):
    """Rank 1's guide reads one more param."""
    x, y = regression_data()
    guide = make_guide(extra=rank == 1)
    svi = DistributedSVI(make_model("subsample"), guide, Adam({"lr": 0.05}), Trace_ELBO())
    svi.step(x, y)


def scenario_nonfinite(rank, world, outdir):
    """Rank 1's data turns NaN at the third step: no process may apply that step."""
    x, y = regression_data()
    svi = DistributedSVI(
        make_model("own"), make_guide(), Adam({"lr": 0.05}), Trace_ELBO(), local_plates=["data"]
    )
    x, y = x.tensor_split(world)[rank], y.tensor_split(world)[rank]
    bad = y.clone()
    bad[0] = float("nan")
    before = None
    try:
        for step in range(4):
            before = store_state()
            svi.step(x, bad if (rank == 1 and step == 2) else y)
    finally:
        record(outdir, rank, {"steps": svi.step_count, "before": before, "after": store_state()})


def scenario_forgot_local(rank, world, outdir):
    """Each process holds its own rows, but ``local_plates`` is not passed."""
    x, y = regression_data()
    x, y = x.tensor_split(world)[rank], y.tensor_split(world)[rank]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        svi = DistributedSVI(make_model("own"), make_guide(), Adam({"lr": 0.05}), Trace_ELBO())
        for _ in range(3):
            svi.step(x, y)
    return {"warnings": [str(w.message) for w in caught if "DistributedSVI" in str(w.message)]}


def scenario_skip(rank, world, outdir):
    """``fit(stable_update=True)``: rank 1's third step is not finite; every rank skips it."""
    x, y = regression_data()
    model = make_model("subsample")

    def model_nan_once(x, y):
        if rank == 1 and svi.step_count + svi.skipped_steps == 2:
            y = y * float("nan")
        return model(x, y)

    pyrolite.enable_validation(False)  # a NaN observation then reaches the loss, unnamed
    svi = DistributedSVI(model_nan_once, make_guide(), Adam({"lr": 0.05}), Trace_ELBO())
    result = svi.fit(6, x, y, progress_bar=False, stable_update=True)
    return {
        "steps": svi.step_count,
        "skipped": svi.skipped_steps,
        "losses": torch.as_tensor(result.losses),
        "state": store_state(),
    }


def scenario_dies(rank, world, outdir):
    """Rank 1's process dies (no exception, no goodbye) at the third step."""
    x, y = regression_data()
    model = make_model("subsample")

    def dying_model(x, y):
        if rank == 1 and svi.step_count == 2:
            os._exit(3)
        return model(x, y)

    svi = DistributedSVI(dying_model, make_guide(), Adam({"lr": 0.05}), Trace_ELBO())
    for _ in range(5):
        svi.step(x, y)


def scenario_checkpoint(rank, world, outdir):
    """Resume the parent's one-process checkpoint here, then write one of our own."""
    x, y = regression_data()
    svi = DistributedSVI(make_model("subsample"), make_guide(), Adam({"lr": 0.05}), Trace_ELBO())
    svi.load(os.path.join(outdir, "one_process.ckpt"))
    resumed = train(svi, x, y, 3)
    svi.save(os.path.join(outdir, "two_process.ckpt"))
    continued = train(svi, x, y, 3)
    return {"resumed": resumed, "continued": continued}


# --- plumbing ----------------------------------------------------------------------------


def record(outdir, rank, result):
    path = os.path.join(outdir, f"rank{rank}.pt")
    torch.save(result, path + ".tmp")
    os.replace(path + ".tmp", path)


def main(argv):
    run(argv[1], int(argv[2]), int(argv[3]), argv[4], argv[5])


def spawned(rank, scenario, world, port, outdir):
    """The entry point for ``torch.multiprocessing.spawn`` (which passes the rank first)."""
    run(scenario, rank, world, port, outdir)


def run(scenario, rank, world, port, outdir):
    torch.set_num_threads(1)
    pyrolite.enable_validation(True)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        result = globals()[f"scenario_{scenario}"](rank, world, outdir)
        if result is not None:
            record(outdir, rank, result)
    except BaseException as e:
        with open(os.path.join(outdir, f"rank{rank}.err"), "w") as f:
            f.write(f"{type(e).__name__}: {e}\n")
            traceback.print_exc(file=f)
        raise
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv)
