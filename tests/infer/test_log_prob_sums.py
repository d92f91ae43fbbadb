"""The sums-only log-prob path (``Trace.compute_log_prob_sums``, ``Normal._log_prob_sum``)
gives the same numbers and gradients as summing the per-element log-probs."""

import pytest
import torch

import pyrolite as pyro
import pyrolite.distributions as dist
from pyrolite import poutine
from pyrolite.distributions import constraints
from pyrolite.infer import Trace_ELBO
from pyrolite.util import validation_disabled


@pytest.mark.parametrize(
    "loc,scale",
    [
        (torch.tensor([0.5, -1.0, 2.0]), torch.tensor(1.7)),
        (torch.tensor([0.5, -1.0, 2.0]), 0.3),
        (0.0, torch.tensor([2.5])),
        (torch.tensor(1.0), torch.tensor([[0.8]])),
    ],
)
def test_normal_log_prob_sum_equals_summed_log_prob_with_gradients(loc, scale):
    loc = loc.clone().requires_grad_() if isinstance(loc, torch.Tensor) else loc
    scale = scale.clone().requires_grad_() if isinstance(scale, torch.Tensor) else scale
    d = dist.Normal(loc, scale, validate_args=False)
    value = torch.randn((4,) + tuple(d.batch_shape), generator=torch.Generator().manual_seed(0))
    fast, slow = d._log_prob_sum(value), d.log_prob(value).sum()
    assert fast.shape == () and torch.allclose(fast, slow, rtol=1e-6)
    inputs = [t for t in (loc, scale) if isinstance(t, torch.Tensor)]
    for a, b in zip(torch.autograd.grad(fast, inputs), torch.autograd.grad(slow, inputs)):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)
    independent = d.to_event(len(d.batch_shape)) if d.batch_shape else d
    assert torch.allclose(independent._log_prob_sum(value), slow.detach(), rtol=1e-6)


def test_normal_log_prob_sum_with_one_scale_per_particle_and_shared_data():
    # vectorized particles: loc (S, N), scale (S, 1), observed value (N,) without the S dim
    loc = torch.randn(4, 6, requires_grad=True)
    scale = (torch.rand(4, 1) + 0.5).requires_grad_()
    value = torch.randn(6)
    d = dist.Normal(loc, scale)
    fast, slow = d._log_prob_sum(value), d.log_prob(value).sum()
    assert torch.allclose(fast, slow, rtol=1e-6)
    for a, b in zip(
        torch.autograd.grad(fast, (loc, scale)), torch.autograd.grad(slow, (loc, scale))
    ):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)


def test_normal_log_prob_sum_declines_where_elements_differ():
    per_element_scale = dist.Normal(torch.zeros(3), torch.tensor([1.0, 2.0, 3.0]))
    assert per_element_scale._log_prob_sum(torch.zeros(3)) is None
    # value - loc without all batch dims: the log-prob broadcasts further than the sum would
    assert dist.Normal(0.0, torch.tensor([[1.0], [2.0]]))._log_prob_sum(torch.zeros(3)) is None


def _model(data):
    loc = pyro.sample("loc", dist.Normal(0.0, 10.0))
    with pyro.plate("data", len(data), subsample_size=4) as idx:
        pyro.sample("obs", dist.Normal(loc, 2.0), obs=data[idx])
    keep = torch.tensor([True, False, True])
    with pyro.plate("masked", 3):
        pyro.sample("m", dist.Normal(loc, 1.0).mask(keep), obs=data[:3])


def _guide(data):
    m = pyro.param("m", torch.tensor(0.3))
    s = pyro.param("s", torch.tensor(0.5), constraint=constraints.positive)
    pyro.sample("loc", dist.Normal(m, s))


def test_trace_sums_only_where_possible_scale_and_mask_applied():
    data = torch.linspace(-1.0, 2.0, 10)
    pyro.clear_param_store()
    with validation_disabled():
        guide_trace = poutine.trace(_guide).get_trace(data)
        trace = poutine.trace(poutine.replay(_model, trace=guide_trace)).get_trace(data)
        trace.compute_log_prob_sums()
    obs, masked = trace.nodes["obs"], trace.nodes["m"]
    assert "log_prob" not in obs and "log_prob" in masked  # a mask needs the elements
    expected = obs["fn"].log_prob(obs["value"]).sum() * obs["scale"]
    assert obs["scale"] == 2.5 and torch.allclose(obs["log_prob_sum"], expected)
    trace.compute_log_prob()  # fills in the per-element form on request
    assert torch.allclose(trace.nodes["obs"]["log_prob"].sum(), expected)


def test_trace_elbo_loss_and_grads_equal_with_and_without_sums_only():
    data = torch.linspace(-1.0, 2.0, 10)
    results = []
    for validate in (True, False):  # validation on: every site takes the per-element path
        pyro.clear_param_store()
        pyro.set_rng_seed(3)
        elbo = Trace_ELBO()
        with pyro.validation_enabled(validate):
            loss = elbo.loss_and_grads(_model, _guide, data)
        store = pyro.get_param_store()
        grads = [store.unconstrained(n).grad.clone() for n in ("m", "s")]
        model_trace = elbo.last_traces[0]
        results.append((loss, grads, "log_prob" in model_trace.nodes["obs"]))
    (loss_full, grads_full, had_full), (loss_fast, grads_fast, had_fast) = results
    assert had_full and not had_fast
    assert loss_fast == pytest.approx(loss_full, rel=1e-6)
    for a, b in zip(grads_fast, grads_full):
        assert torch.allclose(a, b, rtol=1e-5)
