"""``iterated``: stack several independently initialized copies of a transform."""

from typing import Callable

from torch.distributions.transforms import Transform

from pyrolite.distributions.transforms.module import ComposeTransformModule


def iterated(repeats: int, base_fn: Callable[..., Transform], *args, **kwargs):
    """Compose ``repeats`` transforms ``base_fn(*args, **kwargs)`` (each a fresh call) into a
    :class:`ComposeTransformModule`, so learnable parts are its submodules.

    >>> from pyrolite.distributions.transforms.planar import planar
    >>> [name for name, _ in iterated(2, planar, 3).named_parameters()][:3]
    ['0.bias', '0.u', '0.w']
    """
    if not (isinstance(repeats, int) and repeats >= 1):
        raise ValueError(f"iterated: repeats must be a positive int, got {repeats!r}")
    return ComposeTransformModule([base_fn(*args, **kwargs) for _ in range(repeats)])
