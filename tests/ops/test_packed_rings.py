"""pyrolite.ops.packed and pyrolite.ops.rings (LinearRing, LogRing), analytic and vs Pyro."""

import math

import pytest
import torch

from pyrolite.ops import packed, rings
from pyrolite.ops.provenance import extract_provenance, track_provenance


def _named(value, dims):
    value._pyro_dims = dims
    return value


D2S = {-3: "a", -2: "b", -1: "c"}
S2D = {"a": -3, "b": -2, "c": -1}


def test_pack_drops_singleton_dims_and_unpack_restores_them():
    x = torch.randn(2, 1, 3)
    p = packed.pack(x, D2S)
    assert p.shape == (2, 3) and p._pyro_dims == "ac"
    assert torch.equal(packed.unpack(p, S2D), x)
    assert packed.unpack(p, {"a": -4, "b": -2, "c": -1}).shape == (2, 1, 1, 3)
    assert packed.pack(torch.randn(3), D2S)._pyro_dims == "c"
    assert packed.pack(torch.tensor(1.0), D2S)._pyro_dims == ""
    assert packed.pack(2.0, {}) == 2.0 and packed.unpack(2.0, {}) == 2.0
    ca = _named(torch.arange(6.0).reshape(3, 2), "ca")  # names out of positional order
    u = packed.unpack(ca, S2D)
    assert u.shape == (2, 1, 3) and torch.equal(u[:, 0, :], ca.t())
    with pytest.raises(ValueError, match="Allowed dims: -2, -1"):
        packed.pack(torch.randn(5, 2, 3), {-2: "a", -1: "c"})


def test_broadcast_all_sorts_names_unless_given():
    x = _named(torch.randn(2, 3), "ac")
    y = _named(torch.randn(4), "d")
    bx, by = packed.broadcast_all(x, y)
    assert bx.shape == by.shape == (2, 3, 4) and bx._pyro_dims == by._pyro_dims == "acd"
    assert torch.equal(bx[:, :, 1], x) and torch.equal(by[1, 2], y)
    ox, oy = packed.broadcast_all(x, y, dims="dca")
    assert ox.shape == (4, 3, 2) and torch.equal(ox[0], x.t()) and oy._pyro_dims == "dca"


def test_gather_scale_and_mask_neg_exp_mul():
    v = _named(torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), "ac")
    i = _named(torch.tensor([2, 0]), "a")
    g = packed.gather(v, i, "c")
    assert g.tolist() == [3.0, 4.0] and g._pyro_dims == "a"
    j = _named(torch.tensor([[0, 1], [1, 0], [0, 0]]), "cd")
    g = packed.gather(v, j, "a")
    assert g._pyro_dims == "cd" and g.tolist() == [[1.0, 4.0], [5.0, 2.0], [3.0, 3.0]]
    m = _named(torch.tensor([True, False, True]), "c")
    assert packed.scale_and_mask(v, 2.0, m).tolist() == [[2.0, 0.0, 6.0], [8.0, 0.0, 12.0]]
    assert packed.scale_and_mask(v) is v and packed.scale_and_mask(v, mask=True) is v
    assert packed.scale_and_mask(v, mask=False).abs().sum() == 0
    with pytest.raises(NotImplementedError, match="non-scalar scale"):
        packed.scale_and_mask(v, scale=_named(torch.ones(2), "a"))
    assert packed.neg(v)._pyro_dims == "ac" and torch.equal(packed.neg(v), -v)
    assert packed.exp(v)._pyro_dims == "ac" and packed.exp(0.0) == 1.0 and packed.neg(2.0) == -2.0
    w = _named(torch.tensor([10.0, 20.0]), "d")
    prod = packed.mul(v, w)
    assert prod._pyro_dims == "acd" and torch.equal(prod, v[..., None] * w)
    assert packed.mul(v, 2.0)._pyro_dims == "ac"


def test_rename_equation():
    x, y = _named(torch.zeros(2, 3), "ac"), _named(torch.zeros(4), "d")
    z = _named(torch.zeros(3, 2), "ca")
    assert packed.rename_equation("ab,bc->ac", x, y) == "ad,dc->ac"
    assert packed.rename_equation("a,b->ab", z, x) == "c,a->ca"
    with pytest.raises(ValueError, match="1 inputs but 0 operands"):
        packed.rename_equation("ab->")


def test_packed_matches_pyro():
    pyro_packed = pytest.importorskip("pyro.ops.packed")
    torch.manual_seed(0)
    x = torch.randn(2, 1, 3)
    ours, theirs = packed.pack(x, D2S), pyro_packed.pack(x, D2S)
    assert ours._pyro_dims == theirs._pyro_dims and torch.equal(ours, theirs)
    assert torch.equal(packed.unpack(ours, S2D), pyro_packed.unpack(theirs, S2D))
    z = _named(torch.randn(3, 2), "ca")
    w = _named(torch.randn(4), "d")
    for a, b in zip(packed.broadcast_all(z, w), pyro_packed.broadcast_all(z, w)):
        assert a._pyro_dims == b._pyro_dims and torch.equal(a, b)
    index = _named(torch.tensor([[0, 1], [1, 0], [0, 0]]), "cd")
    a, b = packed.gather(z, index, "a"), pyro_packed.gather(z, index, "a")
    assert a._pyro_dims == b._pyro_dims and torch.equal(a, b)
    mask = _named(torch.tensor([True, False, True, True]), "d")
    a, b = packed.scale_and_mask(z, mask=mask), pyro_packed.scale_and_mask(z, mask=mask)
    assert a._pyro_dims == b._pyro_dims and torch.equal(a, b)
    a, b = packed.scale_and_mask(z, 3.0), pyro_packed.scale_and_mask(z, 3.0)
    assert torch.equal(a, b)
    for eq in ["ab,bc->ac", "a,b->ab", "ab,->"]:
        assert packed.rename_equation(eq, z, w) == pyro_packed.rename_equation(eq, z, w)


def _terms():
    torch.manual_seed(0)
    a = _named(torch.randn(2, 3).exp(), "ab")
    b = _named(torch.randn(3, 4).exp(), "bc")
    c = _named(torch.randn(2).exp(), "a")
    return a, b, c


SIZES = {"a": 2, "b": 3, "c": 4, "i": 5}


def test_linear_ring_is_einsum_and_products():
    a, b, c = _terms()
    ring = rings.LinearRing(dim_to_size=SIZES)
    s = ring.sumproduct([a, b], "b")
    assert s._pyro_dims == "ac" and torch.allclose(s, a @ b)
    assert torch.allclose(ring.sumproduct([a, b, c], "abc"), torch.einsum("ab,bc,a->", a, b, c))
    assert ring.sumproduct([b, a], "")._pyro_dims == "abc"
    p = ring.product(a, frozenset("a"))
    assert p._pyro_dims == "b" and torch.allclose(p, a.prod(0))
    assert ring.product(a, frozenset("c")) is a
    assert ring.product(a, frozenset("ab")).shape == ()
    assert torch.allclose(ring.inv(a), 1 / a)
    br = ring.broadcast(c, frozenset("aic"))
    assert br.shape == (4, 5, 2) and br._pyro_dims == "cia" and torch.equal(br[1, 2], c)
    glob, loc = ring.global_local(a, "b", frozenset("a"))
    assert glob._pyro_dims == "" and torch.allclose(glob, a.sum(1).prod())
    assert loc._pyro_dims == "ab" and torch.allclose(loc, a / a.sum(1, keepdim=True))
    assert ring.sumproduct([a, b], "b") is s  # cached by operand identity


def test_log_ring_is_the_linear_ring_in_log_space():
    a, b, c = _terms()
    lin, log = rings.LinearRing(dim_to_size=SIZES), rings.LogRing(dim_to_size=SIZES)
    la, lb, lc = (_named(t.log(), t._pyro_dims) for t in (a, b, c))
    for terms, log_terms, dims in [([a, b], [la, lb], "b"), ([a, b, c], [la, lb, lc], "ac")]:
        expected = lin.sumproduct(terms, dims)
        got = log.sumproduct(log_terms, dims)
        assert got._pyro_dims == expected._pyro_dims
        assert torch.allclose(got.exp(), expected, rtol=1e-5)
    assert torch.allclose(log.product(la, frozenset("a")), la.sum(0))
    assert torch.allclose(log.inv(la), -la)
    glob, loc = log.global_local(la, "b", frozenset("a"))
    assert torch.allclose(glob, la.logsumexp(1).sum())
    assert torch.allclose(loc, la - la.logsumexp(1, keepdim=True), atol=1e-6)


def test_log_ring_handles_impossible_terms_and_large_values():
    ring = rings.LogRing()
    x = _named(torch.tensor([[1000.0, 1000.0], [-math.inf, -math.inf]]), "ab")
    s = ring.sumproduct([x], "b")
    assert s[0].item() == pytest.approx(1000.0 + math.log(2.0)) and s[1].item() == -math.inf


def test_rings_match_pyro():
    pyro_rings = pytest.importorskip("pyro.ops.rings")
    a, b, c = _terms()
    for ours, theirs in [
        (rings.LinearRing(dim_to_size=SIZES), pyro_rings.LinearRing(dim_to_size=SIZES)),
        (rings.LogRing(dim_to_size=SIZES), pyro_rings.LogRing(dim_to_size=SIZES)),
    ]:
        for terms, dims in [([a, b], "b"), ([a, b], "ab"), ([a, b, c], "abc"), ([b, a], "")]:
            x, y = ours.sumproduct(terms, dims), theirs.sumproduct(terms, dims)
            assert x._pyro_dims == y._pyro_dims and torch.allclose(x, y, rtol=1e-5)
        for ordinal in [frozenset("a"), frozenset("ab"), frozenset("c")]:
            x, y = ours.product(a, ordinal), theirs.product(a, ordinal)
            assert x._pyro_dims == y._pyro_dims and torch.allclose(x, y)
        x, y = ours.broadcast(c, frozenset("aic")), theirs.broadcast(c, frozenset("aic"))
        assert x._pyro_dims == y._pyro_dims and torch.equal(x, y)
        for x, y in zip(
            ours.global_local(a, "b", frozenset("a")), theirs.global_local(a, "b", frozenset("a"))
        ):
            assert x._pyro_dims == y._pyro_dims and torch.allclose(x, y, atol=1e-6)


def test_extract_provenance_splits_value_and_marks():
    x = track_provenance(torch.tensor(1.0), frozenset({"x"}))
    value, marks = extract_provenance({"a": x * 2, "b": torch.ones(1)})
    assert marks == frozenset({"x"}) and type(value["a"]) is torch.Tensor
    assert value["a"].item() == 2.0
    assert extract_provenance(torch.ones(2))[1] == frozenset()
