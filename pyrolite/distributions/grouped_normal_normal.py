"""GroupedNormalNormal: the marginal likelihood of grouped scalar observations whose group
means, each with a Normal prior, are integrated out in closed form."""

import math
from typing import Optional

import torch
from torch.distributions import constraints

from pyrolite.distributions.torch import Normal
from pyrolite.distributions.torch_distribution import TorchDistribution


class GroupedNormalNormal(TorchDistribution):
    """``value[i] ~ Normal(mu[group_idx[i]], obs_scale[i])`` with
    ``mu[g] ~ Normal(prior_loc[g], prior_scale[g])`` integrated out: ``log_prob`` is the
    scalar log marginal likelihood of all the observations together.

    Each group's data are jointly ``MultivariateNormal(prior_loc[g] * 1, diag(obs_scale^2) +
    prior_scale[g]^2 * 1 1^T)``; its rank-one structure gives the density in one pass.

    >>> d = GroupedNormalNormal(
    ...     torch.tensor([0.0, 1.0]), torch.tensor([1.0, 2.0]), torch.tensor(0.5),
    ...     torch.tensor([0, 1, 1]))
    >>> round(float(d.log_prob(torch.tensor([0.2, 1.5, 0.5]))), 4)
    -4.2463
    """

    arg_constraints = {
        "prior_loc": constraints.real,
        "prior_scale": constraints.positive,
        "obs_scale": constraints.positive,
    }
    support = constraints.real

    def __init__(
        self,
        prior_loc: torch.Tensor,
        prior_scale: torch.Tensor,
        obs_scale: torch.Tensor,
        group_idx: torch.Tensor,
        validate_args: Optional[bool] = None,
    ):
        if group_idx.dim() != 1 or group_idx.dtype not in (torch.int32, torch.int64):
            raise ValueError("group_idx must be a 1-dimensional tensor of indices.")
        prior_loc, prior_scale = torch.broadcast_tensors(prior_loc, prior_scale)
        if prior_loc.dim() != 1:
            raise ValueError(
                "prior_loc and prior_scale must be broadcastable to 1D tensors of the same shape."
            )
        num_groups = prior_loc.size(0)
        if group_idx.numel() and bool(((group_idx < 0) | (group_idx >= num_groups)).any()):
            raise ValueError(
                "Each index in group_idx must be an integer in the inclusive range "
                "[0, prior_loc.size(0) - 1]."
            )
        obs_scale = torch.as_tensor(obs_scale, dtype=prior_loc.dtype, device=prior_loc.device)
        if obs_scale.dim() > 1 or (obs_scale.dim() == 1 and obs_scale.shape != group_idx.shape):
            raise ValueError(
                f"obs_scale must be a scalar or have group_idx's shape {tuple(group_idx.shape)}, "
                f"got {tuple(obs_scale.shape)}."
            )
        self.prior_loc, self.prior_scale = prior_loc, prior_scale
        self.obs_scale = obs_scale.expand(group_idx.shape)
        self.group_idx = group_idx
        self.num_groups = num_groups
        self.num_data_per_batch = torch.zeros(
            num_groups, dtype=prior_loc.dtype, device=prior_loc.device
        ).index_add_(0, group_idx, torch.ones_like(self.obs_scale))
        super().__init__(validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        raise NotImplementedError(
            "GroupedNormalNormal scores all its observations as one joint event and has no "
            "batch to expand; put the groups in prior_loc instead."
        )

    def sample(self, sample_shape=()):
        raise NotImplementedError(
            "GroupedNormalNormal.sample is not implemented (as in Pyro); sample the group "
            "means from Normal(prior_loc, prior_scale), then the data."
        )

    def _group_sums(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(self.num_groups, dtype=x.dtype, device=x.device).index_add_(
            0, self.group_idx, x
        )

    def get_posterior(self, value: torch.Tensor) -> Normal:
        """The Normal posterior over the ``num_groups`` latent means given ``value``.

        >>> d = GroupedNormalNormal(torch.zeros(2), torch.ones(2), torch.tensor(1.0),
        ...                         torch.tensor([0, 0]))
        >>> post = d.get_posterior(torch.tensor([1.0, 2.0]))
        >>> post.loc, post.scale.pow(2)
        (tensor([1., 0.]), tensor([0.3333, 1.0000]))
        """
        self._check_value(value)
        obs_precision = self.obs_scale.pow(-2)
        precision = self.prior_scale.pow(-2) + self._group_sums(obs_precision)
        weighted = self.prior_loc * self.prior_scale.pow(-2) + self._group_sums(
            value * obs_precision
        )
        return Normal(weighted / precision, precision.rsqrt())

    def _check_value(self, value: torch.Tensor) -> None:
        if value.shape != self.group_idx.shape:
            raise ValueError(
                "GroupedNormalNormal.log_prob only supports values that have the same shape "
                "as group_idx."
            )
        if self._validate_args:
            self._validate_sample(value)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        self._check_value(value)
        obs_precision = self.obs_scale.pow(-2)
        residual = value - self.prior_loc[self.group_idx]
        prior_var = self.prior_scale.pow(2)
        # Per group: 1 + s^2 sum(1/sigma^2) is the determinant ratio of the rank-one update,
        # and the Sherman-Morrison correction subtracts the part explained by the mean.
        shrink = 1 + prior_var * self._group_sums(obs_precision)
        explained = prior_var * self._group_sums(residual * obs_precision).pow(2) / shrink
        quadratic = (residual.pow(2) * obs_precision).sum() - explained.sum()
        log_det = 2 * self.obs_scale.log().sum() + shrink.log().sum()
        num_data = value.numel()
        return -0.5 * (quadratic + log_det + num_data * math.log(2 * math.pi))
