"""Pyro-style constructors for every ``torch.optim`` optimizer and LR scheduler.

``Adam({"lr": 0.01})`` is ``PyroOptim(torch.optim.Adam, {"lr": 0.01})``;
``StepLR({"optimizer": torch.optim.SGD, "optim_args": {"lr": 0.1}, "step_size": 5})`` is
``PyroLRScheduler(torch.optim.lr_scheduler.StepLR, {...})``.
"""

from typing import Any, Callable, Dict, Optional

import torch
from torch.optim import lr_scheduler

from pyrolite.optim import adagrad_rmsprop, clipped_adam, dct_adam
from pyrolite.optim.lr_scheduler import PyroLRScheduler
from pyrolite.optim.optim import ArgsOrFn, PyroOptim


def _named(wrapper: Callable, torch_class: type, doc: str) -> Callable:
    """``wrapper`` under ``torch_class``'s name, documented as ``doc``."""
    wrapper.__name__ = wrapper.__qualname__ = torch_class.__name__
    wrapper.__module__ = __name__
    wrapper.__doc__ = doc
    return wrapper


def _wrap_optimizer(optim_class: type, doc_path: str) -> Callable[..., PyroOptim]:
    def wrapper(optim_args: ArgsOrFn, clip_args: Optional[ArgsOrFn] = None) -> PyroOptim:
        return PyroOptim(optim_class, optim_args, clip_args)

    return _named(
        wrapper,
        optim_class,
        f"Wraps :class:`{doc_path}` with :class:`~pyrolite.optim.PyroOptim`.\n\n"
        ":param optim_args: the optimizer's keyword arguments, or a per-parameter callable.\n"
        ":param clip_args: optional ``clip_norm`` / ``clip_value`` (dict or callable).",
    )


def _wrap_scheduler(scheduler_class: type) -> Callable[..., PyroLRScheduler]:
    def wrapper(
        optim_args: Dict[str, Any], clip_args: Optional[ArgsOrFn] = None
    ) -> PyroLRScheduler:
        return PyroLRScheduler(scheduler_class, optim_args, clip_args)

    return _named(
        wrapper,
        scheduler_class,
        f"Wraps :class:`torch.optim.lr_scheduler.{scheduler_class.__name__}` with "
        ":class:`~pyrolite.optim.PyroLRScheduler`.\n\n"
        ":param optim_args: ``{'optimizer': <torch.optim class>, 'optim_args': {...}}`` plus "
        "the scheduler's keyword arguments.",
    )


# torch optimizers present in every supported torch release
OPTIMIZER_NAMES = (
    "ASGD",
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "LBFGS",
    "NAdam",
    "RAdam",
    "RMSprop",
    "Rprop",
    "SGD",
    "SparseAdam",
)
# torch optimizers added in recent releases, wrapped where present
OPTIONAL_OPTIMIZER_NAMES = ("Adafactor",)

SCHEDULER_NAMES = (
    "ConstantLR",
    "CosineAnnealingLR",
    "CosineAnnealingWarmRestarts",
    "CyclicLR",
    "ExponentialLR",
    "LambdaLR",
    "LinearLR",
    "MultiStepLR",
    "MultiplicativeLR",
    "OneCycleLR",
    "PolynomialLR",
    "ReduceLROnPlateau",
    "StepLR",
)
# Pyro's own optimizers and the newer torch schedulers Pyro wraps (Muon where torch has it).
PYRO_EXTRA_NAMES = (
    "AdagradRMSProp",
    "DCTAdam",
    "Muon",  # where torch has it
    "ChainedScheduler",
    "LRScheduler",
    "SequentialLR",
)

ASGD = _wrap_optimizer(torch.optim.ASGD, "torch.optim.ASGD")
Adadelta = _wrap_optimizer(torch.optim.Adadelta, "torch.optim.Adadelta")
Adagrad = _wrap_optimizer(torch.optim.Adagrad, "torch.optim.Adagrad")
Adam = _wrap_optimizer(torch.optim.Adam, "torch.optim.Adam")
AdamW = _wrap_optimizer(torch.optim.AdamW, "torch.optim.AdamW")
Adamax = _wrap_optimizer(torch.optim.Adamax, "torch.optim.Adamax")
LBFGS = _wrap_optimizer(torch.optim.LBFGS, "torch.optim.LBFGS")
NAdam = _wrap_optimizer(torch.optim.NAdam, "torch.optim.NAdam")
RAdam = _wrap_optimizer(torch.optim.RAdam, "torch.optim.RAdam")
RMSprop = _wrap_optimizer(torch.optim.RMSprop, "torch.optim.RMSprop")
Rprop = _wrap_optimizer(torch.optim.Rprop, "torch.optim.Rprop")
SGD = _wrap_optimizer(torch.optim.SGD, "torch.optim.SGD")
SparseAdam = _wrap_optimizer(torch.optim.SparseAdam, "torch.optim.SparseAdam")
if hasattr(torch.optim, "Adafactor"):
    Adafactor = _wrap_optimizer(torch.optim.Adafactor, "torch.optim.Adafactor")
if hasattr(torch.optim, "Muon"):
    Muon = _wrap_optimizer(torch.optim.Muon, "torch.optim.Muon")
ClippedAdam = _wrap_optimizer(clipped_adam.ClippedAdam, "pyrolite.optim.clipped_adam.ClippedAdam")
AdagradRMSProp = _wrap_optimizer(
    adagrad_rmsprop.AdagradRMSProp, "pyrolite.optim.adagrad_rmsprop.AdagradRMSProp"
)
DCTAdam = _wrap_optimizer(dct_adam.DCTAdam, "pyrolite.optim.dct_adam.DCTAdam")

ChainedScheduler = _wrap_scheduler(lr_scheduler.ChainedScheduler)
LRScheduler = _wrap_scheduler(lr_scheduler.LRScheduler)
SequentialLR = _wrap_scheduler(lr_scheduler.SequentialLR)
ConstantLR = _wrap_scheduler(lr_scheduler.ConstantLR)
CosineAnnealingLR = _wrap_scheduler(lr_scheduler.CosineAnnealingLR)
CosineAnnealingWarmRestarts = _wrap_scheduler(lr_scheduler.CosineAnnealingWarmRestarts)
CyclicLR = _wrap_scheduler(lr_scheduler.CyclicLR)
ExponentialLR = _wrap_scheduler(lr_scheduler.ExponentialLR)
LambdaLR = _wrap_scheduler(lr_scheduler.LambdaLR)
LinearLR = _wrap_scheduler(lr_scheduler.LinearLR)
MultiStepLR = _wrap_scheduler(lr_scheduler.MultiStepLR)
MultiplicativeLR = _wrap_scheduler(lr_scheduler.MultiplicativeLR)
OneCycleLR = _wrap_scheduler(lr_scheduler.OneCycleLR)
PolynomialLR = _wrap_scheduler(lr_scheduler.PolynomialLR)
ReduceLROnPlateau = _wrap_scheduler(lr_scheduler.ReduceLROnPlateau)
StepLR = _wrap_scheduler(lr_scheduler.StepLR)

__all__ = [
    *OPTIMIZER_NAMES,
    *(name for name in OPTIONAL_OPTIMIZER_NAMES if name in globals()),
    "ClippedAdam",
    *SCHEDULER_NAMES,
    *(name for name in PYRO_EXTRA_NAMES if name in globals()),
]
