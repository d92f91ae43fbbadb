"""Dice (pyrolite.infer.util): DiCE expectations and their gradients against analytic
values on small discrete guides (enumerated, sampled, plated, sequential, multi-sample),
``pack_tensors``/``plate_log_prob_sum``, and agreement with Pyro where it is installed."""

import math

import pytest
import torch

import pyrolite
import pyrolite.distributions as dist
from pyrolite import poutine
from pyrolite.distributions.score_parts import ScoreParts
from pyrolite.infer.util import (
    Dice,
    compute_site_dice_factor,
    pack_tensors,
    plate_log_prob_sum,
)
from pyrolite.poutine.trace_struct import Trace

try:
    import pyro
    import pyro.distributions as pyro_dist
    import pyro.infer.util as pyro_util
    from pyro import poutine as pyro_poutine
    from pyro.poutine.util import prune_subsample_sites
except ImportError:
    pyro = None

needs_pyro = pytest.mark.skipif(pyro is None, reason="pyro not installed")


def _named(x, dims):
    x._pyro_dims = dims
    return x


def _packed_trace(fn, enum=True):
    if enum:
        fn = poutine.enum(fn, first_available_dim=-2)
    trace = poutine.trace(fn).get_trace()
    trace.compute_log_prob()
    trace.compute_score_parts()
    pack_tensors(trace)
    return trace


def test_parallel_enumeration_gives_exact_expectation_and_gradient():
    theta = torch.tensor([0.3, -0.2, 1.0], requires_grad=True)
    costs = torch.tensor([1.0, -2.0, 4.0])

    def guide():
        pyrolite.sample("z", dist.Categorical(logits=theta), infer={"enumerate": "parallel"})

    trace = _packed_trace(guide)
    z = trace.nodes["z"]
    cost = _named(costs[z["value"]].reshape(-1), z["packed"]["log_prob"]._pyro_dims)
    expected = Dice(trace, {"z": frozenset()}).compute_expectation({frozenset(): [cost]})
    p = torch.softmax(theta.detach(), 0)
    assert float(expected) == pytest.approx(float((p * costs).sum()), abs=1e-6)
    (grad,) = torch.autograd.grad(expected, theta)
    analytic = p * (costs - (p * costs).sum())  # d/dtheta of E_softmax(theta)[c]
    assert torch.allclose(grad, analytic, atol=1e-6)


def test_sampled_site_gives_score_function_gradient():
    p = torch.tensor(0.3, requires_grad=True)

    def guide():
        pyrolite.sample("z", dist.Bernoulli(p))

    trace = _packed_trace(guide, enum=False)
    z = trace.nodes["z"]["value"]
    cost = _named(3.0 * z + 1.0, "")
    expected = Dice(trace, {"z": frozenset()}).compute_expectation({frozenset(): [cost]})
    assert float(expected) == pytest.approx(float(cost))  # the value is the cost itself
    (grad,) = torch.autograd.grad(expected, p)
    score = float(z) / 0.3 - (1 - float(z)) / 0.7  # d log q(z) / dp
    assert float(grad) == pytest.approx(float(cost) * score, rel=1e-6)


def test_plate_costs_see_only_their_own_element():
    p = torch.tensor(0.4, requires_grad=True)

    def guide():
        with pyrolite.plate("data", 4):
            pyrolite.sample("w", dist.Bernoulli(p))

    trace = _packed_trace(guide, enum=False)
    symbol = trace.plate_to_symbol["data"]
    w = trace.nodes["w"]["value"]
    local = _named(w * 2.0 + torch.arange(4.0), symbol)
    global_cost = _named(torch.tensor(5.0), "")
    dice = Dice(trace, {"w": frozenset(symbol)})
    expected = dice.compute_expectation({frozenset(symbol): [local], frozenset(): [global_cost]})
    assert float(expected) == pytest.approx(float(local.sum()) + 5.0)
    (grad,) = torch.autograd.grad(expected, p)
    score = w / 0.4 - (1 - w) / 0.6
    # Element i's cost times element i's score only; the global cost is upstream of w.
    assert float(grad) == pytest.approx(float((local * score).sum()), rel=1e-6)


def test_enumerated_parent_of_plated_sampled_sites():
    probs = torch.tensor([0.2, 0.5, 0.3])
    P = torch.tensor([0.1, 0.6, 0.9], requires_grad=True)

    def guide():
        z = pyrolite.sample("z", dist.Categorical(probs), infer={"enumerate": "parallel"})
        with pyrolite.plate("data", 3):
            pyrolite.sample("w", dist.Bernoulli(P[z]))

    trace = _packed_trace(guide)
    symbol = trace.plate_to_symbol["data"]
    log_prob = trace.nodes["w"]["packed"]["log_prob"]
    cost = _named(
        log_prob.detach() * 0 + torch.tensor([1.0, 2.0, 3.0])[:, None], log_prob._pyro_dims
    )
    dice = Dice(trace, {"z": frozenset(), "w": frozenset(symbol)})
    expected = dice.compute_expectation({frozenset(symbol): [cost]})
    assert float(expected) == pytest.approx(3 * float((probs * torch.tensor([1.0, 2, 3])).sum()))
    (grad,) = torch.autograd.grad(expected, P)
    w = trace.nodes["w"]["value"].reshape(3, 3)  # (z value, data element)
    score = w / P.detach()[:, None] - (1 - w) / (1 - P.detach()[:, None])
    analytic = probs * torch.tensor([1.0, 2, 3]) * score.sum(1)
    assert torch.allclose(grad, analytic, atol=1e-5)


def test_multiple_samples_are_averaged():
    p = torch.tensor(0.35, requires_grad=True)

    def guide():
        pyrolite.sample("z", dist.Bernoulli(p), infer={"enumerate": "parallel", "num_samples": 6})

    trace = _packed_trace(guide)
    z = trace.nodes["z"]["value"].reshape(-1)
    dims = trace.nodes["z"]["packed"]["log_prob"]._pyro_dims
    cost = _named(z * 4.0 - 1.0, dims)
    expected = Dice(trace, {"z": frozenset()}).compute_expectation({frozenset(): [cost]})
    assert float(expected) == pytest.approx(float(cost.mean()), rel=1e-6)
    (grad,) = torch.autograd.grad(expected, p)
    score = z / 0.35 - (1 - z) / 0.65
    assert float(grad) == pytest.approx(float((cost * score).mean()), rel=1e-5)


def _sequential_trace():
    trace = Trace()
    fn = dist.Bernoulli(0.5)
    zero = torch.tensor(0.0)
    trace.add_node(
        "s",
        type="sample",
        name="s",
        fn=fn,
        value=torch.tensor(1.0),
        is_observed=False,
        infer={"enumerate": "sequential", "_enum_total": 2},
        packed={"score_parts": ScoreParts(zero, zero, zero), "log_prob": zero},
    )
    return trace


def test_sequential_enumeration_divides_costs_not_downstream():
    trace = _sequential_trace()
    assert compute_site_dice_factor(trace.nodes["s"]) == (0, math.log(2))
    dice = Dice(trace, {"s": frozenset("a")})
    outside = _named(torch.tensor(6.0), "")
    inside = _named(torch.tensor(6.0), "")
    # Each of the 2 sequential branches repeats the cost outside s's plate: counted 1/2.
    assert float(dice.compute_expectation({frozenset(): [outside]})) == pytest.approx(3.0)
    assert float(dice.compute_expectation({frozenset("a"): [inside]})) == pytest.approx(6.0)


def test_impossible_branches_with_infinite_cost_are_left_out():
    def guide():
        pyrolite.sample(
            "z",
            dist.Categorical(logits=torch.tensor([0.0, 0.0, -math.inf])),
            infer={"enumerate": "parallel"},
        )

    trace = _packed_trace(guide)
    dims = trace.nodes["z"]["packed"]["log_prob"]._pyro_dims
    cost = _named(torch.tensor([1.0, 2.0, float("inf")]), dims)
    expected = Dice(trace, {"z": frozenset()}).compute_expectation({frozenset(): [cost]})
    assert float(expected) == pytest.approx(1.5)


def test_unpacked_trace_raises_naming_the_fix():
    def guide():
        pyrolite.sample("z", dist.Bernoulli(0.5))

    trace = poutine.trace(guide).get_trace()
    with pytest.raises(ValueError, match="pack_tensors"):
        Dice(trace, {"z": frozenset()})


def test_plate_log_prob_sum_keeps_one_plate():
    def model():
        with pyrolite.plate("particles", 4, dim=-2):
            with pyrolite.plate("data", 3):
                pyrolite.sample("x", dist.Normal(0.0, 1.0))
            pyrolite.sample("y", dist.Normal(0.0, 1.0))

    trace = _packed_trace(model, enum=False)
    result = plate_log_prob_sum(trace, trace.plate_to_symbol["particles"])
    x, y = trace.nodes["x"]["log_prob"], trace.nodes["y"]["log_prob"]
    assert torch.allclose(result, x.sum(-1) + y.reshape(-1))
    with pytest.raises(ValueError, match="'y'"):
        plate_log_prob_sum(trace, trace.plate_to_symbol["data"])


def _pyro_and_ours(builder):
    """The same guide traced (same seed) and packed by Pyro and by pyrolite."""
    traces = []
    for lib, d, po in [(pyrolite, dist, poutine), (pyro, pyro_dist, pyro_poutine)]:
        torch.manual_seed(0)
        trace = po.trace(po.enum(builder(lib, d), first_available_dim=-2)).get_trace()
        if lib is pyro:
            trace = prune_subsample_sites(trace)
        trace.compute_log_prob()
        trace.compute_score_parts()
        if lib is pyro:
            trace.pack_tensors()
        else:
            pack_tensors(trace)
        traces.append(trace)
    return traces


def _guide_builder(P):
    def builder(lib, d):
        def guide():
            z = lib.sample("z", d.Categorical(torch.tensor([0.2, 0.5, 0.3])))
            with lib.plate("data", 3):
                lib.sample("w", d.Bernoulli(P[z]), infer={"enumerate": "parallel"})
                lib.sample("v", d.Bernoulli(0.5 * P[z]))

        return guide

    return builder


def _by_dims(tensor, symbol_to_dim):
    """A packed tensor laid out by negative dims (symbols differ between libraries)."""
    dims = getattr(tensor, "_pyro_dims", "")
    order = sorted(range(len(dims)), key=lambda i: symbol_to_dim[dims[i]])
    return tensor.permute(order), sorted(symbol_to_dim[c] for c in dims)


@needs_pyro
def test_pack_and_dice_factors_match_pyro():
    P = torch.tensor([0.1, 0.6, 0.9], requires_grad=True)
    ours, theirs = _pyro_and_ours(_guide_builder(P))
    assert torch.equal(ours.nodes["v"]["value"], theirs.nodes["v"]["value"])
    for name in ["z", "w", "v"]:
        a, b = ours.nodes[name], theirs.nodes[name]
        got, got_dims = _by_dims(a["packed"]["log_prob"], ours.symbol_to_dim)
        expected, exp_dims = _by_dims(b["packed"]["log_prob"], theirs.symbol_to_dim)
        assert got_dims == exp_dims and torch.allclose(got, expected)
        (f1, d1), (f2, d2) = compute_site_dice_factor(a), pyro_util.compute_site_dice_factor(b)
        assert d1 == d2
        if isinstance(f2, torch.Tensor):
            assert torch.allclose(
                _by_dims(f1, ours.symbol_to_dim)[0], _by_dims(f2, theirs.symbol_to_dim)[0]
            )
        else:
            assert f1 == f2


@needs_pyro
def test_dice_expectation_and_gradient_match_pyro():
    P = torch.tensor([0.1, 0.6, 0.9], requires_grad=True)
    results = []
    for trace, dice_class in zip(_pyro_and_ours(_guide_builder(P)), [Dice, pyro_util.Dice]):
        symbol = trace.plate_to_symbol["data"]
        ordering = {"z": frozenset(), "w": frozenset(symbol), "v": frozenset(symbol)}
        ordering.update({n: frozenset() for n in trace.nodes if n not in ordering})
        w, v = trace.nodes["w"], trace.nodes["v"]
        cost_w = w["packed"]["log_prob"].detach() * 0 + 1.0
        cost_w = cost_w + torch.arange(1.0, 1.0 + cost_w.shape[-1])
        cost_w._pyro_dims = w["packed"]["log_prob"]._pyro_dims
        cost_v = v["packed"]["log_prob"].detach() * -1.0
        cost_v._pyro_dims = v["packed"]["log_prob"]._pyro_dims
        total = _named(torch.tensor(2.0), "")
        dice = dice_class(trace, ordering)
        value = dice.compute_expectation(
            {frozenset(symbol): [cost_w, cost_v], frozenset(): [total]}
        )
        (grad,) = torch.autograd.grad(value, P)
        results.append((value.detach(), grad))
    (v1, g1), (v2, g2) = results
    assert torch.allclose(v1, v2, atol=1e-5)
    assert torch.allclose(g1, g2, atol=1e-5)
