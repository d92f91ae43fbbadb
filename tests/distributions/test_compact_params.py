"""Normal, HalfNormal, LogNormal and Beta with compact parameters agree with torch's classes."""

import copy
import math
import pickle

import pytest
import torch

import pyrolite.distributions as dist

TD = torch.distributions

PARAMS = {
    "Normal": [
        (torch.tensor([0.5, -1.0, 2.0]), torch.tensor([1.0, 0.5, 3.0])),
        (torch.tensor([0.5, -1.0, 2.0]), 2.0),
        (0.0, torch.tensor([[1.0], [0.5]])),
        (1.5, 0.7),
    ],
    "LogNormal": [
        (torch.tensor([0.5, -1.0, 2.0]), torch.tensor([1.0, 0.5, 3.0])),
        (torch.zeros(2, 1), torch.tensor([0.3, 0.6, 0.9])),
        (0.2, 1.3),
    ],
    "HalfNormal": [(torch.tensor([1.0, 0.5, 3.0]),), (2.0,), (torch.tensor([[1.0], [4.0]]),)],
    "Beta": [
        (torch.tensor([0.5, 2.0, 7.0]), torch.tensor([1.0, 3.0, 0.8])),
        (10.0, 10.0),
        (torch.tensor([[2.0], [0.7]]), 4.0),
    ],
}
CASES = [(name, args) for name, all_args in PARAMS.items() for args in all_args]


def _values(name, batch_shape, generator):
    value = torch.randn((4,) + tuple(batch_shape), generator=generator, dtype=torch.float64)
    value = value.float()
    if name == "Beta":
        return value.sigmoid()
    return value.exp() if name == "LogNormal" else value.abs() if name == "HalfNormal" else value


def _assert_same_draws(ours, theirs, method, sample_shape):
    """The Normal family draws torch's stream; Beta draws X / (X + Y) from two Gammas (a
    different stream from torch's Dirichlet), so its draws are checked by their mean."""
    if isinstance(ours, TD.Beta):
        draws = getattr(ours, method)((40000,) + tuple(sample_shape))
        se = (theirs.variance / 40000) ** 0.5
        assert ((draws.mean(0) - theirs.mean).abs() < 5 * se).all()
        assert ((draws > 0) & (draws < 1)).all()
        return
    torch.manual_seed(3)
    draws = getattr(ours, method)(sample_shape)
    torch.manual_seed(3)
    assert torch.equal(draws, getattr(theirs, method)(sample_shape))


@pytest.mark.parametrize("name,args", CASES)
def test_log_prob_moments_and_draws_match_torch(name, args):
    ours, theirs = getattr(dist, name)(*args), getattr(TD, name)(*args)
    assert isinstance(ours, getattr(TD, name))
    assert ours.batch_shape == theirs.batch_shape and ours.event_shape == theirs.event_shape
    value = _values(name, theirs.batch_shape, torch.Generator().manual_seed(0))
    assert torch.allclose(ours.log_prob(value), theirs.log_prob(value), atol=1e-5)
    # a value without the batch dims still scores at the full batch shape, as in torch
    single = value.reshape(-1)[:1].reshape(())
    assert ours.log_prob(single).shape == theirs.log_prob(single).shape
    assert torch.allclose(ours.log_prob(single), theirs.log_prob(single), atol=1e-5)
    for attribute in ("mean", "variance", "stddev"):
        assert torch.allclose(getattr(ours, attribute), getattr(theirs, attribute), equal_nan=True)
    assert torch.allclose(ours.entropy(), theirs.entropy(), atol=1e-6)
    for method in ("rsample", "sample"):
        _assert_same_draws(ours, theirs, method, (2,))


@pytest.mark.parametrize("name,args", CASES)
def test_expand_keeps_parameters_compact_and_scores_like_torch(name, args):
    ours, theirs = getattr(dist, name)(*args), getattr(TD, name)(*args)
    shape = (5,) + tuple(theirs.batch_shape)
    big_ours, big_theirs = ours.expand(shape), theirs.expand(shape)
    assert type(big_ours) is type(ours) and big_ours.batch_shape == big_theirs.batch_shape
    for param in type(ours)._param_names:
        compact = big_ours.__dict__["_" + param]
        assert compact is ours.__dict__["_" + param]  # no broadcast copy per expand
        assert torch.equal(getattr(big_ours, param), getattr(big_theirs, param))
    value = _values(name, theirs.batch_shape, torch.Generator().manual_seed(1))[:1]
    assert torch.allclose(big_ours.log_prob(value), big_theirs.log_prob(value), atol=1e-5)
    _assert_same_draws(big_ours, big_theirs, "rsample", ())
    if theirs.batch_shape:
        bad = tuple(size + 1 if size != 1 else size for size in theirs.batch_shape)
        with pytest.raises(RuntimeError, match="cannot be expanded"):
            ours.expand(bad)


def test_gradients_match_torch_and_numbers_stay_constants():
    loc = torch.tensor([0.3, -0.2], requires_grad=True)
    scale = torch.tensor(0.8, requires_grad=True)
    value = torch.tensor([[0.1, 0.4], [1.0, -2.0]])
    for name in ("Normal", "LogNormal"):
        x = value.exp() if name == "LogNormal" else value
        ours = getattr(dist, name)(loc, scale).log_prob(x).sum()
        theirs = getattr(TD, name)(loc, scale).log_prob(x).sum()
        g_ours = torch.autograd.grad(ours, (loc, scale))
        g_theirs = torch.autograd.grad(theirs, (loc, scale))
        for a, b in zip(g_ours, g_theirs):
            assert torch.allclose(a, b, atol=1e-6)
    # a float scale enters as a number: log(10) exactly, no tensor made for it
    d = dist.Normal(torch.zeros(3), 10.0)
    assert d.__dict__["_scale"] == 10.0
    expected = -0.5 * (1.5 / 10.0) ** 2 - math.log(10.0) - 0.5 * math.log(2 * math.pi)
    assert torch.allclose(d.log_prob(torch.full((3,), 1.5)), torch.tensor(expected))


def test_dtype_and_device_follow_the_tensor_parameter():
    d = dist.Normal(0.0, torch.tensor([1.0, 2.0], dtype=torch.float64))
    assert d.rsample().dtype == torch.float64 and d.loc.dtype == torch.float64
    assert dist.Normal(0.0, 1.0).rsample().dtype == torch.get_default_dtype()
    assert dist.HalfNormal(torch.tensor(2.0, dtype=torch.float64)).sample((3,)).dtype == (
        torch.float64
    )


def test_validation_errors_name_the_bad_parameter_and_value():
    with pytest.raises(ValueError, match="scale"):
        dist.Normal(torch.zeros(2), torch.tensor([1.0, -1.0]), validate_args=True)
    with pytest.raises(ValueError, match="scale"):
        dist.HalfNormal(-1.0, validate_args=True)
    with pytest.raises(ValueError, match="support"):
        dist.LogNormal(0.0, 1.0, validate_args=True).log_prob(torch.tensor(-1.0))
    half = dist.HalfNormal(torch.tensor([1.0, 2.0]), validate_args=False)
    assert torch.equal(half.log_prob(torch.tensor([-1.0, -2.0])), torch.full((2,), -math.inf))


def test_kl_and_transformed_methods_use_the_lazy_base():
    p, q = dist.Normal(torch.tensor([0.0, 1.0]), 1.0), dist.Normal(0.5, torch.tensor([2.0, 3.0]))
    tp, tq = TD.Normal(p.loc, p.scale), TD.Normal(q.loc, q.scale)
    assert torch.allclose(TD.kl_divergence(p, q), TD.kl_divergence(tp, tq))
    half = dist.HalfNormal(torch.tensor([1.0, 2.0]))
    value = torch.tensor([0.5, 1.5])
    assert torch.allclose(half.cdf(value), TD.HalfNormal(half.scale).cdf(value))
    assert torch.allclose(
        half.icdf(torch.tensor([0.3, 0.9])),
        TD.HalfNormal(half.scale).icdf(torch.tensor([0.3, 0.9])),
    )
    log_normal = dist.LogNormal(torch.zeros(2), 0.5)
    assert isinstance(log_normal.base_dist, TD.Normal)
    assert torch.allclose(log_normal.cdf(value), TD.LogNormal(torch.zeros(2), 0.5).cdf(value))


@pytest.mark.parametrize("ndims", [0, 1, 2, 3])
def test_independent_log_prob_and_expand_match_torch(ndims):
    base_args = (torch.randn(2, 3, 4), torch.rand(2, 3, 4) + 0.5)
    ours = dist.Independent(dist.Normal(*base_args), ndims)
    theirs = TD.Independent(TD.Normal(*base_args), ndims)
    value = torch.randn(5, 2, 3, 4)
    assert torch.allclose(ours.log_prob(value), theirs.log_prob(value))
    batch = (6,) + tuple(theirs.batch_shape)
    big_ours, big_theirs = ours.expand(batch), theirs.expand(batch)
    assert type(big_ours) is type(ours)
    assert (big_ours.batch_shape, big_ours.event_shape) == (
        big_theirs.batch_shape,
        big_theirs.event_shape,
    )
    assert torch.allclose(big_ours.log_prob(value[:1]), big_theirs.log_prob(value[:1]))


def test_beta_with_number_concentrations_scores_without_tensor_normalizer():
    prior = dist.Beta(10.0, 10.0)
    assert prior.__dict__["_concentration1"] == 10.0
    f = torch.tensor([0.3, 0.6], requires_grad=True)
    ours = prior.log_prob(f)
    theirs = TD.Beta(torch.tensor(10.0), torch.tensor(10.0)).log_prob(f)
    assert torch.allclose(ours, theirs, atol=1e-5)
    (g_ours,) = torch.autograd.grad(ours.sum(), f)
    (g_theirs,) = torch.autograd.grad(theirs.sum(), f)
    assert torch.allclose(g_ours, g_theirs, atol=1e-5)


def test_repr_pickle_and_deepcopy_keep_the_parameters():
    d = dist.Normal(torch.zeros(3), 2.0)
    assert repr(d) == "Normal(loc: torch.Size([3]), scale: 2.0)"
    assert (
        repr(dist.Beta(2.0, torch.tensor(3.0))) == "Beta(concentration1: 2.0, concentration0: 3.0)"
    )
    for clone in (copy.deepcopy(d), pickle.loads(pickle.dumps(d))):
        assert clone.batch_shape == d.batch_shape and torch.equal(clone.scale, d.scale)
