"""Neural-network modules with Pyro effects (``PyroModule``, ``PyroParam``, ``PyroSample``)
and the networks the flows are built from (``DenseNN``, the masked ``AutoRegressiveNN``)."""

from .auto_reg_nn import AutoRegressiveNN, ConditionalAutoRegressiveNN, MaskedLinear
from .dense_nn import ConditionalDenseNN, DenseNN
from .module import PyroModule, PyroModuleList, PyroParam, PyroSample, pyro_method, to_pyro_module_

__all__ = [
    "AutoRegressiveNN",
    "ConditionalAutoRegressiveNN",
    "ConditionalDenseNN",
    "DenseNN",
    "MaskedLinear",
    "PyroModule",
    "PyroModuleList",
    "PyroParam",
    "PyroSample",
    "pyro_method",
    "to_pyro_module_",
]
