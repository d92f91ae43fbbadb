"""LKJ distributions over correlation matrices (``LKJ``) and over their Cholesky factors
(the deprecated ``LKJCorrCholesky`` spelling of torch's ``LKJCholesky``)."""

import warnings
from typing import Optional, Union

import torch

from pyrolite.distributions import constraints
from pyrolite.distributions.torch import LKJCholesky, TransformedDistribution
from pyrolite.distributions.torch_distribution import copy_forced_has_rsample
from pyrolite.distributions.transforms.cholesky import CorrMatrixCholeskyTransform


class LKJ(TransformedDistribution):
    """LKJ distribution over ``dim x dim`` correlation matrices ``M``, with density
    proportional to ``det(M) ** (concentration - 1)`` (uniform at ``concentration=1``).

    >>> d = LKJ(3, torch.tensor([1.0, 2.0]))
    >>> d.batch_shape, d.event_shape, round(float(d.log_prob(torch.eye(3))[1]), 4)
    (torch.Size([2]), torch.Size([3, 3]), -0.6155)
    """

    arg_constraints = {"concentration": constraints.positive}
    support = constraints.corr_matrix

    def __init__(
        self,
        dim: int,
        concentration: Union[torch.Tensor, float] = 1.0,
        validate_args: Optional[bool] = None,
    ) -> None:
        base_dist = LKJCholesky(dim, concentration)
        self.dim, self.concentration = base_dist.dim, base_dist.concentration
        super().__init__(base_dist, CorrMatrixCholeskyTransform().inv, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(LKJ, _instance)
        batch_shape = torch.Size(batch_shape)
        base_dist = self.base_dist.expand(batch_shape)
        new.dim, new.concentration = base_dist.dim, base_dist.concentration
        TransformedDistribution.__init__(
            new, base_dist, CorrMatrixCholeskyTransform().inv, validate_args=False
        )
        new._validate_args = self._validate_args
        return copy_forced_has_rsample(self, new)

    @property
    def mean(self) -> torch.Tensor:
        eye = torch.eye(self.dim, dtype=self.concentration.dtype, device=self.concentration.device)
        return eye.expand(self.batch_shape + (self.dim, self.dim))


class LKJCorrCholesky(LKJCholesky):
    """Deprecated spelling of :class:`LKJCholesky` (``d`` is ``dim``, ``eta`` is
    ``concentration``); constructing it warns with a FutureWarning, as Pyro does.

    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     d = LKJCorrCholesky(3, torch.tensor(2.0))
    >>> d.event_shape, round(float(d.log_prob(torch.eye(3))), 4)
    (torch.Size([3, 3]), -0.6155)
    """

    def __init__(
        self, d: int, eta: Union[torch.Tensor, float], validate_args: Optional[bool] = None
    ) -> None:
        warnings.warn(
            "class LKJCorrCholesky(d, eta, validate_args=None) is deprecated in favor of "
            "LKJCholesky(dim, concentration, validate_args=None).",
            FutureWarning,
            stacklevel=2,
        )
        super().__init__(d, concentration=eta, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(LKJCorrCholesky, _instance)
        return super().expand(batch_shape, new)
