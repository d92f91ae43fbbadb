"""Affine coupling flows (RealNVP): ``AffineCoupling`` and its conditional form, with the
``affine_coupling`` helpers that build the dense hypernet."""

import math
from functools import partial
from typing import Callable, List, Optional, Tuple, Union

import torch
from torch.distributions import constraints

from pyrolite.distributions.transforms.affine_autoregressive import clamp_preserve_gradients
from pyrolite.distributions.transforms.conditional import ConditionalTransformModule
from pyrolite.distributions.transforms.module import TransformModule
from pyrolite.nn.dense_nn import ConditionalDenseNN, DenseNN


class AffineCoupling(TransformModule):
    """The coupling bijection of RealNVP (Dinh et al. 2017) along dimension ``dim``.

    ``x`` splits along ``dim`` into ``x1`` (the first ``split_dim`` slices) and ``x2``;
    ``y1 = x1`` and ``y2 = mu(x1) + exp(log_sigma(x1)) * x2``, where ``hypernet`` maps
    ``x1`` flattened over the event dims to ``(mu, log_sigma)`` flattened likewise.
    ``log_sigma`` is clipped in value (not gradient) to ``[log_scale_min_clip,
    log_scale_max_clip]``. The event has ``-dim`` dims; forward and inverse are one
    hypernet pass each.

    >>> from pyrolite.nn.dense_nn import DenseNN
    >>> t = AffineCoupling(2, DenseNN(2, [10], param_dims=[3, 3]))
    >>> x = torch.randn(4, 5)
    >>> y = t(x)
    >>> bool(torch.equal(y[:, :2], x[:, :2])), t.log_abs_det_jacobian(x, y).shape
    (True, torch.Size([4]))
    """

    bijective = True

    def __init__(
        self,
        split_dim: int,
        hypernet: Callable,
        *,
        dim: int = -1,
        log_scale_min_clip: float = -5.0,
        log_scale_max_clip: float = 3.0,
    ) -> None:
        super().__init__(cache_size=1)
        if dim >= 0:
            raise ValueError(f"AffineCoupling: dim must be negative (an event dim), got {dim}")
        self.split_dim = split_dim
        self.nn = hypernet
        self.dim = dim
        self._cached_log_scale = None
        self.log_scale_min_clip = log_scale_min_clip
        self.log_scale_max_clip = log_scale_max_clip

    @constraints.dependent_property(is_discrete=False)
    def domain(self):
        return constraints.independent(constraints.real, -self.dim)

    @constraints.dependent_property(is_discrete=False)
    def codomain(self):
        return constraints.independent(constraints.real, -self.dim)

    @property
    def event_dim(self) -> int:
        return -self.dim

    def _split(self, v: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return v.split([self.split_dim, v.size(self.dim) - self.split_dim], dim=self.dim)

    def _mean_log_scale(self, x1: torch.Tensor, x2_shape: torch.Size):
        flat = x1.reshape(x1.shape[: x1.dim() + self.dim] + (-1,))
        mean, log_scale = self.nn(flat)
        event_shape = x2_shape[self.dim :]
        mean = mean.reshape(mean.shape[:-1] + event_shape)
        log_scale = log_scale.reshape(log_scale.shape[:-1] + event_shape)
        log_scale = clamp_preserve_gradients(
            log_scale, self.log_scale_min_clip, self.log_scale_max_clip
        )
        return mean, log_scale

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self._split(x)
        mean, log_scale = self._mean_log_scale(x1, x2.shape)
        self._cached_log_scale = log_scale
        y2 = torch.addcmul(mean, torch.exp(log_scale), x2)
        return torch.cat([x1, y2], dim=self.dim)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        y1, y2 = self._split(y)
        mean, log_scale = self._mean_log_scale(y1, y2.shape)
        self._cached_log_scale = log_scale
        x2 = (y2 - mean) * torch.exp(-log_scale)
        return torch.cat([y1, x2], dim=self.dim)

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x_old, y_old = self._cached_x_y
        if self._cached_log_scale is not None and x is x_old and y is y_old:
            log_scale = self._cached_log_scale
        else:
            x1, x2 = self._split(x)
            log_scale = self._mean_log_scale(x1, x2.shape)[1]
        return log_scale.sum(tuple(range(-self.event_dim, 0)))


class ConditionalAffineCoupling(ConditionalTransformModule):
    """:class:`AffineCoupling` whose hypernet also reads a context: ``condition(context)``
    returns the ``AffineCoupling`` at that context.

    >>> from pyrolite.nn.dense_nn import ConditionalDenseNN
    >>> t = ConditionalAffineCoupling(2, ConditionalDenseNN(2, 3, [10], param_dims=[2, 2]))
    >>> t.condition(torch.randn(3))(torch.randn(6, 4)).shape
    torch.Size([6, 4])
    """

    domain = constraints.independent(constraints.real, 1)
    codomain = constraints.independent(constraints.real, 1)
    bijective = True
    event_dim = 1

    def __init__(self, split_dim: int, hypernet: Callable, **kwargs) -> None:
        super().__init__()
        self.split_dim = split_dim
        self.nn = hypernet
        self.kwargs = kwargs

    def condition(self, context: torch.Tensor) -> AffineCoupling:
        return AffineCoupling(self.split_dim, partial(self.nn, context=context), **self.kwargs)


def _coupling_sizes(input_dim: Union[int, Tuple[int, ...]], split_dim: Optional[int], dim: int):
    """``(event_shape, split_dim, size of one slice along dim)`` for the coupling helpers."""
    event_shape = (input_dim,) if isinstance(input_dim, int) else tuple(input_dim)
    if -dim > len(event_shape):
        raise ValueError(
            f"dim={dim} needs an event of at least {-dim} dims; pass input_dim as the event "
            f"shape (a tuple), got {input_dim}"
        )
    if split_dim is None:
        split_dim = event_shape[dim] // 2
    extra = math.prod(event_shape[dim:][1:])
    return event_shape, split_dim, extra


def affine_coupling(
    input_dim: Union[int, Tuple[int, ...]],
    hidden_dims: Optional[List[int]] = None,
    split_dim: Optional[int] = None,
    dim: int = -1,
    **kwargs,
) -> AffineCoupling:
    """An :class:`AffineCoupling` over a new ``DenseNN``: ``split_dim`` defaults to half the
    size along ``dim``, ``hidden_dims`` to ``[10 * event size]``; ``input_dim`` is the
    event shape when ``dim < -1``.

    >>> [p.shape for p in affine_coupling(4).parameters()]
    [torch.Size([40, 2]), torch.Size([40]), torch.Size([4, 40]), torch.Size([4])]
    """
    event_shape, split_dim, extra = _coupling_sizes(input_dim, split_dim, dim)
    if hidden_dims is None:
        hidden_dims = [10 * math.prod(event_shape)]
    out = (event_shape[dim] - split_dim) * extra
    hypernet = DenseNN(split_dim * extra, hidden_dims, [out, out])
    return AffineCoupling(split_dim, hypernet, dim=dim, **kwargs)


def conditional_affine_coupling(
    input_dim: Union[int, Tuple[int, ...]],
    context_dim: int,
    hidden_dims: Optional[List[int]] = None,
    split_dim: Optional[int] = None,
    dim: int = -1,
    **kwargs,
) -> ConditionalAffineCoupling:
    """A :class:`ConditionalAffineCoupling` over a new ``ConditionalDenseNN`` (defaults as
    :func:`affine_coupling`).

    >>> t = conditional_affine_coupling(4, 2)
    >>> t.condition(torch.zeros(2))(torch.zeros(3, 4)).shape
    torch.Size([3, 4])
    """
    event_shape, split_dim, extra = _coupling_sizes(input_dim, split_dim, dim)
    if hidden_dims is None:
        hidden_dims = [10 * math.prod(event_shape)]
    out = (event_shape[dim] - split_dim) * extra
    hypernet = ConditionalDenseNN(split_dim * extra, context_dim, hidden_dims, [out, out])
    return ConditionalAffineCoupling(split_dim, hypernet, dim=dim, **kwargs)
