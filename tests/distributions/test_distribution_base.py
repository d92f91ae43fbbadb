"""Pyro's ``Distribution`` base: user families are callable and work at sample sites;
pyrolite's torch-backed families are instances of it, torch's own are not."""

import pytest
import torch

import pyrolite
import pyrolite.distributions as dist
from pyrolite import poutine


class Coin(dist.Distribution):
    """A user family in the style of Pyro's ``HashingMarginal``: no torch base class."""

    has_enumerate_support = True

    def __init__(self, p):
        self.p = torch.as_tensor(p)

    def sample(self, sample_shape=()):
        return torch.bernoulli(self.p.expand(sample_shape))

    def log_prob(self, x):
        return torch.where(x == 1, self.p.log(), (1 - self.p).log())

    def enumerate_support(self):
        return torch.tensor([0.0, 1.0])


def test_user_family_is_callable_with_pyros_defaults():
    class Bare(dist.Distribution):
        def sample(self):
            return torch.tensor(7.0)

    assert Bare()() == 7.0
    assert Bare.has_rsample is False and Bare.has_enumerate_support is False
    assert Coin(1.0)() == 1.0


def test_user_family_at_a_sample_site_scores_its_log_prob():
    def model():
        pyrolite.sample("c", Coin(0.3), obs=torch.tensor(1.0))

    trace = poutine.trace(model).get_trace()
    assert trace.log_prob_sum().item() == pytest.approx(torch.tensor(0.3).log().item())


def test_score_parts_follow_has_rsample():
    x = torch.tensor(1.0)
    parts = Coin(0.3).score_parts(x)
    assert torch.equal(parts.score_function, Coin(0.3).log_prob(x)) and parts.entropy_term == 0


def test_torch_backed_families_are_instances_and_keep_torch_attributes():
    assert isinstance(dist.Normal(0.0, 1.0), dist.Distribution)
    assert isinstance(dist.Bernoulli(0.5).expand([3]), dist.Distribution)
    assert not isinstance(torch.distributions.Normal(0.0, 1.0), dist.Distribution)
    # The base's defaults must not hide torch's class attributes in pyrolite's families.
    assert dist.Normal(0.0, 1.0).has_rsample is True
    assert dist.Bernoulli(0.5).has_enumerate_support is True
    assert dist.Gamma(2.0, 1.0).has_rsample is True


def test_has_rsample_underscore_on_a_user_family():
    with pytest.raises(ValueError, match="no reparameterized sampler"):
        Coin(0.3).has_rsample_(True)
    assert Coin(0.3).has_rsample_(False).has_rsample is False


def test_isinstance_rules_match_pyro():
    pyro_dist = pytest.importorskip("pyro.distributions")
    assert isinstance(pyro_dist.Normal(0.0, 1.0), pyro_dist.Distribution)
    assert not isinstance(torch.distributions.Normal(0.0, 1.0), pyro_dist.Distribution)

    class Theirs(pyro_dist.Distribution):
        def sample(self):
            return torch.tensor(7.0)

        def log_prob(self, x):
            return torch.zeros(())

    assert Theirs()() == 7.0 and Theirs.has_rsample is Coin.has_rsample is False
    methods = ["__call__", "score_parts", "conjugate_update", "has_rsample_", "enumerate_support"]
    for name in methods:
        assert hasattr(dist.Normal(0.0, 1.0), name), name
