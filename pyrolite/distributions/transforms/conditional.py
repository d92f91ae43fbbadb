"""Transforms conditioned on a context: ``ConditionalTransform.condition(context)`` returns
an ordinary ``Transform`` (the conditional flows' base classes)."""

from abc import ABC, abstractmethod

import torch
from torch.distributions.transforms import Transform


class ConditionalTransform(ABC):
    """A family of transforms indexed by a context tensor.

    >>> from torch.distributions.transforms import AffineTransform
    >>> class Shift(ConditionalTransform):
    ...     def condition(self, context):
    ...         return AffineTransform(context, 1.0)
    >>> Shift().condition(torch.tensor(2.0))(torch.tensor(1.0))
    tensor(3.)
    """

    @abstractmethod
    def condition(self, context: torch.Tensor) -> Transform:
        """The transform at ``context``."""
        raise NotImplementedError


class ConditionalTransformModule(ConditionalTransform, torch.nn.Module):
    """A :class:`ConditionalTransform` with learnable parameters (an ``nn.Module``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)

    def __hash__(self):
        return torch.nn.Module.__hash__(self)

    @property
    def inv(self) -> "ConditionalTransform":
        """The family of inverse transforms: ``inv.condition(c)`` is ``condition(c).inv``."""
        return _InverseConditionalTransform(self)


class _InverseConditionalTransform(ConditionalTransform):
    def __init__(self, forward: ConditionalTransform):
        self.forward = forward

    def condition(self, context: torch.Tensor) -> Transform:
        return self.forward.condition(context).inv

    @property
    def inv(self) -> ConditionalTransform:
        return self.forward


class ConstantConditionalTransform(ConditionalTransform):
    """A plain transform seen as a conditional one that ignores its context."""

    def __init__(self, transform: Transform):
        self.transform = transform

    def condition(self, context: torch.Tensor) -> Transform:
        return self.transform

    def clear_cache(self) -> None:
        clear_cache = getattr(self.transform, "clear_cache", None)
        if clear_cache is not None:
            clear_cache()
