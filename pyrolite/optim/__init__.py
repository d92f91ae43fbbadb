"""Optimizers for SVI: ``PyroOptim`` wrappers of every ``torch.optim`` optimizer, ``ClippedAdam``
and learning-rate schedulers, with per-parameter arguments and name-keyed save/load.

>>> import torch
>>> import pyrolite.optim as optim
>>> adam = optim.Adam({"lr": 0.1})
>>> w = torch.zeros(2, requires_grad=True)
>>> w.grad = torch.tensor([2.0, -3.0])
>>> adam([w])  # Adam's first step is lr * sign(grad)
>>> w.detach()
tensor([-0.1000,  0.1000])
"""

from pyrolite.optim.horovod import HorovodOptimizer
from pyrolite.optim.lr_scheduler import PyroLRScheduler
from pyrolite.optim.optim import PyroOptim
from pyrolite.optim.pytorch_optimizers import (
    ASGD,
    LBFGS,
    SGD,
    Adadelta,
    Adagrad,
    AdagradRMSProp,
    Adam,
    Adamax,
    AdamW,
    ChainedScheduler,
    ClippedAdam,
    ConstantLR,
    CosineAnnealingLR,
    CosineAnnealingWarmRestarts,
    CyclicLR,
    DCTAdam,
    ExponentialLR,
    LambdaLR,
    LinearLR,
    LRScheduler,
    MultiplicativeLR,
    MultiStepLR,
    NAdam,
    OneCycleLR,
    PolynomialLR,
    RAdam,
    ReduceLROnPlateau,
    RMSprop,
    Rprop,
    SequentialLR,
    SparseAdam,
    StepLR,
)
from pyrolite.optim.pytorch_optimizers import __all__ as _wrapped

if "Adafactor" in _wrapped:
    from pyrolite.optim.pytorch_optimizers import Adafactor
if "Muon" in _wrapped:
    from pyrolite.optim.pytorch_optimizers import Muon

__all__ = ["HorovodOptimizer", "PyroOptim", "PyroLRScheduler", *_wrapped]
