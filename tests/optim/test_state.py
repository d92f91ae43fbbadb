import pickle

import pytest
import torch
from test_optim import run_pyrolite

import pyrolite.optim as optim


def make_pair(names, values=None):
    values = values or (torch.zeros(3), torch.ones(2))
    return [names.param("a", values[0]), names.param("b", values[1])]


@pytest.mark.parametrize(
    "make",
    [
        lambda: optim.Adam({"lr": 0.05, "amsgrad": True}),
        lambda: optim.ClippedAdam({"lr": 0.05, "lrd": 0.95, "clip_norm": 1.0}),
        lambda: optim.RMSprop(lambda name: {"lr": 0.01 if name == "a" else 0.02}),
    ],
    ids=["adam", "clipped_adam", "per_param_rmsprop"],
)
def test_save_load_into_new_optimizer_continues_exactly(names, tmp_path, make):
    params = make_pair(names)
    uninterrupted = make()
    run_pyrolite(uninterrupted, params, 20)

    resumed_params = make_pair(names, (torch.zeros(3), torch.ones(2)))
    first = make()
    run_pyrolite(first, resumed_params, 10)
    first.save(tmp_path / "optim.pt")
    # a "new process": new tensors with the same names and a new optimizer
    resumed_params = make_pair(names, [p.detach() for p in resumed_params])
    second = make()
    second.load(tmp_path / "optim.pt")
    run_pyrolite(second, resumed_params, 10)
    for p, q in zip(params, resumed_params):
        assert torch.equal(p, q)


def test_saved_state_is_plain_data_keyed_by_name(names, tmp_path):
    params = make_pair(names)
    adam = optim.ClippedAdam({"lr": 0.1, "lrd": 0.5})
    run_pyrolite(adam, params, 2)
    adam.save(tmp_path / "optim.pt")
    state = torch.load(tmp_path / "optim.pt", weights_only=True)
    assert sorted(state) == ["a", "b"]
    assert state["a"]["param_groups"][0]["lr"] == pytest.approx(0.1 * 0.5**2)
    assert state["a"]["state"][0]["step"] == 2
    assert [f.name for f in tmp_path.iterdir()] == ["optim.pt"]  # no temporary left behind


def test_get_state_is_a_snapshot(names):
    params = make_pair(names)
    adam = optim.Adam({"lr": 0.1})
    run_pyrolite(adam, params, 1)
    state = adam.get_state()
    exp_avg = state["a"]["state"][0]["exp_avg"].clone()
    run_pyrolite(adam, params, 1)
    assert torch.equal(state["a"]["state"][0]["exp_avg"], exp_avg)


def test_set_state_rolls_back_params_already_being_optimized(names):
    params = make_pair(names)
    adam = optim.Adam({"lr": 0.1})
    run_pyrolite(adam, params, 3)
    checkpoint = adam.get_state()
    values = [p.detach().clone() for p in params]
    run_pyrolite(adam, params, 3)
    after_first = [p.detach().clone() for p in params]

    with torch.no_grad():
        for p, v in zip(params, values):
            p.copy_(v)
    adam.set_state(checkpoint)
    run_pyrolite(adam, params, 3)
    for p, v in zip(params, after_first):
        assert torch.equal(p.detach(), v)


def assert_same_state(x, y):
    assert x.keys() == y.keys()
    for name in x:
        assert x[name]["param_groups"] == y[name]["param_groups"]
        for key, value in x[name]["state"][0].items():
            assert torch.equal(value, y[name]["state"][0][key])


class Foreign:
    pass


@pytest.mark.parametrize(
    "write",
    [
        lambda path: path.write_bytes(b"\x00not a checkpoint at all"),
        lambda path: path.write_bytes(pickle.dumps(Foreign(), protocol=2)),
        lambda path: torch.save({"a": Foreign()}, path),
        lambda path: torch.save({"a": {"lr": 0.1}}, path),
        lambda path: torch.save([1, 2, 3], path),
    ],
    ids=["garbage", "plain_pickle", "pickled_code", "wrong_layout", "not_a_dict"],
)
def test_corrupt_or_foreign_file_raises_and_leaves_state_unchanged(names, tmp_path, write):
    params = make_pair(names)
    adam = optim.Adam({"lr": 0.1})
    run_pyrolite(adam, params, 2)
    before = adam.get_state()
    path = tmp_path / "bad.pt"
    write(path)
    with pytest.raises(ValueError, match="bad.pt"):
        adam.load(path)
    assert_same_state(adam.get_state(), before)
    assert not adam._state_waiting_to_be_consumed


def test_state_of_a_different_optimizer_is_rejected_when_its_param_appears(names, tmp_path):
    params = make_pair(names)
    adam = optim.Adam({"lr": 0.1})
    run_pyrolite(adam, params, 1)
    adam.save(tmp_path / "adam.pt")
    sgd = optim.SGD({"lr": 0.1, "momentum": 0.9})
    sgd.load(tmp_path / "adam.pt")
    values = [p.detach().clone() for p in params]
    with pytest.raises(ValueError, match="'a'.*momentum"):
        run_pyrolite(sgd, params, 1)
    assert all(torch.equal(p, v) for p, v in zip(params, values))
    assert all(sgd.torch_optimizer(p) is None for p in params)


def test_plain_optimizer_state_is_rejected_by_a_scheduler_and_vice_versa(names):
    params = make_pair(names)
    adam = optim.Adam({"lr": 0.1})
    run_pyrolite(adam, params, 1)
    scheduler = optim.StepLR(
        {"optimizer": torch.optim.Adam, "optim_args": {"lr": 0.1}, "step_size": 1}
    )
    with pytest.raises(ValueError, match="'a'"):
        scheduler.set_state(adam.get_state())
    run_pyrolite(scheduler, params, 1)
    with pytest.raises(ValueError, match="PyroLRScheduler"):
        adam.set_state(scheduler.get_state())


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        optim.Adam({"lr": 0.1}).load(tmp_path / "missing.pt")
