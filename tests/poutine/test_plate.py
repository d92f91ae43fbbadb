"""plate: dims, broadcasting, subsampling and scaling, sequential use, shape errors."""

import pytest
import torch

import pyrolite
import pyrolite.distributions as dist
from pyrolite import poutine
from pyrolite.poutine.plate_messenger import CondIndepStackFrame
from pyrolite.poutine.util import site_is_subsample


def test_plate_broadcasts_scalar_params_to_plate_size():
    def model():
        with pyrolite.plate("data", 4):
            return pyrolite.sample("x", dist.Normal(0.0, 1.0))

    tr = poutine.trace(model).get_trace()
    x = tr.nodes["x"]
    assert x["value"].shape == (4,)
    assert x["fn"].batch_shape == (4,)
    assert x["cond_indep_stack"] == (CondIndepStackFrame("data", -1, 4, 0, 4),)
    assert x["scale"] == 1.0
    # A full plate has no randomness, hence no subsample site.
    assert [n for n in tr.nodes if site_is_subsample(tr.nodes[n])] == []


def test_plate_yields_indices():
    with pyrolite.plate("data", 5) as idx:
        assert idx.tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    "outer_dim, inner_dim, expected_dims",
    [(None, None, (-1, -2)), (-1, -2, (-1, -2)), (-2, -1, (-2, -1)), (-3, None, (-3, -1))],
)
def test_nested_plate_dims(outer_dim, inner_dim, expected_dims):
    def model():
        with pyrolite.plate("outer", 2, dim=outer_dim):
            with pyrolite.plate("inner", 3, dim=inner_dim):
                return pyrolite.sample("x", dist.Normal(0.0, 1.0))

    tr = poutine.trace(model).get_trace()
    frames = tr.nodes["x"]["cond_indep_stack"]
    assert [(f.name, f.dim, f.size) for f in frames] == [
        ("outer", expected_dims[0], 2),
        ("inner", expected_dims[1], 3),
    ]
    shape = [1] * max(-d for d in expected_dims)
    shape[expected_dims[0]] = 2
    shape[expected_dims[1]] = 3
    assert tr.nodes["x"]["value"].shape == tuple(shape)


def test_plate_dims_are_freed_on_exit():
    with pyrolite.plate("a", 2) as _:
        pass
    with pyrolite.plate("b", 3):
        with pyrolite.plate("c", 4):
            x = pyrolite.sample("x", dist.Normal(0.0, 1.0))
    assert x.shape == (4, 3)


def test_param_sites_get_plate_frames():
    def model():
        with pyrolite.plate("data", 3):
            pyrolite.param("p", torch.ones(3))

    tr = poutine.trace(model).get_trace()
    assert [f.name for f in tr.nodes["p"]["cond_indep_stack"]] == ["data"]


def test_subsample_size_indices_and_scale():
    def model():
        with pyrolite.plate("data", 100, subsample_size=10) as idx:
            pyrolite.sample("x", dist.Normal(0.0, 1.0))
        return idx

    tr = poutine.trace(model).get_trace()
    idx = tr.nodes["_RETURN"]["value"]
    assert idx.shape == (10,) and idx.dtype == torch.long
    assert len(set(idx.tolist())) == 10 and 0 <= idx.min() and idx.max() < 100
    assert tr.nodes["x"]["value"].shape == (10,)
    assert tr.nodes["x"]["scale"] == 10.0
    assert tr.nodes["x"]["cond_indep_stack"] == (CondIndepStackFrame("data", -1, 10, 0, 100),)
    sub = tr.nodes["data"]
    assert site_is_subsample(sub) and sub["value"] is idx
    assert sub["infer"]["_subsample"] is True
    assert tr.stochastic_nodes == ["data", "x"]


def test_subsample_scale_enters_log_prob_sum():
    data = torch.arange(6.0)

    def model():
        with pyrolite.plate("data", 6, subsample_size=2) as idx:
            pyrolite.sample("x", dist.Normal(0.0, 1.0), obs=data[idx])
        return idx

    tr = poutine.trace(model).get_trace()
    idx = tr.nodes["_RETURN"]["value"]
    expected = 3.0 * dist.Normal(0.0, 1.0).log_prob(data[idx]).sum()
    assert tr.log_prob_sum().item() == pytest.approx(expected.item(), abs=1e-5)


def test_guide_subsample_is_replayed_into_model():
    def guide():
        with pyrolite.plate("data", 50, subsample_size=5) as idx:
            pyrolite.sample("z", dist.Normal(0.0, 1.0))
        return idx

    def model():
        with pyrolite.plate("data", 50, subsample_size=5) as idx:
            pyrolite.sample("z", dist.Normal(0.0, 1.0))
        return idx

    guide_tr = poutine.trace(guide).get_trace()
    model_tr = poutine.trace(poutine.replay(model, trace=guide_tr)).get_trace()
    assert torch.equal(model_tr.nodes["_RETURN"]["value"], guide_tr.nodes["_RETURN"]["value"])
    assert model_tr.nodes["data"]["value"] is guide_tr.nodes["data"]["value"]
    assert model_tr.nodes["z"]["value"] is guide_tr.nodes["z"]["value"]


def test_explicit_subsample_tensor():
    subsample = torch.tensor([3, 7])

    def model():
        with pyrolite.plate("data", 10, subsample=subsample) as idx:
            pyrolite.sample("x", dist.Normal(0.0, 1.0))
        return idx

    tr = poutine.trace(model).get_trace()
    assert tr.nodes["_RETURN"]["value"] is subsample
    assert tr.nodes["x"]["scale"] == 5.0
    assert tr.nodes["x"]["value"].shape == (2,)
    assert tr.nodes["x"]["cond_indep_stack"][0].size == 2
    assert tr.nodes["x"]["cond_indep_stack"][0].full_size == 10


def test_explicit_subsample_without_size_is_a_full_plate():
    with pyrolite.plate("data", subsample=torch.tensor([0, 1, 2])) as idx:
        x = pyrolite.sample("x", dist.Normal(0.0, 1.0))
    assert idx.tolist() == [0, 1, 2] and x.shape == (3,)


def test_plate_without_size_only_declares_a_dim():
    def model():
        with pyrolite.plate("data", dim=-1) as idx:
            x = pyrolite.sample("x", dist.Normal(torch.zeros(4), 1.0))
        return idx, x

    tr = poutine.trace(model).get_trace()
    idx, x = tr.nodes["_RETURN"]["value"]
    assert idx is None and x.shape == (4,)
    assert tr.nodes["x"]["cond_indep_stack"][0].size == -1
    assert tr.nodes["x"]["scale"] == 1.0


@pytest.mark.parametrize("positional", [True, False])
def test_subsample_primitive_selects_rows(positional):
    data = torch.arange(10.0).reshape(5, 2)
    subsample = torch.tensor([4, 0, 2])

    def model():
        with pyrolite.plate("data", 5, subsample=subsample):
            if positional:
                return pyrolite.subsample(data, 1)
            return pyrolite.subsample(data, event_dim=1)

    out = poutine.trace(model)()
    assert torch.equal(out, data[subsample])


def test_subsample_primitive_with_random_subsample_and_outside_plates():
    data = torch.arange(8.0)
    assert pyrolite.subsample(data, event_dim=0) is data
    with pyrolite.plate("data", 8, subsample_size=3) as idx:
        out = pyrolite.subsample(data, event_dim=0)
    assert torch.equal(out, data[idx])
    with pyrolite.plate("full", 8):
        assert pyrolite.subsample(data, event_dim=0) is data


def test_nested_subsampled_plates():
    def model():
        with pyrolite.plate("a", 10, subsample_size=3):
            with pyrolite.plate("b", 8, subsample_size=2, dim=-2):
                return pyrolite.sample("x", dist.Normal(0.0, 1.0))

    tr = poutine.trace(model).get_trace()
    assert tr.nodes["x"]["value"].shape == (2, 3)
    assert tr.nodes["x"]["scale"] == pytest.approx(10 / 3 * 4)
    assert tr.nodes["b"]["value"].shape == (2,)
    assert [f.name for f in tr.nodes["b"]["cond_indep_stack"]] == ["a"]


def test_sequential_plate_frames_and_distinct_sites():
    def model():
        values = []
        for i in pyrolite.plate("seq", 3):
            values.append(pyrolite.sample(f"x_{i}", dist.Normal(0.0, 1.0)))
        return values

    tr = poutine.trace(model).get_trace()
    assert tr.stochastic_nodes == ["x_0", "x_1", "x_2"]
    for i in range(3):
        (frame,) = tr.nodes[f"x_{i}"]["cond_indep_stack"]
        assert frame.name == "seq" and frame.dim is None and frame.counter == i
        assert not frame.vectorized
        assert tr.nodes[f"x_{i}"]["value"].shape == ()
    assert poutine.runtime._STACK == []
    assert len(pyrolite.plate("seq", 7, subsample_size=2)) == 2


def test_sequential_subsampled_plate_scales_sites():
    def model():
        for i in pyrolite.plate("seq", 6, subsample_size=2):
            pyrolite.sample(f"x_{i}", dist.Normal(0.0, 1.0))

    tr = poutine.trace(model).get_trace()
    names = [n for n in tr.stochastic_nodes if n != "seq"]
    assert len(names) == 2
    assert all(tr.nodes[n]["scale"] == 3.0 for n in names)
    assert "seq" in tr.nodes and site_is_subsample(tr.nodes["seq"])


def test_batch_shape_not_broadcasting_with_plate_raises_naming_everything():
    def model():
        with pyrolite.plate("data", 3):
            pyrolite.sample("x", dist.Normal(torch.zeros(4), 1.0))

    with pytest.raises(ValueError) as info:
        poutine.trace(model).get_trace()
    message = str(info.value)
    for piece in ["plate('data')", "site 'x'", "size 3", "dim -1", "(4,)", "size 4"]:
        assert piece in message
    assert poutine.runtime._STACK == []


def test_two_plates_asking_for_the_same_dim_raise_naming_both():
    with pytest.raises(ValueError) as info:
        with pyrolite.plate("first", 2, dim=-1):
            with pyrolite.plate("second", 3, dim=-1):
                pass
    message = str(info.value)
    assert "plate('second')" in message and "plate('first')" in message and "dim -1" in message
    assert poutine.runtime._STACK == []
    with pyrolite.plate("again", 2, dim=-1):
        pass


@pytest.mark.parametrize("kwargs, match", [({"dim": 0}, "must be negative"), ({}, "positive")])
def test_plate_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        size = 0 if "dim" not in kwargs else 2
        with pyrolite.plate("p", size, **kwargs):
            pass


def test_plate_stack():
    def model():
        with pyrolite.plate_stack("grid", [2, 3, 4]):
            return pyrolite.sample("x", dist.Normal(0.0, 1.0))

    tr = poutine.trace(model).get_trace()
    frames = tr.nodes["x"]["cond_indep_stack"]
    assert [(f.name, f.dim, f.size) for f in frames] == [
        ("grid_0", -3, 2),
        ("grid_1", -2, 3),
        ("grid_2", -1, 4),
    ]
    assert tr.nodes["x"]["value"].shape == (2, 3, 4)
    with pyrolite.plate_stack("shifted", [5], rightmost_dim=-2):
        assert pyrolite.sample("y", dist.Normal(0.0, 1.0)).shape == (5, 1)


def test_plate_on_device(device):
    with pyrolite.plate("data", 10, subsample_size=4, device=device) as idx:
        x = pyrolite.sample("x", dist.Normal(torch.zeros((), device=device), 1.0))
    assert idx.device.type == device.type and x.device.type == device.type
    assert x.shape == (4,)
