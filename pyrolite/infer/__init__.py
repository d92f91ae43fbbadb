"""Inference: ELBO estimators, SVI, and trace-based posteriors."""

from . import autoguide
from .abstract_infer import EmpiricalMarginal, Marginals, TracePosterior, TracePredictive
from .compiled_step import CompiledStep
from .discrete import infer_discrete
from .distributed import DistributedSVI
from .elbo import ELBO, ELBOModule
from .enum import config_enumerate
from .export import export_guide
from .importance import Importance
from .jit_elbo import (
    JitMixin,
    JitRenyiELBO,
    JitTrace_ELBO,
    JitTraceEnum_ELBO,
    JitTraceGraph_ELBO,
    JitTraceMeanField_ELBO,
    jit_variant,
)
from .predictive import Predictive
from .renyi_elbo import RenyiELBO
from .step_engine import EagerStep, StepHooks, StepLedger
from .svi import SVI, CompileInfo, SVIRunResult
from .trace_elbo import Trace_ELBO
from .trace_mean_field_elbo import TraceMeanField_ELBO
from .traceenum_elbo import TraceEnum_ELBO
from .tracegraph_elbo import TraceGraph_ELBO
from .util import zero_grads

__all__ = [
    "CompileInfo",
    "CompiledStep",
    "DistributedSVI",
    "EagerStep",
    "ELBO",
    "ELBOModule",
    "EmpiricalMarginal",
    "Importance",
    "JitMixin",
    "JitRenyiELBO",
    "JitTraceEnum_ELBO",
    "JitTraceGraph_ELBO",
    "JitTraceMeanField_ELBO",
    "JitTrace_ELBO",
    "Marginals",
    "Predictive",
    "RenyiELBO",
    "SVI",
    "SVIRunResult",
    "StepHooks",
    "StepLedger",
    "TracePosterior",
    "TracePredictive",
    "TraceEnum_ELBO",
    "TraceGraph_ELBO",
    "TraceMeanField_ELBO",
    "Trace_ELBO",
    "config_enumerate",
    "export_guide",
    "infer_discrete",
    "jit_variant",
    "zero_grads",
]
