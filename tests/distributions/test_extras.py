"""Delta, Unit, ImproperUniform, MixtureGeneral and Empirical against hand computations."""

import math

import numpy as np
import pytest
import torch

import pyrolite.distributions as dist
from pyrolite.distributions import constraints


def test_delta_log_prob_is_log_density_at_v_and_minus_inf_elsewhere():
    d = dist.Delta(torch.tensor([1.0, 2.0]), log_density=torch.tensor([0.5, -1.0]))
    lp = d.log_prob(torch.tensor([1.0, 3.0]))
    assert lp[0].item() == 0.5 and lp[1].item() == -math.inf
    event = dist.Delta(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), log_density=2.0, event_dim=1)
    assert (event.batch_shape, event.event_shape) == ((2,), (2,))
    lp = event.log_prob(torch.tensor([[1.0, 2.0], [3.0, 5.0]]))
    assert lp[0].item() == 2.0 and lp[1].item() == -math.inf


def test_delta_rsample_carries_gradient_and_sample_is_detached():
    v = torch.tensor([1.0, 2.0], requires_grad=True)
    d = dist.Delta(v)
    draw = d((3,))
    assert draw.shape == (3, 2) and torch.equal(draw, v.detach().expand(3, 2))
    draw.sum().backward()
    assert torch.equal(v.grad, torch.tensor([3.0, 3.0]))
    assert not d.sample().requires_grad
    assert not d.has_rsample_(False)().requires_grad
    expanded = dist.Delta(torch.tensor(1.5), log_density=0.25).expand([4])
    assert type(expanded) is dist.Delta
    assert torch.equal(expanded.log_prob(torch.full((4,), 1.5)), torch.full((4,), 0.25))
    assert torch.equal(d.mean, v) and torch.equal(d.variance, torch.zeros(2))


def test_unit_log_prob_is_log_factor_and_value_is_empty():
    d = dist.Unit(torch.tensor([[1.0], [2.0]]))
    value = d()
    assert value.shape == (2, 1, 0) and value.numel() == 0
    assert torch.equal(d.log_prob(value), torch.tensor([[1.0], [2.0]]))
    assert not d.has_rsample and dist.Unit(0.0, has_rsample=True).has_rsample
    expanded = d.expand([3, 2, 1])
    assert expanded.log_prob(expanded.sample()).shape == (3, 2, 1)
    assert dist.Unit(0.0, has_rsample=True).expand([2]).has_rsample


def test_improper_uniform_is_flat_and_cannot_sample():
    d = dist.ImproperUniform(constraints.positive, (3,), ())
    assert torch.equal(d.log_prob(torch.tensor([0.1, 2.0, 50.0])), torch.zeros(3))
    vec = dist.ImproperUniform(constraints.real_vector, (), (2,))
    assert vec.log_prob(torch.ones(5, 2)).shape == (5,)
    assert vec.support.event_dim == 1
    with pytest.raises(NotImplementedError, match="init strategy"):
        d.sample()
    with pytest.raises(NotImplementedError):
        d()
    assert d.expand([2, 3]).batch_shape == (2, 3)


def _two_normals(weights=(0.3, 0.7)):
    return dist.MixtureGeneral(
        dist.Categorical(torch.tensor(weights)),
        [dist.Normal(-2.0, 0.5), dist.Normal(3.0, 1.5)],
    )


def test_mixture_general_log_prob_is_logsumexp_over_components():
    mix = _two_normals()
    x = torch.tensor([-2.0, 0.0, 4.0])
    manual = torch.logsumexp(
        torch.stack(
            [
                math.log(0.3) + dist.Normal(-2.0, 0.5).log_prob(x),
                math.log(0.7) + dist.Normal(3.0, 1.5).log_prob(x),
            ]
        ),
        0,
    )
    assert torch.allclose(mix.log_prob(x), manual)
    assert not mix.has_rsample


def test_mixture_general_sample_mean_within_four_standard_errors():
    torch.manual_seed(0)
    mix = _two_normals()
    draws = mix.sample((20000,))
    assert draws.shape == (20000,)
    mean = 0.3 * -2.0 + 0.7 * 3.0
    variance = 0.3 * 0.25 + 0.7 * 2.25 + 0.3 * (-2.0 - mean) ** 2 + 0.7 * (3.0 - mean) ** 2
    assert mix.mean.item() == pytest.approx(mean)
    assert mix.variance.item() == pytest.approx(variance, rel=1e-6)
    assert abs(draws.mean().item() - mean) < 4 * math.sqrt(variance / 20000)


def test_mixture_general_broadcasts_batch_and_event_shapes():
    loc = torch.tensor([1.0, 2.0], requires_grad=True)
    mix = dist.MixtureGeneral(
        dist.Categorical(torch.tensor([0.5, 0.5])),
        [dist.Normal(loc, 1.0).to_event(1), dist.Normal(torch.zeros(3, 2), 1.0).to_event(1)],
    )
    assert (mix.batch_shape, mix.event_shape) == ((3,), (2,))
    assert mix.sample((4,)).shape == (4, 3, 2)
    assert type(mix.expand([5, 3])) is dist.MixtureGeneral
    mix.log_prob(torch.zeros(3, 2)).sum().backward()
    assert loc.grad is not None and (loc.grad != 0).all()
    with pytest.raises(ValueError, match="2 categories"):
        dist.MixtureGeneral(dist.Categorical(torch.ones(2)), [dist.Normal(0.0, 1.0)])


def test_empirical_moments_match_weighted_numpy():
    samples = torch.tensor([0.0, 1.0, 2.0, 5.0], dtype=torch.float64)
    weights = np.array([0.1, 0.2, 0.3, 0.4])
    d = dist.Empirical(samples, torch.tensor(np.log(weights) + 7.0))
    np_mean = np.sum(weights * samples.numpy())
    np_var = np.sum(weights * (samples.numpy() - np_mean) ** 2)
    assert d.mean.item() == pytest.approx(np_mean)
    assert d.variance.item() == pytest.approx(np_var)
    assert d.log_prob(torch.tensor(2.0, dtype=torch.float64)).exp().item() == pytest.approx(0.3)
    assert d.log_prob(torch.tensor(3.0, dtype=torch.float64)).item() == -math.inf
    assert torch.equal(d.enumerate_support(), samples)
    torch.manual_seed(0)
    draws = d.sample((20000,))
    assert (draws == 5.0).double().mean().item() == pytest.approx(0.4, abs=4 * 0.0035)


def test_empirical_with_batch_and_event_dims():
    samples = torch.arange(12.0).reshape(2, 3, 2)  # batch 2, 3 samples, event (2,)
    log_weights = torch.tensor([[0.0, 0.0, 0.0], [0.0, -math.inf, -math.inf]])
    d = dist.Empirical(samples, log_weights)
    assert (d.batch_shape, d.event_shape) == ((2,), (2,))
    assert torch.allclose(d.mean, torch.tensor([[2.0, 3.0], [6.0, 7.0]]))
    assert d.sample((5,)).shape == (5, 2, 2)
    assert torch.equal(d.sample()[1], torch.tensor([6.0, 7.0]))
    lp = d.log_prob(torch.tensor([[2.0, 3.0], [6.0, 7.0]]))
    assert torch.allclose(lp, torch.tensor([math.log(1 / 3), 0.0]))
