"""Checkpoints that lose nothing and crash nothing: tampered files are refused before use,
modules resume bound to the loaded values, shapes are checked on redeclaration, cleared
params release their optimizer state, and a resumed run's losses are bit-identical."""

import gc
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from workloads import COIN, coin_guide, coin_model

import pyrolite as pyro
import pyrolite.distributions as dist
from pyrolite.infer import SVI, Trace_ELBO
from pyrolite.optim import SGD, Adam

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_DIR = os.path.dirname(TESTS_DIR)


def run_isolated(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter, so a crash (a signal) is a failed test."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([REPO_DIR, TESTS_DIR])}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def coin_svi():
    return SVI(coin_model, coin_guide, Adam({"lr": 0.01}), Trace_ELBO())


def snapshot(svi):
    """Everything a failed load must leave as it was (leaf identity included)."""
    store = pyro.get_param_store()
    return (
        {n: (store.unconstrained(n), store.unconstrained(n).detach().clone()) for n in store},
        svi.optim.get_state(),
        torch.get_rng_state().clone(),
        svi.step_count,
    )


def assert_unchanged(svi, before):
    params, optim_state, rng, step = before
    store = pyro.get_param_store()
    assert sorted(store.keys()) == sorted(params)
    for name, (leaf, value) in params.items():
        assert store.unconstrained(name) is leaf
        assert torch.equal(leaf.detach(), value)
    assert_same_state(svi.optim.get_state(), optim_state)
    assert torch.equal(torch.get_rng_state(), rng)
    assert svi.step_count == step


def assert_same_state(a, b):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys()
        for k in a:
            assert_same_state(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same_state(x, y)
    else:
        assert a == b


# --------------------------------------------------------------------- item 1: tampered files

TAMPERINGS = {
    "grown_param": "st['param_store']['params']['alpha_q'] = torch.zeros(3003)",
    "empty_exp_avg": "st['optim']['alpha_q']['state'][0]['exp_avg'] = torch.zeros(0)",
    "moments_of_shape_5": (
        "st['optim']['alpha_q']['state'][0]['exp_avg'] = torch.zeros(5); "
        "st['optim']['alpha_q']['state'][0]['exp_avg_sq'] = torch.ones(5)"
    ),
    "step_not_scalar": "st['optim']['alpha_q']['state'][0]['step'] = torch.ones(3)",
    "exp_avg_sq_missing": "del st['optim']['alpha_q']['state'][0]['exp_avg_sq']",
}


@pytest.mark.parametrize("tampering", sorted(TAMPERINGS))
def test_tampered_checkpoint_is_refused_at_load_naming_param_and_shapes(tampering):
    result = run_isolated(
        f"""
        import torch, pyrolite as pyro
        from workloads import COIN, coin_guide, coin_model
        from pyrolite.infer import SVI, Trace_ELBO
        from pyrolite.optim import Adam
        svi = SVI(coin_model, coin_guide, Adam({{"lr": 0.01}}), Trace_ELBO())
        for _ in range(3):
            svi.step(COIN)
        st = svi.get_state()
        {TAMPERINGS[tampering]}
        import tempfile, os
        path = os.path.join(tempfile.mkdtemp(), "c.pt")
        torch.save(st, path)
        before = {{k: v.detach().clone() for k, v in pyro.get_param_store().items()}}
        rng = torch.get_rng_state()
        try:
            svi.load(path)
        except ValueError as e:
            print("REFUSED:", e)
        else:
            svi.step(COIN)
            print("LOADED")
        after = {{k: v.detach() for k, v in pyro.get_param_store().items()}}
        assert before.keys() == after.keys()
        assert all(torch.equal(before[k], after[k]) for k in before)
        assert torch.equal(rng, torch.get_rng_state())
        print("UNCHANGED")
        """
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "REFUSED:" in out and "UNCHANGED" in out, out
    assert "'alpha_q'" in out and "c.pt" in out
    if tampering != "exp_avg_sq_missing":
        assert "shape (" in out


def test_tampered_optimizer_file_loaded_alone_fails_at_first_step_without_crashing(tmp_path):
    result = run_isolated(
        f"""
        import torch, pyrolite as pyro
        from workloads import COIN, coin_guide, coin_model
        from pyrolite.infer import SVI, Trace_ELBO
        from pyrolite.optim import Adam
        svi = SVI(coin_model, coin_guide, Adam({{"lr": 0.01}}), Trace_ELBO())
        svi.step(COIN)
        st = svi.optim.get_state()
        st["beta_q"]["state"][0]["exp_avg"] = torch.zeros(4000)
        torch.save(st, {str(tmp_path / "o.pt")!r})
        pyro.clear_param_store()
        svi = SVI(coin_model, coin_guide, Adam({{"lr": 0.01}}), Trace_ELBO())
        svi.optim.load({str(tmp_path / "o.pt")!r})
        try:
            svi.step(COIN)
        except ValueError as e:
            print("REFUSED:", e)
        """
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "REFUSED:" in result.stdout and "'beta_q'" in result.stdout
    assert "(4000,)" in result.stdout


def test_failed_load_leaves_params_optimizer_and_rng_unchanged(tmp_path):
    svi = coin_svi()
    for _ in range(3):
        svi.step(COIN)
    state = svi.get_state()
    state["optim"]["beta_q"]["state"][0]["exp_avg_sq"] = torch.ones(2, 2)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    before = snapshot(svi)
    with pytest.raises(ValueError, match=r"'beta_q'.*'exp_avg_sq' has shape \(2, 2\)"):
        svi.load(path)
    assert_unchanged(svi, before)


# --------------------------------------------------------------------- item 5: modules resume


def regression_data():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(50, 2, generator=g)
    return x, x @ torch.tensor([1.5, -0.5]) + 0.3


def module_svi(net):
    def model(x, y):
        m = pyro.module("net", net)
        s = pyro.sample("s", dist.LogNormal(0.0, 1.0))
        with pyro.plate("data", len(x)):
            pyro.sample("y", dist.Normal(m(x).squeeze(-1), s), obs=y)

    def guide(x, y):
        loc = pyro.param("s_loc", torch.tensor(0.0))
        pyro.sample("s", dist.LogNormal(loc, 0.1))

    return SVI(model, guide, Adam({"lr": 0.05}), Trace_ELBO())


@pytest.mark.parametrize("reuse_module", [False, True], ids=["fresh_module", "same_module"])
def test_module_resumes_bound_to_loaded_values_and_matches_uninterrupted_run(
    tmp_path, reuse_module
):
    x, y = regression_data()
    torch.manual_seed(0)
    net = torch.nn.Linear(2, 1)
    svi = module_svi(net)
    for _ in range(5):
        svi.step(x, y)
    path = tmp_path / "svi.pt"
    svi.save(path)
    at_save = [p.detach().clone() for p in net.parameters()]
    for _ in range(5):
        svi.step(x, y)
    uninterrupted = [p.detach().clone() for p in net.parameters()]

    if reuse_module:
        resumed_net = net  # load into the running process, module already registered
    else:
        pyro.clear_param_store()
        torch.manual_seed(123)
        resumed_net = torch.nn.Linear(2, 1)
    resumed = module_svi(resumed_net)
    resumed.load(path)
    for _ in range(5):
        resumed.step(x, y)
    store = pyro.get_param_store()
    for (name, p), before, expected in zip(resumed_net.named_parameters(), at_save, uninterrupted):
        assert not torch.allclose(p.detach(), before)  # it moved
        assert torch.equal(p.detach(), expected)  # exactly the uninterrupted run's
        assert store.unconstrained(f"net$$${name}") is p


# ---------------------------------------------------------------- item 6: shapes on redeclaring


def test_param_redeclared_with_another_shape_raises_naming_both_shapes():
    pyro.param("w", torch.zeros(1))
    with pytest.raises(ValueError, match=r"param .w. has shape \(1,\).*shape \(5,\).*del "):
        pyro.param("w", torch.zeros(5))
    assert pyro.param("w").shape == (1,)


def test_documented_replace_paths_work():
    pyro.param("w", torch.zeros(1))
    del pyro.get_param_store()["w"]
    assert pyro.param("w", torch.zeros(5)).shape == (5,)
    pyro.get_param_store()["w"] = torch.ones(3)
    assert torch.equal(pyro.param("w", torch.zeros(3)).detach(), torch.ones(3))


def test_constrained_param_shape_is_checked_in_constrained_space():
    simplex = dist.constraints.simplex
    pyro.param("p", torch.full((4,), 0.25), constraint=simplex)
    assert pyro.param("p", torch.full((4,), 0.25), constraint=simplex).shape == (4,)
    with pytest.raises(ValueError, match=r"param 'p' has shape \(4,\).*shape \(3,\)"):
        pyro.param("p", torch.full((3,), 1 / 3), constraint=simplex)


def test_checkpoint_from_another_model_is_named_at_first_use(tmp_path):
    def model():
        pyro.sample("z", dist.Normal(torch.zeros(3), 1.0).to_event(1))

    def guide():
        loc = pyro.param("loc", torch.zeros(3))
        pyro.sample("z", dist.Normal(loc, 1.0).to_event(1))

    store = pyro.get_param_store()
    store["loc"] = torch.tensor(0.5)  # another model's scalar "loc"
    store.save(tmp_path / "other.pt")
    pyro.clear_param_store()
    store.load(tmp_path / "other.pt")
    svi = SVI(model, guide, Adam({"lr": 0.1}), Trace_ELBO())
    with pytest.raises(ValueError, match=r"param .loc. has shape \(\), .*loaded from a checkpoint"):
        svi.step()
    assert store["loc"].shape == ()


# --------------------------------------------------------------------- item 10: no leak


def test_reused_svi_across_clear_param_store_keeps_no_cleared_state():
    svi = SVI(coin_model, coin_guide, Adam({"lr": 0.01}), Trace_ELBO())

    def live_tensors():
        gc.collect()
        return sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor))

    def rounds(n):
        for _ in range(n):
            pyro.clear_param_store()
            svi.step(COIN)

    rounds(20)
    start = live_tensors()
    rounds(300)
    assert live_tensors() - start <= 5
    # the optimizer holds exactly the live params, each with fresh state after a clear
    state = svi.optim.get_state()
    assert sorted(state) == ["alpha_q", "beta_q"]
    assert state["alpha_q"]["state"][0]["step"].item() == 1.0


def test_replaced_param_drops_the_old_tensors_optimizer_state():
    w = {}

    def model():
        pyro.sample("z", dist.Normal(0.0, 1.0))

    def guide():
        w["loc"] = pyro.param("loc", torch.tensor(0.0))
        pyro.sample("z", dist.Normal(w["loc"], 1.0))

    svi = SVI(model, guide, SGD({"lr": 0.1, "momentum": 0.9}), Trace_ELBO())
    svi.step()
    old = pyro.get_param_store().unconstrained("loc")
    pyro.get_param_store()["loc"] = torch.tensor(2.0)
    svi.step()
    assert old not in svi.optim._optimizer_of
    assert len(svi.optim._optimizer_of) == 1


# --------------------------------------------------------------------- item 11: exact resume


def test_first_loss_after_resume_is_bit_identical(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 3, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.3 * torch.randn(200, generator=g)

    def model(x, y):
        w = pyro.sample("w", dist.Normal(torch.zeros(3), 1.0).to_event(1))
        s = pyro.sample("s", dist.LogNormal(0.0, 1.0))
        with pyro.plate("d", len(x)):
            pyro.sample("y", dist.Normal(x @ w, s), obs=y)

    def guide(x, y):
        m = pyro.param("m", torch.zeros(3))
        sc = pyro.param("sc", torch.ones(3), constraint=dist.constraints.positive)
        pyro.sample("w", dist.Normal(m, sc).to_event(1))
        a = pyro.param("a", torch.tensor(0.0))
        b = pyro.param("b", torch.tensor(1.0), constraint=dist.constraints.positive)
        pyro.sample("s", dist.LogNormal(a, b))

    def make():
        return SVI(model, guide, Adam({"lr": 0.05}), Trace_ELBO())

    pyro.set_rng_seed(1)
    svi = make()
    for _ in range(10):
        svi.step(x, y)
    svi.save(tmp_path / "c.pt")
    uninterrupted = [svi.step(x, y) for _ in range(3)]
    pyro.clear_param_store()
    resumed = make()
    resumed.load(tmp_path / "c.pt")
    assert [resumed.step(x, y) for _ in range(3)] == uninterrupted


# --------------------------------------------------------------------- fuzz: mutated files


def _leaf_paths(obj, path=()):
    """Paths (key sequences) to every value nested in dicts and lists, inner nodes too."""
    paths = [path] if path else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            paths += _leaf_paths(v, path + (k,))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            paths += _leaf_paths(v, path + (i,))
    return paths


def _container(obj, path):
    for key in path[:-1]:
        obj = obj[key]
    return obj


def _mutate(state, rng):
    """One random mutation of a checkpoint dict in place; returns its description."""
    import copy

    kind = rng.choice(["shape", "dtype", "device", "missing", "extra", "type", "layout"])
    tensor_paths = [
        p for p in _leaf_paths(state) if isinstance(_container(state, p)[p[-1]], torch.Tensor)
    ]
    paths = [p for p in _leaf_paths(state) if not isinstance(_container(state, p), tuple)]
    if kind in ("shape", "dtype", "device", "layout"):
        path = rng.choice(tensor_paths)
        parent, old = _container(state, path), _container(state, path)[path[-1]]
        if kind == "shape":
            shape = rng.choice([(0,), (5,), (3003,), (2, 2), (1,), ()])
            new = (
                torch.randn(shape)
                if old.is_floating_point()
                else torch.zeros(shape, dtype=old.dtype)
            )
        elif kind == "dtype":
            dtype = rng.choice(
                [
                    torch.float64,
                    torch.float16,
                    torch.int64,
                    torch.bool,
                    torch.complex64,
                    torch.uint8,
                ]
            )
            new = old.to(dtype)
        elif kind == "device":
            new = old.to("meta")
        else:
            new = (
                old.reshape(-1).to_sparse()
                if old.dim() <= 1 and old.is_floating_point()
                else (old.reshape(1).expand(3) if old.numel() == 1 else old.t())
            )
        parent[path[-1]] = new
    elif kind == "missing":
        path = rng.choice([p for p in paths if isinstance(_container(state, p), dict)])
        del _container(state, path)[path[-1]]
    elif kind == "extra":
        path = rng.choice([p for p in paths if isinstance(_container(state, p)[p[-1]], dict)])
        target = _container(state, path)[path[-1]]
        target[rng.choice(["extra", 0, 1, "exp_avg", "alpha_q"])] = copy.deepcopy(
            rng.choice([torch.zeros(3), {"a": torch.ones(1)}, 7, "x"])
        )
    else:
        path = rng.choice(paths)
        parent = _container(state, path)
        value = rng.choice(["garbage", None, [1, 2], 3.5, {"state": {}}])
        if isinstance(parent, tuple):
            return "type (tuple, skipped)"
        parent[path[-1]] = value
    return f"{kind} at {path}"


def fuzz_checkpoints(directory, n=50, seed=0):
    """Load ``n`` randomly mutated checkpoints into a trained SVI: each either loads and
    steps to a finite loss, or raises a ValueError/RuntimeError naming the file or a param,
    leaving params, optimizer, RNG and step count as they were. Returns the outcomes."""
    import copy
    import random

    pyro.enable_validation(True)
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    svi = coin_svi()
    for _ in range(3):
        svi.step(COIN)
    base = svi.get_state()
    good = os.path.join(directory, "good.pt")
    svi.save(good)
    raw = open(good, "rb").read()
    rng = random.Random(seed)
    names = ("alpha_q", "beta_q")
    outcomes = []
    for i in range(n):
        svi.set_state(copy.deepcopy(base))
        path = os.path.join(directory, f"m{i}.pt")
        roll = rng.random()
        if roll < 0.1:
            with open(path, "wb") as f:
                f.write(raw[: rng.randrange(len(raw))])
            what = "truncated"
        elif roll < 0.16:
            with open(path, "wb") as f:
                f.write(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 2000))))
            what = "random bytes"
        else:
            state = copy.deepcopy(base)
            what = _mutate(state, rng)
            torch.save(state, path)
        before = snapshot(svi)
        try:
            svi.load(path)
        except (ValueError, RuntimeError) as e:
            message = str(e)
            assert path in message or any(f"'{n}'" in message for n in names), (what, message)
            assert_unchanged(svi, before)
            outcomes.append(("refused", what))
            continue
        try:
            losses = [svi.step(COIN) for _ in range(2)]
        except ValueError as e:  # refused at first use, naming the param, nothing applied
            assert any(f"'{n}'" in str(e) for n in names), (what, str(e))
            outcomes.append(("refused at step", what))
            continue
        assert all(torch.isfinite(torch.tensor(losses))), (what, losses)
        for name in names:
            assert torch.isfinite(pyro.get_param_store()[name]).all(), what
        outcomes.append(("loaded", what))
    return outcomes


def test_fuzzed_checkpoints_load_and_step_or_raise_named_errors_changing_nothing(tmp_path):
    outcomes = fuzz_checkpoints(str(tmp_path))
    kinds = {outcome for outcome, _ in outcomes}
    assert len(outcomes) == 50 and {"refused", "loaded"} <= kinds


def test_fuzz_loop_never_crashes_the_process(tmp_path):
    result = run_isolated(
        f"""
        import sys
        sys.path.insert(0, {os.path.join(TESTS_DIR, "params")!r})
        import torch
        torch.set_num_threads(1)
        from test_reliability import fuzz_checkpoints
        print(len(fuzz_checkpoints({str(tmp_path)!r})), "FUZZED")
        """
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "50 FUZZED" in result.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_map_location_without_a_gpu_says_so_not_corrupt(tmp_path):
    pyro.clear_param_store()
    pyro.param("a", torch.tensor(1.0))
    path = tmp_path / "p.pt"
    pyro.get_param_store().save(path)
    with pytest.raises(ValueError, match="no CUDA device is available here.*map_location='cpu'"):
        pyro.get_param_store().load(path, map_location="cuda")
    with pytest.raises(ValueError, match="no CUDA device"):
        pyro.get_param_store().load(path, map_location={"cpu": "cuda:0"})


def test_loading_another_models_checkpoint_warns_about_its_unused_params(tmp_path):
    import warnings as _warnings

    def model_a():
        pyro.sample(
            "x", dist.Normal(pyro.param("a", torch.tensor(0.0)), 1.0), obs=torch.tensor(1.0)
        )

    def model_b():
        pyro.sample(
            "x", dist.Normal(pyro.param("b", torch.tensor(0.0)), 1.0), obs=torch.tensor(1.0)
        )

    pyro.clear_param_store()
    svi = SVI(model_a, lambda: None, Adam({"lr": 0.1}), Trace_ELBO())
    svi.step()
    svi.save(tmp_path / "a.pt")
    pyro.clear_param_store()
    other = SVI(model_b, lambda: None, Adam({"lr": 0.1}), Trace_ELBO())
    other.load(tmp_path / "a.pt")
    with pytest.warns(UserWarning, match=r"params \['a'\] are not read by this model"):
        other.step()
    with _warnings.catch_warnings():
        _warnings.simplefilter("error")
        other.step()  # once
