"""Relaxed Bernoulli and relaxed one-hot categorical with straight-through gradients: the
sample is discrete, its gradient is the relaxed sample's, and ``log_prob`` scores the relaxed
sample the discrete one came from.
"""

from typing import Optional, Union

import torch

from pyrolite.distributions.torch import RelaxedBernoulli, RelaxedOneHotCategorical


class _StraightThrough(torch.autograd.Function):
    """Forward a quantized tensor, backward the incoming gradient unchanged."""

    @staticmethod
    def forward(ctx, relaxed: torch.Tensor, quantized: torch.Tensor) -> torch.Tensor:
        return quantized.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


def _quantized(relaxed: torch.Tensor, quantized: torch.Tensor) -> torch.Tensor:
    value = _StraightThrough.apply(relaxed, quantized)
    # log_prob reads the relaxed sample back from here: a discrete value has no density
    # under the relaxed distribution.
    value._unquantize = relaxed
    return value


def _unquantize(value: torch.Tensor) -> torch.Tensor:
    return getattr(value, "_unquantize", value)


class RelaxedBernoulliStraightThrough(RelaxedBernoulli):
    """:class:`RelaxedBernoulli` whose ``rsample`` rounds to {0, 1} in the forward pass
    and differentiates as the relaxed sample in the backward pass.

    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <...>
    >>> d = RelaxedBernoulliStraightThrough(torch.tensor(0.5), probs=torch.tensor([0.3, 0.6]))
    >>> x = d.rsample()
    >>> x, d.log_prob(x)
    (tensor([0., 1.]), tensor([-0.0269,  0.8680]))
    """

    def __init__(
        self,
        temperature: torch.Tensor,
        probs: Optional[Union[torch.Tensor, float]] = None,
        logits: Optional[Union[torch.Tensor, float]] = None,
        validate_args: Optional[bool] = None,
    ) -> None:
        super().__init__(temperature, probs=probs, logits=logits, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(RelaxedBernoulliStraightThrough, _instance)
        return super().expand(batch_shape, new)

    def rsample(self, sample_shape=()) -> torch.Tensor:
        relaxed = super().rsample(sample_shape)
        return _quantized(relaxed, relaxed.detach().round())

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return super().log_prob(_unquantize(value))


class RelaxedOneHotCategoricalStraightThrough(RelaxedOneHotCategorical):
    """:class:`RelaxedOneHotCategorical` whose ``rsample`` is the one-hot vector of the
    relaxed sample's largest entry, differentiated as the relaxed sample.

    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <...>
    >>> logits = torch.tensor([0.3, 0.6, -1.0])
    >>> d = RelaxedOneHotCategoricalStraightThrough(torch.tensor(0.5), logits=logits)
    >>> x = d.rsample()
    >>> x, round(float(d.log_prob(x)), 4)
    (tensor([0., 1., 0.]), 5.2602)
    """

    def __init__(
        self,
        temperature: torch.Tensor,
        probs: Optional[torch.Tensor] = None,
        logits: Optional[torch.Tensor] = None,
        validate_args: Optional[bool] = None,
    ) -> None:
        super().__init__(temperature, probs=probs, logits=logits, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(RelaxedOneHotCategoricalStraightThrough, _instance)
        return super().expand(batch_shape, new)

    def rsample(self, sample_shape=()) -> torch.Tensor:
        relaxed = super().rsample(sample_shape)
        index = relaxed.detach().argmax(-1, keepdim=True)
        one_hot = torch.zeros_like(relaxed).scatter_(-1, index, 1.0)
        return _quantized(relaxed, one_hot)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return super().log_prob(_unquantize(value))
