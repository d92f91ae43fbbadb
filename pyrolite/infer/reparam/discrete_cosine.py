"""``DiscreteCosineReparam``: guide a site in the frequency domain (orthonormal DCT-II)."""

from ...distributions.transforms.discrete_cosine import DiscreteCosineTransform
from .unit_jacobian import UnitJacobianReparam


class DiscreteCosineReparam(UnitJacobianReparam):
    """:class:`UnitJacobianReparam` with ``DiscreteCosineTransform(dim, smooth)``; the new
    site is ``{name}_dct``. ``smooth`` weights frequencies ``(k + 1) ** smooth``.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> from pyrolite.poutine.reparam_messenger import ReparamMessenger
    >>> def model():
    ...     return pyrolite.sample("x", dist.Normal(torch.zeros(4), 1.0).to_event(1))
    >>> with ReparamMessenger({"x": DiscreteCosineReparam()}):
    ...     with poutine.condition(data={"x_dct": torch.tensor([2.0, 0.0, 0.0, 0.0])}):
    ...         x = model()
    >>> x
    tensor([1., 1., 1., 1.])
    """

    def __init__(
        self, dim: int = -1, smooth: float = 0.0, *, experimental_allow_batch: bool = False
    ):
        transform = DiscreteCosineTransform(dim=dim, smooth=smooth, cache_size=1)
        super().__init__(transform, suffix="dct", experimental_allow_batch=experimental_allow_batch)
