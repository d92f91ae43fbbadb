"""``Exponential(rate)`` sampled by rejection from ``Exponential(rate * factor)``: a
reparameterized rejection sampler with a known acceptance, for testing the score term."""

import torch
from torch.distributions import constraints

from pyrolite.distributions.rejector import Rejector
from pyrolite.distributions.torch import Exponential
from pyrolite.distributions.util import broadcast_shape


class RejectionExponential(Rejector):
    """Proposals from ``Exponential(rate * factor)`` (``factor <= 1``) accepted with
    probability ``exp(-rate (1 - factor) x)``; the total acceptance is ``factor``.

    >>> d = RejectionExponential(torch.tensor([1.0, 2.0]), torch.tensor([0.5, 0.5]))
    >>> [round(v, 4) for v in d.score_parts(torch.ones(2)).score_function.tolist()]
    [0.1931, -0.3069]
    """

    arg_constraints = {"rate": constraints.positive, "factor": constraints.positive}
    support = constraints.positive

    def __init__(self, rate: torch.Tensor, factor: torch.Tensor):
        shape = broadcast_shape(torch.as_tensor(rate).shape, torch.as_tensor(factor).shape)
        self.rate = torch.as_tensor(rate).expand(shape)
        self.factor = torch.as_tensor(factor, dtype=self.rate.dtype).expand(shape)
        if not bool((self.factor <= 1).all()):
            raise ValueError(
                "RejectionExponential: factor must be <= 1 (the proposal must have the heavier "
                f"tail), got {self.factor.tolist()}"
            )
        propose = Exponential(self.rate * self.factor)
        super().__init__(propose, self.log_prob_accept, self.factor.log())

    def expand(self, batch_shape, _instance=None) -> "RejectionExponential":
        batch_shape = torch.Size(batch_shape)
        return RejectionExponential(self.rate.expand(batch_shape), self.factor.expand(batch_shape))

    def log_prob_accept(self, x: torch.Tensor) -> torch.Tensor:
        return -self.rate * (1 - self.factor) * x
