"""Where Pyro is installed, pyrolite's robust continuous families equal Pyro's: signatures,
constraints, log_prob on batched values, mean/variance, support, expand, sample moments and,
for the samplers that draw from the same random stream, rsample values and gradients."""

import inspect
import types

import pytest
import torch

from pyrolite.distributions import torch as torch_wrappers
from pyrolite.distributions.affine_beta import AffineBeta
from pyrolite.distributions.asymmetric_laplace import AsymmetricLaplace, SoftAsymmetricLaplace
from pyrolite.distributions.folded import FoldedDistribution
from pyrolite.distributions.logistic import Logistic, SkewLogistic
from pyrolite.distributions.multivariate_studentt import MultivariateStudentT
from pyrolite.distributions.ordered_logistic import OrderedLogistic
from pyrolite.distributions.soft_laplace import SoftLaplace

pyro_dist = pytest.importorskip("pyro.distributions")

mine = types.SimpleNamespace(
    AffineBeta=AffineBeta,
    AsymmetricLaplace=AsymmetricLaplace,
    SoftAsymmetricLaplace=SoftAsymmetricLaplace,
    FoldedDistribution=FoldedDistribution,
    Logistic=Logistic,
    SkewLogistic=SkewLogistic,
    MultivariateStudentT=MultivariateStudentT,
    OrderedLogistic=OrderedLogistic,
    SoftLaplace=SoftLaplace,
    InverseGamma=torch_wrappers.InverseGamma,
    Normal=torch_wrappers.Normal,
    StudentT=torch_wrappers.StudentT,
)

T = torch.tensor
L2 = T([[1.0, 0.0], [0.5, 2.0]])
L_BATCH = torch.stack([L2, T([[0.3, 0.0], [-1.0, 0.7]])])

# name -> (builder taking a module, values with batch dims to the left)
CASES = {
    "AsymmetricLaplace": (
        lambda m: m.AsymmetricLaplace(T([0.2, -1.0]), T([1.5, 0.3]), T([2.0, 0.5])),
        T([[-2.0, -0.5], [0.3, 1.7], [0.2, -1.0]]),
    ),
    "SoftAsymmetricLaplace": (
        lambda m: m.SoftAsymmetricLaplace(T([0.2, -1.0]), T([1.5, 0.3]), T([2.0, 0.5]), T(0.7)),
        T([[-2.0, -0.5], [0.3, 1.7], [30.0, -40.0]]),
    ),
    "SoftAsymmetricLaplaceDefaults": (
        lambda m: m.SoftAsymmetricLaplace(T([0.2, -1.0]), T([1.5, 0.3])),
        T([[-2.0, -0.5], [0.3, 1.7]]),
    ),
    "SoftLaplace": (
        lambda m: m.SoftLaplace(T([0.2, -1.0]), T([1.5, 0.3])),
        T([[-2.0, -0.5], [0.3, 1.7], [50.0, -60.0]]),
    ),
    "SkewLogistic": (
        lambda m: m.SkewLogistic(T([0.2, -1.0]), T([1.5, 0.3]), T([2.0, 0.4])),
        T([[-2.0, -0.5], [0.3, 1.7], [50.0, -60.0]]),
    ),
    "Logistic": (
        lambda m: m.Logistic(T([0.2, -1.0]), T([1.5, 0.3])),
        T([[-2.0, -0.5], [0.3, 1.7], [50.0, -60.0]]),
    ),
    "AffineBeta": (
        lambda m: m.AffineBeta(T([2.0, 0.7]), T([1.5, 3.0]), T([-1.0, 2.0]), T([4.0, 0.5])),
        T([[0.5, 2.1], [2.9, 2.45]]),
    ),
    "FoldedDistribution": (
        lambda m: m.FoldedDistribution(m.Normal(T([0.5, -1.0]), T([1.0, 2.0]))),
        T([[0.3, 2.0], [4.0, 0.01]]),
    ),
    "OrderedLogistic": (
        lambda m: m.OrderedLogistic(T([0.5, -1.0, 2.0]), T([-1.0, 0.0, 1.5])),
        T([[0, 3, 2], [1, 1, 0]]),
    ),
    "OrderedLogisticBatchedCutpoints": (
        lambda m: m.OrderedLogistic(T([[0.5], [-1.0]]), T([[-1.0, 0.0], [0.5, 1.5]])),
        T([[0, 2], [1, 1]]),
    ),
    "MultivariateStudentT": (
        lambda m: m.MultivariateStudentT(T([4.0, 2.5]), T([1.0, -1.0]), L2),
        T([[[0.0, 0.0]], [[1.0, 2.0]], [[-5.0, 30.0]]]),
    ),
    "MultivariateStudentTBatchedTril": (
        lambda m: m.MultivariateStudentT(T(3.0), T([1.0, -1.0]), L_BATCH),
        T([[[0.0, 0.0], [1.0, 2.0]], [[-5.0, 30.0], [0.1, 0.1]]]),
    ),
    "InverseGamma": (
        lambda m: m.InverseGamma(T([3.0, 5.0]), T([2.0, 0.5])),
        T([[0.3, 2.0], [4.0, 0.01]]),
    ),
}
CLASSES = sorted({type(build(mine)).__name__ for build, _ in CASES.values()})


def _pair(name):
    build, value = CASES[name]
    return build(mine), build(pyro_dist), value


@pytest.mark.parametrize("name", CLASSES)
def test_signature_and_declared_attributes_match_pyro(name):
    ours, theirs = getattr(mine, name), getattr(pyro_dist, name)
    our_params = list(inspect.signature(ours.__init__).parameters.values())
    their_params = list(inspect.signature(theirs.__init__).parameters.values())
    assert [(p.name, p.kind, p.default) for p in our_params] == [
        (p.name, p.kind, p.default) for p in their_params
    ]
    assert {k: repr(v) for k, v in ours.arg_constraints.items()} == {
        k: repr(v) for k, v in theirs.arg_constraints.items()
    }
    assert ours.has_enumerate_support == theirs.has_enumerate_support


@pytest.mark.parametrize("name", list(CASES))
def test_log_prob_matches_pyro(name):
    d, p, value = _pair(name)
    assert d.batch_shape == p.batch_shape and d.event_shape == p.event_shape
    assert d.has_rsample == p.has_rsample
    expected = p.log_prob(value)
    actual = d.log_prob(value)
    assert actual.shape == expected.shape
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(CASES))
def test_mean_variance_match_pyro_where_pyro_has_them(name):
    d, p, _ = _pair(name)
    for moment in ("mean", "variance"):
        try:
            expected = getattr(p, moment)
        except NotImplementedError:
            continue
        torch.testing.assert_close(getattr(d, moment), expected, equal_nan=True)


@pytest.mark.parametrize("name", list(CASES))
def test_support_agrees_with_pyro(name):
    d, p, value = _pair(name)
    assert d.support.is_discrete == p.support.is_discrete
    assert d.support.event_dim == p.support.event_dim
    probes = torch.stack([value, value + 0.5, -value - 1, value * 3])
    torch.testing.assert_close(d.support.check(probes), p.support.check(probes))


@pytest.mark.parametrize("name", list(CASES))
def test_expand_matches_pyro(name):
    d, p, value = _pair(name)
    batch_shape = (4,) + tuple(d.batch_shape)
    de = d.expand(batch_shape)
    assert type(de) is type(d) and de.batch_shape == batch_shape
    assert de.sample((3,)).shape == (3,) + batch_shape + d.event_shape
    torch.testing.assert_close(de.log_prob(value[:1]), d.log_prob(value[:1]).expand(batch_shape))
    if name.startswith("SoftAsymmetricLaplace"):
        return  # Pyro 1.9's own expand of this class raises NotImplementedError
    pe = p.expand(batch_shape)
    assert de.batch_shape == pe.batch_shape and de.event_shape == pe.event_shape
    torch.testing.assert_close(de.log_prob(value[:1]), pe.log_prob(value[:1]))


# Pyro declares no moments for these; the analytic suite checks their samples.
NO_PYRO_MOMENTS = {"SkewLogistic", "FoldedDistribution"}


@pytest.mark.parametrize("name", [n for n in CASES if n not in NO_PYRO_MOMENTS])
def test_sample_mean_within_five_standard_errors_of_pyro_mean(name):
    d, p, _ = _pair(name)
    mean, variance = p.mean, p.variance
    finite = torch.isfinite(variance)  # a mean of heavy-tailed draws has no standard error
    n = 20000
    samples = d.sample((n,))
    assert d.support.check(samples).all()
    standard_error = (variance / n).sqrt()
    close = (samples.float().mean(0) - mean).abs() <= 5 * standard_error
    assert close[finite].all()


# name -> (builder from a module and the differentiated parameters, their values)
RSAMPLE_CASES = {
    "AsymmetricLaplace": (
        lambda m, loc, scale, asym: m.AsymmetricLaplace(loc, scale, asym),
        [[0.2, -1.0], [1.5, 0.3], [2.0, 0.5]],
    ),
    "SoftAsymmetricLaplace": (
        lambda m, loc, scale, asym, soft: m.SoftAsymmetricLaplace(loc, scale, asym, soft),
        [[0.2, -1.0], [1.5, 0.3], [2.0, 0.5], [0.7, 1.2]],
    ),
    "SoftLaplace": (lambda m, loc, scale: m.SoftLaplace(loc, scale), [[0.2, -1.0], [1.5, 0.3]]),
    "SkewLogistic": (
        lambda m, loc, scale, asym: m.SkewLogistic(loc, scale, asym),
        [[0.2, -1.0], [1.5, 0.3], [2.0, 0.4]],
    ),
    "Logistic": (lambda m, loc, scale: m.Logistic(loc, scale), [[0.2, -1.0], [1.5, 0.3]]),
    "FoldedDistribution": (
        lambda m, loc, scale: m.FoldedDistribution(m.Normal(loc, scale)),
        [[0.5, -1.0], [1.0, 2.0]],
    ),
    "MultivariateStudentT": (
        lambda m, df, loc, tril: m.MultivariateStudentT(df, loc, tril),
        [[4.0, 2.5], [1.0, -1.0], L2.tolist()],
    ),
}


@pytest.mark.parametrize("name", list(RSAMPLE_CASES))
def test_rsample_values_and_gradients_match_pyro_at_the_same_seed(name):
    """These samplers draw the same random numbers the same way as Pyro's, so values and
    pathwise gradients of every parameter agree draw for draw."""
    build, values = RSAMPLE_CASES[name]
    results = []
    for m in (mine, pyro_dist):
        params = [T(v, requires_grad=True) for v in values]
        torch.manual_seed(1)
        x = build(m, *params).rsample((5,))
        grads = torch.autograd.grad(x.pow(2).sum(), params)
        results.append((x.detach(), grads))
    (x_ours, g_ours), (x_pyro, g_pyro) = results
    torch.testing.assert_close(x_ours, x_pyro)
    for a, b in zip(g_ours, g_pyro):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("expand", [True, False])
def test_ordered_logistic_enumerate_support_matches_pyro(expand):
    d, p, _ = _pair("OrderedLogistic")
    torch.testing.assert_close(d.enumerate_support(expand), p.enumerate_support(expand))
    torch.testing.assert_close(d.probs, p.probs)


@pytest.mark.parametrize(
    "build",
    [
        lambda m: m.AsymmetricLaplace(T(0.0), T(-1.0), T(1.0), validate_args=True),
        lambda m: m.SoftAsymmetricLaplace(T(0.0), T(1.0), softness=T(0.0), validate_args=True),
        lambda m: m.SoftLaplace(T(0.0), T(0.0), validate_args=True),
        lambda m: m.SkewLogistic(T(0.0), T(1.0), T(-2.0), validate_args=True),
        lambda m: m.Logistic(T(0.0), T(-1.0), validate_args=True),
        lambda m: m.AffineBeta(T(1.0), T(1.0), T(0.0), T(-2.0), validate_args=True),
        lambda m: m.OrderedLogistic(T(0.0), T([1.0, 0.0]), validate_args=True),
        lambda m: m.MultivariateStudentT(T(-1.0), torch.zeros(2), L2, validate_args=True),
    ],
)
def test_bad_parameters_raise_value_error_like_pyro(build):
    for m in (mine, pyro_dist):
        with pytest.raises(ValueError, match="Expected parameter"):
            build(m)


def test_multivariate_studentt_validates_scale_tril_which_pyro_skips():
    with pytest.raises(ValueError, match="scale_tril"):
        MultivariateStudentT(T(3.0), torch.zeros(2), -L2, validate_args=True)
    # Pyro's scale_tril is lazy, so its validation never sees it: nan instead of an error.
    bad = pyro_dist.MultivariateStudentT(T(3.0), torch.zeros(2), -L2, validate_args=True)
    assert bad.log_prob(torch.zeros(2)).isnan()


def test_folding_a_multivariate_base_raises_like_pyro():
    for m in (mine, pyro_dist):
        with pytest.raises(ValueError, match="univariate"):
            m.FoldedDistribution(m.Normal(torch.zeros(2), 1.0).to_event(1))


def test_infer_shapes_match_pyro():
    for name, kwargs in [
        ("AffineBeta", dict(concentration1=(2,), concentration0=(), loc=(3, 1), scale=())),
        ("MultivariateStudentT", dict(df=(5,), loc=(2,), scale_tril=(4, 1, 2, 2))),
    ]:
        ours = getattr(mine, name).infer_shapes(**kwargs)
        theirs = getattr(pyro_dist, name).infer_shapes(**kwargs)
        assert tuple(map(tuple, ours)) == tuple(map(tuple, theirs))
