"""poutine.runtime (effectful, apply_stack, get_mask, get_plates), poutine.util (escape and
extend rules, subsample/factor sites) and plate_messenger.block_plate, against Pyro."""

import collections

import pytest
import torch

import pyrolite
import pyrolite.distributions as dist
from pyrolite import poutine
from pyrolite.poutine import runtime
from pyrolite.poutine import util as putil
from pyrolite.poutine.plate_messenger import block_plate
from pyrolite.poutine.runtime import new_message


def test_am_i_wrapped_and_effectful():
    calls = []

    @runtime.effectful(type="my_op")
    def double(x):
        calls.append(x)
        return 2 * x

    assert not runtime.am_i_wrapped()
    assert double(3) == 6  # outside handlers: a plain call

    class Triple(poutine.Messenger):
        def _pyro_my_op(self, msg):
            msg["value"] = 3 * msg["args"][0]
            msg["done"] = True

    with poutine.trace():
        assert runtime.am_i_wrapped()
        assert double(4, name="d") == 8
        with Triple():
            assert double(5, name="t") == 15
    assert calls == [3, 4]


def test_apply_stack_runs_handlers_innermost_first_and_default_process_message():
    order = []

    class Tag(poutine.Messenger):
        def __init__(self, tag):
            self.tag = tag

        def _pyro_sample(self, msg):
            order.append(("in", self.tag))

        def _pyro_post_sample(self, msg):
            order.append(("out", self.tag))

    msg = new_message("sample", "x", dist.Delta(torch.tensor(2.0)))
    with Tag("outer"), Tag("inner"):
        result = runtime.apply_stack(msg)
    assert order == [("in", "inner"), ("in", "outer"), ("out", "outer"), ("out", "inner")]
    assert result["value"].item() == 2.0 and result["done"]
    msg = new_message("sample", "y", dist.Delta(torch.tensor(5.0)))
    runtime.default_process_message(msg)
    assert msg["value"].item() == 5.0 and msg["done"]


def test_get_mask_reads_enclosing_masks():
    assert runtime.get_mask() is None
    with poutine.mask(mask=torch.tensor([True, False])):
        assert runtime.get_mask().tolist() == [True, False]
        with poutine.mask(mask=torch.tensor([False, False])):
            assert runtime.get_mask().tolist() == [False, False]
    with poutine.mask(mask=False):
        assert runtime.get_mask() is False


def test_get_plates_outermost_first():
    assert runtime.get_plates() == ()
    with pyrolite.plate("a", 2), pyrolite.plate("b", 3, subsample_size=2):
        frames = runtime.get_plates()
    assert [(f.name, f.dim, f.size, f.full_size) for f in frames] == [
        ("a", -1, 2, 2),
        ("b", -2, 2, 3),
    ]


def test_get_plates_matches_pyro():
    pyro = pytest.importorskip("pyro")
    from pyro.poutine.runtime import get_plates as pyro_get_plates

    with pyro.plate("a", 2), pyro.plate("b", 5, subsample_size=2, dim=-3):
        theirs = [tuple(f) for f in pyro_get_plates()]
    with pyrolite.plate("a", 2), pyrolite.plate("b", 5, subsample_size=2, dim=-3):
        ours = [tuple(f) for f in runtime.get_plates()]
    assert ours == theirs


def test_block_plate_hides_one_plate_keeping_its_dim():
    with pyrolite.plate("a", 2), pyrolite.plate("b", 3, subsample_size=2):
        with block_plate("a"):
            assert [f.name for f in runtime.get_plates()] == ["b"]
            x = pyrolite.sample("x", dist.Normal(0.0, 1.0))
        with block_plate(dim=-2):
            assert [f.name for f in runtime.get_plates()] == ["a"]
            y = pyrolite.sample("y", dist.Normal(0.0, 1.0))
        with block_plate("zz", strict=False):
            assert len(runtime.get_plates()) == 2
        assert [f.name for f in runtime.get_plates()] == ["a", "b"]
        z = pyrolite.sample("z", dist.Normal(0.0, 1.0))
    assert x.shape == (2, 1) and y.shape == (2,) and z.shape == (2, 2)
    with pytest.raises(ValueError, match="block_plate matched 0 messengers"):
        with block_plate("zz"):
            pass
    with pytest.raises(ValueError, match="Exactly one of name,dim"):
        with block_plate():
            pass


def test_block_plate_lazily_samples_a_global_like_pyro_docs():
    data = torch.tensor([0.5, 1.5, 2.5])

    def model():
        with pyrolite.plate("data", 3):
            with block_plate("data"):
                loc = pyrolite.sample("loc", dist.Normal(0.0, 1.0))
            pyrolite.sample("obs", dist.Normal(loc, 1.0), obs=data)

    tr = poutine.trace(model).get_trace()
    assert tr.nodes["loc"]["value"].shape == () and tr.nodes["loc"]["cond_indep_stack"] == ()
    assert tr.nodes["obs"]["scale"] == 1.0 and [
        f.name for f in tr.nodes["obs"]["cond_indep_stack"]
    ] == ["data"]


def test_block_plate_restores_the_stack_on_error():
    with pyrolite.plate("a", 2):
        with pytest.raises(RuntimeError):
            with block_plate("a"):
                raise RuntimeError
        assert [f.name for f in runtime.get_plates()] == ["a"]


def _model():
    pyrolite.factor("f", torch.tensor(1.0))
    pyrolite.sample("o", dist.Normal(0.0, 1.0), obs=torch.tensor(0.0))
    pyrolite.deterministic("d", torch.tensor(1.0))
    pyrolite.sample("z", dist.Normal(0.0, 1.0))
    with pyrolite.plate("p", 5, subsample_size=2):
        pass


def test_site_is_factor_and_subsample_and_pruning():
    tr = poutine.trace(_model).get_trace()
    factor = {n for n, s in tr.nodes.items() if s["type"] == "sample" and putil.site_is_factor(s)}
    subsample = {n for n, s in tr.nodes.items() if putil.site_is_subsample(s)}
    assert factor == {"f"} and subsample == {"p"}
    pruned = putil.prune_subsample_sites(tr)
    assert list(pruned.nodes) == ["_INPUT", "f", "o", "d", "z", "_RETURN"]
    assert "p" in tr.nodes  # the original is untouched


def test_escape_rules():
    cat = new_message("sample", "c", dist.Categorical(torch.ones(4) / 4))
    normal = new_message("sample", "n", dist.Normal(0.0, 1.0))
    observed = new_message(
        "sample", "c", dist.Categorical(torch.ones(4) / 4), value=1, is_observed=True
    )
    param = new_message("param", "c", None)
    empty = poutine.Trace()
    assert putil.discrete_escape(empty, cat) and putil.all_escape(empty, cat)
    assert not putil.discrete_escape(empty, normal) and putil.all_escape(empty, normal)
    for msg in (observed, param):
        assert not putil.discrete_escape(empty, msg) and not putil.all_escape(empty, msg)
    seen = putil.enum_extend(empty, cat)[0]
    assert not putil.discrete_escape(seen, cat) and not putil.all_escape(seen, cat)


class NoArgCategorical(dist.Categorical):
    """A user distribution whose enumerate_support takes no argument (as Pyro allows)."""

    def enumerate_support(self):
        return torch.arange(self.probs.shape[-1])


def test_enum_extend_calls_enumerate_support_without_arguments():
    msg = new_message("sample", "c", NoArgCategorical(torch.ones(3) / 3))
    base = poutine.Trace()
    base.add_node("a", name="a", type="sample", value=torch.tensor(0.0))
    extended = putil.enum_extend(base, msg)
    assert [int(t.nodes["c"]["value"]) for t in extended] == [0, 1, 2]
    assert all(list(t.nodes) == ["a", "c"] for t in extended) and list(base.nodes) == ["a"]
    assert all(t.nodes["c"]["fn"] is msg["fn"] and t.nodes["c"] is not msg for t in extended)
    assert [int(t.nodes["c"]["value"]) for t in putil.enum_extend(base, msg, num_samples=2)] == [
        0,
        1,
    ]


def test_search_over_a_no_argument_enumerate_support_distribution():
    # Exact marginal by sequential enumeration (poutine.queue), the search Pyro docs show.
    probs = torch.tensor([0.2, 0.3, 0.5])

    def model():
        return pyrolite.sample("c", NoArgCategorical(probs))

    queue = collections.deque([poutine.Trace()])
    weights = {}
    while queue:
        tr = poutine.trace(poutine.queue(model, queue=queue)).get_trace()
        weights[int(tr.nodes["c"]["value"])] = tr.log_prob_sum().exp().item()
    assert weights == pytest.approx({0: 0.2, 1: 0.3, 2: 0.5})


def test_mc_extend_draws_fresh_values():
    msg = new_message("sample", "z", dist.Normal(0.0, 1.0))
    pyrolite.set_rng_seed(0)
    values = [t.nodes["z"]["value"] for t in putil.mc_extend(poutine.Trace(), msg, num_samples=3)]
    pyrolite.set_rng_seed(0)
    assert torch.equal(
        torch.stack(values), torch.stack([dist.Normal(0.0, 1.0)() for _ in range(3)])
    )
    assert len(putil.mc_extend(poutine.Trace(), msg)) == 1


def test_enum_extend_and_mc_extend_match_pyro():
    pyro_util = pytest.importorskip("pyro.poutine.util")
    import pyro.poutine

    msg = new_message("sample", "c", NoArgCategorical(torch.ones(4) / 4))
    theirs = [int(t.nodes["c"]["value"]) for t in pyro_util.enum_extend(pyro.poutine.Trace(), msg)]
    ours = [int(t.nodes["c"]["value"]) for t in putil.enum_extend(poutine.Trace(), msg)]
    assert ours == theirs == [0, 1, 2, 3]
    normal = new_message("sample", "z", dist.Normal(0.0, 1.0))
    torch.manual_seed(1)
    theirs = [t.nodes["z"]["value"] for t in pyro_util.mc_extend(pyro.poutine.Trace(), normal, 3)]
    torch.manual_seed(1)
    ours = [t.nodes["z"]["value"] for t in putil.mc_extend(poutine.Trace(), normal, 3)]
    assert torch.equal(torch.stack(ours), torch.stack(theirs))


def test_site_predicates_match_pyro_on_the_same_program():
    pyro = pytest.importorskip("pyro")
    import pyro.distributions as pdist
    import pyro.poutine.util as pyro_util

    def model(lib, d):
        def fn():
            lib.factor("f", torch.tensor(1.0))
            lib.sample("o", d.Normal(0.0, 1.0), obs=torch.tensor(0.0))
            lib.deterministic("det", torch.tensor(1.0))
            lib.sample("z", d.Normal(0.0, 1.0))
            with lib.plate("p", 5, subsample_size=2):
                pass

        return fn

    def summary(lib, d, u):
        tr = lib.poutine.trace(model(lib, d)).get_trace()
        sites = {n: s for n, s in tr.nodes.items() if s["type"] == "sample"}
        return (
            {n for n, s in sites.items() if u.site_is_factor(s)},
            {n for n, s in sites.items() if u.site_is_subsample(s)},
            [n for n, s in u.prune_subsample_sites(tr).nodes.items() if s["type"] == "sample"],
        )

    assert summary(pyrolite, dist, putil) == summary(pyro, pdist, pyro_util)
