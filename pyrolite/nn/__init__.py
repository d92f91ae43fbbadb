"""Neural-network modules with Pyro effects: ``PyroModule``, ``PyroParam``, ``PyroSample``."""

from .module import PyroModule, PyroParam, PyroSample, pyro_method, to_pyro_module_

__all__ = ["PyroModule", "PyroParam", "PyroSample", "pyro_method", "to_pyro_module_"]
