"""SampleRing, MapRing, MarginalRing and BACKEND_TO_RING (pyrolite.ops.rings): values as
LogRing (max-product for MapRing), backward passes across sumproduct and plate products,
caching, and agreement with Pyro's rings."""

import math

import pytest
import torch

from pyrolite.ops.einsum.adjoint import backward, backward_result, require_backward
from pyrolite.ops.rings import (
    BACKEND_TO_RING,
    LinearRing,
    LogRing,
    MapRing,
    MarginalRing,
    SampleRing,
)

try:
    import pyro.ops.einsum.adjoint as pyro_adjoint
    import pyro.ops.rings as pyro_rings
except ImportError:
    pyro_rings = None

needs_pyro = pytest.mark.skipif(pyro_rings is None, reason="pyro not installed")
SIZES = {"i": 3, "a": 2, "b": 4}


def _named(x, dims):
    x._pyro_dims = dims
    return x


def _terms(seed=0):
    g = torch.Generator().manual_seed(seed)
    t = _named(torch.randn(3, 2, generator=g, dtype=torch.float64), "ia")
    u = _named(torch.randn(2, 4, generator=g, dtype=torch.float64), "ab")
    return t, u


@pytest.mark.parametrize("ring_class", [SampleRing, MarginalRing])
def test_log_rings_sumproduct_product_inv_equal_logring(ring_class):
    t, u = _terms()
    ring, log = ring_class(dim_to_size=SIZES), LogRing(dim_to_size=SIZES)
    for dims in ["", "a", "b", "ab"]:
        got = ring.sumproduct([t, u], dims)
        expected = log.sumproduct([t, u], dims)
        assert got._pyro_dims == expected._pyro_dims
        assert torch.allclose(got, expected)
    assert torch.allclose(ring.product(t, frozenset("i")), t.sum(0))
    assert ring.product(t, frozenset("i"))._pyro_dims == "a"
    assert torch.equal(ring.inv(t), -t)
    summed, local = ring.global_local(u, "b", frozenset("a"))
    assert torch.allclose(summed, u.logsumexp(1).sum())
    assert torch.allclose(local, u - u.logsumexp(1, keepdim=True))
    wide = ring.broadcast(u, frozenset("i"))
    assert wide._pyro_dims == "iab" and wide.shape == (3, 2, 4)


def test_map_ring_is_max_product():
    t, u = _terms()
    ring = MapRing(dim_to_size=SIZES)
    joint = t[:, :, None] + u[None]
    assert torch.allclose(ring.sumproduct([t, u], "ab"), joint.amax((1, 2)))
    assert ring.sumproduct([t, u], "ab")._pyro_dims == "i"
    assert torch.allclose(ring.product(t, frozenset("i")), t.sum(0))


def test_rings_cache_by_operand_identity():
    t, u = _terms()
    cache = {}
    ring = SampleRing(cache=cache, dim_to_size=SIZES)
    first = ring.sumproduct([t, u], "b")
    assert ring.sumproduct([t, u], "b") is first
    assert MarginalRing(cache={}).sumproduct([t, u], "b") is not first
    assert ring.product(t, frozenset("i")) is ring.product(t, frozenset("i"))
    assert len(cache) == 2


def test_sample_ring_product_broadcasts_sample_over_plates():
    # x depends only on a; a plate i of copies of the factor t(i, a) multiplies out.
    t = _named(torch.tensor([[0.0, -30.0]] * 3, dtype=torch.float64), "ia")
    require_backward(t)
    ring = SampleRing(dim_to_size=SIZES)
    backward(ring.sumproduct([ring.product(t, frozenset("i"))], "a"))
    sample = backward_result(t)
    assert sample._pyro_dims == " i" and sample._pyro_sample_dims == "a"
    assert sample.tolist() == [[0, 0, 0]]


def test_sample_ring_draws_plated_posterior():
    # Without the product, a is drawn per plate element from softmax(t[i]).
    n = 20000
    t = _named(torch.log(torch.tensor([[0.2, 0.8], [0.5, 0.5], [0.9, 0.1]])), "ia")
    tn = _named(t.expand(n, 3, 2), "nia")
    require_backward(tn)
    ring = SampleRing(dim_to_size={"n": n, **SIZES})
    backward(ring.sumproduct([tn], "a"))
    sample = backward_result(tn)
    assert sorted(sample._pyro_dims) == sorted(" ni")
    a = sample[0] if sample._pyro_dims == " ni" else sample[0].T
    freq = a.double().mean(0)
    expected = torch.tensor([0.8, 0.5, 0.1], dtype=torch.float64)
    se = (expected * (1 - expected) / n).sqrt()
    assert ((freq - expected).abs() < 5 * se).all()


def test_map_ring_backward_gives_argmax():
    t, u = _terms(4)
    for x in (t, u):
        require_backward(x)
    ring = MapRing(dim_to_size=SIZES)
    backward(ring.sumproduct([t, u], "ab"))
    joint = t[:, :, None] + u[None]
    sample = backward_result(u)
    rows = {d: sample[k] for k, d in enumerate(sample._pyro_sample_dims)}
    for i in range(3):
        a, b = torch.unravel_index(joint[i].argmax(), joint[i].shape)
        assert (int(rows["a"][i]), int(rows["b"][i])) == (int(a), int(b))


def test_marginal_ring_backward_through_product():
    t = _named(torch.randn(3, 2, dtype=torch.float64), "ia")
    q = _named(torch.randn(2, dtype=torch.float64), "a")
    for x in (t, q):
        require_backward(x)
    ring = MarginalRing(dim_to_size=SIZES)
    root = ring.sumproduct([ring.product(t, frozenset("i")), q], "a")
    backward(root)
    marginal_a = t.sum(0) + q
    assert torch.allclose(root, marginal_a.logsumexp(0))
    assert torch.allclose(backward_result(q), marginal_a)
    # Each plate element's term sees the marginal of a (as Pyro's MarginalRing).
    assert torch.allclose(backward_result(t), marginal_a.expand(3, 2))


def test_backend_to_ring_names_ours_and_pyros():
    assert BACKEND_TO_RING["torch"] is LinearRing
    for name, ring in [
        ("torch_log", LogRing),
        ("torch_map", MapRing),
        ("torch_sample", SampleRing),
        ("torch_marginal", MarginalRing),
    ]:
        assert BACKEND_TO_RING["pyrolite.ops.einsum." + name] is ring
        assert BACKEND_TO_RING["pyro.ops.einsum." + name] is ring


def test_marginal_ring_marginals_normalize_to_posterior():
    t, u = _terms(5)
    for x in (t, u):
        require_backward(x)
    ring = MarginalRing(dim_to_size=SIZES)
    root = ring.sumproduct([t, u], "iab")
    backward(root)
    joint = t[:, :, None] + u[None]
    posterior_a_b = (joint - root).exp().sum(0)
    assert torch.allclose((backward_result(u) - root).exp(), posterior_a_b)
    assert math.isclose(float((backward_result(u) - root).exp().sum()), 1.0)


@needs_pyro
@pytest.mark.parametrize("name", ["LogRing", "MapRing", "SampleRing", "MarginalRing"])
def test_ring_values_match_pyro(name):
    ours = globals()[name](dim_to_size=SIZES)
    theirs = getattr(pyro_rings, name)(dim_to_size=SIZES)
    t, u = _terms(6)
    for dims in ["a", "b", "ab", "iab"]:
        got, expected = ours.sumproduct([t, u], dims), theirs.sumproduct([t, u], dims)
        assert got._pyro_dims == expected._pyro_dims
        assert torch.allclose(got, expected)
    got, expected = ours.product(t, frozenset("i")), theirs.product(t, frozenset("i"))
    assert torch.allclose(got, expected) and got._pyro_dims == expected._pyro_dims
    got_g, got_l = ours.global_local(u, "b", frozenset("a"))
    exp_g, exp_l = theirs.global_local(u, "b", frozenset("a"))
    assert torch.allclose(got_g, exp_g) and torch.allclose(got_l, exp_l)


@needs_pyro
def test_marginal_ring_backward_matches_pyro():
    results = []
    for ring, mark in [
        (MarginalRing(dim_to_size=SIZES), require_backward),
        (pyro_rings.MarginalRing(dim_to_size=SIZES), pyro_adjoint.require_backward),
    ]:
        t, u = _terms(7)
        for x in (t, u):
            mark(x)
        root = ring.sumproduct([ring.product(t, frozenset("i")), u], "ab")
        root._pyro_backward()
        results.append((t._pyro_backward_result, u._pyro_backward_result))
    for got, expected in zip(*results):
        assert torch.allclose(got, expected)
