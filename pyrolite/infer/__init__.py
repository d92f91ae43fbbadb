"""Inference: ELBO estimators, SVI, and trace-based posteriors."""

from . import autoguide
from .abstract_infer import EmpiricalMarginal, Marginals, TracePosterior, TracePredictive
from .elbo import ELBO, ELBOModule
from .importance import Importance
from .jit_elbo import JitMixin, JitTrace_ELBO
from .predictive import Predictive
from .svi import SVI, SVIRunResult
from .trace_elbo import Trace_ELBO
from .util import zero_grads

__all__ = [
    "ELBO",
    "ELBOModule",
    "EmpiricalMarginal",
    "Importance",
    "JitMixin",
    "JitTrace_ELBO",
    "Marginals",
    "Predictive",
    "SVI",
    "SVIRunResult",
    "TracePosterior",
    "TracePredictive",
    "Trace_ELBO",
    "zero_grads",
]
