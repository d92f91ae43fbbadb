import pytest
import torch
from torch.distributions import constraints

from pyrolite.params import (
    constraints_equal,
    decode_constraint,
    encode_constraint,
    register_constraint_codec,
)

ALL_CONSTRAINTS = {
    "real": constraints.real,
    "positive": constraints.positive,
    "nonnegative": constraints.nonnegative,
    "unit_interval": constraints.unit_interval,
    "simplex": constraints.simplex,
    "interval": constraints.interval(-1.5, 2.5),
    "half_open_interval": constraints.half_open_interval(0.0, 4.0),
    "greater_than": constraints.greater_than(3.0),
    "greater_than_eq": constraints.greater_than_eq(-1.0),
    "less_than": constraints.less_than(7.0),
    "lower_cholesky": constraints.lower_cholesky,
    "positive_definite": constraints.positive_definite,
    "corr_cholesky": constraints.corr_cholesky,
    "real_vector": constraints.real_vector,
    "boolean": constraints.boolean,
    "integer_interval": constraints.integer_interval(0, 5),
    "nonnegative_integer": constraints.nonnegative_integer,
    "positive_integer": constraints.positive_integer,
    "independent": constraints.independent(constraints.interval(0.0, 2.0), 2),
    "cat": constraints.cat([constraints.real, constraints.positive], dim=-1, lengths=[2, 3]),
    "stack": constraints.stack([constraints.real, constraints.unit_interval], dim=0),
    "tensor_bounds": constraints.interval(torch.zeros(2), torch.tensor([1.0, 3.0])),
}


def _is_plain(obj):
    if isinstance(obj, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in obj.items())
    if isinstance(obj, list):
        return all(_is_plain(v) for v in obj)
    return obj is None or isinstance(obj, (bool, int, float, str, torch.Tensor))


@pytest.mark.parametrize("name", sorted(ALL_CONSTRAINTS))
def test_encode_decode_round_trip_is_equal_and_plain(name):
    constraint = ALL_CONSTRAINTS[name]
    encoded = encode_constraint(constraint)
    assert _is_plain(encoded)
    decoded = decode_constraint(encoded)
    assert type(decoded) is type(constraint)
    assert constraints_equal(decoded, constraint)


def test_singletons_decode_to_the_same_object():
    for c in [
        constraints.real,
        constraints.positive,
        constraints.simplex,
        constraints.lower_cholesky,
    ]:
        assert decode_constraint(encode_constraint(c)) is c


def test_interval_bounds_survive():
    c = decode_constraint(encode_constraint(constraints.interval(-1.5, 2.5)))
    assert (c.lower_bound, c.upper_bound) == (-1.5, 2.5)


def test_equality_compares_type_and_attributes():
    assert constraints_equal(constraints.interval(0.0, 1.0), constraints.unit_interval)
    assert not constraints_equal(
        constraints.interval(0.0, 1.0), constraints.half_open_interval(0.0, 1.0)
    )
    assert not constraints_equal(constraints.greater_than(1.0), constraints.greater_than(2.0))
    assert not constraints_equal(
        constraints.independent(constraints.real, 1), constraints.independent(constraints.real, 2)
    )
    a = constraints.interval(torch.zeros(2), torch.ones(2))
    assert constraints_equal(a, constraints.interval(torch.zeros(2), torch.ones(2)))
    assert not constraints_equal(a, constraints.interval(torch.zeros(3), torch.ones(3)))


def test_unknown_constraint_class_is_a_clear_error_and_can_be_registered():
    class Even(constraints.Constraint):
        def check(self, value):
            return value % 2 == 0

    with pytest.raises(ValueError, match="Even.*register_constraint_codec"):
        encode_constraint(Even())

    class Shifted(constraints.Constraint):
        def __init__(self, shift):
            self.shift = shift
            super().__init__()

    register_constraint_codec("test_shifted", Shifted, ["shift"])
    c = decode_constraint(encode_constraint(Shifted(2.5)))
    assert type(c) is Shifted and c.shift == 2.5


def test_builtin_names_are_reserved():
    with pytest.raises(ValueError, match="built-in"):
        register_constraint_codec("positive", constraints.real)


@pytest.mark.parametrize(
    "bad",
    [
        "positive",
        {"type": 3},
        {"type": "no_such_constraint", "args": {}},
        {"type": "interval", "args": {"lower_bound": 0.0}},
        {"type": "positive", "args": {"x": 1}},
        {"type": "interval", "args": {"lower_bound": 0.0, "upper_bound": object()}},
        {"type": "real", "args": {}, "extra": 1},
    ],
)
def test_malformed_encodings_raise_value_error(bad):
    with pytest.raises(ValueError):
        decode_constraint(bad)
