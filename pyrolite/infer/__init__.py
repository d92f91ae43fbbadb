"""Inference: ELBO estimators, SVI, and trace-based posteriors."""

from . import autoguide
from .abstract_infer import EmpiricalMarginal, Marginals, TracePosterior, TracePredictive
from .compiled_step import CompiledStep
from .elbo import ELBO, ELBOModule
from .export import export_guide
from .importance import Importance
from .jit_elbo import JitMixin, JitTrace_ELBO
from .predictive import Predictive
from .svi import SVI, SVIRunResult
from .trace_elbo import Trace_ELBO
from .util import zero_grads

__all__ = [
    "CompiledStep",
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
    "export_guide",
    "zero_grads",
]
