"""MixtureGeneral: a finite mixture of arbitrary component distributions (NumPyro's API)."""

from typing import Optional, Sequence

import torch
from torch.distributions import constraints

from pyrolite.distributions.torch_distribution import TorchDistribution, copy_forced_has_rsample
from pyrolite.distributions.util import broadcast_shape


class MixtureGeneral(TorchDistribution):
    """Mixture of ``component_distributions`` (a list, one per category) weighted by a
    ``Categorical`` ``mixing_distribution``.

    Components may be of different families but share ``event_shape``; batch shapes
    broadcast. ``log_prob`` marginalizes the component exactly (logsumexp); samples pick a
    component per draw and are not reparameterized.

    >>> from pyrolite.distributions import Categorical, Normal
    >>> mix = MixtureGeneral(Categorical(torch.tensor([0.5, 0.5])),
    ...                      [Normal(-1.0, 1.0), Normal(1.0, 1.0)])
    >>> mix.log_prob(torch.tensor(0.0)), mix.mean
    (tensor(-1.4189), tensor(0.))
    """

    arg_constraints = {}
    has_rsample = False

    def __init__(
        self,
        mixing_distribution: torch.distributions.Categorical,
        component_distributions: Sequence[torch.distributions.Distribution],
        support: Optional[constraints.Constraint] = None,
        validate_args=None,
    ):
        if not isinstance(mixing_distribution, torch.distributions.Categorical):
            raise ValueError(
                "MixtureGeneral: mixing_distribution must be a Categorical, got "
                f"{type(mixing_distribution).__name__}"
            )
        component_distributions = list(component_distributions)
        mixture_size = mixing_distribution.param_shape[-1]
        if len(component_distributions) != mixture_size:
            raise ValueError(
                f"MixtureGeneral: the mixing distribution has {mixture_size} categories but "
                f"{len(component_distributions)} component distributions were given"
            )
        for d in component_distributions:
            if not isinstance(d, torch.distributions.Distribution):
                raise ValueError(
                    f"MixtureGeneral: components must be distributions, got {type(d).__name__}"
                )
        event_shape = component_distributions[0].event_shape
        if any(d.event_shape != event_shape for d in component_distributions):
            shapes = [tuple(d.event_shape) for d in component_distributions]
            raise ValueError(f"MixtureGeneral: components' event shapes differ: {shapes}")
        batch_shape = broadcast_shape(
            mixing_distribution.batch_shape, *(d.batch_shape for d in component_distributions)
        )
        self._mixing_distribution = mixing_distribution
        self._component_distributions = component_distributions
        self._support = support
        super().__init__(batch_shape, event_shape, validate_args)

    @property
    def mixing_distribution(self):
        return self._mixing_distribution

    @property
    def component_distributions(self):
        return self._component_distributions

    @property
    def mixture_size(self) -> int:
        return len(self._component_distributions)

    @property
    def mixture_dim(self) -> int:
        return -self.event_dim - 1

    @constraints.dependent_property
    def support(self):
        if self._support is not None:
            return self._support
        return self._component_distributions[0].support

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(MixtureGeneral, _instance)
        batch_shape = torch.Size(batch_shape)
        new._mixing_distribution = self._mixing_distribution.expand(batch_shape)
        new._component_distributions = [
            d.expand(batch_shape) for d in self._component_distributions
        ]
        new._support = self._support
        super(MixtureGeneral, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return copy_forced_has_rsample(self, new)

    def component_log_probs(self, value: torch.Tensor) -> torch.Tensor:
        """``log w_k + log p_k(value)`` stacked on a new rightmost dim of size K."""
        log_probs = torch.stack([d.log_prob(value) for d in self._component_distributions], -1)
        return torch.log_softmax(self._mixing_distribution.logits, -1) + log_probs

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return torch.logsumexp(self.component_log_probs(value), -1)

    def sample(self, sample_shape=()) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape
        with torch.no_grad():
            # Each component is expanded so that broadcast batch entries get their own draws.
            samples = torch.stack(
                [d.expand(shape).sample() for d in self._component_distributions],
                self.mixture_dim,
            )
            indices = self._mixing_distribution.expand(shape).sample()
            indices = indices.reshape(shape + (1,) * (self.event_dim + 1))
            indices = indices.expand(shape + (1,) + self.event_shape)
            return samples.gather(self.mixture_dim, indices).squeeze(self.mixture_dim)

    def _weights(self) -> torch.Tensor:
        probs = self._mixing_distribution.probs
        return probs.reshape(probs.shape + (1,) * self.event_dim)

    @property
    def mean(self) -> torch.Tensor:
        means = torch.stack([d.mean for d in self._component_distributions], self.mixture_dim)
        return (self._weights() * means).sum(self.mixture_dim)

    @property
    def variance(self) -> torch.Tensor:
        means = torch.stack([d.mean for d in self._component_distributions], self.mixture_dim)
        variances = torch.stack(
            [d.variance for d in self._component_distributions], self.mixture_dim
        )
        weights = self._weights()
        mean = (weights * means).sum(self.mixture_dim, keepdim=True)
        spread = variances + (means - mean) ** 2
        return (weights * spread).sum(self.mixture_dim)
