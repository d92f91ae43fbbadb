"""Tensor-level operations behind the estimators.

* ``jit``: TorchScript-compiled loss functions of the ParamStore.
* ``contract``: sum-product and max-product over plated factor graphs, by tensor variable
  elimination with ``opt_einsum`` paths (``contract.einsum``: einsum in log space).
* ``einsum``: Pyro's package (``contract`` with the ``torch_log``/``torch_map``/
  ``torch_sample``/``torch_marginal`` backends, and ``adjoint``).
* ``indexing``: ``Vindex``/``vindex``, broadcasting advanced indexing for enumerated values.
* ``scan``: log-space matrix products over time in O(log T) depth.
* ``gaussian``/``gamma_gaussian``: Gaussian factors in information form (the Gaussian HMMs).
* ``provenance``, and Pyro's ``packed``, ``rings`` and ``stats`` (quantiles, HPDI, ESS,
  WAIC, ...).
"""

from . import (
    contract,
    einsum,
    gamma_gaussian,
    gaussian,
    indexing,
    jit,
    packed,
    provenance,
    rings,
    scan,
    stats,
)

__all__ = [
    "contract",
    "einsum",
    "gamma_gaussian",
    "gaussian",
    "indexing",
    "jit",
    "packed",
    "provenance",
    "rings",
    "scan",
    "stats",
]
