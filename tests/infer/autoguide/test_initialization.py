"""Init strategies, alone and as an autoguide's ``init_loc_fn``."""

import pytest
import torch

import pyrolite as pyro
import pyrolite.distributions as dist
from pyrolite.distributions import constraints
from pyrolite.infer.autoguide import (
    AutoDelta,
    AutoDiagonalNormal,
    AutoLowRankMultivariateNormal,
    AutoMultivariateNormal,
    AutoNormal,
    init_to_feasible,
    init_to_mean,
    init_to_median,
    init_to_sample,
    init_to_uniform,
    init_to_value,
)


def model():
    pyro.sample("loc", dist.Normal(torch.zeros(2), 1.0).to_event(1))
    pyro.sample("s", dist.HalfNormal(1.0))
    pyro.sample("p", dist.Dirichlet(torch.ones(3)))


VALUES = {
    "loc": torch.tensor([1.5, -0.5]),
    "s": torch.tensor(2.5),
    "p": torch.tensor([0.2, 0.3, 0.5]),
}


@pytest.mark.parametrize(
    "guide_class",
    [
        AutoDelta,
        AutoNormal,
        AutoDiagonalNormal,
        AutoMultivariateNormal,
        AutoLowRankMultivariateNormal,
    ],
)
def test_init_to_value_sets_the_initial_median(guide_class):
    guide = guide_class(model, init_loc_fn=init_to_value(values=VALUES))
    median = guide.median()
    for name, value in VALUES.items():
        # exp/log and stick-breaking round trips: float32 rounding only.
        assert torch.allclose(median[name], value, rtol=1e-5, atol=1e-6), name


def test_init_to_value_falls_back_for_sites_it_does_not_name():
    def normal_model():
        pyro.sample("a", dist.Normal(5.0, 1.0))
        pyro.sample("b", dist.Normal(0.0, 1.0))

    init = init_to_value(values={"b": torch.tensor(0.7)}, fallback=init_to_mean)
    median = AutoDelta(normal_model, init_loc_fn=init).median()
    assert median["a"].item() == 5.0 and abs(median["b"].item() - 0.7) < 1e-7


def test_init_to_median_of_a_prior():
    site = {"name": "z", "fn": dist.Normal(5.0, 2.0)}
    # The sample median of n draws has sd 1.2533 * 2 / sqrt(n): 0.056 for n = 2001.
    assert abs(init_to_median(num_samples=2001)(site).item() - 5.0) < 0.25
    guide = AutoDelta(lambda: pyro.sample("z", dist.LogNormal(1.0, 0.5)))
    # AutoDelta's default, as in Pyro (AutoNormal's is init_to_feasible): 15 draws; the
    # median of LogNormal(1, .5) is e, the sample median's log
    # has sd 1.2533 * 0.5 / sqrt(15) = 0.16.
    assert abs(guide.median()["z"].log().item() - 1.0) < 0.65


def test_init_to_mean_and_its_fallback():
    assert init_to_mean({"name": "r", "fn": dist.Gamma(2.0, 4.0)}).item() == 0.5
    # HalfCauchy has no finite mean: the median of 15 draws instead (finite, positive).
    value = init_to_mean({"name": "c", "fn": dist.HalfCauchy(1.0)})
    assert torch.isfinite(value) and value > 0


@pytest.mark.parametrize(
    "fn, expected",
    [
        (dist.Normal(3.0, 1.0), torch.tensor(0.0)),
        (dist.HalfNormal(1.0), torch.tensor(1.0)),
        (dist.Beta(2.0, 3.0), torch.tensor(0.5)),
        (dist.Dirichlet(torch.ones(4)), torch.full((4,), 0.25)),
        (dist.ImproperUniform(constraints.positive, (2,), ()), torch.ones(2)),
    ],
)
def test_init_to_feasible_is_the_image_of_zero(fn, expected):
    assert torch.allclose(init_to_feasible({"name": "x", "fn": fn}), expected)


def test_init_to_uniform_stays_within_radius_in_unconstrained_space():
    site = {"name": "s", "fn": dist.LogNormal(torch.zeros(1000), 1.0)}
    u = init_to_uniform(radius=0.5)(site).log()
    assert u.abs().max() < 0.5 and u.std() > 0.2  # uniform(-.5, .5) has sd 0.29


def test_init_to_sample_draws_from_the_prior():
    fn = dist.Normal(torch.zeros(3), 1.0)
    pyro.set_rng_seed(3)
    expected = fn.sample()
    pyro.set_rng_seed(3)
    assert torch.equal(init_to_sample({"name": "z", "fn": fn}), expected)


def test_improper_uniform_sites_are_initialized_without_sampling():
    def improper():
        pyro.sample("x", dist.ImproperUniform(constraints.real, (), ()))
        pyro.sample("y", dist.ImproperUniform(constraints.positive, (3,), ()))

    for init in (init_to_median, init_to_mean, init_to_sample, init_to_uniform):
        median = AutoDiagonalNormal(improper, init_loc_fn=init).median()
        assert median["x"].shape == () and median["y"].shape == (3,)
        assert bool((median["y"] > 0).all())
    median = AutoDiagonalNormal(improper).median()
    assert median["x"].item() == 0.0 and torch.equal(median["y"], torch.ones(3))


def test_init_value_outside_the_support_is_an_error_naming_the_site():
    bad = init_to_value(values={"s": torch.tensor(-1.0)})
    with pytest.raises(ValueError, match="site 's'.*support"):
        AutoNormal(model, init_loc_fn=bad)()
    with pytest.raises(ValueError, match="site 'loc' has shape"):
        AutoNormal(model, init_loc_fn=init_to_value(values={"loc": torch.zeros(3)}))()
