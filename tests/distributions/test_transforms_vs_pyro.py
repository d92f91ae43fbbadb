"""pyrolite's transforms, added constraints and DenseNN against Pyro 1.9 (the oracle): with
weights copied by ``state_dict``, the same outputs, log-Jacobians and inverses."""

import importlib
import warnings

import pytest
import torch

pyro_dist = pytest.importorskip("pyro.distributions")
import pyro.distributions.constraints as pyro_constraints  # noqa: E402
import pyro.distributions.transforms as PT  # noqa: E402
import pyro.nn as pyro_nn  # noqa: E402
from torch.distributions import biject_to, transform_to  # noqa: E402

import pyrolite.distributions.transforms.registrations  # noqa: E402, F401
from pyrolite.distributions import constraints  # noqa: E402


def _transform_module(name):
    return importlib.import_module(f"pyrolite.distributions.transforms.{name}")


# By module path: several modules share their name with the helper they define
# (``planar``), which is what ``pyrolite.distributions.transforms.planar`` is, as in Pyro.
basic = _transform_module("basic")
batchnorm = _transform_module("batchnorm")
cholesky = _transform_module("cholesky")
discrete_cosine = _transform_module("discrete_cosine")
generalized_channel_permute = _transform_module("generalized_channel_permute")
haar = _transform_module("haar")
householder = _transform_module("householder")
lower_cholesky_affine = _transform_module("lower_cholesky_affine")
matrix_exponential = _transform_module("matrix_exponential")
normalize = _transform_module("normalize")
permute = _transform_module("permute")
planar = _transform_module("planar")
power = _transform_module("power")
radial = _transform_module("radial")
simplex_to_ordered = _transform_module("simplex_to_ordered")
sylvester = _transform_module("sylvester")
utils = _transform_module("utils")
from pyrolite.nn import dense_nn  # noqa: E402

D, CONTEXT = 4, 3


def _copy(ours, theirs, scale=0.5):
    with torch.no_grad():
        for p in theirs.parameters():
            p.copy_(torch.randn_like(p) * scale)
    result = ours.load_state_dict(theirs.state_dict())
    assert not result.missing_keys and not result.unexpected_keys
    assert list(ours.state_dict()) == list(theirs.state_dict())
    return ours, theirs


def _assert_same(ours, theirs, x, invertible=True, atol=1e-10, same_codomain=True):
    y_ours, y_theirs = ours(x), theirs(x)
    assert torch.allclose(y_ours, y_theirs, atol=atol)
    l_ours = ours.log_abs_det_jacobian(x, y_ours)
    l_theirs = theirs.log_abs_det_jacobian(x, y_theirs)
    assert l_ours.shape == l_theirs.shape
    assert torch.allclose(l_ours, l_theirs, atol=atol)
    if invertible:
        assert torch.allclose(ours.inv(y_theirs.clone()), theirs.inv(y_theirs.clone()), atol=atol)
    assert repr(ours.domain) == repr(theirs.domain)
    if same_codomain:
        assert repr(ours.codomain) == repr(theirs.codomain)
    assert ours.bijective == theirs.bijective
    assert ours.domain.event_dim == theirs.domain.event_dim
    assert ours.codomain.event_dim == theirs.codomain.event_dim


FLOWS = {
    "planar": (planar.planar, PT.planar, (D,), False),
    "radial": (radial.radial, PT.radial, (D,), False),
    "householder": (householder.householder, PT.householder, (D,), True),
    "householder_2": (
        lambda d: householder.Householder(d, 2),
        lambda d: PT.Householder(d, 2),
        (D,),
        True,
    ),
    "matrix_exponential": (
        lambda d: matrix_exponential.matrix_exponential(d, iterations=5),
        lambda d: PT.matrix_exponential(d, iterations=5),
        (D,),
        True,
    ),
}


@pytest.mark.parametrize("name", FLOWS)
def test_flow_matches_pyro_with_copied_weights(name):
    make_ours, make_theirs, _, invertible = FLOWS[name]
    ours, theirs = _copy(make_ours(D).double(), make_theirs(D).double())
    for shape in [(D,), (7, D), (2, 3, D)]:
        _assert_same(ours, theirs, torch.randn(shape, dtype=torch.float64), invertible)


CONDITIONAL = {
    "planar": (planar.conditional_planar, PT.conditional_planar, {}, False),
    "radial": (radial.conditional_radial, PT.conditional_radial, {"hidden_dims": [6]}, False),
    "householder": (
        householder.conditional_householder,
        PT.conditional_householder,
        {"count_transforms": 2},
        True,
    ),
    "matrix_exponential": (
        matrix_exponential.conditional_matrix_exponential,
        PT.conditional_matrix_exponential,
        {},
        True,
    ),
}


@pytest.mark.parametrize("name", CONDITIONAL)
def test_conditional_flow_matches_pyro_with_copied_weights(name):
    make_ours, make_theirs, kwargs, invertible = CONDITIONAL[name]
    ours, theirs = _copy(
        make_ours(D, CONTEXT, **kwargs).double(), make_theirs(D, CONTEXT, **kwargs).double(), 0.2
    )
    for c_shape, x_shape in [((CONTEXT,), (5, D)), ((5, CONTEXT), (5, D))]:
        c = torch.randn(c_shape, dtype=torch.float64)
        x = torch.randn(x_shape, dtype=torch.float64)
        _assert_same(ours.condition(c), theirs.condition(c), x, invertible)


def test_generalized_channel_permute_matches_pyro():
    ours, theirs = _copy(
        generalized_channel_permute.GeneralizedChannelPermute(3).double(),
        PT.GeneralizedChannelPermute(3).double(),
    )
    for shape in [(3, 4, 5), (2, 3, 4, 4)]:
        _assert_same(ours, theirs, torch.randn(shape, dtype=torch.float64))
    ours, theirs = _copy(
        generalized_channel_permute.conditional_generalized_channel_permute(CONTEXT, 3).double(),
        PT.conditional_generalized_channel_permute(CONTEXT, 3).double(),
        0.2,
    )
    c = torch.randn(CONTEXT, dtype=torch.float64)
    _assert_same(
        ours.condition(c), theirs.condition(c), torch.randn(2, 3, 4, 4, dtype=torch.float64)
    )


def test_generalized_channel_permute_initialization_matches_pyro_at_same_seed():
    torch.manual_seed(3)
    theirs = PT.GeneralizedChannelPermute(4)
    torch.manual_seed(3)
    ours = generalized_channel_permute.GeneralizedChannelPermute(4)
    assert torch.equal(ours.LU, theirs.LU) and torch.equal(ours.permutation, theirs.permutation)
    perm = torch.tensor([2, 0, 1])
    assert torch.equal(
        generalized_channel_permute.GeneralizedChannelPermute(3, perm).permutation,
        PT.GeneralizedChannelPermute(3, perm).permutation,
    )


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_matches_pyro_in_train_and_eval(training):
    ours, theirs = _copy(
        batchnorm.batchnorm(3, momentum=0.3).double(), PT.batchnorm(3, momentum=0.3).double()
    )
    ours.train(training)
    theirs.train(training)
    for _ in range(2):
        y = torch.randn(8, 3, dtype=torch.float64) * 2 + 1
        x_ours, x_theirs = ours.inv(y), theirs.inv(y)
        assert torch.allclose(x_ours, x_theirs, atol=1e-12)
        assert torch.allclose(ours.moving_mean, theirs.moving_mean)
        assert torch.allclose(ours.moving_variance, theirs.moving_variance)
        l_ours, l_theirs = (
            ours.log_abs_det_jacobian(x_ours, y),
            theirs.log_abs_det_jacobian(x_theirs, y),
        )
        assert l_ours.shape == l_theirs.shape and torch.allclose(l_ours, l_theirs)
        x = torch.randn(8, 3, dtype=torch.float64)
        assert torch.allclose(ours(x), theirs(x), rtol=1e-10)


@pytest.mark.parametrize(
    "ours, theirs, shape",
    [
        (basic.ELUTransform(), PT.ELUTransform(), (5, 3)),
        (basic.LeakyReLUTransform(), PT.LeakyReLUTransform(), (5, 3)),
        (
            power.PositivePowerTransform(torch.tensor(2.5)),
            PT.PositivePowerTransform(torch.tensor(2.5)),
            (5, 3),
        ),
        (power.PositivePowerTransform(0.4), PT.PositivePowerTransform(0.4), (5, 3)),
        (permute.Permute(torch.tensor([2, 0, 1])), PT.Permute(torch.tensor([2, 0, 1])), (5, 3)),
        (
            permute.Permute(torch.tensor([1, 2, 0]), dim=-2),
            PT.Permute(torch.tensor([1, 2, 0]), dim=-2),
            (5, 3, 2),
        ),
        (discrete_cosine.DiscreteCosineTransform(), PT.DiscreteCosineTransform(), (5, 6)),
        (
            discrete_cosine.DiscreteCosineTransform(dim=-2, smooth=1.5),
            PT.DiscreteCosineTransform(dim=-2, smooth=1.5),
            (2, 7, 3),
        ),
        (haar.HaarTransform(), PT.HaarTransform(), (5, 7)),
        (haar.HaarTransform(dim=-2, flip=True), PT.HaarTransform(dim=-2, flip=True), (2, 6, 3)),
    ],
    ids=[
        "elu",
        "leaky_relu",
        "power",
        "power_float",
        "permute",
        "permute_dim2",
        "dct",
        "dct_smooth",
        "haar",
        "haar_flip",
    ],
)
def test_fixed_transform_matches_pyro(ours, theirs, shape):
    # ELU's codomain differs on purpose (see the next test).
    same_codomain = not isinstance(ours, basic.ELUTransform)
    _assert_same(ours, theirs, torch.randn(shape, dtype=torch.float64), same_codomain=same_codomain)


def test_elu_domain_matches_pyro_and_codomain_is_its_true_range():
    # A deliberate difference: Pyro 1.9 declares ELU's codomain `positive`.
    assert repr(basic.ELUTransform().domain) == repr(PT.ELUTransform().domain)
    assert basic.ELUTransform().codomain.lower_bound == -1.0
    assert PT.ELUTransform().codomain.lower_bound == 0.0


def test_lower_cholesky_affine_matches_pyro():
    loc = torch.randn(D, dtype=torch.float64)
    L = torch.randn(D, D, dtype=torch.float64).tril(-1) + torch.diag(
        torch.rand(D, dtype=torch.float64) + 0.5
    )
    for shape in [(D,), (6, D)]:
        _assert_same(
            lower_cholesky_affine.LowerCholeskyAffine(loc, L),
            PT.LowerCholeskyAffine(loc, L),
            torch.randn(shape, dtype=torch.float64),
        )


def test_cholesky_transforms_match_pyro():
    A = torch.randn(3, 4, 4, dtype=torch.float64)
    P = A @ A.mT + torch.eye(4, dtype=torch.float64)
    _assert_same(cholesky.CholeskyTransform(), PT.CholeskyTransform(), P)
    C = P / (
        P.diagonal(dim1=-2, dim2=-1).sqrt().unsqueeze(-1)
        * P.diagonal(dim1=-2, dim2=-1).sqrt().unsqueeze(-2)
    )
    _assert_same(cholesky.CorrMatrixCholeskyTransform(), PT.CorrMatrixCholeskyTransform(), C)
    X = torch.randn(3, 4, 4, dtype=torch.float64)
    ours, theirs = cholesky.SoftplusLowerCholeskyTransform(), PT.SoftplusLowerCholeskyTransform()
    assert torch.allclose(ours(X), theirs(X)) and torch.allclose(
        ours.inv(ours(X)), theirs.inv(theirs(X))
    )
    assert repr(ours.codomain) == repr(theirs.codomain) and ours.bijective == theirs.bijective
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        v = torch.randn(2, 6, dtype=torch.float64)
        _assert_same(cholesky.CorrLCholeskyTransform(), PT.CorrLCholeskyTransform(), v)


def test_normalize_matches_pyro():
    x = torch.randn(5, 3)
    x[0] = 0.0
    for p in (1, 2, 3):
        ours, theirs = normalize.Normalize(p), PT.Normalize(p)
        assert torch.allclose(ours(x), theirs(x)) and torch.equal(ours.inv(x), theirs.inv(x))
        assert ours.bijective == theirs.bijective and ours.event_dim == theirs.event_dim


def test_simplex_to_ordered_matches_pyro():
    p = torch.distributions.Dirichlet(torch.ones(5, dtype=torch.float64)).sample((6,))
    _assert_same(
        simplex_to_ordered.SimplexToOrderedTransform(),
        PT.SimplexToOrderedTransform(),
        p,
        invertible=True,
    )
    anchor = torch.tensor(1.3, dtype=torch.float64)
    ours, theirs = (
        simplex_to_ordered.SimplexToOrderedTransform(anchor),
        PT.SimplexToOrderedTransform(anchor),
    )
    y = ours(p)
    assert torch.allclose(y, theirs(p)) and torch.allclose(ours.inv(y), theirs.inv(y))
    assert ours.forward_shape((6, 5)) == theirs.forward_shape((6, 5))
    assert ours.inverse_shape((6, 4)) == theirs.inverse_shape((6, 4))


def test_helper_constructors_give_pyros_parameter_shapes():
    pairs = [
        (planar.planar(5), PT.planar(5)),
        (planar.conditional_planar(5, 2), PT.conditional_planar(5, 2)),
        (radial.radial(5), PT.radial(5)),
        (radial.conditional_radial(5, 2, [7]), PT.conditional_radial(5, 2, [7])),
        (householder.householder(5), PT.householder(5)),
        (householder.householder(5, 2), PT.householder(5, 2)),
        (householder.conditional_householder(5, 2), PT.conditional_householder(5, 2)),
        (sylvester.sylvester(5), PT.sylvester(5)),
        (sylvester.sylvester(5, 2), PT.sylvester(5, 2)),
        (matrix_exponential.matrix_exponential(5), PT.matrix_exponential(5)),
        (
            matrix_exponential.conditional_matrix_exponential(5, 2),
            PT.conditional_matrix_exponential(5, 2),
        ),
        (
            generalized_channel_permute.generalized_channel_permute(channels=4),
            PT.generalized_channel_permute(channels=4),
        ),
        (
            generalized_channel_permute.conditional_generalized_channel_permute(2, 4),
            PT.conditional_generalized_channel_permute(2, 4),
        ),
        (batchnorm.batchnorm(5), PT.batchnorm(5)),
        (utils.iterated(2, planar.planar, 3), PT.iterated(2, PT.planar, 3)),
    ]
    for ours, theirs in pairs:
        shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
        assert shapes == {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    for attr in ("iterations", "normalization", "bound"):
        assert getattr(matrix_exponential.matrix_exponential(3), attr) == getattr(
            PT.matrix_exponential(3), attr
        )
    assert permute.permute(4).permutation.shape == PT.permute(4).permutation.shape
    torch.manual_seed(1)
    theirs = PT.permute(6).permutation
    torch.manual_seed(1)
    assert torch.equal(permute.permute(6).permutation, theirs)


def test_dense_nn_matches_pyro_with_copied_weights():
    x = torch.randn(2, 5, 3)
    for param_dims in ([1, 1], [2], [3, 1, 2], [0, 2]):
        ours, theirs = _copy(
            dense_nn.DenseNN(3, [4, 6], param_dims), pyro_nn.DenseNN(3, [4, 6], param_dims)
        )
        o, t = ours(x), theirs(x)
        o, t = ([o], [t]) if torch.is_tensor(t) else (o, t)
        assert type(o) is type(t) and all(torch.equal(a, b) for a, b in zip(o, t))
        ours, theirs = _copy(
            dense_nn.ConditionalDenseNN(3, 2, [4], param_dims, torch.nn.Tanh()),
            pyro_nn.ConditionalDenseNN(3, 2, [4], param_dims, torch.nn.Tanh()),
        )
        c = torch.randn(2)
        o, t = ours(x, c), theirs(x, c)
        o, t = ([o], [t]) if torch.is_tensor(t) else (o, t)
        assert all(torch.equal(a, b) for a, b in zip(o, t))


def test_biject_to_and_transform_to_match_pyro_for_new_constraints():
    pairs = [
        (constraints.corr_cholesky_constraint, pyro_constraints.corr_cholesky_constraint),
        (constraints.corr_matrix, pyro_constraints.corr_matrix),
        (constraints.softplus_lower_cholesky, pyro_constraints.softplus_lower_cholesky),
        (constraints.sphere, pyro_constraints.sphere),
        (constraints.integer, pyro_constraints.integer),
    ]
    for ours, theirs in pairs:
        for registry in (biject_to, transform_to):
            try:
                expected = registry(theirs)
            except NotImplementedError:
                with pytest.raises(NotImplementedError):
                    registry(ours)
                continue
            got = registry(ours)
            assert [type(p).__name__ for p in getattr(got, "parts", [got])] == [
                type(p).__name__ for p in getattr(expected, "parts", [expected])
            ]
    v = torch.randn(4, 6, dtype=torch.float64)
    assert torch.allclose(
        biject_to(constraints.corr_matrix)(v), biject_to(pyro_constraints.corr_matrix)(v)
    )
    C = biject_to(constraints.corr_matrix)(v)
    ladj = biject_to(constraints.corr_matrix).log_abs_det_jacobian(v, C)
    assert torch.allclose(ladj, biject_to(pyro_constraints.corr_matrix).log_abs_det_jacobian(v, C))


def test_constraint_checks_agree_with_pyro():
    eps32 = torch.finfo(torch.float32).eps
    samples = {
        "integer": torch.tensor([0.0, 1.0, -3.0, 0.5, float("inf"), float("nan"), 1e10]),
        "sphere": torch.cat(
            [
                torch.nn.functional.normalize(torch.randn(20, 3), dim=-1),
                torch.randn(5, 3),
                torch.tensor([[1 + 5 * eps32, 0.0, 0.0], [1 + 30 * eps32, 0.0, 0.0]]),
            ]
        ),
        "corr_matrix": torch.stack(
            [
                torch.tensor([[1.0, 0.3], [0.3, 1.0]]),
                torch.tensor([[1.0, 0.3], [0.2, 1.0]]),
                torch.tensor([[1.0, 1.5], [1.5, 1.0]]),
                torch.tensor([[1.0001, 0.0], [0.0, 1.0]]),
                torch.tensor([[1.000001, 0.0], [0.0, 1.0]]),
                torch.tensor([[1.0, 1.0], [1.0, 1.0]]),
            ]
        ),
        "softplus_lower_cholesky": torch.stack(
            [
                torch.tensor([[1.0, 0.0], [2.0, 3.0]]),
                torch.tensor([[1.0, 0.1], [2.0, 3.0]]),
                torch.tensor([[1.0, 0.0], [2.0, -3.0]]),
            ]
        ),
    }
    for name, value in samples.items():
        ours, theirs = getattr(constraints, name), getattr(pyro_constraints, name)
        assert torch.equal(ours.check(value), theirs.check(value)), name
        assert ours.event_dim == theirs.event_dim and ours.is_discrete == theirs.is_discrete
    C = biject_to(constraints.corr_matrix)(torch.randn(10, 6))
    assert torch.equal(constraints.corr_matrix.check(C), pyro_constraints.corr_matrix.check(C))


@pytest.mark.parametrize("name", ["planar", "radial", "matrix_exponential"])
def test_transformed_distribution_samples_and_log_probs_match_pyro(name):
    make_ours, make_theirs, _, _ = FLOWS[name]
    ours, theirs = _copy(make_ours(D), make_theirs(D), 0.3)
    base = pyro_dist.Normal(torch.zeros(D), torch.ones(D)).to_event(1)
    d_ours = torch.distributions.TransformedDistribution(base, [ours])
    d_theirs = pyro_dist.TransformedDistribution(base, [theirs])
    torch.manual_seed(1)
    s_ours = d_ours.rsample((50,))
    torch.manual_seed(1)
    s_theirs = d_theirs.rsample((50,))
    assert torch.allclose(s_ours, s_theirs, atol=1e-6)
    lp_ours, lp_theirs = d_ours.log_prob(s_ours), d_theirs.log_prob(s_theirs)
    assert lp_ours.shape == (50,) and torch.allclose(lp_ours, lp_theirs, atol=1e-5)
