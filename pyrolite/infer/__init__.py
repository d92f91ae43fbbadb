"""Inference: ELBO estimators, SVI, and trace-based posteriors."""

from . import autoguide
from .abstract_infer import EmpiricalMarginal, Marginals, TracePosterior
from .elbo import ELBO, ELBOModule
from .svi import SVI, SVIRunResult
from .trace_elbo import Trace_ELBO
from .util import zero_grads

__all__ = [
    "ELBO",
    "ELBOModule",
    "EmpiricalMarginal",
    "Marginals",
    "SVI",
    "SVIRunResult",
    "TracePosterior",
    "Trace_ELBO",
    "zero_grads",
]
