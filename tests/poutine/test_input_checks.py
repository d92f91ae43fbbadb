"""Bad input gets an error naming the site or plate, the shapes or values, and the fix
(issue 13, items 3, 8 and 9)."""

import math

import pytest
import torch

import pyrolite
import pyrolite.distributions as dist
from pyrolite import poutine
from pyrolite.infer import SVI, Trace_ELBO, TraceEnum_ELBO, config_enumerate
from pyrolite.optim import Adam
from pyrolite.poutine.enum_messenger import EnumDims
from pyrolite.poutine.plate_messenger import CondIndepStackFrame
from pyrolite.poutine.util import check_site_shape

N = 10


def _normal_lp(x, loc, scale):
    return -0.5 * ((x - loc) / scale) ** 2 - math.log(scale) - 0.5 * math.log(2 * math.pi)


def _plate_model(data):
    mu = pyrolite.sample("mu", dist.Normal(0.0, 10.0))
    with pyrolite.plate("data", N):
        pyrolite.sample("obs", dist.Normal(mu, 1.0), obs=data)


def _delta_guide(data):
    pyrolite.sample("mu", dist.Delta(pyrolite.param("loc", torch.tensor(0.5))))


# --- item 3: (N, 1) data inside a plate of size N ------------------------------------------


def test_column_data_inside_plate_raises_instead_of_broadcasting_to_n_by_n():
    pyrolite.clear_param_store()
    data = torch.randn(N, 1)
    with pytest.raises(ValueError) as info:
        Trace_ELBO().loss(_plate_model, _delta_guide, data)
    message = str(info.value)
    assert "'obs'" in message and "(10, 10)" in message and "(10, 1)" in message
    assert "plate('data', size=10)" in message
    assert ".squeeze(-1)" in message and ".to_event(1)" in message


def test_squeezed_data_gives_the_exact_loss():
    pyrolite.clear_param_store()
    data = torch.randn(N, 1)
    loss = Trace_ELBO().loss(_plate_model, _delta_guide, data.squeeze(-1))
    expected = -(_normal_lp(0.5, 0.0, 10.0) + sum(_normal_lp(y, 0.5, 1.0) for y in data[:, 0]))
    assert loss == pytest.approx(expected.item(), rel=1e-5)


def test_column_data_raises_with_vectorized_particles_too():
    pyrolite.clear_param_store()
    elbo = Trace_ELBO(num_particles=3, vectorize_particles=True, max_plate_nesting=1)
    # (torch's own broadcast check catches this one first: (10, 1) against (3, 10).)
    with pytest.raises(ValueError, match=r"site 'obs'.*\(10, 1\)"):
        elbo.loss(_plate_model, _delta_guide, torch.randn(N, 1))
    # ... while the right data shape gives the exact loss in every particle.
    pyrolite.clear_param_store()
    data = torch.randn(N)
    expected = -(_normal_lp(0.5, 0.0, 10.0) + sum(_normal_lp(y, 0.5, 1.0) for y in data))
    assert elbo.loss(_plate_model, _delta_guide, data) == pytest.approx(expected.item(), rel=1e-5)


def test_enumeration_dims_left_of_plates_are_still_accepted():
    # z is summed out; 'obs' depends on z, so its log-prob carries z's dim left of the plate.
    probs = torch.tensor([0.3, 0.7])
    locs = torch.tensor([-1.0, 2.0])
    data = torch.tensor([0.5, 1.5, -0.2])

    @config_enumerate
    def model():
        z = pyrolite.sample("z", dist.Categorical(probs))
        with pyrolite.plate("data", 3):
            pyrolite.sample("obs", dist.Normal(locs[z], 1.0), obs=data)

    expected = -math.log(
        sum(probs[k] * math.exp(sum(_normal_lp(y, locs[k], 1.0) for y in data)) for k in range(2))
    )
    for elbo in (
        TraceEnum_ELBO(max_plate_nesting=1),
        TraceEnum_ELBO(num_particles=2, vectorize_particles=True, max_plate_nesting=1),
    ):
        assert elbo.loss(model, lambda: None) == pytest.approx(expected, rel=1e-5)


def _site(log_prob_shape, **extra):
    frame = CondIndepStackFrame("data", -1, 5, 0, 5)
    site = {
        "name": "x",
        "fn": dist.Normal(torch.zeros(5), 1.0),
        "value": torch.zeros(3, 5),
        "is_observed": True,
        "unscaled_log_prob": torch.zeros(log_prob_shape),
        "cond_indep_stack": (frame,),
        "infer": {},
    }
    site.update(extra)
    return site


def test_check_site_shape_left_of_window_is_an_error_unless_enumeration_holds_it():
    with pytest.raises(ValueError, match=r"site 'x'.*\(3, 5\).*plate\('data', size=5\)"):
        check_site_shape(_site((3, 5)), max_plate_nesting=1)
    dims = EnumDims(-2)
    dims.allocate({"name": "z", "infer": {}})  # an enumerated site holds dim -2
    check_site_shape(_site((3, 5), _enum_dims=dims), max_plate_nesting=1)
    check_site_shape(_site((3, 5), infer={"_enumerate_dim": -2}), max_plate_nesting=1)
    with pytest.raises(ValueError, match=r"dim -3 \(size 4\)"):
        check_site_shape(_site((4, 3, 5), _enum_dims=dims), max_plate_nesting=1)
    check_site_shape(_site((1, 5)), max_plate_nesting=1)  # size-1 dims are harmless


# --- item 8: plate arguments -----------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"size": 2.5}, r"plate\('p'\): size must be an integer, got 2.5"),
        ({"size": 5, "subsample_size": 2.5}, r"plate\('p'\): subsample_size must be an integer"),
        ({"size": 5, "subsample_size": 0}, r"plate\('p', size=5\).*in 1\.\.5, got 0"),
        ({"size": 5, "subsample_size": -1}, r"plate\('p', size=5\).*in 1\.\.5, got -1"),
        ({"size": 5, "subsample_size": 7}, r"plate\('p', size=5\).*in 1\.\.5, got 7"),
        ({"subsample_size": 3}, r"plate\('p'\).*no size"),
        (
            {"size": 5, "subsample_size": 2, "subsample": torch.tensor([0, 1, 2])},
            r"plate\('p'\): subsample_size=2 does not match len\(subsample\)=3",
        ),
    ],
)
def test_bad_plate_arguments_raise_value_error_naming_the_plate(kwargs, expected):
    with pytest.raises(ValueError, match=expected):
        pyrolite.plate("p", **kwargs)


def test_plate_accepts_integral_sizes_of_any_type():
    for size in (4, 4.0, torch.tensor(4)):
        with pyrolite.plate("p", size, subsample_size=torch.tensor(2)) as idx:
            assert idx.shape == (2,)
    with pyrolite.plate("p", 5, subsample_size=5) as idx:
        assert idx.tolist() == [0, 1, 2, 3, 4]


def test_nested_plates_with_the_same_name_raise():
    with pytest.raises(ValueError, match=r"duplicate plate 'p'.*distinct names"):
        with pyrolite.plate("p", 3):
            with pyrolite.plate("p", 4):
                pass
    # The failed plate left no dim behind: the same names work again, one after the other.
    with pyrolite.plate("p", 3):
        with pyrolite.plate("q", 4):
            x = pyrolite.sample("x", dist.Normal(0.0, 1.0))
    with pyrolite.plate("p", 3):
        y = pyrolite.sample("y", dist.Normal(0.0, 1.0))
    assert x.shape == (4, 3) and y.shape == (3,)


# --- item 9: messages that name the site -----------------------------------------------------


@pytest.mark.parametrize("fn", [None, torch.tensor(1.0)])
def test_sample_without_a_distribution_names_the_site(fn):
    match = r"sample\('z', \.\.\.\) needs a distribution.*dist\.Normal"
    with pytest.raises(TypeError, match=match):
        pyrolite.sample("z", fn)
    with pytest.raises(TypeError, match=match):
        poutine.trace(lambda: pyrolite.sample("z", fn)).get_trace()


def test_nan_factor_names_the_site():
    def model():
        a = pyrolite.param("a", torch.tensor([1.0, 2.0]))
        pyrolite.factor("f", a * torch.tensor([1.0, float("nan")]))

    pyrolite.clear_param_store()
    svi = SVI(model, lambda: None, Adam({"lr": 0.1}), Trace_ELBO())
    with pytest.raises(ValueError, match=r"factor\('f'\).*shape \(2,\).*1 NaN entries"):
        svi.step()
    assert pyrolite.param("a").tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match=r"factor\('g'\)"):
        pyrolite.factor("g", float("nan"))


def test_finite_factor_adds_to_the_log_joint():
    def model():
        pyrolite.factor("f", torch.tensor([1.5, -2.0]))

    tr = poutine.trace(model).get_trace()
    assert tr.log_prob_sum().item() == pytest.approx(-0.5)


def test_bool_observation_for_bernoulli_names_the_site_and_says_float():
    obs = torch.tensor([True, False, True])

    def model(obs):
        with pyrolite.plate("data", 3):
            pyrolite.sample("flip", dist.Bernoulli(0.25), obs=obs)

    with pytest.raises(TypeError, match=r"site 'flip'.*bool tensor \(shape \(3,\)\).*\.float\(\)"):
        poutine.trace(model).get_trace(obs)
    tr = poutine.trace(model).get_trace(obs.float())
    assert tr.log_prob_sum().item() == pytest.approx(2 * math.log(0.25) + math.log(0.75))


def test_observation_on_another_device_names_the_site_and_both_devices():
    # The meta device stands in for a GPU: a tensor there is on "another device" than CPU.
    loc = torch.zeros(2, device="meta")
    fn = dist.Normal(loc, torch.ones(2, device="meta"), validate_args=False)
    with pytest.raises(RuntimeError, match=r"site 'x'.*device cpu.*Normal are on device meta"):
        poutine.trace(lambda: pyrolite.sample("x", fn, obs=torch.zeros(2))).get_trace()
    # A CPU scalar observation mixes with any device, as in torch.
    poutine.trace(lambda: pyrolite.sample("y", fn, obs=torch.tensor(0.0))).get_trace()
