"""Transforms onto ordered vectors: ``OrderedTransform`` (reals to increasing reals)."""

import torch
from torch.distributions.transforms import Transform

from pyrolite.distributions import constraints


class OrderedTransform(Transform):
    """Map a real vector to an increasing one: ``y_0 = x_0``, ``y_i = y_{i-1} + exp(x_i)``.

    >>> OrderedTransform()(torch.tensor([1.0, 0.0, 0.0]))
    tensor([1., 2., 3.])
    """

    domain = constraints.real_vector
    codomain = constraints.ordered_vector
    bijective = True

    def __eq__(self, other):
        return isinstance(other, OrderedTransform)

    def _call(self, x):
        return torch.cat([x[..., :1], x[..., 1:].exp()], -1).cumsum(-1)

    def _inverse(self, y):
        return torch.cat([y[..., :1], (y[..., 1:] - y[..., :-1]).log()], -1)

    def log_abs_det_jacobian(self, x, y):
        return x[..., 1:].sum(-1)
