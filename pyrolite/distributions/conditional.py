"""Distributions conditioned on a context: ``ConditionalDistribution.condition(context)``
returns an ordinary distribution; ``ConditionalTransformedDistribution`` pushes a (maybe
conditional) base through (maybe conditional) transforms."""

from abc import ABC, abstractmethod
from typing import Sequence, Union

import torch
from torch.distributions import Distribution, Transform

from pyrolite.distributions.torch import TransformedDistribution
from pyrolite.distributions.transforms.conditional import (
    ConditionalTransform,
    ConstantConditionalTransform,
)


class ConditionalDistribution(ABC):
    """A family of distributions indexed by a context tensor."""

    @abstractmethod
    def condition(self, context: torch.Tensor) -> Distribution:
        """The distribution at ``context``."""
        raise NotImplementedError


class ConstantConditionalDistribution(ConditionalDistribution):
    """A plain distribution seen as a conditional one that ignores its context."""

    def __init__(self, base_dist: Distribution):
        if not isinstance(base_dist, Distribution):
            raise TypeError(f"expected a Distribution, got {type(base_dist).__name__}")
        self.base_dist = base_dist

    def condition(self, context: torch.Tensor) -> Distribution:
        return self.base_dist


class ConditionalTransformedDistribution(ConditionalDistribution):
    """``base_dist`` pushed through ``transforms``, each of which may depend on a context.

    ``condition(context)`` conditions every conditional part on the same context and
    returns a :class:`TransformedDistribution`.

    >>> from pyrolite.distributions.torch import Normal
    >>> from torch.distributions.transforms import AffineTransform
    >>> class Shift(ConditionalTransform):
    ...     def condition(self, context):
    ...         return AffineTransform(context, 1.0)
    >>> d = ConditionalTransformedDistribution(Normal(0.0, 1.0), [Shift()])
    >>> round(float(d.condition(torch.tensor(3.0)).log_prob(torch.tensor(3.0))), 4)
    -0.9189
    """

    def __init__(
        self,
        base_dist: Union[Distribution, ConditionalDistribution],
        transforms: Union[
            Transform, ConditionalTransform, Sequence[Union[Transform, ConditionalTransform]]
        ],
    ):
        if isinstance(base_dist, ConditionalDistribution):
            self.base_dist = base_dist
        else:
            self.base_dist = ConstantConditionalDistribution(base_dist)
        if isinstance(transforms, (Transform, ConditionalTransform)):
            transforms = [transforms]
        self.transforms = [
            t if isinstance(t, ConditionalTransform) else ConstantConditionalTransform(t)
            for t in transforms
        ]

    def condition(self, context: torch.Tensor) -> TransformedDistribution:
        base_dist = self.base_dist.condition(context)
        transforms = [t.condition(context) for t in self.transforms]
        return TransformedDistribution(base_dist, transforms)

    def clear_cache(self) -> None:
        """Forget every transform's cached ``(x, y)`` pair."""
        for t in self.transforms:
            clear_cache = getattr(t, "clear_cache", None)
            if clear_cache is not None:
                clear_cache()
