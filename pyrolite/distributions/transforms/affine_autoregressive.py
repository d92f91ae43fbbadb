"""Affine autoregressive flows (IAF/MAF): ``AffineAutoregressive`` and its conditional form,
with the ``affine_autoregressive`` helpers that build the MADE hypernet."""

from functools import partial
from typing import Callable, List, Optional

import torch
import torch.nn.functional as F
from torch.distributions import constraints

from pyrolite.distributions.transforms.conditional import ConditionalTransformModule
from pyrolite.distributions.transforms.module import TransformModule
from pyrolite.nn.auto_reg_nn import AutoRegressiveNN, ConditionalAutoRegressiveNN


def clamp_preserve_gradients(x: torch.Tensor, min: float, max: float) -> torch.Tensor:
    """``x`` clamped to ``[min, max]`` in value, with the gradient of the identity.

    A clipped log-scale keeps flows numerically safe while still telling the optimizer
    which way to move it; a plain ``clamp`` would zero that gradient.

    >>> x = torch.tensor([-9.0, 0.0, 9.0], requires_grad=True)
    >>> y = clamp_preserve_gradients(x, -5.0, 3.0)
    >>> y.sum().backward()
    >>> y.tolist(), x.grad.tolist()
    ([-5.0, 0.0, 3.0], [1.0, 1.0, 1.0])
    """
    if not x.requires_grad:
        return x.clamp(min, max)
    return x + (x.clamp(min, max) - x).detach()


class AffineAutoregressive(TransformModule):
    """The autoregressive affine bijection ``y = mu(x) + sigma(x) * x`` (an IAF).

    ``autoregressive_nn`` maps ``x`` to ``(mu, log_sigma)`` with output ``i`` depending only
    on the inputs before ``i`` in its permutation, so the Jacobian is triangular and
    ``log|det J| = sum(log_sigma)``. ``log_sigma`` is clipped (in value, not gradient) to
    ``[log_scale_min_clip, log_scale_max_clip]``. With ``stable=True`` the update is
    ``y = sigma * x + (1 - sigma) * mu`` with ``sigma = sigmoid(log_sigma + sigmoid_bias)``
    (the numerically stable IAF of Kingma et al. 2016). The forward is one network pass;
    the inverse takes ``input_dim`` passes (or none for the ``y`` of the latest forward,
    which is cached).

    >>> from pyrolite.nn.auto_reg_nn import AutoRegressiveNN
    >>> _ = torch.manual_seed(0)
    >>> t = AffineAutoregressive(AutoRegressiveNN(3, [10]))
    >>> x = torch.randn(5, 3)
    >>> y = t(x)
    >>> t.log_abs_det_jacobian(x, y).shape, bool(torch.allclose(t.inv(y.clone()), x, atol=1e-5))
    (torch.Size([5]), True)
    """

    domain = constraints.independent(constraints.real, 1)
    codomain = constraints.independent(constraints.real, 1)
    bijective = True
    autoregressive = True
    sign = +1

    def __init__(
        self,
        autoregressive_nn: Callable,
        log_scale_min_clip: float = -5.0,
        log_scale_max_clip: float = 3.0,
        sigmoid_bias: float = 2.0,
        stable: bool = False,
    ) -> None:
        super().__init__(cache_size=1)
        self.arn = autoregressive_nn
        self._cached_log_scale = None
        self.log_scale_min_clip = log_scale_min_clip
        self.log_scale_max_clip = log_scale_max_clip
        self.sigmoid_bias = sigmoid_bias
        self.stable = stable

    @property
    def event_dim(self) -> int:
        return 1

    def _scale_and_shift(self, mean: torch.Tensor, raw_scale: torch.Tensor):
        """``(scale, log_scale, shift)`` so that ``y = scale * x + shift``."""
        if self.stable:
            logit = raw_scale + self.sigmoid_bias
            scale = torch.sigmoid(logit)
            return scale, F.logsigmoid(logit), (1 - scale) * mean
        log_scale = clamp_preserve_gradients(
            raw_scale, self.log_scale_min_clip, self.log_scale_max_clip
        )
        return torch.exp(log_scale), log_scale, mean

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        mean, raw_scale = self.arn(x)
        scale, log_scale, shift = self._scale_and_shift(mean, raw_scale)
        self._cached_log_scale = log_scale
        return torch.addcmul(shift, scale, x)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        # Output i depends on x[:i] (in the network's order) only, so after k fixed-point
        # passes x = (y - shift(x)) / scale(x) from zero the first k coordinates are exact:
        # input_dim passes invert exactly, for any autoregressive callable.
        x = torch.zeros_like(y)
        for _ in range(y.size(-1)):
            mean, raw_scale = self.arn(x)
            scale, log_scale, shift = self._scale_and_shift(mean, raw_scale)
            x = (y - shift) / scale
        self._cached_log_scale = log_scale
        return x

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x_old, y_old = self._cached_x_y
        if x is not x_old or y is not y_old or self._cached_log_scale is None:
            mean, raw_scale = self.arn(x)
            log_scale = self._scale_and_shift(mean, raw_scale)[1]
        else:
            log_scale = self._cached_log_scale
        return log_scale.sum(-1)


class ConditionalAffineAutoregressive(ConditionalTransformModule):
    """:class:`AffineAutoregressive` whose hypernet also reads a context:
    ``condition(context)`` returns the ``AffineAutoregressive`` at that context.

    >>> from pyrolite.nn.auto_reg_nn import ConditionalAutoRegressiveNN
    >>> t = ConditionalAffineAutoregressive(ConditionalAutoRegressiveNN(3, 2, [10]))
    >>> t.condition(torch.randn(2))(torch.randn(5, 3)).shape
    torch.Size([5, 3])
    """

    domain = constraints.independent(constraints.real, 1)
    codomain = constraints.independent(constraints.real, 1)
    bijective = True
    event_dim = 1

    def __init__(self, autoregressive_nn: Callable, **kwargs) -> None:
        super().__init__()
        self.nn = autoregressive_nn
        self.kwargs = kwargs

    def condition(self, context: torch.Tensor) -> AffineAutoregressive:
        return AffineAutoregressive(partial(self.nn, context=context), **self.kwargs)


def affine_autoregressive(
    input_dim: int, hidden_dims: Optional[List[int]] = None, **kwargs
) -> AffineAutoregressive:
    """An :class:`AffineAutoregressive` over a new ``AutoRegressiveNN`` with hidden layers
    ``hidden_dims`` (default ``[3 * input_dim + 1]``); ``kwargs`` go to the transform.

    >>> [p.shape for p in affine_autoregressive(2).parameters()]
    [torch.Size([7, 2]), torch.Size([7]), torch.Size([4, 7]), torch.Size([4])]
    """
    if hidden_dims is None:
        hidden_dims = [3 * input_dim + 1]
    return AffineAutoregressive(AutoRegressiveNN(input_dim, hidden_dims), **kwargs)


def conditional_affine_autoregressive(
    input_dim: int, context_dim: int, hidden_dims: Optional[List[int]] = None, **kwargs
) -> ConditionalAffineAutoregressive:
    """A :class:`ConditionalAffineAutoregressive` over a new ``ConditionalAutoRegressiveNN``
    with hidden layers ``hidden_dims`` (default ``[10 * input_dim]``).

    >>> t = conditional_affine_autoregressive(2, 3)
    >>> t.condition(torch.zeros(3))(torch.zeros(4, 2)).shape
    torch.Size([4, 2])
    """
    if hidden_dims is None:
        hidden_dims = [10 * input_dim]
    nn = ConditionalAutoRegressiveNN(input_dim, context_dim, hidden_dims)
    return ConditionalAffineAutoregressive(nn, **kwargs)
