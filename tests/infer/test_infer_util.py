"""pyrolite.infer.util's Pyro names: MultiFrameTensor, torch_* helpers, plate stacks, checks."""

import math

import pytest
import torch

import pyrolite
import pyrolite.distributions as dist
from pyrolite import poutine
from pyrolite.infer import util


def _model():
    pyrolite.sample("a", dist.Normal(0.0, 1.0))
    with pyrolite.plate("p", 3):
        pyrolite.sample("b", dist.Normal(0.0, 1.0))
        with pyrolite.plate("q", 2, dim=-2):
            pyrolite.sample("c", dist.Normal(0.0, 1.0))
    for i in pyrolite.plate("s", 2):
        pyrolite.sample(f"d{i}", dist.Normal(0.0, 1.0))


def _trace():
    tr = poutine.trace(_model).get_trace()
    tr.compute_log_prob()
    return tr


def test_torch_helpers_on_numbers_and_tensors():
    assert util.torch_exp(1.0) == pytest.approx(math.e) and isinstance(util.torch_exp(0.0), float)
    assert util.torch_exp(torch.tensor(0.0)).item() == 1.0
    assert util.torch_item(2) == 2.0 and util.torch_item(torch.tensor(2.5)) == 2.5
    x = torch.tensor(2.0, requires_grad=True)
    util.torch_backward(x * x)
    assert x.grad.item() == 4.0
    util.torch_backward(1.0)
    util.torch_backward(torch.tensor(1.0))  # no graph: a no-op
    util.zero_grads([x, torch.zeros(1, requires_grad=True)])
    assert x.grad.item() == 0.0
    assert util.torch_sum(torch.ones(2, 3), (-1,)).tolist() == [[3.0], [3.0]]
    assert util.torch_sum(torch.ones(3), (-2, -1)).tolist() == [3.0]
    assert torch.equal(util.torch_sum(torch.ones(2, 3), (-3,)), torch.ones(2, 3))


def test_get_plate_stacks_lists_vectorized_frames_outermost_first():
    stacks = util.get_plate_stacks(_trace())
    assert {n: [f.name for f in s] for n, s in stacks.items()} == {
        "a": [],
        "b": ["p"],
        "c": ["p", "q"],
        "d0": [],
        "d1": [],
    }


def test_multi_frame_tensor_sums_to_each_sites_plates():
    tr = _trace()
    lp = {n: tr.nodes[n]["log_prob"] for n in "abc"}
    mft = util.MultiFrameTensor(
        *((tr.nodes[n]["cond_indep_stack"], tr.nodes[n]["log_prob"]) for n in "abc")
    )
    mft.add((tr.nodes["b"]["cond_indep_stack"], lp["b"]))
    assert len(mft) == 3
    to_c = mft.sum_to(tr.nodes["c"]["cond_indep_stack"])
    to_b = mft.sum_to(tr.nodes["b"]["cond_indep_stack"])
    to_a = mft.sum_to(())
    assert torch.allclose(to_c, lp["a"] + 2 * lp["b"] + lp["c"])
    assert torch.allclose(to_b, lp["a"] + 2 * lp["b"] + lp["c"].sum(-2))
    assert torch.allclose(to_a, lp["a"] + 2 * lp["b"].sum() + lp["c"].sum())
    assert to_c.shape == (2, 3) and to_b.shape == (3,) and to_a.shape == ()
    assert util.MultiFrameTensor().sum_to(()) == 0.0


def test_multi_frame_tensor_keeps_unsummed_leading_dims():
    frames = _trace().nodes["c"]["cond_indep_stack"]
    p, q = frames
    assert util.MultiFrameTensor((frames, torch.ones(2, 1))).sum_to([q]).shape == (2, 1)
    assert util.MultiFrameTensor((frames, torch.ones(2, 1))).sum_to([p]).shape == ()
    assert util.MultiFrameTensor((frames, torch.ones(4, 2, 3))).sum_to([q]).shape == (4, 2, 1)
    assert util.MultiFrameTensor((frames, torch.ones(4, 2, 3))).sum_to([]).shape == (4, 1, 1)


def test_multi_frame_tensor_and_plate_stacks_match_pyro():
    pyro = pytest.importorskip("pyro")
    import pyro.distributions as pdist
    import pyro.infer.util as pyro_util

    def model():
        pyro.sample("a", pdist.Normal(0.0, 1.0))
        with pyro.plate("p", 3):
            pyro.sample("b", pdist.Normal(0.0, 1.0))
            with pyro.plate("q", 2, dim=-2):
                pyro.sample("c", pdist.Normal(0.0, 1.0))

    pyro.set_rng_seed(0)
    theirs = pyro.poutine.trace(model).get_trace()
    theirs.compute_log_prob()
    stacks = pyro_util.get_plate_stacks(theirs)
    ours = util.get_plate_stacks(_trace())
    for name in "abc":
        assert [tuple(f) for f in ours[name]] == [tuple(f) for f in stacks[name]]
    items = [(theirs.nodes[n]["cond_indep_stack"], theirs.nodes[n]["log_prob"]) for n in "abc"]
    pyro_mft, our_mft = pyro_util.MultiFrameTensor(*items), util.MultiFrameTensor(*items)
    for name in "abc":
        target = theirs.nodes[name]["cond_indep_stack"]
        expected = pyro_mft.sum_to(target)
        got = our_mft.sum_to(target)
        assert got.shape == expected.shape and torch.allclose(got, expected)


def test_get_dependent_plate_dims():
    tr = _trace()
    assert util.get_dependent_plate_dims([tr.nodes["b"], tr.nodes["c"]]) == [-2]
    assert util.get_dependent_plate_dims([tr.nodes["a"], tr.nodes["c"]]) == [-2, -1]
    assert util.get_dependent_plate_dims([tr.nodes["c"]]) == []


def test_check_fully_reparametrized():
    tr = poutine.trace(
        lambda: (
            pyrolite.sample("z", dist.Normal(0.0, 1.0)),
            pyrolite.sample("k", dist.Bernoulli(0.5)),
        )
    ).get_trace()
    tr.compute_score_parts()
    util.check_fully_reparametrized(tr.nodes["z"])
    with pytest.raises(NotImplementedError, match="must be fully reparameterized"):
        util.check_fully_reparametrized(tr.nodes["k"])


def test_validation_switch_is_the_one_pyrolite_reads():
    with util.validation_enabled(False):
        assert util.is_validation_enabled() is False and not pyrolite.util.is_validation_enabled()
    assert util.is_validation_enabled() is True
    util.enable_validation(False)
    assert not pyrolite.util.is_validation_enabled()
    util.enable_validation(True)


def test_clone_mixin_clones_tensor_fields():
    import dataclasses

    @dataclasses.dataclass
    class State(util.CloneMixin):
        loc: torch.Tensor
        scale: torch.Tensor

    s = State(torch.zeros(2), torch.ones(2))
    c = s.clone()
    c.loc += 1
    assert s.loc.tolist() == [0.0, 0.0] and c.loc.tolist() == [1.0, 1.0]
    assert c.scale.data_ptr() != s.scale.data_ptr()
