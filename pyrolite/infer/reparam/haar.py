"""``HaarReparam``: guide a site in the Haar wavelet domain."""

from ...distributions.transforms.haar import HaarTransform
from .unit_jacobian import UnitJacobianReparam


class HaarReparam(UnitJacobianReparam):
    """:class:`UnitJacobianReparam` with ``HaarTransform(dim, flip)``; the new site is
    ``{name}_haar``.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> from pyrolite.poutine.reparam_messenger import ReparamMessenger
    >>> def model():
    ...     return pyrolite.sample("x", dist.Normal(torch.zeros(2), 1.0).to_event(1))
    >>> with ReparamMessenger({"x": HaarReparam()}):
    ...     with poutine.condition(data={"x_haar": torch.tensor([2.0 ** 0.5, 0.0])}):
    ...         x = model()
    >>> [round(float(v), 4) for v in x]
    [1.0, 1.0]
    """

    def __init__(
        self, dim: int = -1, flip: bool = False, *, experimental_allow_batch: bool = False
    ):
        transform = HaarTransform(dim=dim, flip=flip, cache_size=1)
        super().__init__(
            transform, suffix="haar", experimental_allow_batch=experimental_allow_batch
        )
