"""Learnable parameters: the global :class:`ParamStoreDict` and its checkpoint format."""

from pyrolite.params.constraint_codec import (
    constraints_equal,
    decode_constraint,
    describe_constraint,
    encode_constraint,
    register_constraint_codec,
)
from pyrolite.params.param_store import (
    ParamStoreDict,
    clear_param_store,
    get_param_store,
    module_from_param_with_module_name,
    normalize_param_name,
    param_with_module_name,
    user_param_name,
)
from pyrolite.params.serialization import load_weights_only, save_atomic

__all__ = [
    "ParamStoreDict",
    "clear_param_store",
    "constraints_equal",
    "decode_constraint",
    "describe_constraint",
    "encode_constraint",
    "get_param_store",
    "load_weights_only",
    "module_from_param_with_module_name",
    "normalize_param_name",
    "param_with_module_name",
    "register_constraint_codec",
    "save_atomic",
    "user_param_name",
]
