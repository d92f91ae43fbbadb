"""KL registrations for Independent, MaskedDistribution and Delta; added constraints."""

import pytest
import torch

import pyrolite.distributions as dist
from pyrolite.distributions import biject_to, constraints, kl_divergence, transform_to


def test_kl_independent_sums_reinterpreted_dims():
    p_base = dist.Normal(torch.randn(2, 3), torch.rand(2, 3) + 0.5)
    q_base = dist.Normal(torch.randn(2, 3), torch.rand(2, 3) + 0.5)
    elementwise = kl_divergence(p_base, q_base)
    assert torch.allclose(
        kl_divergence(p_base.to_event(1), q_base.to_event(1)), elementwise.sum(-1)
    )
    assert torch.allclose(
        kl_divergence(p_base.to_event(2), q_base.to_event(1).to_event(1)), elementwise.sum()
    )
    # Unequal nesting: the shared dim is summed, the rest stays in the inner KL.
    nested = dist.Independent(dist.Independent(p_base, 1), 1)
    mixed = kl_divergence(nested, dist.Independent(q_base, 2))
    assert torch.allclose(mixed, elementwise.sum())


def test_kl_masked_is_zero_where_mask_false():
    p = dist.Normal(torch.zeros(3), 1.0)
    q = dist.Normal(torch.ones(3), 2.0)
    full = kl_divergence(p, q)
    mask = torch.tensor([True, False, True])
    kl = kl_divergence(p.mask(mask), q.mask(True))
    assert torch.equal(kl, torch.where(mask, full, torch.zeros(3)))
    both = kl_divergence(p.mask(mask), q.mask(torch.tensor([True, True, False])))
    assert torch.equal(both, torch.tensor([full[0].item(), 0.0, 0.0]))
    assert kl_divergence(p.mask(False), q.mask(mask)) == 0.0


def test_kl_delta_is_minus_log_q_at_v():
    v = torch.tensor([0.5, -1.0])
    q = dist.Normal(0.0, 2.0)
    assert torch.equal(kl_divergence(dist.Delta(v), q), -q.log_prob(v))


@pytest.mark.parametrize(
    "constraint,check",
    [
        (constraints.ordered_vector, lambda y: (y[..., 1:] > y[..., :-1]).all()),
        (constraints.positive_ordered_vector, lambda y: (y > 0).all()),
        (constraints.softplus_positive, lambda y: (y > 0).all()),
    ],
)
def test_added_constraints_have_bijections(constraint, check):
    x = torch.randn(4, 3)
    t = biject_to(constraint)
    y = t(x)
    assert check(y) and constraint.check(y).all()
    assert torch.allclose(t.inv(y), x, atol=1e-5)


def test_ordered_transform_log_det_matches_autograd_jacobian():
    t = biject_to(constraints.ordered_vector)
    x = torch.randn(3, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(t, x)
    assert torch.allclose(t.log_abs_det_jacobian(x, t(x)), jac.det().abs().log())


def test_unit_lower_cholesky():
    y = transform_to(constraints.unit_lower_cholesky)(torch.randn(3, 3))
    assert constraints.unit_lower_cholesky.check(y)
    assert torch.equal(y.diagonal(), torch.ones(3)) and torch.equal(y.triu(1), torch.zeros(3, 3))
