"""MultivariateStudentT: a multivariate Normal scaled by an independent inverse chi
variable, parameterized by ``df``, ``loc`` and a lower-triangular ``scale_tril``."""

import math
import numbers
from typing import Tuple, Union

import torch
from torch.distributions import constraints
from torch.distributions.utils import lazy_property

from pyrolite.distributions.torch import Chi2
from pyrolite.distributions.torch_distribution import TorchDistribution
from pyrolite.distributions.util import broadcast_shape
from pyrolite.ops.gaussian import matvec, solve_lower

_HALF_LOG_PI = 0.5 * math.log(math.pi)


class MultivariateStudentT(TorchDistribution):
    """``loc + scale_tril @ z * sqrt(df / g)`` with ``z ~ Normal(0, I)`` and
    ``g ~ Chi2(df)``: heavy-tailed, with covariance ``scale_tril @ scale_tril.T *
    df / (df - 2)`` for ``df > 2``.

    >>> d = MultivariateStudentT(torch.tensor(4.0), torch.zeros(2), torch.eye(2))
    >>> d.event_shape, d.variance.tolist(), round(float(d.log_prob(torch.zeros(2))), 4)
    (torch.Size([2]), [2.0, 2.0], -1.8379)
    """

    arg_constraints = {
        "df": constraints.positive,
        "loc": constraints.real_vector,
        "scale_tril": constraints.lower_cholesky,
    }
    support = constraints.real_vector
    has_rsample = True

    def __init__(
        self,
        df: Union[float, torch.Tensor],
        loc: torch.Tensor,
        scale_tril: torch.Tensor,
        validate_args=None,
    ):
        dim = loc.size(-1)
        if scale_tril.shape[-2:] != (dim, dim):
            raise ValueError(
                f"MultivariateStudentT: scale_tril must end in ({dim}, {dim}) to match "
                f"loc's last dim, got shape {tuple(scale_tril.shape)}."
            )
        if isinstance(df, numbers.Number):
            df = loc.new_tensor(df)
        batch_shape = broadcast_shape(df.shape, loc.shape[:-1], scale_tril.shape[:-2])
        event_shape = torch.Size((dim,))
        self.df = df.expand(batch_shape)
        self.loc = loc.expand(batch_shape + event_shape)
        self._unbroadcasted_scale_tril = scale_tril
        self._chi2 = Chi2(self.df, validate_args=False)
        # An expand view, cheap to build here; being in __dict__ it is checked against
        # lower_cholesky on validation (Pyro's lazy one never is: a negative diagonal
        # there gives nan log-densities instead of an error).
        self.scale_tril = scale_tril.expand(batch_shape + event_shape + event_shape)
        super().__init__(batch_shape, event_shape, validate_args=validate_args)

    @lazy_property
    def covariance_matrix(self) -> torch.Tensor:
        tril = self._unbroadcasted_scale_tril
        return (tril @ tril.mT).expand(self._batch_shape + self._event_shape + self._event_shape)

    @lazy_property
    def precision_matrix(self) -> torch.Tensor:
        return torch.cholesky_inverse(self._unbroadcasted_scale_tril).expand(
            self._batch_shape + self._event_shape + self._event_shape
        )

    @staticmethod
    def infer_shapes(df, loc, scale_tril) -> Tuple[tuple, tuple]:
        """``(batch_shape, event_shape)`` for parameters of the given shapes."""
        event_shape = tuple(loc[-1:])
        batch_shape = broadcast_shape(df, loc[:-1], scale_tril[:-2])
        return tuple(batch_shape), event_shape

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(MultivariateStudentT, _instance)
        batch_shape = torch.Size(batch_shape)
        new.df = self.df.expand(batch_shape)
        new.loc = self.loc.expand(batch_shape + self.event_shape)
        new._unbroadcasted_scale_tril = self._unbroadcasted_scale_tril
        new.scale_tril = self._unbroadcasted_scale_tril.expand(batch_shape + self.event_shape * 2)
        new._chi2 = self._chi2.expand(batch_shape)
        TorchDistribution.__init__(new, batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def rsample(self, sample_shape=()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        z = self.loc.new_empty(shape).normal_()
        chi2 = self._chi2.rsample(sample_shape)
        y = z * torch.rsqrt(chi2 / self.df).unsqueeze(-1)
        return self.loc + matvec(self._unbroadcasted_scale_tril, y)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        n = self.loc.size(-1)
        df = self.df
        tril = self._unbroadcasted_scale_tril
        maha = solve_lower(tril, value - self.loc).square().sum(-1)
        half_log_det = tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        log_norm = (
            half_log_det
            + 0.5 * n * df.log()
            + n * _HALF_LOG_PI
            + torch.lgamma(0.5 * df)
            - torch.lgamma(0.5 * (df + n))
        )
        return -0.5 * (df + n) * torch.log1p(maha / df) - log_norm

    @property
    def mean(self) -> torch.Tensor:
        # Defined only for df > 1 (Pyro and torch's univariate StudentT give nan otherwise).
        return torch.where((self.df > 1).unsqueeze(-1), self.loc, math.nan)

    @property
    def variance(self) -> torch.Tensor:
        diag = self._unbroadcasted_scale_tril.pow(2).sum(-1)
        df = self.df.unsqueeze(-1)
        variance = diag * df / (df - 2)
        variance = torch.where(df > 2, variance, math.inf)
        return torch.where(df > 1, variance, math.nan).expand(self.loc.shape)
