"""Pyro's non-autoregressive transforms, the constraints Pyro adds and DenseNN, checked
without Pyro: log-Jacobians against autograd Jacobians (float64), inverses, codomains."""

import math
import warnings

import pytest
import torch
from torch.autograd.functional import jacobian
from torch.distributions import biject_to, transform_to

import pyrolite.distributions.transforms.registrations  # noqa: F401  (registers bijections)
from pyrolite.distributions import constraints
from pyrolite.distributions.transforms.basic import (
    ELUTransform,
    LeakyReLUTransform,
    elu,
    leaky_relu,
)
from pyrolite.distributions.transforms.batchnorm import BatchNorm, batchnorm
from pyrolite.distributions.transforms.cholesky import (
    CholeskyTransform,
    CorrLCholeskyTransform,
    CorrMatrixCholeskyTransform,
    SoftplusLowerCholeskyTransform,
)
from pyrolite.distributions.transforms.discrete_cosine import DiscreteCosineTransform
from pyrolite.distributions.transforms.generalized_channel_permute import (
    GeneralizedChannelPermute,
    conditional_generalized_channel_permute,
    generalized_channel_permute,
)
from pyrolite.distributions.transforms.haar import HaarTransform
from pyrolite.distributions.transforms.householder import (
    Householder,
    conditional_householder,
    householder,
)
from pyrolite.distributions.transforms.lower_cholesky_affine import LowerCholeskyAffine
from pyrolite.distributions.transforms.matrix_exponential import (
    MatrixExponential,
    conditional_matrix_exponential,
    matrix_exponential,
)
from pyrolite.distributions.transforms.module import ComposeTransformModule
from pyrolite.distributions.transforms.normalize import Normalize
from pyrolite.distributions.transforms.permute import Permute, permute
from pyrolite.distributions.transforms.planar import Planar, conditional_planar, planar
from pyrolite.distributions.transforms.power import PositivePowerTransform
from pyrolite.distributions.transforms.radial import Radial, conditional_radial, radial
from pyrolite.distributions.transforms.simplex_to_ordered import SimplexToOrderedTransform
from pyrolite.distributions.transforms.sylvester import Sylvester, sylvester
from pyrolite.distributions.transforms.utils import iterated
from pyrolite.nn.dense_nn import ConditionalDenseNN, DenseNN

D = 4
CONTEXT = 3


def _randomize(module, scale=0.5):
    # Default initializations are near the identity; move away so the checks bite.
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * scale)
    return module


def _vector_flows():
    """(name, transform on R^D in float64, invertible in closed form)."""
    c = torch.randn(CONTEXT, dtype=torch.float64)
    return [
        ("planar", _randomize(planar(D).double()), False),
        (
            "conditional_planar",
            _randomize(conditional_planar(D, CONTEXT).double()).condition(c),
            False,
        ),
        ("radial", _randomize(radial(D).double()), False),
        (
            "conditional_radial",
            _randomize(conditional_radial(D, CONTEXT).double()).condition(c),
            False,
        ),
        ("householder", _randomize(householder(D).double()), True),
        (
            "conditional_householder",
            _randomize(conditional_householder(D, CONTEXT, count_transforms=2).double()).condition(
                c
            ),
            True,
        ),
        ("matrix_exponential", _randomize(matrix_exponential(D).double(), 0.3), True),
        (
            "conditional_matrix_exponential",
            _randomize(conditional_matrix_exponential(D, CONTEXT).double(), 0.1).condition(c),
            True,
        ),
        ("permute", permute(D, torch.tensor([2, 0, 3, 1])), True),
        ("dct", DiscreteCosineTransform(), True),
        ("dct_smooth", DiscreteCosineTransform(smooth=1.5), True),
        ("haar", HaarTransform(), True),
        ("haar_flip", HaarTransform(flip=True), True),
        (
            "lower_cholesky_affine",
            LowerCholeskyAffine(
                torch.randn(D, dtype=torch.float64),
                torch.randn(D, D, dtype=torch.float64).tril(-1)
                + torch.diag(torch.rand(D, dtype=torch.float64) + 0.5),
            ),
            True,
        ),
    ]


@pytest.mark.parametrize("index", range(len(_vector_flows())), ids=[n for n, *_ in _vector_flows()])
def test_vector_flow_log_abs_det_jacobian_equals_autograd(index):
    name, t, invertible = _vector_flows()[index]
    x = torch.randn(3, D, dtype=torch.float64)
    y = t(x)
    assert y.shape == x.shape and t.codomain.check(y).all()
    ladj = t.log_abs_det_jacobian(x, y)
    for i in range(3):
        J = jacobian(lambda v: t(v), x[i])
        expected = torch.linalg.slogdet(J).logabsdet
        got = ladj if ladj.dim() == 0 else ladj[i]
        # The matrix exponential is a truncated series; its exact det is exp(trace) only up
        # to the truncation error (~|W|^9 / 9!).
        tol = 1e-6 if "matrix_exponential" in name else 1e-10
        assert abs(float(got) - float(expected)) < tol, name
    if invertible:
        assert torch.allclose(t.inv(y.clone()), x, atol=1e-10)


@pytest.mark.parametrize("make", [planar, radial, lambda d: Sylvester(d, 2)])
def test_flows_without_closed_form_inverse_invert_only_their_cached_output(make):
    t = make(D)
    x = torch.randn(5, D)
    y = t(x)
    assert t.inv(y) is x
    with pytest.raises(KeyError, match="no closed-form inverse"):
        t.inv(y.clone())


def test_sylvester_log_det_matches_autograd_for_general_weights():
    # The paper's form x + tanh(x Q S^T + b) R^T Q^T has det prod(1 + R_ii S_ii tanh'(.)):
    # exact for any reflections and dense triangles (Pyro's variant of the map is not).
    t = _randomize(Sylvester(D, 3).double())
    Q = t.Q(torch.zeros(1, dtype=torch.float64))
    assert torch.allclose(Q @ Q.T, torch.eye(D, dtype=torch.float64), atol=1e-12)
    assert torch.equal(t.R().tril(-1), torch.zeros(D, D, dtype=torch.float64))
    for x in torch.randn(4, D, dtype=torch.float64):
        J = jacobian(lambda v: t(v), x)
        got = float(t.log_abs_det_jacobian(x, t(x)))
        assert abs(got - float(torch.slogdet(J).logabsdet)) < 1e-7


def test_batched_context_gives_batched_flows():
    x = torch.randn(5, D)
    c = torch.randn(5, CONTEXT)
    for flow in [
        conditional_planar(D, CONTEXT),
        conditional_radial(D, CONTEXT),
        conditional_householder(D, CONTEXT, count_transforms=2),
        conditional_matrix_exponential(D, CONTEXT),
    ]:
        t = flow.condition(c)
        y = t(x)
        assert y.shape == (5, D)
        assert t.log_abs_det_jacobian(x, y).shape == (5,)
        # Row i is the flow at context i alone.
        assert torch.allclose(y[2], flow.condition(c[2])(x[2]), atol=1e-6)


@pytest.mark.parametrize(
    "t",
    [ELUTransform(), LeakyReLUTransform(), PositivePowerTransform(torch.tensor(2.5))],
    ids=["elu", "leaky_relu", "power"],
)
def test_elementwise_log_abs_det_jacobian_equals_autograd(t):
    x = torch.tensor([-1.7, -0.3, 0.4, 2.2], dtype=torch.float64)
    y = t(x)
    J = jacobian(lambda v: t(v), x)
    assert torch.allclose(J, torch.diag(J.diagonal()))
    assert torch.allclose(t.log_abs_det_jacobian(x, y), J.diagonal().abs().log(), atol=1e-12)
    assert torch.allclose(t.inv(y), x, atol=1e-12)
    assert t.codomain.check(y).all() and t.sign == 1


def test_elu_codomain_is_its_range_and_leaky_relu_slope():
    y = elu()(torch.tensor([-5.0, -1.0, 0.0, 1.0]))
    assert constraints.greater_than(-1.0).check(y).all() and ELUTransform().codomain.check(y).all()
    assert leaky_relu()(torch.tensor(-2.0)).item() == pytest.approx(-0.02)
    assert LeakyReLUTransform().log_abs_det_jacobian(
        torch.tensor(-1.0), None
    ).item() == pytest.approx(math.log(0.01))


def test_positive_power_is_odd_and_validates_exponent():
    t = PositivePowerTransform(torch.tensor(3.0))
    assert torch.equal(t(torch.tensor([-2.0, 2.0])), torch.tensor([-8.0, 8.0]))
    with pytest.raises(ValueError, match="exponent > 0"):
        PositivePowerTransform(torch.tensor(-1.0), validate_args=True)
    assert t == PositivePowerTransform(3.0) and t != PositivePowerTransform(2.0)
    assert PositivePowerTransform(torch.tensor([1.0, 2.0])).forward_shape((3, 1)) == (3, 2)


def test_generalized_channel_permute_log_det_equals_autograd_and_inverts():
    for t in [
        _randomize(generalized_channel_permute(channels=3).double()),
        _randomize(conditional_generalized_channel_permute(CONTEXT, channels=3).double()).condition(
            torch.randn(CONTEXT, dtype=torch.float64)
        ),
    ]:
        x = torch.randn(3, 2, 4, dtype=torch.float64)
        y = t(x)
        J = jacobian(t, x).reshape(24, 24)
        assert abs(float(t.log_abs_det_jacobian(x, y)) - float(torch.slogdet(J).logabsdet)) < 1e-10
        assert torch.allclose(t.inv(y.clone()), x, atol=1e-10)
        xb = torch.randn(5, 3, 2, 4, dtype=torch.float64)
        assert t.log_abs_det_jacobian(xb, t(xb)).shape == (5,)


def test_generalized_channel_permute_weight_is_p_l_u():
    t = GeneralizedChannelPermute(channels=3, permutation=torch.tensor([2, 0, 1]))
    assert torch.equal(t.permutation, torch.eye(3)[[2, 0, 1]])
    L = t.LU.tril(-1) + torch.eye(3)
    W = t.permutation @ L @ t.LU.triu()
    x = torch.randn(3, 2, 2)
    assert torch.allclose(t(x), torch.einsum("ij,jhw->ihw", W, x), atol=1e-6)


def test_matrix_exponential_is_taylor_series_of_given_order():
    t = _randomize(MatrixExponential(3, iterations=2).double())
    W = t.weights
    x = torch.randn(4, 3, dtype=torch.float64)
    series = torch.eye(3, dtype=torch.float64) + W + W @ W / 2
    assert torch.allclose(t(x), x @ series.T, atol=1e-12)
    with pytest.raises(NotImplementedError):
        MatrixExponential(3, normalization="weight")


def test_householder_is_orthogonal_product_of_reflections():
    t = _randomize(Householder(D, 3).double())
    x = torch.randn(D, dtype=torch.float64)
    J = jacobian(lambda v: t(v), x)
    assert torch.allclose(J @ J.T, torch.eye(D, dtype=torch.float64), atol=1e-12)
    assert householder(1).u_unnormed.shape == (1, 1)
    with pytest.raises(ValueError, match="less than 1"):
        Householder(D, 0)


def test_permute_along_other_dim_and_random_helper():
    t = Permute(torch.tensor([1, 2, 0]), dim=-2)
    x = torch.randn(2, 3, 5)
    assert torch.equal(t(x), x[:, [1, 2, 0], :]) and torch.equal(t.inv(t(x).clone()), x)
    assert t.event_dim == 2 and t.log_abs_det_jacobian(x, t(x)).shape == (2,)
    p = permute((3, 5), dim=-2).permutation
    assert sorted(p.tolist()) == [0, 1, 2]
    with pytest.raises(ValueError, match="same length"):
        permute((3, 5), dim=-1)


def test_discrete_cosine_and_haar_along_dim_minus_two():
    x = torch.randn(2, 6, 3, dtype=torch.float64)
    for t in [DiscreteCosineTransform(dim=-2, smooth=0.5), HaarTransform(dim=-2)]:
        y = t(x)
        J = jacobian(t, x[0]).reshape(18, 18)
        assert abs(float(torch.slogdet(J).logabsdet)) < 1e-10
        assert t.event_dim == 2 and t.log_abs_det_jacobian(x, y).shape == (2,)
        assert torch.allclose(t.inv(y), x, atol=1e-12)


def test_dct_rows_are_orthonormal_cosines():
    n = 5
    M = jacobian(DiscreteCosineTransform(), torch.zeros(n, dtype=torch.float64))
    assert torch.allclose(M @ M.T, torch.eye(n, dtype=torch.float64), atol=1e-12)
    k, j = 2, 3
    assert float(M[k, j]) == pytest.approx(
        math.sqrt(2 / n) * math.cos(math.pi * k * (2 * j + 1) / (2 * n))
    )


def test_normalize_projects_onto_sphere():
    x = torch.randn(10, 3)
    y = Normalize()(x)
    assert constraints.sphere.check(y).all() and torch.allclose(y * x.norm(dim=-1, keepdim=True), x)
    assert torch.equal(Normalize()(torch.zeros(3)), torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(Normalize(p=1)(x).abs().sum(-1), torch.ones(10))
    assert Normalize(p=1) == Normalize(p=1) and Normalize(p=1) != Normalize()


def _lower_entries(n):
    return torch.tril_indices(n, n)


def test_cholesky_log_det_equals_autograd_on_lower_triangles():
    n = 3
    rows, cols = _lower_entries(n)
    A = torch.randn(n, n, dtype=torch.float64)
    P = A @ A.T + n * torch.eye(n, dtype=torch.float64)
    t = CholeskyTransform()

    def on_lower(v):
        M = torch.zeros(n, n, dtype=torch.float64).index_put((rows, cols), v)
        return t(M + M.tril(-1).T)[rows, cols]

    J = jacobian(on_lower, P[rows, cols])
    L = t(P)
    assert torch.allclose(L @ L.T, P) and t.codomain.check(L)
    assert float(t.log_abs_det_jacobian(P, L)) == pytest.approx(
        float(torch.slogdet(J).logabsdet), abs=1e-10
    )
    assert torch.allclose(t.inv(L), P)


def test_corr_matrix_cholesky_log_det_equals_autograd_on_strict_lower_triangles():
    n = 4
    rows, cols = torch.tril_indices(n, n, -1)
    A = torch.randn(n, n, dtype=torch.float64)
    S = A @ A.T + n * torch.eye(n, dtype=torch.float64)
    C = S / torch.outer(S.diag().sqrt(), S.diag().sqrt())
    t = CorrMatrixCholeskyTransform()

    def on_strict_lower(v):
        M = torch.zeros(n, n, dtype=torch.float64).index_put((rows, cols), v)
        return t(M + M.T + torch.eye(n, dtype=torch.float64))[rows, cols]

    J = jacobian(on_strict_lower, C[rows, cols])
    L = t(C)
    assert constraints.corr_cholesky.check(L) and constraints.corr_matrix.check(C)
    assert float(t.log_abs_det_jacobian(C, L)) == pytest.approx(
        float(torch.slogdet(J).logabsdet), abs=1e-10
    )
    assert torch.allclose(t.inv(L), C)


def test_softplus_lower_cholesky_and_deprecated_corr_l_cholesky():
    X = torch.randn(2, 3, 3, dtype=torch.float64)
    t = SoftplusLowerCholeskyTransform()
    Y = t(X)
    assert constraints.lower_cholesky.check(Y).all()
    assert torch.allclose(
        Y.diagonal(dim1=-2, dim2=-1), torch.nn.functional.softplus(X.diagonal(dim1=-2, dim2=-1))
    )
    assert torch.allclose(t.inv(Y), X.tril())
    with pytest.warns(FutureWarning, match="deprecated"):
        old = CorrLCholeskyTransform()
    v = torch.randn(3)
    assert torch.allclose(old(v), torch.distributions.transforms.CorrCholeskyTransform()(v))


def test_simplex_to_ordered_log_det_equals_autograd_on_free_probabilities():
    anchor = torch.tensor(0.7, dtype=torch.float64)
    t = SimplexToOrderedTransform(anchor)
    p = torch.tensor([0.1, 0.25, 0.3, 0.35], dtype=torch.float64)

    def on_free(v):
        return t(torch.cat([v, 1 - v.sum(-1, keepdim=True)]))

    J = jacobian(on_free, p[:-1])
    y = t(p)
    assert constraints.ordered_vector.check(y)
    assert float(t.log_abs_det_jacobian(p, y)) == pytest.approx(
        float(torch.slogdet(J).logabsdet), abs=1e-10
    )
    assert torch.allclose(t.inv(y), p)
    assert torch.allclose(torch.sigmoid(y - anchor), p.cumsum(-1)[:-1])
    assert t.forward_shape((5, 4)) == (5, 3) and t.inverse_shape((3,)) == (4,)


def test_batchnorm_train_normalizes_with_batch_stats_and_updates_running_stats():
    bn = _randomize(batchnorm(3, momentum=0.25).double())
    y = torch.randn(50, 3, dtype=torch.float64) * torch.tensor([1.0, 3.0, 0.5]) + 2.0
    x = bn.inv(y)
    gamma = bn.constrained_gamma
    assert torch.allclose(x.mean(0), bn.beta)
    assert torch.allclose(x.var(0), gamma**2 * y.var(0) / (y.var(0) + bn.epsilon))
    assert torch.allclose(bn.moving_mean, 0.25 * y.mean(0))
    assert torch.allclose(bn.moving_variance, 0.75 + 0.25 * y.var(0))
    ladj = bn.log_abs_det_jacobian(x, y)
    assert ladj.shape == (1, 3)
    assert torch.allclose(ladj[0], 0.5 * torch.log(y.var(0) + bn.epsilon) - gamma.log())


def test_batchnorm_eval_uses_running_stats_and_is_exact_bijection():
    bn = _randomize(BatchNorm(3).double())
    bn.inv(torch.randn(20, 3, dtype=torch.float64) * 2)
    bn.eval()
    before = bn.moving_mean.clone()
    y = torch.randn(4, 3, dtype=torch.float64)
    x = bn.inv(y)
    assert torch.equal(bn.moving_mean, before)
    assert torch.allclose(bn(x), y)
    J = jacobian(lambda v: bn(v), x[0])
    assert torch.allclose(bn.log_abs_det_jacobian(x[0], y[0]), J.diagonal().log(), atol=1e-12)
    with pytest.raises(ValueError, match="reshape"):
        bn.train()
        bn.inv(torch.randn(2, 4, 3))


def test_constraint_checks():
    assert constraints.integer.check(torch.tensor([1.0, -2.0, 1.5, math.inf])).tolist() == [
        True,
        True,
        False,
        False,
    ]
    assert constraints.integer.is_discrete
    v = torch.tensor([[0.6, 0.8], [1.0, 1e-2], [0.0, 1.0]])
    assert constraints.sphere.check(v).tolist() == [True, False, True]
    C = torch.tensor([[1.0, 0.5], [0.5, 1.0]])
    assert constraints.corr_matrix.check(C)
    assert not constraints.corr_matrix.check(torch.tensor([[1.0, 2.0], [2.0, 1.0]]))
    assert not constraints.corr_matrix.check(torch.tensor([[2.0, 0.5], [0.5, 1.0]]))
    assert constraints.softplus_lower_cholesky.check(torch.tensor([[1.0, 0.0], [2.0, 3.0]]))
    assert constraints.corr_cholesky_constraint is constraints.corr_cholesky


def test_registered_transforms_for_new_constraints():
    t = biject_to(constraints.corr_matrix)
    C = t(torch.randn(5, 6))
    assert C.shape == (5, 4, 4) and constraints.corr_matrix.check(C).all()
    assert torch.allclose(t(t.inv(C)), C, atol=1e-5)
    assert isinstance(
        transform_to(constraints.softplus_lower_cholesky), SoftplusLowerCholeskyTransform
    )
    assert isinstance(transform_to(constraints.sphere), Normalize)
    for c in (constraints.softplus_lower_cholesky, constraints.sphere, constraints.integer):
        with pytest.raises(NotImplementedError):
            biject_to(c)


def test_iterated_composes_fresh_copies():
    t = iterated(3, planar, 2)
    assert isinstance(t, ComposeTransformModule) and len(t.parts) == 3
    assert not torch.equal(t.parts[0].u, t.parts[1].u)
    assert len(list(t.parameters())) == 9
    with pytest.raises(ValueError, match="positive"):
        iterated(0, planar, 2)


def test_dense_nn_output_shapes_and_layer_names():
    nn = DenseNN(3, [8, 6], param_dims=[1, 4])
    out = nn(torch.randn(2, 5, 3))
    assert [o.shape for o in out] == [(2, 5, 1), (2, 5, 4)]
    assert [n for n, _ in nn.named_parameters()] == [
        f"layers.{i}.{w}" for i in range(3) for w in ("weight", "bias")
    ]
    assert nn(torch.randn(3)).__class__ is tuple
    single = DenseNN(3, [8], param_dims=[2])(torch.randn(7, 3))
    assert isinstance(single, torch.Tensor) and single.shape == (7, 2)
    cnn = ConditionalDenseNN(3, 2, [8], param_dims=[1, 1])
    assert cnn.layers[0].in_features == 5
    out = cnn(torch.randn(7, 3), torch.randn(2))
    assert [o.shape for o in out] == [(7, 1), (7, 1)]


def test_conditional_dense_nn_puts_context_first():
    cnn = ConditionalDenseNN(3, 2, [4], param_dims=[2])
    with torch.no_grad():
        cnn.layers[0].weight[:, :2] = 0.0  # drop the context columns
    x = torch.randn(5, 3)
    assert torch.equal(cnn(x, torch.randn(2)), cnn(x, torch.randn(2)))


def test_parameter_names_for_state_dict_copies():
    names = {
        "planar": (Planar(3), ["bias", "u", "w"]),
        "radial": (Radial(3), ["x0", "alpha_prime", "beta_prime"]),
        "sylvester": (
            Sylvester(3, 2),
            ["u_unnormed", "R_dense", "S_dense", "R_diag", "S_diag", "b", "triangular_mask"],
        ),
        "batchnorm": (BatchNorm(3), ["gamma", "beta", "moving_mean", "moving_variance"]),
        "gcp": (GeneralizedChannelPermute(3), ["LU", "permutation"]),
    }
    for module, expected in names.values():
        assert list(module.state_dict()) == expected
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sylvester(5).u_unnormed.shape == (3, 5)


@pytest.mark.parametrize("make", [planar, radial, lambda d: Sylvester(d, 2)])
def test_cached_log_det_follows_clear_cache_after_a_parameter_update(make):
    t = make(D).double()
    x = torch.randn(5, D, dtype=torch.float64)
    y = t(x)
    assert torch.equal(t.log_abs_det_jacobian(x, y), t.log_abs_det_jacobian(x.clone(), y))
    with torch.no_grad():
        for p in t.parameters():
            p.add_(0.3)
    t.clear_cache()
    fresh = t.log_abs_det_jacobian(x.clone(), y)
    assert torch.equal(t.log_abs_det_jacobian(x, y), fresh)
