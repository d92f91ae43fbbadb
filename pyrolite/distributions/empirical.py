"""Empirical: the weighted discrete distribution over a fixed set of samples."""

import torch
from torch.distributions import constraints

from pyrolite.distributions.torch_distribution import TorchDistribution


class Empirical(TorchDistribution):
    """Puts mass ``softmax(log_weights)`` on each of ``samples``.

    ``samples`` has shape ``batch_shape + (num_samples,) + event_shape`` and
    ``log_weights`` has shape ``batch_shape + (num_samples,)``: the event shape is whatever
    ``samples`` has beyond the weights. ``log_prob(x)`` is the log of the total weight of
    the samples equal to ``x``.

    >>> d = Empirical(torch.tensor([0.0, 1.0, 1.0]), torch.tensor([0.5, 0.25, 0.25]).log())
    >>> d.mean, d.log_prob(torch.tensor(1.0)).exp()
    (tensor(0.5000), tensor(0.5000))
    """

    arg_constraints = {}
    support = constraints.real
    has_enumerate_support = True

    def __init__(self, samples: torch.Tensor, log_weights: torch.Tensor, validate_args=None):
        weight_shape = log_weights.shape
        if log_weights.dim() == 0 or samples.shape[: log_weights.dim()] != weight_shape:
            raise ValueError(
                f"Empirical: log_weights.shape={tuple(weight_shape)} must be a non-empty "
                f"leading part of samples.shape={tuple(samples.shape)}"
            )
        self._samples = samples
        self._log_weights = log_weights
        self._aggregation_dim = log_weights.dim() - 1
        self._categorical = torch.distributions.Categorical(logits=log_weights)
        super().__init__(weight_shape[:-1], samples.shape[log_weights.dim() :], validate_args)

    @property
    def sample_size(self) -> int:
        return self._log_weights.size(-1)

    @property
    def log_weights(self) -> torch.Tensor:
        return self._log_weights

    def sample(self, sample_shape=()) -> torch.Tensor:
        sample_shape = torch.Size(sample_shape)
        index = self._categorical.sample(sample_shape)  # sample_shape + batch_shape
        # Move the sample axis first: (num_samples,) + batch_shape + event_shape.
        samples = self._samples.movedim(self._aggregation_dim, 0)
        index = index.reshape((-1,) + self.batch_shape + (1,) * self.event_dim)
        index = index.expand((index.shape[0],) + samples.shape[1:])
        return samples.gather(0, index).reshape(sample_shape + samples.shape[1:])

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args and value.shape != self.batch_shape + self.event_shape:
            raise ValueError(
                f"Empirical.log_prob: value.shape={tuple(value.shape)} must equal "
                f"batch_shape + event_shape = {tuple(self.batch_shape + self.event_shape)}"
            )
        if self.batch_shape:
            value = value.unsqueeze(self._aggregation_dim)
        matches = self._samples == value
        if self.event_dim:
            matches = matches.flatten(-self.event_dim).all(-1)
        return (self._categorical.probs * matches.type_as(self._categorical.probs)).sum(-1).log()

    def _weighted_mean(self, value: torch.Tensor) -> torch.Tensor:
        probs = self._categorical.probs
        probs = probs.reshape(probs.shape + (1,) * (value.dim() - probs.dim()))
        return (value * probs).sum(self._aggregation_dim)

    @property
    def mean(self) -> torch.Tensor:
        if not self._samples.is_floating_point():
            raise ValueError("Empirical.mean is undefined for integer samples; cast them to float")
        return self._weighted_mean(self._samples)

    @property
    def variance(self) -> torch.Tensor:
        if not self._samples.is_floating_point():
            raise ValueError(
                "Empirical.variance is undefined for integer samples; cast them to float"
            )
        deviation = self._samples - self.mean.unsqueeze(self._aggregation_dim)
        return self._weighted_mean(deviation**2)

    def enumerate_support(self, expand: bool = True) -> torch.Tensor:
        """The stored samples (batching is not supported, so ``expand`` changes nothing)."""
        return self._samples
