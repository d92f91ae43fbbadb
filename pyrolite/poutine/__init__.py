"""Effect handlers ("poutines"): the messenger stack every primitive passes through."""

from ..process_state import enable_validation
from . import runtime
from .block_messenger import BlockMessenger
from .broadcast_messenger import BroadcastMessenger
from .condition_messenger import ConditionMessenger
from .do_messenger import DoMessenger
from .enum_messenger import EnumMessenger
from .escape_messenger import EscapeMessenger
from .handlers import (
    block,
    broadcast,
    condition,
    do,
    enum,
    equalize,
    escape,
    infer_config,
    lift,
    markov,
    mask,
    queue,
    reparam,
    replay,
    scale,
    seed,
    shard,
    substitute,
    trace,
    uncondition,
)
from .infer_config_messenger import InferConfigMessenger
from .lift_messenger import LiftMessenger
from .markov_messenger import MarkovMessenger
from .mask_messenger import MaskMessenger
from .messenger import Messenger
from .param_leaves_messenger import ParamLeavesMessenger
from .param_reads_messenger import ParamReadsMessenger
from .plate_messenger import CondIndepStackFrame, PlateMessenger
from .reparam_messenger import ReparamHandler, ReparamMessenger
from .replay_messenger import ReplayMessenger
from .runtime import NonlocalExit, am_i_wrapped, apply_stack, effectful, get_mask
from .scale_messenger import ScaleMessenger
from .seed_messenger import SeedMessenger
from .shard_messenger import ShardMessenger
from .substitute_messenger import SubstituteMessenger
from .trace_messenger import TraceHandler, TraceMessenger
from .trace_struct import Trace
from .uncondition_messenger import UnconditionMessenger
from .unwrap import unwrap
from .util import is_validation_enabled

__all__ = [
    "ReparamHandler",
    "ReparamMessenger",
    "reparam",
    "equalize",
    "unwrap",
    "is_validation_enabled",
    "BlockMessenger", "BroadcastMessenger", "CondIndepStackFrame", "ConditionMessenger",
    "DoMessenger", "EnumMessenger", "EscapeMessenger", "InferConfigMessenger", "LiftMessenger",
    "MarkovMessenger", "MaskMessenger", "Messenger", "NonlocalExit", "ParamLeavesMessenger",
    "ParamReadsMessenger", "PlateMessenger", "ReplayMessenger", "ScaleMessenger",
    "SeedMessenger", "ShardMessenger", "SubstituteMessenger", "Trace",
    "TraceHandler", "TraceMessenger", "UnconditionMessenger", "am_i_wrapped", "apply_stack",
    "block", "broadcast", "condition", "do", "effectful", "enable_validation", "enum",
    "escape", "get_mask", "infer_config", "lift", "markov", "mask", "queue", "replay",
    "runtime", "scale", "seed", "shard", "substitute", "trace", "uncondition",
]  # fmt: skip
