"""Every public name of Pyro 1.9's modules imports from the matching pyrolite module, except
those left out on purpose, which are listed here, in one place, with the reason.

A Pyro program fails at the first name it cannot find, so this is the import-level half of
"``import pyrolite as pyro`` runs Pyro code"; the behaviour of each name is tested with it.
"""

import importlib
import inspect
import types

import pytest

pytest.importorskip("pyro")

MCMC = "MCMC is out of scope for pyrolite, an SVI library (issue 15)."

# module -> {name: why pyrolite leaves it out}
LEFT_OUT = {
    "pyro.infer": {"MCMC": MCMC, "HMC": MCMC, "NUTS": MCMC, "RandomWalkKernel": MCMC},
    "pyro.poutine": {
        "collapse": "needs funsor; pyro.contrib.funsor is out of scope (issue 15).",
    },
    "pyro.optim": {
        "_LRScheduler": "torch's deprecated private alias of LRScheduler; pyrolite.optim has "
        "LRScheduler.",
    },
    "pyro.util": {
        "save_visualization": "deprecated in Pyro 1.9 in favour of render_model, which "
        "pyrolite has.",
    },
}

# Pyro module -> how its public names are listed (``__all__`` where Pyro defines one).
MODULES = [
    "pyro.distributions",
    "pyro.distributions.transforms",
    "pyro.distributions.constraints",
    "pyro.distributions.util",
    "pyro.distributions.testing.fakes",
    "pyro.distributions.testing.naive_dirichlet",
    "pyro.distributions.testing.rejection_gamma",
    "pyro.distributions.testing.rejection_exponential",
    "pyro.nn",
    "pyro",
    "pyro.poutine",
    "pyro.poutine.runtime",
    "pyro.poutine.util",
    "pyro.poutine.plate_messenger",
    "pyro.infer",
    "pyro.infer.autoguide",
    "pyro.infer.reparam",
    "pyro.infer.util",
    "pyro.infer.inspect",
    "pyro.infer.resampler",
    "pyro.optim",
    "pyro.ops",
    "pyro.ops.stats",
    "pyro.ops.einsum",
    "pyro.ops.einsum.adjoint",
    "pyro.ops.packed",
    "pyro.ops.rings",
    "pyro.ops.provenance",
    "pyro.util",
    "pyro.settings",
    "pyro.generic",
    "pyro.contrib.easyguide",
    "pyro.contrib.autoname",
]


# Modules whose public names are only what they define (their imports are not API).
OWN_NAMES_ONLY = {
    "pyro.infer.resampler",
    "pyro.ops.einsum.adjoint",
    "pyro.ops.packed",
    "pyro.ops.provenance",
    "pyro.ops.rings",
    "pyro.poutine.plate_messenger",
    "pyro.distributions.testing.naive_dirichlet",
    "pyro.distributions.testing.rejection_gamma",
    "pyro.distributions.testing.rejection_exponential",
}


def public_names(module: types.ModuleType) -> set:
    """``__all__``, or the module's public functions and classes from Pyro or torch (not
    re-exported third-party modules or names it imported from the standard library)."""
    if hasattr(module, "__all__"):
        return set(module.__all__)
    names = set()
    for name, value in vars(module).items():
        if name.startswith("_") or isinstance(value, types.ModuleType):
            continue
        home = getattr(value, "__module__", None) or ""
        if module.__name__ in OWN_NAMES_ONLY and home != module.__name__:
            continue
        if inspect.isclass(value) or inspect.isfunction(value) or inspect.isbuiltin(value):
            if home.startswith(("pyro", "torch")):
                names.add(name)
        elif not callable(value) and not name.isupper() and home.startswith("pyro"):
            names.add(name)
    return names


@pytest.mark.parametrize("pyro_module", MODULES)
def test_every_pyro_name_imports_from_pyrolite(pyro_module):
    theirs = importlib.import_module(pyro_module)
    ours = importlib.import_module("pyrolite" + pyro_module[len("pyro") :])
    left_out = LEFT_OUT.get(pyro_module, {})
    missing = sorted(n for n in public_names(theirs) if n not in left_out and not hasattr(ours, n))
    assert not missing, f"{pyro_module}: pyrolite lacks {missing}"
    stale = sorted(n for n in left_out if hasattr(ours, n) or n not in public_names(theirs))
    assert not stale, f"{pyro_module}: LEFT_OUT lists names pyrolite has or Pyro lacks: {stale}"


def test_no_pyrolite_module_imports_pyro():
    import ast
    import pathlib

    import pyrolite

    for path in pathlib.Path(pyrolite.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module or ""]
            else:
                continue
            for module in modules:
                assert module.split(".")[0] not in ("pyro", "numpyro"), (path, module)
