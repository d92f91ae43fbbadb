"""Inference: ELBO estimators, SVI, and trace-based posteriors."""

from . import autoguide, inspect, reparam
from .abstract_infer import EmpiricalMarginal, Marginals, TracePosterior, TracePredictive
from .compiled_step import CompiledStep
from .csis import CSIS
from .discrete import infer_discrete
from .distributed import DistributedSVI
from .elbo import ELBO, ELBOModule
from .energy_distance import EnergyDistance
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
from .predictive import MHResampler, Predictive, WeighedPredictive, WeighedPredictiveResults
from .renyi_elbo import RenyiELBO
from .resampler import Resampler
from .rws import ReweightedWakeSleep
from .smcfilter import SMCFailed, SMCFilter, SMCState
from .step_engine import EagerStep, StepHooks, StepLedger
from .svgd import SVGD, IMQSteinKernel, RBFSteinKernel, SteinKernel
from .svi import SVI, CompileInfo, SVIRunResult
from .trace_elbo import Trace_ELBO
from .trace_mean_field_elbo import TraceMeanField_ELBO
from .trace_mmd import Trace_MMD
from .trace_tail_adaptive_elbo import TraceTailAdaptive_ELBO
from .traceenum_elbo import TraceEnum_ELBO
from .tracegraph_elbo import TraceGraph_ELBO
from .tracetmc_elbo import TraceTMC_ELBO
from .util import enable_validation, is_validation_enabled, zero_grads

__all__ = [
    "CSIS",
    "CompileInfo",
    "CompiledStep",
    "DistributedSVI",
    "ELBO",
    "ELBOModule",
    "EnergyDistance",
    "EagerStep",
    "EmpiricalMarginal",
    "IMQSteinKernel",
    "Importance",
    "JitMixin",
    "JitRenyiELBO",
    "JitTraceEnum_ELBO",
    "JitTraceGraph_ELBO",
    "JitTraceMeanField_ELBO",
    "JitTrace_ELBO",
    "MHResampler",
    "Marginals",
    "Predictive",
    "RBFSteinKernel",
    "RenyiELBO",
    "Resampler",
    "ReweightedWakeSleep",
    "SMCFilter",
    "SVGD",
    "SVI",
    "SVIRunResult",
    "StepHooks",
    "StepLedger",
    "TraceEnum_ELBO",
    "TraceGraph_ELBO",
    "TraceMeanField_ELBO",
    "Trace_MMD",
    "TracePosterior",
    "TracePredictive",
    "TraceTMC_ELBO",
    "TraceTailAdaptive_ELBO",
    "Trace_ELBO",
    "WeighedPredictive",
    "config_enumerate",
    "enable_validation",
    "export_guide",
    "infer_discrete",
    "is_validation_enabled",
    "jit_variant",
    "reparam",
    "zero_grads",
]
