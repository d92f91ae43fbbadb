"""Batch normalization as a bijection (Dinh et al., 2017), oriented as Pyro's: the inverse
normalizes data with batch statistics in training, the forward maps back with running ones."""

import torch
import torch.nn.functional as F

from pyrolite.distributions import constraints
from pyrolite.distributions.transforms.module import TransformModule


class BatchNorm(TransformModule):
    """``x = (y - mean) / sqrt(var + epsilon) * gamma' + beta``, with ``gamma' =
    relu(gamma) + 1e-6``, is the *inverse*; the forward solves it for ``y``.

    In training mode ``inv(y)`` uses the mean and unbiased variance of ``y`` over dim 0 and
    updates ``moving_mean`` / ``moving_variance`` (weight ``momentum``), while the forward
    and ``log_abs_det_jacobian`` use the running statistics (``log_abs_det_jacobian`` takes
    the variance of ``y`` over dim 0 in training). In eval mode all three use the running
    statistics. Use it in a flow that scores data (``TransformedDistribution.log_prob``).

    >>> bn = BatchNorm(2)
    >>> x = bn.inv(torch.tensor([[0.0, 1.0], [2.0, 5.0]]))
    >>> [round(float(v), 4) for v in bn.moving_mean]
    [0.1, 0.3]
    """

    domain = constraints.real
    codomain = constraints.real
    bijective = True

    def __init__(self, input_dim: int, momentum: float = 0.1, epsilon: float = 1e-5):
        super().__init__()
        self.input_dim = input_dim
        self.gamma = torch.nn.Parameter(torch.ones(input_dim))
        self.beta = torch.nn.Parameter(torch.zeros(input_dim))
        self.momentum = momentum
        self.epsilon = epsilon
        self.register_buffer("moving_mean", torch.zeros(input_dim))
        self.register_buffer("moving_variance", torch.ones(input_dim))

    @property
    def constrained_gamma(self) -> torch.Tensor:
        """The positive scale ``relu(gamma) + 1e-6``."""
        return F.relu(self.gamma) + 1e-6

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        scale = torch.sqrt(self.moving_variance + self.epsilon) / self.constrained_gamma
        return torch.addcmul(self.moving_mean, x - self.beta, scale)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        if self.training:
            mean, var = y.mean(0), y.var(0)
            if mean.shape != self.moving_mean.shape:
                raise ValueError(
                    f"BatchNorm in training mode takes batches of shape (N, {self.input_dim}),"
                    f" got {tuple(y.shape)}; reshape to (N, {self.input_dim}) or call .eval()"
                )
            with torch.no_grad():
                self.moving_mean.mul_(1 - self.momentum).add_(mean * self.momentum)
                self.moving_variance.mul_(1 - self.momentum).add_(var * self.momentum)
        else:
            mean, var = self.moving_mean, self.moving_variance
        scale = self.constrained_gamma / torch.sqrt(var + self.epsilon)
        return torch.addcmul(self.beta, y - mean, scale)

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        var = y.var(0, keepdim=True) if self.training else self.moving_variance
        return -self.constrained_gamma.log() + 0.5 * torch.log(var + self.epsilon)


def batchnorm(input_dim: int, **kwargs) -> BatchNorm:
    """A :class:`BatchNorm` on vectors of size ``input_dim``; keywords pass through.

    >>> batchnorm(3, momentum=0.2).momentum
    0.2
    """
    return BatchNorm(input_dim, **kwargs)
