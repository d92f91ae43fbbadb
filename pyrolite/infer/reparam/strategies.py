"""Strategies: callables ``msg -> Reparam or None`` that choose a reparameterizer per site
(``AutoReparam``, ``MinimalReparam``), caching the choice by site name."""

from abc import ABC, abstractmethod
from typing import Callable, Dict, Optional, Union

import torch

from ...distributions.projected_normal import ProjectedNormal
from ...distributions.stable import Stable, StableWithLogProb
from ...poutine.reparam_messenger import ReparamHandler, ReparamMessenger
from .loc_scale import LocScaleReparam
from .projected_normal import ProjectedNormalReparam
from .reparam import Reparam
from .softmax import GumbelSoftmaxReparam
from .stable import LatentStableReparam, StableReparam, SymmetricStableReparam
from .transform import TransformReparam


class Strategy(ABC):
    """Base class of strategies: implement ``configure(msg)``; call the strategy on a
    model to get the reparameterized model, or on a message to get its ``Reparam``.
    Choices are cached in ``self.config`` (site name -> Reparam or None)."""

    def __init__(self):
        self.config: Dict[str, Optional[Reparam]] = {}

    @abstractmethod
    def configure(self, msg: dict) -> Optional[Reparam]:
        """The reparameterizer for the site ``msg`` (or None to leave it)."""

    def __call__(self, msg_or_fn: Union[dict, Callable]):
        if isinstance(msg_or_fn, dict):
            name = msg_or_fn["name"]
            if name not in self.config:
                self.config[name] = self.configure(msg_or_fn)
            return self.config[name]
        return ReparamHandler(ReparamMessenger(self), msg_or_fn)


def _base_fn(fn):
    while isinstance(fn, torch.distributions.Independent):
        fn = fn.base_dist
    return fn


def _minimal(msg: dict) -> Optional[Reparam]:
    """Reparameterizers without which a site cannot be used in inference."""
    fn = _base_fn(msg["fn"])
    if type(fn) is Stable or (isinstance(fn, Stable) and not isinstance(fn, StableWithLogProb)):
        if not msg["is_observed"]:
            return LatentStableReparam()
        if bool((fn.skew == 0).all()):
            return SymmetricStableReparam()
        return StableReparam()
    if isinstance(fn, ProjectedNormal):
        return ProjectedNormalReparam()
    return None


class MinimalReparam(Strategy):
    """Only the reparameterizers inference needs: Stable sites (latent:
    ``LatentStableReparam``; observed: ``SymmetricStableReparam`` at skew 0, else
    ``StableReparam``; ``StableWithLogProb`` is left alone) and ProjectedNormal sites.

    >>> import torch, pyrolite
    >>> from pyrolite import poutine
    >>> from pyrolite.distributions.stable import Stable
    >>> def model():
    ...     return pyrolite.sample("x", Stable(1.5, 0.5))
    >>> tr = poutine.trace(MinimalReparam()(model)).get_trace()
    >>> [n for n in tr.nodes if tr.nodes[n]["type"] == "sample"]
    ['x_uniform', 'x_exponential', 'x']
    """

    def configure(self, msg: dict) -> Optional[Reparam]:
        return _minimal(msg)


class AutoReparam(Strategy):
    """Pyro's default strategy: :class:`MinimalReparam` for observed sites; for latent
    sites ``TransformReparam`` on transformed distributions, ``LocScaleReparam(centered)``
    on location-scale families (other parameters as ``shape_params``; the
    ``_decentered`` sites it makes are not decentered again), ``GumbelSoftmaxReparam`` on
    ``RelaxedOneHotCategorical``, and the minimal ones otherwise.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> def model():
    ...     return pyrolite.sample("x", dist.LogNormal(0.0, 1.0))
    >>> tr = poutine.trace(AutoReparam(centered=0.0)(model)).get_trace()
    >>> [n for n in tr.nodes if tr.nodes[n]["type"] == "sample"]
    ['x_base_decentered', 'x_base', 'x']
    """

    def __init__(self, *, centered: Optional[float] = None):
        if centered is not None and not 0 <= centered <= 1:
            raise ValueError(f"AutoReparam: centered must be None or in [0, 1], got {centered}")
        super().__init__()
        self.centered = centered

    def configure(self, msg: dict) -> Optional[Reparam]:
        if msg["is_observed"]:
            return _minimal(msg)
        fn = _base_fn(msg["fn"])
        # torch's RelaxedOneHotCategorical is a TransformedDistribution: check it first.
        if isinstance(fn, torch.distributions.RelaxedOneHotCategorical):
            return GumbelSoftmaxReparam()
        if isinstance(fn, torch.distributions.TransformedDistribution):
            return TransformReparam()
        params = set(getattr(fn, "arg_constraints", {}))
        if not msg["name"].endswith("_decentered") and {"loc", "scale"} <= params:
            shape_params = sorted(params - {"loc", "scale"})
            return LocScaleReparam(centered=self.centered, shape_params=shape_params)
        return _minimal(msg)
