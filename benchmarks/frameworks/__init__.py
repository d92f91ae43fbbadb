"""One module per framework; each offers ``prepare()`` (imports, versions) and ``build()``.

``build(framework, workload, config, data, block_steps, device="cpu", seed=0)`` returns a
``Trainer`` whose ``step()`` runs ``steps_per_call`` SVI steps, waits for the result and returns
the last loss, and whose ``quality()`` scores the fitted guide (see ``benchmarks.data``; the
steps-to-converge measurement calls it after every step); ``info()`` may add diagnostics to the
result (e.g. whether a compiled step really compiled). ``seed`` seeds the framework's random
draws (``torch.manual_seed``, ``pyro.set_rng_seed``, NumPyro's ``PRNGKey``).

Each module also names its array library (``ARRAYS``: "torch" or "jax") and offers
``to_device(dataset, device)``, which the worker calls before the memory baseline on a GPU.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable


@dataclass
class Trainer:
    step: Callable[[], float]
    quality: Callable[[], float]
    steps_per_call: int = 1
    info: Callable[[], dict] = dict


_MODULES = {
    "hand": "benchmarks.frameworks.hand",
    "pyro": "benchmarks.frameworks.pyro_family",
    "pyrolite": "benchmarks.frameworks.pyro_family",
    "numpyro": "benchmarks.frameworks.numpyro_jax",
}


def framework_module(framework: str):
    return importlib.import_module(_MODULES[framework])
