"""The enum handler: dims left of the plates, one allocator per step, markov recycling."""

import pytest
import torch

import pyrolite as pyro
import pyrolite.distributions as dist
from pyrolite import poutine
from pyrolite.infer import config_enumerate
from pyrolite.poutine.enum_messenger import EnumDims, EnumMessenger

ENUM = {"enumerate": "parallel"}


def test_sites_get_fresh_dims_left_of_the_plates():
    def model():
        a = pyro.sample("a", dist.Bernoulli(0.5), infer=ENUM)
        with pyro.plate("data", 4):
            b = pyro.sample("b", dist.Categorical(torch.ones(3) / 3), infer=ENUM)
        return a, b

    tr = poutine.trace(poutine.enum(model, first_available_dim=-2)).get_trace()
    assert tr.nodes["a"]["infer"]["_enumerate_dim"] == -2
    assert tr.nodes["b"]["infer"]["_enumerate_dim"] == -3
    assert tr.nodes["a"]["value"].shape == (2, 1)
    assert tr.nodes["b"]["value"].shape == (3, 1, 1)
    assert tr.nodes["b"]["value"].flatten().tolist() == [0, 1, 2]


def test_expand_gives_the_support_at_the_full_batch_shape():
    def model():
        with pyro.plate("data", 4):
            return pyro.sample("b", dist.Bernoulli(0.5), infer={**ENUM, "expand": True})

    value = poutine.enum(model, first_available_dim=-2)()
    assert value.shape == (2, 4)
    assert value[:, 0].tolist() == [0.0, 1.0] and (value == value[:, :1]).all()


def test_guide_and_model_share_one_allocator():
    dims = EnumDims(-2)

    def guide():
        pyro.sample("g", dist.Bernoulli(0.5), infer=ENUM)

    def model():
        pyro.sample("m", dist.Bernoulli(0.5), infer=ENUM)

    with EnumMessenger(dims=dims):
        guide()
    with EnumMessenger(dims=dims):
        model()
    assert dims.dims == {"g": -2, "m": -3}


@pytest.mark.parametrize("history", [1, 2])
def test_markov_recycles_dims_so_long_chains_use_history_plus_one(history):
    def chain():
        x = None
        for t in pyro.markov(range(50), history=history):
            probs = (
                torch.tensor([0.5, 0.5])
                if x is None
                else torch.stack([0.9 - 0.8 * x, 0.1 + 0.8 * x], -1)
            )
            x = pyro.sample(f"x_{t}", dist.Categorical(probs), infer=ENUM)

    with EnumMessenger(first_available_dim=-1) as enum:
        tr = poutine.trace(chain).get_trace()
    used = {s["infer"]["_enumerate_dim"] for s in tr.nodes.values() if s["type"] == "sample"}
    assert len(used) == history + 1 == enum.dims.num_dims
    # x_t and x_{t-1} never share a dim: the transition factor has both
    assert tr.nodes["x_7"]["infer"]["_enumerate_dim"] != tr.nodes["x_6"]["infer"]["_enumerate_dim"]


def test_recursive_markov_decorator_advances_one_step_per_call():
    @pyro.markov
    def step(t, x):
        probs = (
            torch.tensor([0.5, 0.5])
            if x is None
            else torch.stack([0.9 - 0.8 * x, 0.1 + 0.8 * x], -1)
        )
        x = pyro.sample(f"x_{t}", dist.Categorical(probs), infer=ENUM)
        if t < 20:
            step(t + 1, x)

    with EnumMessenger(first_available_dim=-1) as enum:
        step(0, None)
    assert enum.dims.num_dims == 2


def test_without_markov_every_site_keeps_its_dim():
    def model():
        for t in range(5):
            pyro.sample(f"x_{t}", dist.Bernoulli(0.5), infer=ENUM)

    with EnumMessenger(first_available_dim=-1) as enum:
        model()
    assert enum.dims.num_dims == 5


def test_sampled_enumeration_draws_num_samples_values():
    def model():
        with pyro.plate("data", 3):
            return pyro.sample("z", dist.Normal(0.0, 1.0), infer={**ENUM, "num_samples": 7})

    value = poutine.enum(model, first_available_dim=-2)()
    assert value.shape == (7, 3)
    assert value.std() > 0.1  # drawn, not a support


def test_config_enumerate_marks_discrete_latents_only_and_keeps_site_settings():
    @config_enumerate(default="sequential")
    def model():
        pyro.sample("a", dist.Bernoulli(0.5))
        pyro.sample("b", dist.Bernoulli(0.5), infer={"enumerate": "parallel"})
        pyro.sample("c", dist.Normal(0.0, 1.0))
        pyro.sample("d", dist.Bernoulli(0.5), obs=torch.tensor(1.0))

    tr = poutine.trace(model).get_trace()
    assert tr.nodes["a"]["infer"] == {"enumerate": "sequential", "expand": False}
    assert tr.nodes["b"]["infer"]["enumerate"] == "parallel"
    assert tr.nodes["c"]["infer"] == {} and tr.nodes["d"]["infer"] == {}
    with pytest.raises(ValueError, match="default must be"):
        config_enumerate(model, default="bogus")
