"""Transforms with learnable parameters: ``TransformModule`` (a ``Transform`` that is also an
``nn.Module``) and ``ComposeTransformModule`` (a composition whose parts are submodules)."""

from typing import Sequence

import torch
from torch.distributions.transforms import ComposeTransform, Transform


class TransformModule(Transform, torch.nn.Module):
    """Base class for transforms with learnable parameters (the flows' base class).

    Subclasses call ``super().__init__(cache_size=...)`` and register parameters or
    submodules as any ``nn.Module`` does; ``parameters()`` then finds them, which is how
    ``pyrolite.module`` and the flow autoguides train them.

    >>> class Shift(TransformModule):
    ...     domain = codomain = torch.distributions.constraints.real
    ...     bijective = True
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.shift = torch.nn.Parameter(torch.tensor(1.0))
    ...     def _call(self, x):
    ...         return x + self.shift
    ...     def _inverse(self, y):
    ...         return y - self.shift
    ...     def log_abs_det_jacobian(self, x, y):
    ...         return torch.zeros_like(x)
    >>> [name for name, _ in Shift().named_parameters()]
    ['shift']
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)

    # nn.Module defines __setattr__/__getattr__; Transform defines __eq__, which would make
    # instances unhashable. Modules are compared and hashed by identity.
    def __hash__(self):
        return torch.nn.Module.__hash__(self)

    def clear_cache(self) -> None:
        """Forget the cached ``(x, y)`` pair (``cache_size=1``), e.g. after a parameter update.

        torch keeps the pair in ``_cached_x_y`` and offers no public reset."""
        self._cached_x_y = None, None


class ComposeTransformModule(ComposeTransform, torch.nn.ModuleList):
    """Compose ``parts`` (applied in order), registering the ``nn.Module`` ones as submodules.

    >>> from torch.distributions.transforms import ExpTransform
    >>> t = ComposeTransformModule([ExpTransform(), ExpTransform()])
    >>> round(float(t(torch.tensor(0.0))), 4)
    2.7183
    """

    def __init__(self, parts: Sequence[Transform], cache_size: int = 0):
        super().__init__(parts, cache_size=cache_size)
        for part in parts:
            if isinstance(part, torch.nn.Module):
                self.append(part)

    def __hash__(self):
        return torch.nn.Module.__hash__(self)

    def with_cache(self, cache_size: int = 1) -> "ComposeTransformModule":
        if cache_size == self._cache_size:
            return self
        return ComposeTransformModule(self.parts, cache_size=cache_size)
