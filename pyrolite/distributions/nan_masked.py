"""Normal and MultivariateNormal likelihoods that treat NaN entries of an observation as
missing: a NaN scalar scores zero, and a multivariate event with NaNs is scored by the
marginal of its observed entries.
"""

import math

import torch

from pyrolite.distributions.torch import MultivariateNormal, Normal


class NanMaskedNormal(Normal):
    """A :class:`Normal` whose ``log_prob`` is zero (with zero gradient) at NaN values.

    >>> d = NanMaskedNormal(torch.zeros(3), 1.0)
    >>> d.log_prob(torch.tensor([0.0, float("nan"), 1.0]))
    tensor([-0.9189,  0.0000, -1.4189])
    """

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        observed = ~value.isnan()
        if bool(observed.all()):
            return super().log_prob(value)
        # NaNs are replaced before scoring, else they would poison the gradient of the
        # observed entries through the ``where``'s backward.
        safe = torch.where(observed, value, self.loc.detach())
        return torch.where(observed, super().log_prob(safe), 0.0)


class NanMaskedMultivariateNormal(MultivariateNormal):
    """A :class:`MultivariateNormal` whose ``log_prob`` marginalizes out the NaN entries of
    each event (an all-NaN event scores zero).

    >>> nan = float("nan")
    >>> d = NanMaskedMultivariateNormal(torch.zeros(2), torch.eye(2))
    >>> d.log_prob(torch.tensor([[0.0, nan], [nan, nan]]))
    tensor([-0.9189,  0.0000])
    """

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        observed = ~value.isnan()
        if bool(observed.all()):
            return super().log_prob(value)
        if self._validate_args:
            self._validate_sample(torch.where(observed, value, 0.0))
        # Missing coordinates get a unit variance, no covariance with the others and a zero
        # residual: the density then factors into the observed marginal times one standard
        # normal density at 0 per missing coordinate, which is divided back out.
        pair = observed.unsqueeze(-1) & observed.unsqueeze(-2)
        eye = torch.eye(self._event_shape[0], dtype=value.dtype, device=value.device)
        cov = torch.where(pair, self.covariance_matrix, eye)
        residual = torch.where(observed, value - self.loc, 0.0)
        scale_tril = torch.linalg.cholesky(cov)
        white = torch.linalg.solve_triangular(scale_tril, residual.unsqueeze(-1), upper=False)
        maha = white.squeeze(-1).pow(2).sum(-1)
        half_log_det = scale_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        num_observed = observed.sum(-1).to(value.dtype)
        log_prob = -0.5 * (num_observed * math.log(2 * math.pi) + maha) - half_log_det
        return torch.where(observed.any(-1), log_prob, 0.0)
