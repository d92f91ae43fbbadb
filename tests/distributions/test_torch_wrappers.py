"""The wrapped torch families: same densities as torch, and the wrapper type survives."""

import copy
import math
import pickle

import pytest
import torch

import pyrolite.distributions as dist
from pyrolite.distributions import TorchDistributionMixin


def _torch_families():
    return [
        name
        for name in torch.distributions.__all__
        if isinstance(getattr(torch.distributions, name), type)
        and issubclass(getattr(torch.distributions, name), torch.distributions.Distribution)
        and name != "Distribution"
    ]


@pytest.mark.parametrize("name", _torch_families())
def test_every_torch_family_is_wrapped_with_the_mixin(name):
    wrapped = getattr(dist, name)
    assert issubclass(wrapped, getattr(torch.distributions, name))
    assert issubclass(wrapped, TorchDistributionMixin)
    assert wrapped.__module__.startswith("pyrolite.distributions.")


CASES = [
    ("Normal", (torch.tensor([0.0, 1.0]), torch.tensor([1.0, 2.0])), torch.tensor([0.5, -1.0])),
    ("Beta", (torch.tensor(2.0), torch.tensor(3.0)), torch.tensor([0.2, 0.7])),
    ("Gamma", (torch.tensor(2.0), torch.tensor(0.5)), torch.tensor([0.3, 4.0])),
    ("Bernoulli", (torch.tensor([0.3, 0.9]),), torch.tensor([1.0, 0.0])),
    ("Categorical", (torch.tensor([0.2, 0.3, 0.5]),), torch.tensor([0, 2])),
    ("Poisson", (torch.tensor(3.0),), torch.tensor([0.0, 5.0])),
    ("Exponential", (torch.tensor(2.0),), torch.tensor([0.1, 3.0])),
    ("LogNormal", (torch.tensor(0.5), torch.tensor(1.5)), torch.tensor([0.2, 3.0])),
    ("HalfNormal", (torch.tensor(2.0),), torch.tensor([0.2, 3.0])),
    ("StudentT", (torch.tensor(3.0),), torch.tensor([0.2, -3.0])),
    ("Dirichlet", (torch.tensor([1.0, 2.0, 3.0]),), torch.tensor([0.2, 0.3, 0.5])),
    (
        "MultivariateNormal",
        (torch.zeros(2), torch.tensor([[2.0, 0.5], [0.5, 1.0]])),
        torch.tensor([0.3, -0.4]),
    ),
]


@pytest.mark.parametrize("name,args,value", CASES, ids=[c[0] for c in CASES])
def test_log_prob_equals_torch(name, args, value):
    expected = getattr(torch.distributions, name)(*args).log_prob(value)
    actual = getattr(dist, name)(*args).log_prob(value)
    assert torch.equal(actual, expected)


def test_log_prob_matches_closed_forms():
    x = torch.tensor([0.5, -1.0])
    normal = dist.Normal(1.0, 2.0).log_prob(x)
    expected = -((x - 1.0) ** 2) / 8.0 - math.log(2.0) - 0.5 * math.log(2 * math.pi)
    assert torch.allclose(normal, expected)

    k = torch.tensor([0.0, 4.0])
    poisson = dist.Poisson(3.0).log_prob(k)
    assert torch.allclose(poisson, k * math.log(3.0) - 3.0 - torch.lgamma(k + 1))

    y = torch.tensor(0.25)
    beta = dist.Beta(2.0, 3.0).log_prob(y)
    log_norm = math.lgamma(5.0) - math.lgamma(2.0) - math.lgamma(3.0)
    assert beta.item() == pytest.approx(log_norm + math.log(0.25) + 2 * math.log(0.75), rel=1e-6)


@pytest.mark.parametrize(
    "d",
    [
        dist.Normal(torch.zeros(3), 1.0),
        dist.LogNormal(torch.zeros(3), 1.0),
        dist.Chi2(torch.ones(3)),
        dist.Categorical(torch.ones(3, 4)),
        dist.Normal(torch.zeros(3, 2), 1.0).to_event(1),
    ],
    ids=["Normal", "LogNormal", "Chi2", "Categorical", "Independent"],
)
def test_expand_pickle_and_copy_keep_the_wrapped_type(d):
    expanded = d.expand(torch.Size([5, 3]))
    assert type(expanded) is type(d)
    assert expanded.batch_shape == (5, 3)
    value = d.sample()
    for clone in (pickle.loads(pickle.dumps(d)), copy.deepcopy(d), copy.copy(d)):
        assert type(clone) is type(d)
        assert torch.equal(clone.log_prob(value), d.log_prob(value))


def test_kl_divergence_of_wrapped_families_uses_torch_rules():
    p, q = dist.Normal(0.0, 1.0), dist.Normal(1.0, 2.0)
    expected = math.log(2.0) + (1.0 + 1.0) / (2 * 4.0) - 0.5
    assert torch.allclose(dist.kl_divergence(p, q), torch.tensor(expected))
