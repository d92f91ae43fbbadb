"""Constraints as plain data: encode/decode for checkpoints, equality, readable names.

A checkpoint must load with ``torch.load(weights_only=True)``, so constraint objects are
stored as ``{"type": name, "args": {...}}`` dicts of strings, numbers, lists and tensors,
and rebuilt only from the registry below (never by importing a name found in the file).
"""

import numbers
from typing import Any, Dict, Sequence, Tuple

import torch
from torch.distributions import constraints

# Named singletons of torch.distributions.constraints; decoding returns these very
# objects, so a reloaded param compares equal (and identical) to the user's constraint.
_SINGLETONS: Dict[str, constraints.Constraint] = {
    "real": constraints.real,
    "real_vector": constraints.real_vector,
    "positive": constraints.positive,
    "nonnegative": constraints.nonnegative,
    "unit_interval": constraints.unit_interval,
    "simplex": constraints.simplex,
    "lower_triangular": constraints.lower_triangular,
    "lower_cholesky": constraints.lower_cholesky,
    "corr_cholesky": constraints.corr_cholesky,
    "positive_definite": constraints.positive_definite,
    "positive_semidefinite": constraints.positive_semidefinite,
    "square": constraints.square,
    "symmetric": constraints.symmetric,
    "boolean": constraints.boolean,
    "one_hot": constraints.one_hot,
    "nonnegative_integer": constraints.nonnegative_integer,
    "positive_integer": constraints.positive_integer,
}

# Parametrized constraint families: name -> (class, constructor keyword names). Each
# keyword is also the attribute under which the instance keeps that argument.
_FAMILIES: Dict[str, Tuple[type, Tuple[str, ...]]] = {
    "greater_than": (type(constraints.positive), ("lower_bound",)),
    "greater_than_eq": (type(constraints.nonnegative), ("lower_bound",)),
    "less_than": (constraints.less_than, ("upper_bound",)),
    "interval": (constraints.interval, ("lower_bound", "upper_bound")),
    "half_open_interval": (constraints.half_open_interval, ("lower_bound", "upper_bound")),
    "integer_interval": (constraints.integer_interval, ("lower_bound", "upper_bound")),
    "integer_greater_than": (type(constraints.nonnegative_integer), ("lower_bound",)),
    "multinomial": (constraints.multinomial, ("upper_bound",)),
    "independent": (constraints.independent, ("base_constraint", "reinterpreted_batch_ndims")),
    "cat": (constraints.cat, ("cseq", "dim", "lengths")),
    "stack": (constraints.stack, ("cseq", "dim")),
}
_FAMILY_BY_CLASS: Dict[type, str] = {cls: name for name, (cls, _) in _FAMILIES.items()}
_BUILTIN_NAMES = frozenset([*_SINGLETONS, *_FAMILIES])


def register_constraint_codec(name: str, cls_or_instance: Any, fields: Sequence[str] = ()) -> None:
    """Teach the codec a new constraint, so params using it can be saved and loaded.

    Pass a singleton instance (decoded back to that very object), or a class plus the
    constructor keywords that rebuild it (each stored under the same attribute name).
    Registering a name again replaces the earlier entry; torch's own names are reserved.

    >>> class _Odd(constraints.Constraint):
    ...     def check(self, value):
    ...         return value % 2 == 1
    >>> odd = _Odd()
    >>> register_constraint_codec("odd", odd)
    >>> encode_constraint(odd)
    {'type': 'odd', 'args': {}}
    >>> decode_constraint({'type': 'odd', 'args': {}}) is odd
    True
    """
    if name in _BUILTIN_NAMES:
        raise ValueError(f"{name!r} names a built-in torch constraint; pick another name")
    _SINGLETONS.pop(name, None)
    old = _FAMILIES.pop(name, None)
    if old is not None:
        _FAMILY_BY_CLASS.pop(old[0], None)
    if isinstance(cls_or_instance, constraints.Constraint):
        if fields:
            raise ValueError("a singleton constraint instance takes no fields")
        _SINGLETONS[name] = cls_or_instance
    elif isinstance(cls_or_instance, type) and issubclass(cls_or_instance, constraints.Constraint):
        _FAMILIES[name] = (cls_or_instance, tuple(fields))
        _FAMILY_BY_CLASS[cls_or_instance] = name
    else:
        raise TypeError(f"expected a Constraint instance or subclass, got {cls_or_instance!r}")


def constraints_equal(a: constraints.Constraint, b: constraints.Constraint) -> bool:
    """Whether two constraints are the same: same class and equal attributes.

    >>> constraints_equal(constraints.interval(0.0, 2.0), constraints.interval(0.0, 2.0))
    True
    >>> constraints_equal(constraints.interval(0.0, 2.0), constraints.interval(0.0, 3.0))
    False
    >>> constraints_equal(constraints.positive, constraints.real)
    False
    """
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    return _values_equal(vars(a), vars(b))


def _values_equal(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if isinstance(a, constraints.Constraint) or isinstance(b, constraints.Constraint):
        if not (isinstance(a, constraints.Constraint) and isinstance(b, constraints.Constraint)):
            return False
        return constraints_equal(a, b)
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        a_t = torch.as_tensor(a)
        b_t = torch.as_tensor(b, device=a_t.device)
        return a_t.shape == b_t.shape and bool((a_t == b_t).all())
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_values_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_values_equal(x, y) for x, y in zip(a, b))
    try:
        return bool(a == b)
    except Exception:
        return False


def encode_constraint(constraint: constraints.Constraint) -> Dict[str, Any]:
    """Encode a constraint as plain data (dicts, lists, strings, numbers, tensors).

    Raises ``ValueError`` for a constraint the codec does not know; see
    :func:`register_constraint_codec`.

    >>> encode_constraint(constraints.positive)
    {'type': 'positive', 'args': {}}
    >>> encode_constraint(constraints.interval(-1.0, 1.0))
    {'type': 'interval', 'args': {'lower_bound': -1.0, 'upper_bound': 1.0}}
    >>> encode_constraint(constraints.independent(constraints.positive, 1))["args"]
    {'base_constraint': {'type': 'positive', 'args': {}}, 'reinterpreted_batch_ndims': 1}
    """
    if not isinstance(constraint, constraints.Constraint):
        raise ValueError(f"expected a torch.distributions Constraint, got {constraint!r}")
    for name, singleton in _SINGLETONS.items():
        if constraints_equal(constraint, singleton):
            return {"type": name, "args": {}}
    name = _FAMILY_BY_CLASS.get(type(constraint))
    if name is None:
        raise ValueError(
            f"cannot encode constraint {constraint!r} (class {type(constraint).__qualname__}) "
            "as plain data; register it with "
            "pyrolite.params.register_constraint_codec(name, cls_or_instance, fields)"
        )
    fields = _FAMILIES[name][1]
    args = {}
    for field in fields:
        if not hasattr(constraint, field):
            raise ValueError(f"cannot encode {constraint!r}: it has no attribute {field!r}")
        args[field] = _encode_value(getattr(constraint, field), constraint)
    return {"type": name, "args": args}


def _encode_value(value: Any, owner: constraints.Constraint) -> Any:
    if isinstance(value, constraints.Constraint):
        return encode_constraint(value)
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_encode_value(v, owner) for v in value]
    raise ValueError(f"cannot encode {owner!r}: attribute value {value!r} is not plain data")


def decode_constraint(obj: Any) -> constraints.Constraint:
    """Rebuild a constraint from :func:`encode_constraint`'s output.

    Accepts a ``Constraint`` object too (as in Pyro's states), mapping copies of torch's
    singletons (e.g. an unpickled ``constraints.real``) to the singleton. Raises
    ``ValueError`` on anything else that is not a well-formed encoding of a registered
    constraint.

    >>> decode_constraint({"type": "positive", "args": {}}) is constraints.positive
    True
    >>> c = decode_constraint(encode_constraint(constraints.interval(0.0, 5.0)))
    >>> (type(c).__name__, c.lower_bound, c.upper_bound)
    ('_Interval', 0.0, 5.0)
    """
    if isinstance(obj, constraints.Constraint):
        for singleton in _SINGLETONS.values():
            if constraints_equal(obj, singleton):
                return singleton
        return obj
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise ValueError(
            f"expected an encoded constraint {{'type': name, 'args': {{...}}}}, got {obj!r}"
        )
    name, args = obj["type"], obj.get("args", {})
    if set(obj) - {"type", "args"} or not isinstance(args, dict):
        raise ValueError(f"malformed encoded constraint {obj!r}")
    if name in _SINGLETONS:
        if args:
            raise ValueError(f"constraint {name!r} takes no args, got {args!r}")
        return _SINGLETONS[name]
    if name not in _FAMILIES:
        raise ValueError(
            f"unknown constraint type {name!r}; known: {sorted([*_SINGLETONS, *_FAMILIES])}"
        )
    cls, fields = _FAMILIES[name]
    if set(args) != set(fields):
        raise ValueError(f"constraint {name!r} needs args {list(fields)}, got {sorted(args)}")
    try:
        return cls(**{field: _decode_value(args[field]) for field in fields})
    except ValueError:
        raise
    except Exception as e:
        raise ValueError(f"cannot rebuild constraint {name!r} from args {args!r}: {e}") from e


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict):
        return decode_constraint(value)
    if isinstance(value, list):
        return [_decode_value(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return value
    raise ValueError(f"unexpected value {value!r} in an encoded constraint")


def torch_constraint_classes() -> list:
    """Torch's constraint classes: plain data that Pyro-written checkpoints pickle."""
    return [
        cls
        for cls in vars(constraints).values()
        if isinstance(cls, type)
        and issubclass(cls, constraints.Constraint)
        and cls.__module__ == constraints.__name__
    ]


def describe_constraint(constraint: constraints.Constraint) -> str:
    """A short readable name, e.g. ``constraints.interval(lower_bound=0.0, upper_bound=1.0)``.

    >>> describe_constraint(constraints.positive)
    'constraints.positive'
    """
    try:
        encoded = encode_constraint(constraint)
    except ValueError:
        return repr(constraint)
    return _describe_encoded(encoded)


def _describe_encoded(encoded: Dict[str, Any]) -> str:
    if not encoded["args"]:
        return f"constraints.{encoded['type']}"
    parts = []
    for key, value in encoded["args"].items():
        if isinstance(value, dict):
            value = _describe_encoded(value)
        elif isinstance(value, list):
            value = (
                "["
                + ", ".join(_describe_encoded(v) if isinstance(v, dict) else repr(v) for v in value)
                + "]"
            )
        parts.append(f"{key}={value}")
    return f"constraints.{encoded['type']}({', '.join(parts)})"
