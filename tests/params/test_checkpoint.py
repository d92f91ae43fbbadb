import builtins
import os
import pickle

import pytest
import torch
from torch.distributions import constraints

import pyrolite.params.serialization as serialization
from pyrolite.params import ParamStoreDict, constraints_equal


class _Payload:
    """Unpickling this creates a marker file: stands in for a malicious checkpoint."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (builtins.open, (self.path, "w"))


def _fill(store):
    store.get_param("loc", torch.tensor([0.5, -1.0]))
    store.get_param("scale", torch.tensor([0.3, 2.0]), constraints.positive)
    store.get_param("p", torch.tensor(0.25), constraints.interval(-1.0, 4.0))
    store.get_param("probs", torch.tensor([0.2, 0.3, 0.5]), constraints.simplex)
    store.get_param("L", torch.tensor([[1.0, 0.0], [0.5, 2.0]]), constraints.lower_cholesky)
    store.get_param(
        "d", torch.tensor([1.0, 2.0], dtype=torch.float64), constraints.greater_than(0.5)
    )


def _snapshot(store):
    return {
        name: (store.unconstrained(name).detach().clone(), store.constraint(name))
        for name in store.keys()
    }


def _assert_same(store, snapshot):
    assert list(store.keys()) == list(snapshot)
    for name, (tensor, constraint) in snapshot.items():
        leaf = store.unconstrained(name)
        assert leaf.dtype == tensor.dtype and torch.equal(leaf.detach(), tensor), name
        assert constraints_equal(store.constraint(name), constraint), name


def _value(t):
    return t.detach().item()


@pytest.fixture
def store():
    s = ParamStoreDict()
    _fill(s)
    return s


@pytest.mark.parametrize("map_location", [None, "cpu"])
def test_save_clear_load_restores_identical_params(store, tmp_path, map_location):
    before = _snapshot(store)
    path = tmp_path / "params.pt"
    store.save(path)
    store.clear()
    store.load(path, map_location=map_location)
    _assert_same(store, before)
    assert store.constraint("scale") is constraints.positive
    p = store.constraint("p")
    assert (type(p), p.lower_bound, p.upper_bound) == (type(constraints.interval(0, 1)), -1.0, 4.0)
    for name in store.keys():
        leaf = store.unconstrained(name)
        assert leaf.is_leaf and leaf.requires_grad
        assert store.param_name(leaf) == name


def test_saved_file_is_plain_data(store, tmp_path):
    path = tmp_path / "params.pt"
    store.save(path)
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"params", "constraints"}
    assert raw["constraints"]["p"] == {
        "type": "interval",
        "args": {"lower_bound": -1.0, "upper_bound": 4.0},
    }
    assert raw["constraints"]["scale"] == {"type": "positive", "args": {}}
    assert torch.equal(raw["params"]["scale"], torch.tensor([0.3, 2.0]).log())


def test_load_merges_and_replaces_existing_names(store, tmp_path):
    path = tmp_path / "params.pt"
    store.save(path)
    other = ParamStoreDict()
    other.get_param("loc", torch.tensor([9.0, 9.0]))
    other.get_param("extra", torch.tensor([7.0]))
    other.load(path)
    assert sorted(other.keys()) == sorted([*store.keys(), "extra"])
    assert torch.equal(other["loc"].detach(), torch.tensor([0.5, -1.0]))


def test_get_state_is_a_snapshot_and_set_state_round_trips(store):
    state = store.get_state()
    with torch.no_grad():
        store.unconstrained("loc").add_(100.0)
    assert torch.equal(state["params"]["loc"], torch.tensor([0.5, -1.0]))
    store.set_state(state)
    assert torch.equal(store["loc"].detach(), torch.tensor([0.5, -1.0]))
    state["params"]["loc"].add_(1.0)  # the store does not alias the state's tensors
    assert torch.equal(store["loc"].detach(), torch.tensor([0.5, -1.0]))


def test_set_state_accepts_constraint_objects_like_pyro(store):
    fresh = ParamStoreDict()
    fresh.set_state(
        {"params": {"s": torch.tensor([0.0])}, "constraints": {"s": constraints.positive}}
    )
    assert _value(fresh["s"]) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "bad_state,match",
    [
        ([1, 2], "got list"),
        ({"params": {}}, "keys"),
        ({"params": {}, "constraints": {}, "optim": {}}, "keys"),
        ({"params": [], "constraints": {}}, "dicts"),
        ({"params": {"a": [1.0]}, "constraints": {}}, "'a'.*tensor"),
        ({"params": {"a": torch.tensor([1])}, "constraints": {}}, "'a'.*floating"),
        ({"params": {"a": torch.zeros(2)}, "constraints": {"a": {"type": "bogus"}}}, "'a'.*bogus"),
        ({"params": {"a": torch.zeros(2)}, "constraints": {"b": {"type": "real"}}}, "'b'"),
        (
            {
                "params": {"a": torch.zeros(3)},
                "constraints": {"a": {"type": "lower_cholesky", "args": {}}},
            },
            "'a'.*shape",
        ),
    ],
)
def test_bad_state_raises_and_leaves_store_unchanged(store, bad_state, match):
    before = _snapshot(store)
    leaves = {n: store.unconstrained(n) for n in store.keys()}
    # a good entry first, so a half-applied state would show
    if isinstance(bad_state, dict) and isinstance(bad_state.get("params"), dict):
        bad_state["params"] = {"loc": torch.tensor([42.0, 42.0]), **bad_state["params"]}
    with pytest.raises(ValueError, match=match):
        store.set_state(bad_state)
    _assert_same(store, before)
    assert all(store.unconstrained(n) is leaf for n, leaf in leaves.items())


def test_save_leaves_no_temp_file(store, tmp_path):
    store.save(tmp_path / "params.pt")
    assert os.listdir(tmp_path) == ["params.pt"]


def test_failed_save_keeps_existing_file_and_leaves_no_temp(store, tmp_path, monkeypatch):
    path = tmp_path / "params.pt"
    store.save(path)
    good_bytes = path.read_bytes()

    def exploding_save(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(serialization.torch, "save", exploding_save)
    store["loc"] = torch.tensor([3.0, 3.0])
    with pytest.raises(OSError, match="disk full"):
        store.save(path)
    assert path.read_bytes() == good_bytes
    assert os.listdir(tmp_path) == ["params.pt"]


def test_unencodable_constraint_fails_before_touching_disk(tmp_path):
    class Custom(constraints.Constraint):
        def check(self, value):
            return value == value

    registry = torch.distributions.transform_to
    registry.register(Custom, lambda c: torch.distributions.transforms.ExpTransform())
    try:
        store = ParamStoreDict()
        store.get_param("odd_param", torch.ones(1), Custom())
        with pytest.raises(ValueError, match="'odd_param'.*register_constraint_codec"):
            store.save(tmp_path / "params.pt")
    finally:
        registry._registry.pop(Custom)
    assert os.listdir(tmp_path) == []


def test_missing_file_names_the_file(store, tmp_path):
    before = _snapshot(store)
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        store.load(tmp_path / "nope.pt")
    _assert_same(store, before)


def _write_truncated(path, store):
    store.save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _write_garbage(path, store):
    path.write_bytes(b"\x00not a checkpoint at all\xff" * 10)


def _write_plain_tensor(path, store):
    torch.save(torch.randn(3), path)


def _write_other_dict(path, store):
    torch.save({"model": torch.randn(3), "step": 4}, path)


def _write_bad_constraint(path, store):
    torch.save(
        {"params": {"a": torch.zeros(1)}, "constraints": {"a": {"type": "os.system", "args": {}}}},
        path,
    )


def _write_pickled_object(path, store):
    with open(path, "wb") as f:
        pickle.dump({"params": {}, "constraints": {"x": ValueError("x")}}, f)


@pytest.mark.parametrize(
    "writer,match",
    [
        (_write_truncated, "params.pt.*ParamStore state"),
        (_write_garbage, "params.pt.*ParamStore state"),
        (_write_plain_tensor, "params.pt.*got Tensor"),
        (_write_other_dict, "params.pt.*keys"),
        (_write_bad_constraint, "params.pt.*os.system"),
        (_write_pickled_object, "params.pt.*ParamStore state"),
    ],
    ids=["truncated", "garbage", "plain_tensor", "other_dict", "bad_constraint", "pickled_object"],
)
def test_corrupt_or_foreign_file_raises_and_leaves_store_unchanged(store, tmp_path, writer, match):
    path = tmp_path / "params.pt"
    writer(path, ParamStoreDict() if writer is not _write_truncated else store)
    before = _snapshot(store)
    with pytest.raises(ValueError, match=match):
        store.load(path)
    _assert_same(store, before)


@pytest.mark.parametrize("via", ["torch_save", "raw_pickle"])
def test_loading_never_executes_code_from_the_file(store, tmp_path, via):
    marker = tmp_path / "pwned"
    path = tmp_path / "params.pt"
    payload = {"params": {"loc": _Payload(str(marker))}, "constraints": {}}
    if via == "torch_save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    before = _snapshot(store)
    with pytest.raises(ValueError, match="params.pt"):
        store.load(path)
    assert not marker.exists()
    _assert_same(store, before)
    # the payload is live: an unsafe loader would have run it
    sanity = tmp_path / "sanity"
    pickle.loads(pickle.dumps(_Payload(str(sanity)))).close()
    assert sanity.exists()


def test_pyrolite_file_matches_pyro_store_given_same_inits(tmp_path):
    pyro = pytest.importorskip("pyro")
    inits = {
        "loc": (torch.tensor([0.5, -1.0]), constraints.real),
        "scale": (torch.tensor([0.3, 2.0]), constraints.positive),
        "p": (torch.tensor(0.25), constraints.interval(-1.0, 4.0)),
        "L": (torch.tensor([[1.0, 0.0], [0.5, 2.0]]), constraints.lower_cholesky),
    }
    pyro.clear_param_store()
    ours = ParamStoreDict()
    for name, (init, constraint) in inits.items():
        pyro.param(name, init.clone(), constraint=constraint)
        ours.get_param(name, init.clone(), constraint)
    path = tmp_path / "params.pt"
    ours.save(path)
    saved = torch.load(path, weights_only=True)["params"]
    pyro_store = pyro.get_param_store()
    for name in inits:
        theirs = dict(pyro_store.named_parameters())[name].detach()
        assert torch.allclose(saved[name], theirs, atol=1e-6), name
        assert torch.allclose(ours[name], pyro_store[name], atol=1e-6), name
    pyro.clear_param_store()


def test_file_written_by_pyro_loads_with_same_values(tmp_path):
    pyro = pytest.importorskip("pyro")
    pyro.clear_param_store()
    pyro.param("loc", torch.tensor([0.5, -1.0]))
    pyro.param("scale", torch.tensor([0.3, 2.0]), constraint=constraints.positive)
    pyro.param("p", torch.tensor(0.25), constraint=constraints.interval(-1.0, 4.0))
    path = tmp_path / "pyro_params.pt"
    pyro.get_param_store().save(str(path))
    ours = ParamStoreDict()
    ours.load(path)
    theirs = pyro.get_param_store()
    for name in ["loc", "scale", "p"]:
        assert torch.allclose(ours[name], theirs[name], atol=1e-6), name
        assert constraints_equal(ours.constraint(name), theirs._constraints[name])
    assert ours.constraint("loc") is constraints.real
    assert ours.constraint("scale") is constraints.positive
    pyro.clear_param_store()
