"""``Dirichlet`` and ``Beta`` reparameterized through independent Gammas: the textbook
construction, whose gradients have higher variance than torch's implicit ones (for testing
gradient estimators against a known-unbiased but noisier sampler)."""

import torch

from pyrolite.distributions.torch import Beta, Dirichlet, Gamma


class NaiveDirichlet(Dirichlet):
    """``Dirichlet(concentration)`` sampled as normalized ``Gamma(concentration, 1)`` draws.

    >>> round(NaiveDirichlet(torch.ones(3)).rsample().sum().item(), 4)
    1.0
    """

    has_rsample = True

    def __init__(self, concentration: torch.Tensor, validate_args=None):
        super().__init__(concentration, validate_args=validate_args)
        self._gamma = Gamma(concentration, torch.ones_like(concentration))

    def expand(self, batch_shape, _instance=None) -> "NaiveDirichlet":
        return NaiveDirichlet(self.concentration.expand(torch.Size(batch_shape) + self.event_shape))

    def rsample(self, sample_shape=()) -> torch.Tensor:
        gammas = self._gamma.rsample(sample_shape)
        return gammas / gammas.sum(-1, True)


class NaiveBeta(Beta):
    """``Beta(concentration1, concentration0)`` sampled as ``g1 / (g1 + g0)`` with Gamma draws.

    >>> x = NaiveBeta(torch.tensor(2.0), torch.tensor(3.0)).rsample((4,))
    >>> bool(((x > 0) & (x < 1)).all())
    True
    """

    has_rsample = True

    def __init__(self, concentration1, concentration0, validate_args=None):
        super().__init__(concentration1, concentration0, validate_args=validate_args)
        alpha_beta = torch.stack([self.concentration1, self.concentration0], -1)
        self._gamma = Gamma(alpha_beta, torch.ones_like(alpha_beta))

    def expand(self, batch_shape, _instance=None) -> "NaiveBeta":
        batch_shape = torch.Size(batch_shape)
        return NaiveBeta(
            self.concentration1.expand(batch_shape), self.concentration0.expand(batch_shape)
        )

    def rsample(self, sample_shape=()) -> torch.Tensor:
        gammas = self._gamma.rsample(sample_shape)
        return gammas[..., 0] / gammas.sum(-1)
