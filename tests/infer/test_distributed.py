"""Data-parallel SVI: two gloo processes on loopback against one process.

Each test starts the processes of ``tests/distributed_scenarios.py`` (bounded by a
timeout: a hang fails the test instead of stalling the suite) and compares what they
wrote with the one-process run of the same models in this process.
"""

import os
import socket
import subprocess
import sys
import time

import distributed_scenarios as sc
import pytest
import torch

import pyrolite
import pyrolite.distributions as dist
from pyrolite.infer import SVI, Trace_ELBO
from pyrolite.optim import Adam
from pyrolite.poutine.shard_messenger import ShardMessenger

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available(), reason="torch.distributed is not available"
)

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(__file__)), "distributed_scenarios.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(scenario, outdir, world=2, timeout=150):
    """Run ``scenario`` on ``world`` processes; their exit codes, results and errors."""
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    procs = [
        subprocess.Popen(
            [sys.executable, SCRIPT, scenario, str(r), str(world), str(port), str(outdir)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for r in range(world)
    ]
    deadline = time.monotonic() + timeout
    codes = []
    try:
        for p in procs:
            codes.append(p.wait(timeout=max(1.0, deadline - time.monotonic())))
    except subprocess.TimeoutExpired:
        pytest.fail(f"scenario {scenario!r} did not finish within {timeout} s (a hang)")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    results, errors = [], []
    for r in range(world):
        path = os.path.join(outdir, f"rank{r}.pt")
        results.append(torch.load(path, weights_only=False) if os.path.exists(path) else None)
        err = os.path.join(outdir, f"rank{r}.err")
        errors.append(open(err).read().splitlines()[0] if os.path.exists(err) else None)
    if any(codes) and all(e is None for e in errors):
        stderr = [p.stderr.read().decode()[-3000:] for p in procs]
        pytest.fail(f"scenario {scenario!r} crashed: {codes}\n" + "\n".join(stderr))
    return codes, results, errors


def assert_states_equal(a, b, atol=1e-5):
    assert sorted(a) == sorted(b)
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=atol, rtol=0)


# --- the shard handler on its own (no processes) -------------------------------------------


def test_a_subsampled_plate_splits_the_one_process_batch_and_weighs_its_part():
    parts, scales = [], []
    for rank in range(2):
        pyrolite.set_rng_seed(0)
        with pyrolite.poutine.trace() as tr, ShardMessenger(rank, 2):
            with pyrolite.plate("data", 10, subsample_size=4) as idx:
                pyrolite.sample("x", dist.Normal(0.0, 1.0), obs=torch.zeros(2))
        parts.append(idx)
        scales.append(tr.trace.nodes["x"]["scale"])
    pyrolite.set_rng_seed(0)
    with pyrolite.plate("data", 10, subsample_size=4) as whole:
        pass
    assert torch.equal(torch.cat(parts), whole)
    # Each part weighs size / part size = 10 / 2: the average of the two estimates is the
    # one-process estimate 10 / 4 * (sum over the batch).
    assert scales == [5.0, 5.0]


def test_local_and_untouched_plates():
    with pyrolite.poutine.trace() as tr, ShardMessenger(1, 4, local=["rows"]):
        with pyrolite.plate("rows", 3) as rows:
            pyrolite.sample("a", dist.Normal(0.0, 1.0), obs=torch.zeros(3))
        with pyrolite.plate("features", 5) as features:
            pyrolite.sample("b", dist.Normal(0.0, 1.0))
    assert torch.equal(rows, torch.arange(3)) and torch.equal(features, torch.arange(5))
    assert tr.trace.nodes["a"]["scale"] == 4.0  # its own rows, a quarter of the data
    assert tr.trace.nodes["b"]["scale"] == 1.0 and tr.trace.nodes["b"]["value"].shape == (5,)


def test_a_batch_that_does_not_split_evenly_is_an_error_naming_the_plate():
    with pytest.raises(ValueError, match=r"plate\('data', size=10\).*batch of 5.*3 processes"):
        with ShardMessenger(0, 3):
            with pyrolite.plate("data", 10, subsample_size=5):
                pass
    with pytest.raises(ValueError, match="both to split and as local"):
        ShardMessenger(0, 2, split=["data"], local=["data"])


def test_distributed_svi_needs_an_initialized_process_group():
    with pytest.raises(RuntimeError, match="init_process_group"):
        sc.DistributedSVI(sc.make_model("own"), sc.make_guide(), Adam({}), Trace_ELBO())


# --- two processes -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def equivalence(tmp_path_factory):
    outdir = tmp_path_factory.mktemp("equivalence")
    codes, results, errors = run_ranks("equivalence", outdir)
    assert codes == [0, 0], errors
    return results


@pytest.mark.parametrize("config", list(sc.CONFIGS))
def test_two_processes_equal_one_process_over_the_union_of_their_shards(equivalence, config):
    one = sc.reference(config)
    ranks = [r[config] for r in equivalence]
    for step in range(sc.STEPS):
        # Both ParamStores are identical after every step (bit for bit: each applied the
        # same averaged gradients to the same values) ...
        a, b = ranks[0]["states"][step], ranks[1]["states"][step]
        assert sorted(a) == sorted(b)
        assert all(torch.equal(a[n], b[n]) for n in a), f"step {step}: ranks differ"
        # ... and equal to the one-process run (float rounding: averaging two half-batch
        # sums is not the same float sum as one whole-batch sum).
        assert_states_equal(a, one["states"][step])
    # Rank 1's params were created at another init; rank 0's won at the first step.
    assert ranks[1]["states"][0]["b_loc"] == pytest.approx(float(one["states"][0]["b_loc"]))
    # Data alike on every process, or in split or local plates: nothing to warn about.
    assert ranks[0]["warnings"] == ranks[1]["warnings"] == []
    # The loss returned is the global one, on every process.
    assert ranks[0]["losses"] == ranks[1]["losses"]
    assert ranks[0]["losses"] == pytest.approx(one["losses"], rel=1e-5)
    # State kept between steps (decaying-average baselines) is averaged too: the same
    # statistic as one process's.
    for name, value in one["elbo_state"].items():
        torch.testing.assert_close(ranks[0]["elbo_state"][name], value, atol=1e-5, rtol=0)
        assert torch.equal(ranks[0]["elbo_state"][name], ranks[1]["elbo_state"][name])
    if config == "baseline":
        assert one["elbo_state"], "the score-function site keeps a baseline average"


def test_fit_on_two_processes_equals_fit_on_one(tmp_path):
    codes, results, errors = run_ranks("fit", tmp_path)
    assert codes == [0, 0], errors
    pyrolite.set_rng_seed(sc.SEED)
    x, y = sc.regression_data()
    svi = SVI(sc.make_model("subsample"), sc.make_guide(), Adam({"lr": 0.05}), Trace_ELBO())
    one = svi.fit(12, x, y, progress_bar=False)
    evaluated = svi.evaluate_loss(x, y)
    for r in results:
        torch.testing.assert_close(r["losses"], torch.as_tensor(one.losses), rtol=1e-5, atol=0)
        assert_states_equal(r["state"], sc.store_state())
        # evaluate_loss is the global estimate too (the average of the two halves)
        assert r["eval"] == pytest.approx(evaluated, rel=1e-5)


def test_fit_under_torch_multiprocessing_spawn(tmp_path):
    context = torch.multiprocessing.spawn(
        sc.spawned, args=("fit", 2, free_port(), str(tmp_path)), nprocs=2, join=False
    )
    deadline = time.monotonic() + 150
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for p in context.processes:
                p.kill()
            pytest.fail("spawned processes did not finish in 150 s")
    pyrolite.set_rng_seed(sc.SEED)
    x, y = sc.regression_data()
    svi = SVI(sc.make_model("subsample"), sc.make_guide(), Adam({"lr": 0.05}), Trace_ELBO())
    one = svi.fit(12, x, y, progress_bar=False)
    for rank in range(2):
        result = torch.load(tmp_path / f"rank{rank}.pt", weights_only=False)
        torch.testing.assert_close(result["losses"], torch.as_tensor(one.losses), rtol=1e-5, atol=0)


def test_a_rank_that_raises_ends_the_run_on_every_rank_with_its_error(tmp_path):
    started = time.monotonic()
    codes, results, errors = run_ranks("raises", tmp_path, timeout=90)
    assert time.monotonic() - started < 90
    assert codes[0] != 0 and codes[1] != 0
    assert errors[1] == "KeyError: 'rank 1 lost its data'"
    assert errors[0].startswith("RankFailed: DistributedSVI step 2: the step raised on rank(s) [1]")
    assert "KeyError: 'rank 1 lost its data'" in open(tmp_path / "rank0.err").read()
    for r in results:  # two steps applied, the failed one applied nowhere
        assert r["steps"] == 2
        assert_states_equal(r["before"], r["after"], atol=0)


def test_ranks_running_different_guides_fail_fast_naming_the_param(tmp_path):
    codes, results, errors = run_ranks("mismatch", tmp_path, timeout=90)
    assert codes[0] != 0 and codes[1] != 0
    for e in errors:
        assert e.startswith("ValueError: DistributedSVI step 0: rank 0 and rank 1 read different")
        assert "rank 1 has param 'extra' (shape (3,), torch.float32)" in e


def test_a_step_not_finite_on_one_rank_is_applied_on_none(tmp_path):
    codes, results, errors = run_ranks("nonfinite", tmp_path, timeout=90)
    assert codes[0] != 0 and codes[1] != 0
    assert "site 'y'" in errors[1], errors[1]
    assert errors[0].startswith(
        "FloatingPointError: DistributedSVI step 2: the step was not finite on rank(s) [1]"
    )
    for r in results:
        assert r["steps"] == 2
        assert_states_equal(r["before"], r["after"], atol=0)


def test_stable_update_skips_a_step_on_every_rank_when_one_rank_is_not_finite(tmp_path):
    codes, results, errors = run_ranks("skip", tmp_path)
    assert codes == [0, 0], errors
    for r in results:
        assert (r["steps"], r["skipped"]) == (5, 1)
        assert torch.isnan(r["losses"][2]) and torch.isfinite(r["losses"][[0, 1, 3, 4, 5]]).all()
    assert_states_equal(results[0]["state"], results[1]["state"], atol=0)


def test_data_that_differ_across_processes_outside_sharded_plates_warn_once(tmp_path):
    codes, results, errors = run_ranks("forgot_local", tmp_path)
    assert codes == [0, 0], errors
    for r in results:
        assert len(r["warnings"]) == 1, r["warnings"]
        message = r["warnings"][0]
        assert "observed site 'y' in plate(s) ['data'] has different data" in message
        assert "pass local_plates=['data']" in message


def test_a_rank_that_dies_ends_the_run_within_bounded_time(tmp_path):
    started = time.monotonic()
    codes, results, errors = run_ranks("dies", tmp_path, timeout=90)
    assert codes[1] == 3 and codes[0] != 0
    assert errors[0] is not None  # rank 0 raised (the connection to rank 1 closed)
    assert time.monotonic() - started < 60


def test_checkpoints_move_between_one_and_two_processes(tmp_path):
    # One process trains 3 steps and saves; two processes resume it for 3 steps and save;
    # one process resumes theirs. Each leg equals one process doing the same throughout.
    x, y = sc.regression_data()
    make = lambda: SVI(  # noqa: E731
        sc.make_model("subsample"), sc.make_guide(), Adam({"lr": 0.05}), Trace_ELBO()
    )
    pyrolite.set_rng_seed(sc.SEED)
    svi = make()
    sc.train(svi, x, y, 3)
    svi.save(tmp_path / "one_process.ckpt")
    straight = sc.train(svi, x, y, 6)  # the uninterrupted one-process run
    codes, results, errors = run_ranks("checkpoint", tmp_path)
    assert codes == [0, 0], errors
    for r in results:
        assert r["resumed"][0] == pytest.approx(straight[0][:3], rel=1e-5)
        for got, want in zip(r["resumed"][1] + r["continued"][1], straight[1]):
            assert_states_equal(got, want)
    pyrolite.clear_param_store()
    svi = make()
    svi.load(tmp_path / "two_process.ckpt")
    assert svi.step_count == 6
    losses, states = sc.train(svi, x, y, 3)
    assert losses == pytest.approx(straight[0][3:], rel=1e-5)
    assert losses == pytest.approx(results[0]["continued"][0], rel=1e-5)
    for got, want in zip(states, straight[1][3:]):
        assert_states_equal(got, want)
