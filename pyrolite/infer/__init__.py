"""Inference: ELBO estimators, SVI, and trace-based posteriors."""

from . import autoguide, inspect, reparam
from .abstract_infer import EmpiricalMarginal, Marginals, TracePosterior, TracePredictive
from .compiled_step import CompiledStep
from .csis import CSIS
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
from .rws import ReweightedWakeSleep
from .step_engine import EagerStep, StepHooks, StepLedger
from .svi import SVI, CompileInfo, SVIRunResult
from .trace_elbo import Trace_ELBO
from .trace_mean_field_elbo import TraceMeanField_ELBO
from .trace_tail_adaptive_elbo import TraceTailAdaptive_ELBO
from .traceenum_elbo import TraceEnum_ELBO
from .tracegraph_elbo import TraceGraph_ELBO
from .tracetmc_elbo import TraceTMC_ELBO
from .util import enable_validation, is_validation_enabled, zero_grads

__all__ = [
    "reparam",
    "CSIS",
    "CompileInfo",
    "CompiledStep",
    "DistributedSVI",
    "ELBO",
    "ELBOModule",
    "EagerStep",
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
    "ReweightedWakeSleep",
    "SVI",
    "SVIRunResult",
    "StepHooks",
    "StepLedger",
    "TraceEnum_ELBO",
    "TraceGraph_ELBO",
    "TraceMeanField_ELBO",
    "TracePosterior",
    "TracePredictive",
    "TraceTMC_ELBO",
    "TraceTailAdaptive_ELBO",
    "Trace_ELBO",
    "config_enumerate",
    "enable_validation",
    "export_guide",
    "infer_discrete",
    "is_validation_enabled",
    "jit_variant",
    "zero_grads",
]
