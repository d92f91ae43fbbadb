"""KL divergences for the pyrolite-specific wrappers, registered with torch's registry."""

from torch.distributions import Distribution, kl_divergence, register_kl

from pyrolite.distributions.delta import Delta
from pyrolite.distributions.masked import MaskedDistribution
from pyrolite.distributions.torch import Independent
from pyrolite.distributions.util import scale_and_mask, sum_rightmost


@register_kl(Independent, Independent)
def _kl_independent_independent(p, q):
    """Sum the base KL over the event dims both sides reinterpret; the rest stay events."""
    shared_ndims = min(p.reinterpreted_batch_ndims, q.reinterpreted_batch_ndims)
    p_ndims = p.reinterpreted_batch_ndims - shared_ndims
    q_ndims = q.reinterpreted_batch_ndims - shared_ndims
    p = Independent(p.base_dist, p_ndims) if p_ndims else p.base_dist
    q = Independent(q.base_dist, q_ndims) if q_ndims else q.base_dist
    return sum_rightmost(kl_divergence(p, q), shared_ndims)


@register_kl(MaskedDistribution, MaskedDistribution)
def _kl_masked_masked(p, q):
    """KL of the bases, exactly 0 wherever either mask is False."""
    if p._mask is False or q._mask is False:
        return 0.0
    if p._mask is True:
        mask = q._mask
    elif q._mask is True or p._mask is q._mask:
        mask = p._mask
    else:
        mask = p._mask & q._mask
    kl = kl_divergence(p.base_dist, q.base_dist)
    return kl if mask is True else scale_and_mask(kl, mask=mask)


@register_kl(Delta, Distribution)
def _kl_delta(p, q):
    """A point mass has no entropy to pay for, so KL(δ_v || q) = -log q(v)."""
    return -q.log_prob(p.v)
