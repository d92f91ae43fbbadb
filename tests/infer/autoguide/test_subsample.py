"""Autoguides in subsampled plates: the guide draws the subsample, the model replays it,
and per-site params of full plate size are indexed by it."""

import pytest
import torch

import pyrolite as pyro
import pyrolite.distributions as dist
from pyrolite import poutine
from pyrolite.infer import Trace_ELBO
from pyrolite.infer.autoguide import (
    AutoDelta,
    AutoDiagonalNormal,
    AutoGuideList,
    AutoMultivariateNormal,
    AutoNormal,
)

SIZE, BATCH = 100, 10
DATA = torch.linspace(-1.0, 1.0, SIZE)


def model(data):
    mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
    with pyro.plate("data", SIZE, subsample_size=BATCH) as idx:
        z = pyro.sample("z", dist.Normal(mu, 1.0))
        s = pyro.sample("s", dist.LogNormal(0.0, 1.0))
        pyro.sample("x", dist.Normal(z, s), obs=data[idx])
    return idx


def _guide_and_model_traces(guide):
    guide_trace = poutine.trace(guide).get_trace(DATA)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(DATA)
    return guide_trace, model_trace


def test_autonormal_indexes_full_size_params_by_the_models_subsample():
    guide = AutoNormal(model)
    guide(DATA)
    store = pyro.get_param_store()
    assert store["AutoNormal.locs.z"].shape == (SIZE,)  # full plate size, not the subsample
    store["AutoNormal.locs.z"] = torch.arange(SIZE, dtype=torch.float)
    store["AutoNormal.locs.s"] = torch.arange(SIZE, dtype=torch.float) / SIZE

    guide_trace, model_trace = _guide_and_model_traces(guide)
    idx = model_trace.nodes["_RETURN"]["value"]
    assert idx.shape == (BATCH,)
    assert torch.equal(guide_trace.nodes["data"]["value"], idx)
    # z is real: drawn directly from Normal(loc[idx], scale[idx]).
    assert torch.equal(guide_trace.nodes["z"]["fn"].loc, idx.float())
    # s is positive: an auxiliary Normal(loc[idx], .) mapped through exp.
    aux = guide_trace.nodes["s_unconstrained"]
    assert torch.allclose(aux["fn"].loc, idx.float() / SIZE)
    assert torch.allclose(guide_trace.nodes["s"]["value"], aux["value"].exp())
    # Both traces scale the plate's sites by size / subsample_size.
    assert guide_trace.nodes["z"]["scale"] == model_trace.nodes["z"]["scale"] == SIZE / BATCH
    assert torch.equal(model_trace.nodes["z"]["value"], guide_trace.nodes["z"]["value"])
    # The global site keeps one param.
    assert store["AutoNormal.locs.mu"].shape == ()
    assert torch.isfinite(torch.tensor(Trace_ELBO().loss(model, guide, DATA)))


def test_autodelta_indexes_full_size_params_by_the_subsample():
    guide = AutoDelta(model)
    guide(DATA)
    store = pyro.get_param_store()
    store["AutoDelta.z"] = torch.arange(SIZE, dtype=torch.float)
    guide_trace, model_trace = _guide_and_model_traces(guide)
    idx = model_trace.nodes["_RETURN"]["value"]
    assert torch.equal(guide_trace.nodes["z"]["value"], idx.float())
    assert guide.median()["z"].shape == (SIZE,)


def test_init_of_subsampled_params_tiles_the_prototype_subsample():
    guide = AutoNormal(model, init_loc_fn=lambda site: torch.full_like(site["fn"].mean, 0.5))
    guide(DATA)
    assert torch.equal(pyro.get_param_store()["AutoNormal.locs.z"], torch.full((SIZE,), 0.5))


@pytest.mark.parametrize("guide_class", [AutoDiagonalNormal, AutoMultivariateNormal])
def test_flat_guides_reject_subsampled_local_latents(guide_class):
    with pytest.raises(NotImplementedError, match=r"site 'z'.*subsampled plate\('data'\)"):
        guide_class(model)(DATA)


def test_guide_list_parts_share_one_subsample():
    guide = AutoGuideList(model)
    guide.append(AutoDiagonalNormal(poutine.block(model, expose=["mu"])))
    guide.append(AutoNormal(poutine.block(model, hide=["mu"])))
    guide_trace, model_trace = _guide_and_model_traces(guide)
    idx = model_trace.nodes["_RETURN"]["value"]
    subsample_sites = [n for n, s in guide_trace.nodes.items() if s["infer"].get("_subsample")]
    assert subsample_sites == ["data"]
    assert torch.equal(guide_trace.nodes["data"]["value"], idx)
    store = pyro.get_param_store()
    assert sorted(store.keys()) == [
        "AutoGuideList.0.loc", "AutoGuideList.0.scale",
        "AutoGuideList.1.locs.s", "AutoGuideList.1.locs.z",
        "AutoGuideList.1.scales.s", "AutoGuideList.1.scales.z",
    ]  # fmt: skip
    assert set(guide.median(DATA)) == {"mu", "z", "s"}


def test_create_plates_gives_the_guide_a_user_subsample():
    def indexed_model(data, ind):
        mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
        with pyro.plate("data", SIZE, subsample=ind):
            z = pyro.sample("z", dist.Normal(mu, 1.0))
            pyro.sample("x", dist.Normal(z, 1.0), obs=data[ind])

    guide = AutoNormal(
        indexed_model, create_plates=lambda data, ind: pyro.plate("data", SIZE, subsample=ind)
    )
    ind = torch.tensor([3, 50, 7])
    guide(DATA, ind)
    pyro.get_param_store()["AutoNormal.locs.z"] = torch.arange(SIZE, dtype=torch.float)
    guide_trace = poutine.trace(guide).get_trace(DATA, ind)
    assert torch.equal(guide_trace.nodes["z"]["fn"].loc, ind.float())
    assert guide_trace.nodes["z"]["scale"] == SIZE / 3
