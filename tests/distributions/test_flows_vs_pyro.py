"""Oracle: each flow, its conditional form and the MADE masks against Pyro 1.9's. The helper
constructors build the same architecture (equal state_dict keys and shapes); with Pyro's
weights loaded, outputs, log|det J| and inverses agree."""

import importlib
import inspect

import pytest
import torch

pyro_dist = pytest.importorskip("pyro.distributions")
pyro_nn = pytest.importorskip("pyro.nn")
pyro_arnn = pytest.importorskip("pyro.nn.auto_reg_nn")
PT = pyro_dist.transforms

# By module path: the package namespace may export functions of the same names.
aa = importlib.import_module("pyrolite.distributions.transforms.affine_autoregressive")
ac = importlib.import_module("pyrolite.distributions.transforms.affine_coupling")
ba = importlib.import_module("pyrolite.distributions.transforms.block_autoregressive")
na = importlib.import_module("pyrolite.distributions.transforms.neural_autoregressive")
po = importlib.import_module("pyrolite.distributions.transforms.polynomial")
sp = importlib.import_module("pyrolite.distributions.transforms.spline")
sa = importlib.import_module("pyrolite.distributions.transforms.spline_autoregressive")
sc = importlib.import_module("pyrolite.distributions.transforms.spline_coupling")
auto_reg_nn = importlib.import_module("pyrolite.nn.auto_reg_nn")

D, C = 4, 3

# name -> (pyrolite builder, Pyro builder, invertible without the cache, tolerance). The
# neural and block flows differ from Pyro by its 1e-8 guards inside logs.
FLOWS = {
    "affine_autoregressive": (aa.affine_autoregressive, PT.affine_autoregressive, {}, True, 1e-12),
    "affine_autoregressive_stable": (
        aa.affine_autoregressive,
        PT.affine_autoregressive,
        {"stable": True, "sigmoid_bias": 1.5},
        True,
        1e-12,
    ),
    "affine_coupling": (ac.affine_coupling, PT.affine_coupling, {}, True, 1e-12),
    "affine_coupling_split": (
        ac.affine_coupling,
        PT.affine_coupling,
        {"split_dim": 1, "hidden_dims": [7, 9], "log_scale_max_clip": 1.0},
        True,
        1e-12,
    ),
    "spline": (sp.spline, PT.spline, {}, True, 1e-10),
    "spline_quadratic": (
        sp.spline,
        PT.spline,
        {"order": "quadratic", "count_bins": 5},
        True,
        1e-10,
    ),
    "spline_autoregressive": (sa.spline_autoregressive, PT.spline_autoregressive, {}, True, 1e-10),
    "spline_coupling": (sc.spline_coupling, PT.spline_coupling, {}, True, 1e-10),
    "spline_coupling_split": (
        sc.spline_coupling,
        PT.spline_coupling,
        {"split_dim": 3, "hidden_dims": [11], "count_bins": 4},
        True,
        1e-10,
    ),
    "neural_autoregressive": (na.neural_autoregressive, PT.neural_autoregressive, {}, False, 1e-6),
    "neural_autoregressive_ELU": (
        na.neural_autoregressive,
        PT.neural_autoregressive,
        {"activation": "ELU", "width": 5},
        False,
        1e-6,
    ),
    "neural_autoregressive_LeakyReLU": (
        na.neural_autoregressive,
        PT.neural_autoregressive,
        {"activation": "LeakyReLU", "hidden_dims": [9, 10]},
        False,
        1e-6,
    ),
    "block_autoregressive": (ba.block_autoregressive, PT.block_autoregressive, {}, False, 1e-6),
    "block_autoregressive_gated": (
        ba.block_autoregressive,
        PT.block_autoregressive,
        {"hidden_factors": [3], "activation": "sigmoid", "residual": "gated"},
        False,
        1e-6,
    ),
    "block_autoregressive_normal": (
        ba.block_autoregressive,
        PT.block_autoregressive,
        {"activation": "ELU", "residual": "normal"},
        False,
        1e-6,
    ),
    "polynomial": (po.polynomial, PT.polynomial, {}, False, 1e-8),
}

CONDITIONAL_FLOWS = {
    "conditional_affine_autoregressive": (
        aa.conditional_affine_autoregressive,
        PT.conditional_affine_autoregressive,
        {},
        True,
        1e-12,
    ),
    "conditional_affine_coupling": (
        ac.conditional_affine_coupling,
        PT.conditional_affine_coupling,
        {},
        True,
        1e-12,
    ),
    "conditional_spline": (sp.conditional_spline, PT.conditional_spline, {}, True, 1e-10),
    "conditional_spline_quadratic": (
        sp.conditional_spline,
        PT.conditional_spline,
        {"order": "quadratic"},
        True,
        1e-10,
    ),
    "conditional_spline_autoregressive": (
        sa.conditional_spline_autoregressive,
        PT.conditional_spline_autoregressive,
        {},
        True,
        1e-10,
    ),
    "conditional_neural_autoregressive": (
        na.conditional_neural_autoregressive,
        PT.conditional_neural_autoregressive,
        {"activation": "tanh"},
        False,
        1e-6,
    ),
}


def _shapes(module):
    return [(k, tuple(v.shape)) for k, v in module.state_dict().items()]


def _compare(ours, theirs, x, invertible, tol):
    y_ours, y_theirs = ours(x), theirs(x)
    assert torch.allclose(y_ours, y_theirs, atol=tol, rtol=tol)
    ldj_ours = ours.log_abs_det_jacobian(x, y_ours)
    ldj_theirs = theirs.log_abs_det_jacobian(x, y_theirs)
    assert ldj_ours.shape == ldj_theirs.shape
    assert torch.allclose(ldj_ours, ldj_theirs, atol=tol, rtol=tol)
    assert ours.inv(y_ours) is x and theirs.inv(y_theirs) is x
    if invertible:
        assert torch.allclose(ours.inv(y_theirs.clone()), theirs.inv(y_theirs.clone()), atol=1e-9)


@pytest.mark.parametrize(
    "ours,theirs,kwargs,invertible,tol", FLOWS.values(), ids=list(FLOWS.keys())
)
def test_flow_matches_pyro_with_copied_weights(ours, theirs, kwargs, invertible, tol, float64):
    theirs = theirs(D, **kwargs)
    ours = ours(D, **kwargs)
    assert _shapes(ours) == _shapes(theirs)  # same default architecture
    ours.load_state_dict(theirs.state_dict())
    for attr in ["event_dim", "bijective", "autoregressive"]:
        assert getattr(ours, attr, None) == getattr(theirs, attr, None), attr
    assert ours.domain == theirs.domain or str(ours.domain) == str(theirs.domain)
    assert ours._cache_size == theirs._cache_size == 1
    _compare(ours, theirs, 2.0 * torch.randn(20, D), invertible, tol)


@pytest.mark.parametrize(
    "ours,theirs,kwargs,invertible,tol",
    CONDITIONAL_FLOWS.values(),
    ids=list(CONDITIONAL_FLOWS.keys()),
)
def test_conditional_flow_matches_pyro_with_copied_weights(
    ours, theirs, kwargs, invertible, tol, float64
):
    theirs = theirs(D, C, **kwargs)
    ours = ours(D, C, **kwargs)
    assert _shapes(ours) == _shapes(theirs)
    ours.load_state_dict(theirs.state_dict())
    for context in [torch.randn(C), torch.randn(20, C)]:
        t_ours, t_theirs = ours.condition(context), theirs.condition(context)
        assert type(t_ours).__name__ == type(t_theirs).__name__
        _compare(t_ours, t_theirs, 2.0 * torch.randn(20, D), invertible, tol)


def test_affine_coupling_over_image_like_events_matches_pyro(float64):
    theirs = PT.affine_coupling((4, 3, 2), dim=-3)
    ours = ac.affine_coupling((4, 3, 2), dim=-3)
    assert _shapes(ours) == _shapes(theirs)
    ours.load_state_dict(theirs.state_dict())
    assert ours.event_dim == theirs.event_dim == 3
    _compare(ours, theirs, torch.randn(5, 4, 3, 2), True, 1e-12)


def test_spline_coupling_with_identity_lower_part_matches_pyro(float64):
    params = [2 * 8, 2 * 8, 2 * 7, 2 * 8]
    theirs = PT.SplineCoupling(D, 2, pyro_nn.DenseNN(2, [10], params), identity=True)
    ours = sc.SplineCoupling(D, 2, sc.DenseNN(2, [10], params), identity=True)
    ours.load_state_dict(theirs.state_dict())
    _compare(ours, theirs, 2.0 * torch.randn(20, D), True, 1e-10)


@pytest.mark.parametrize("input_dim,context_dim", [(2, 0), (4, 0), (5, 3), (7, 1)])
@pytest.mark.parametrize("hidden_dims", [[7], [10, 12], [20, 7, 9]])
@pytest.mark.parametrize("multiplier", [1, 3])
def test_create_mask_matches_pyro(input_dim, context_dim, hidden_dims, multiplier):
    if min(hidden_dims) < input_dim:
        pytest.skip("Pyro rejects hidden layers narrower than the input")
    perm = torch.randperm(input_dim)
    masks, skip = auto_reg_nn.create_mask(input_dim, context_dim, hidden_dims, perm, multiplier)
    expected, expected_skip = pyro_arnn.create_mask(
        input_dim, context_dim, hidden_dims, perm, multiplier
    )
    assert len(masks) == len(expected)
    assert all(torch.equal(m, e) for m, e in zip(masks, expected))
    assert torch.equal(skip, expected_skip)


@pytest.mark.parametrize("param_dims", [[1, 1], [2], [1, 3], [1], [0, 1]])
@pytest.mark.parametrize("skip_connections", [False, True])
def test_autoregressive_nns_match_pyro_from_the_same_seed(param_dims, skip_connections):
    x, context = torch.randn(2, 5, 4), torch.randn(3)
    kwargs = {"param_dims": param_dims, "skip_connections": skip_connections}
    for ours_cls, theirs_cls, args, call_args in [
        (auto_reg_nn.AutoRegressiveNN, pyro_nn.AutoRegressiveNN, (4, [8, 9]), (x,)),
        (
            auto_reg_nn.ConditionalAutoRegressiveNN,
            pyro_nn.ConditionalAutoRegressiveNN,
            (4, 3, [8, 9]),
            (x, context),
        ),
    ]:
        torch.manual_seed(3)
        theirs = theirs_cls(*args, **kwargs)
        torch.manual_seed(3)
        ours = ours_cls(*args, **kwargs)
        assert list(ours.state_dict()) == list(theirs.state_dict())
        for key, value in theirs.state_dict().items():
            assert torch.equal(ours.state_dict()[key], value), key
        out_ours, out_theirs = ours(*call_args), theirs(*call_args)
        assert type(out_ours) is type(out_theirs)
        if torch.is_tensor(out_theirs):
            out_ours, out_theirs = (out_ours,), (out_theirs,)
        assert all(torch.equal(a, b) for a, b in zip(out_ours, out_theirs))


@pytest.mark.parametrize(
    "ours,theirs",
    [
        (sp.spline, PT.spline),
        (po.polynomial, PT.polynomial),
        (ba.block_autoregressive, PT.block_autoregressive),
        (aa.affine_autoregressive, PT.affine_autoregressive),
    ],
)
def test_helpers_draw_the_same_initial_parameters_from_the_same_seed(ours, theirs):
    torch.manual_seed(7)
    expected = theirs(3).state_dict()
    torch.manual_seed(7)
    got = ours(3).state_dict()
    assert list(got) == list(expected)
    assert all(torch.equal(got[k], v) for k, v in expected.items())


def test_inverse_without_cache_fails_as_in_pyro():
    x = torch.randn(3, D)
    for ours, theirs, error in [
        (na.neural_autoregressive(D), PT.neural_autoregressive(D), NotImplementedError),
        (ba.block_autoregressive(D), PT.block_autoregressive(D), KeyError),
        (po.polynomial(D), PT.polynomial(D), KeyError),
    ]:
        for t in (ours, theirs):
            y = t(x)
            with pytest.raises(error):
                t.inv(y.clone())


def _signature(obj):
    params = inspect.signature(obj).parameters.values()
    # repr: module defaults such as nn.ReLU() are equal in kind, not identity.
    return [(p.name, p.kind, repr(p.default)) for p in params]


def test_public_signatures_match_pyro():
    pyro_modules = {
        module.__name__.rsplit(".", 1)[-1]: importlib.import_module(
            "pyro.distributions.transforms." + module.__name__.rsplit(".", 1)[-1]
        )
        for module in [aa, ac, ba, na, po, sp, sa, sc]
    }
    checked = 0
    for module in [aa, ac, ba, na, po, sp, sa, sc]:
        reference = pyro_modules[module.__name__.rsplit(".", 1)[-1]]
        for name in dir(module):
            ours = getattr(module, name)
            if name.startswith("_") or getattr(ours, "__module__", None) != module.__name__:
                continue
            if not hasattr(reference, name):
                continue  # pyrolite-only helpers (monotonic_rational_spline, ...)
            assert _signature(ours) == _signature(getattr(reference, name)), name
            checked += 1
    for name in ["MaskedLinear", "AutoRegressiveNN", "ConditionalAutoRegressiveNN", "create_mask"]:
        assert _signature(getattr(auto_reg_nn, name)) == _signature(getattr(pyro_arnn, name))
        checked += 1
    assert checked >= 30
