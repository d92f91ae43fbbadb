import math
import warnings

import pytest
import torch
from torch.distributions import constraints

import pyrolite.params.param_store as param_store_module
from pyrolite.params import ParamStoreDict, clear_param_store, get_param_store
from pyrolite.util import enable_validation, is_validation_enabled


def _value(t):
    return t.detach().item()


@pytest.fixture(autouse=True)
def validation_on():
    old = is_validation_enabled()
    enable_validation(True)
    yield
    enable_validation(old)


@pytest.fixture
def store():
    return ParamStoreDict()


ROUND_TRIP_CASES = [
    ("positive", constraints.positive, torch.tensor([0.1, 1.0, 7.5])),
    ("interval", constraints.interval(-2.0, 3.0), torch.tensor([-1.9, 0.0, 2.5])),
    ("unit_interval", constraints.unit_interval, torch.tensor([0.01, 0.5, 0.99])),
    ("simplex", constraints.simplex, torch.tensor([[0.2, 0.3, 0.5], [0.7, 0.2, 0.1]])),
    (
        "lower_cholesky",
        constraints.lower_cholesky,
        torch.tensor([[1.5, 0.0, 0.0], [0.3, 0.8, 0.0], [-0.4, 0.2, 2.0]]),
    ),
    ("greater_than", constraints.greater_than(1.0), torch.tensor([1.5, 4.0])),
    ("real", constraints.real, torch.tensor([-3.0, 0.0, 2.0])),
]


@pytest.mark.parametrize(
    "label,constraint,init", ROUND_TRIP_CASES, ids=[c[0] for c in ROUND_TRIP_CASES]
)
def test_constrained_value_round_trips_init(store, label, constraint, init):
    value = store.get_param("p", init.clone(), constraint)
    assert torch.allclose(value, init, atol=1e-6, rtol=0)
    assert torch.allclose(store["p"], init, atol=1e-6, rtol=0)
    leaf = store.unconstrained("p")
    assert leaf.is_leaf and leaf.requires_grad
    assert dict(store.named_parameters())["p"] is leaf
    expected_leaf = torch.distributions.transform_to(constraint).inv(init)
    assert torch.allclose(leaf.detach(), expected_leaf, atol=1e-5)


def test_positive_leaf_is_log_and_gradient_is_exp_jacobian(store):
    init = torch.tensor([0.5, 2.0, 3.0])
    value = store.get_param("scale", init, constraints.positive)
    leaf = store.unconstrained("scale")
    assert torch.allclose(leaf.detach(), init.log())
    weights = torch.tensor([1.0, -2.0, 0.5])
    (value * weights).sum().backward()
    # d exp(u) / du = exp(u) = value
    assert torch.allclose(leaf.grad, weights * init, atol=1e-6)


def test_interval_gradient_is_scaled_sigmoid_jacobian(store):
    lo, hi = -1.0, 3.0
    init = torch.tensor([0.0, 2.5])
    value = store.get_param("x", init, constraints.interval(lo, hi))
    leaf = store.unconstrained("x")
    value.sum().backward()
    s = torch.sigmoid(leaf.detach())
    assert torch.allclose(leaf.grad, (hi - lo) * s * (1 - s), atol=1e-6)
    assert torch.allclose(s * (hi - lo) + lo, init, atol=1e-6)


def test_real_param_is_the_leaf_itself(store):
    value = store.get_param("loc", torch.zeros(3))
    assert value is store.unconstrained("loc")
    assert value is store.get_param("loc")


def test_init_is_copied_not_aliased(store):
    init = torch.zeros(2)
    store.get_param("loc", init)
    init.add_(5.0)
    assert torch.equal(store["loc"].detach(), torch.zeros(2))
    assert not init.requires_grad


def test_trainable_tensor_is_adopted_as_pyro_module_needs(store):
    weight = torch.nn.Parameter(torch.randn(2, 2))
    assert store.get_param("net$$$weight", weight) is weight
    assert store.param_name(weight) == "net$$$weight"


def test_callable_init_is_called_only_on_creation(store):
    calls = []

    def init():
        calls.append(1)
        return torch.ones(2)

    store.get_param("w", init)
    store.get_param("w", init)
    assert len(calls) == 1


def test_existing_param_ignores_new_init_of_the_same_shape(store):
    store.get_param("w", torch.ones(2))
    assert torch.equal(store.get_param("w", torch.zeros(2)).detach(), torch.ones(2))
    # another shape is an error naming both (tests/params/test_reliability.py)
    with pytest.raises(ValueError, match="'w'"):
        store.get_param("w", torch.zeros(5))


def test_missing_param_without_init_names_it(store):
    with pytest.raises(KeyError, match="'nope'.*init value"):
        store.get_param("nope")
    with pytest.raises(KeyError, match="'nope'"):
        store["nope"]


def test_init_value_violating_constraint_names_param_value_and_fix(store):
    with pytest.raises(ValueError) as info:
        store.get_param("scale", torch.tensor([1.0, -0.5, 2.0]), constraints.positive)
    message = str(info.value)
    assert "'scale'" in message
    assert "constraints.positive" in message
    assert "-0.5" in message and "index [1]" in message
    assert "Pass an init value" in message
    assert "scale" not in store


def test_event_constraint_violation_shows_offending_event(store):
    bad = torch.tensor([[0.5, 0.5], [0.9, 0.9]])
    with pytest.raises(ValueError, match=r"'probs'.*simplex.*\[0\.9\d*, 0\.9\d*\] at index \[1\]"):
        store.get_param("probs", bad, constraints.simplex)


def test_interval_violation_names_bounds(store):
    with pytest.raises(ValueError, match=r"interval\(lower_bound=0.0, upper_bound=2.0\).*e.g. 5\b"):
        store.get_param("x", torch.tensor(5.0), constraints.interval(0.0, 2.0))


def test_validation_off_skips_support_check(store):
    enable_validation(False)
    value = store.get_param("scale", torch.tensor([-1.0]), constraints.positive)
    assert torch.isnan(value).all()  # log(-1) is nan: the user asked for no checks


def test_redeclared_with_different_constraint_names_both(store):
    store.get_param("x", torch.tensor(1.0), constraints.interval(0.0, 2.0))
    # equal constraints (a fresh but equal object) and None are fine
    assert _value(store.get_param("x", None, constraints.interval(0.0, 2.0))) == pytest.approx(1.0)
    assert _value(store.get_param("x")) == pytest.approx(1.0)
    with pytest.raises(ValueError) as info:
        store.get_param("x", None, constraints.interval(0.0, 3.0))
    message = str(info.value)
    assert "'x'" in message
    assert "upper_bound=2.0" in message and "upper_bound=3.0" in message
    with pytest.raises(ValueError, match="constraints.positive"):
        store.get_param("x", torch.tensor(1.0), constraints.positive)


def test_setdefault_follows_pyro(store):
    v = store.setdefault("s", lambda: torch.tensor([2.0]), constraints.positive)
    assert torch.allclose(v, torch.tensor([2.0]))
    assert store.constraint("s") is constraints.positive
    again = store.setdefault("s", torch.tensor([9.0]))
    assert torch.allclose(again, torch.tensor([2.0]))


def test_setitem_keeps_stored_constraint_and_replaces_leaf(store):
    store.get_param("s", torch.tensor([2.0]), constraints.positive)
    old_leaf = store.unconstrained("s")
    store["s"] = torch.tensor([5.0])
    assert torch.allclose(store["s"], torch.tensor([5.0]))
    assert torch.allclose(store.unconstrained("s").detach(), torch.tensor([5.0]).log())
    assert store.param_name(old_leaf) is None
    assert store.param_name(store.unconstrained("s")) == "s"
    store["new"] = torch.tensor([-3.0])
    assert store.constraint("new") is constraints.real
    with pytest.raises(ValueError, match="'s'"):
        store["s"] = torch.tensor([-1.0])


def test_dict_interface(store):
    store.get_param("a", torch.tensor([1.0]), constraints.positive)
    store.get_param("b", torch.tensor([2.0]))
    assert len(store) == 2 and "a" in store and "c" not in store
    assert list(store) == ["a", "b"] and list(store.keys()) == ["a", "b"]
    assert [_value(v) for v in store.values()] == pytest.approx([1.0, 2.0])
    assert {k: _value(v) for k, v in store.items()} == pytest.approx({"a": 1.0, "b": 2.0})
    assert [n for n, _ in store.named_parameters()] == ["a", "b"]
    assert sorted(store.match("a|b")) == ["a", "b"] and list(store.match("b")) == ["b"]
    leaf = store.unconstrained("a")
    del store["a"]
    assert "a" not in store and store.param_name(leaf) is None
    store.clear()
    assert len(store) == 0 and not store


def test_deprecated_pyro_accessors(store):
    v = store.get_param("s", torch.tensor([2.0]), constraints.positive)
    with pytest.warns(DeprecationWarning):
        assert list(store.get_all_param_names()) == ["s"]
    assert v.unconstrained() is store.unconstrained("s")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        store.replace_param("s", torch.tensor([4.0]), v)
        assert torch.allclose(store["s"], torch.tensor([4.0]))
        with pytest.raises(ValueError, match="'s'"):
            store.replace_param("s", torch.tensor([1.0]), v)


def test_param_name_is_an_identity_lookup(store):
    store.get_param("loc", torch.zeros(2))
    store.get_param("scale", torch.ones(2), constraints.positive)
    assert store.param_name(store.unconstrained("loc")) == "loc"
    assert store.param_name(store.unconstrained("scale")) == "scale"
    assert store.param_name(store["scale"]) is None  # constrained value is not the leaf
    assert store.param_name(torch.zeros(2)) is None


def test_scopes_isolate_models_with_the_same_param_names(store):
    def model(init):
        return store.get_param(store.resolve_name("loc"), torch.tensor(init))

    with store.scope("a") as prefix:
        assert prefix == "a"
        a = model(1.0)
        with store.scope("inner") as inner:
            assert inner == "a/inner"
            assert store.resolve_name("loc") == "a/inner/loc"
    with store.scope("b"):
        b = model(2.0)
    assert store.resolve_name("loc") == "loc"
    assert sorted(store.keys()) == ["a/loc", "b/loc"]
    assert a is not b and _value(a) == 1.0 and _value(b) == 2.0


def test_scope_prefix_is_restored_when_the_block_raises(store):
    with pytest.raises(RuntimeError):
        with store.scope("a"):
            raise RuntimeError
    assert store.resolve_name("x") == "x"


def test_pyro_state_scope_swaps_store_and_restores_same_tensors(store):
    outer = store.get_param("w", torch.ones(1))
    with store.scope() as scope1:
        assert len(store) == 0
        store.get_param("w", torch.full((1,), 5.0))
    assert store.unconstrained("w") is outer
    assert float(scope1["params"]["w"]) == 5.0
    with store.scope(scope1):
        assert _value(store["w"]) == 5.0
    assert store["w"] is outer


def test_global_store_helpers():
    store = get_param_store()
    assert store is param_store_module._PARAM_STORE
    store.get_param("global_test_param", torch.zeros(1))
    clear_param_store()
    assert "global_test_param" not in get_param_store()


def test_device_and_dtype_follow_init(store):
    v = store.get_param("d", torch.tensor([1.0, 2.0], dtype=torch.float64), constraints.positive)
    assert v.dtype == torch.float64 and store.unconstrained("d").dtype == torch.float64


def test_integer_init_is_rejected_with_fix(store):
    with pytest.raises(TypeError, match="'n'.*floating point"):
        store.get_param("n", torch.tensor([1, 2]))


def test_python_number_init_becomes_default_dtype_tensor(store):
    v = store.get_param("c", 0.5, constraints.positive)
    assert v.dtype == torch.get_default_dtype() and _value(v) == pytest.approx(0.5)


def test_discrete_constraint_cannot_be_a_param(store):
    with pytest.raises(ValueError, match="'k'.*no transform"):
        store.get_param("k", torch.tensor([1.0]), constraints.nonnegative_integer)


def test_reads_compute_grad_each_step(store):
    # two SVI-like steps: the cached transform builds a fresh graph each read
    store.get_param("s", torch.tensor(2.0), constraints.positive)
    leaf = store.unconstrained("s")
    for _ in range(2):
        leaf.grad = None
        store.get_param("s").backward()
        assert float(leaf.grad) == pytest.approx(2.0)
    assert math.isclose(_value(store["s"]), 2.0, rel_tol=1e-6)
