"""The guide's ``log q`` is the density of the constrained values (Jacobian included),
so the ELBO the autoguides feed to ``Trace_ELBO`` is the right one."""

import pytest
import torch

import pyrolite as pyro
import pyrolite.distributions as dist
from pyrolite import poutine
from pyrolite.infer import Trace_ELBO
from pyrolite.infer.autoguide import (
    AutoDiagonalNormal,
    AutoGuideList,
    AutoMultivariateNormal,
    AutoNormal,
)


def model():
    pyro.sample("s", dist.Gamma(2.0, 1.0))
    pyro.sample("p", dist.Beta(2.0, 2.0))


def _guide_log_q(guide_trace):
    guide_trace.compute_log_prob()
    return sum(
        site["log_prob_sum"]
        for site in guide_trace.nodes.values()
        if site["type"] == "sample" and not site["is_observed"]
    )


@pytest.mark.parametrize("guide_class", [AutoNormal, AutoDiagonalNormal, AutoMultivariateNormal])
def test_guide_log_density_is_the_density_of_the_constrained_values(guide_class):
    guide = guide_class(model, init_scale=0.3)
    guide()
    if guide_class is AutoNormal:
        locs = torch.stack(
            [pyro.param("AutoNormal.locs.s"), pyro.param("AutoNormal.locs.p")]
        ).detach()
        scales = torch.stack(
            [pyro.param("AutoNormal.scales.s"), pyro.param("AutoNormal.scales.p")]
        ).detach()
    else:
        locs, scales = guide.loc.detach(), torch.full((2,), 0.3)
    trace = poutine.trace(guide).get_trace()
    s, p = trace.nodes["s"]["value"].detach(), trace.nodes["p"]["value"].detach()
    # s = exp(u0) is log-normal; p = sigmoid(u1) is logit-normal.
    expected = dist.LogNormal(locs[0], scales[0]).log_prob(s)
    logit_normal = dist.TransformedDistribution(
        dist.Normal(locs[1], scales[1]), [torch.distributions.SigmoidTransform()]
    )
    expected = expected + logit_normal.log_prob(p)
    assert torch.allclose(_guide_log_q(trace), expected, atol=1e-5)


def test_elbo_of_a_guide_that_equals_the_posterior_is_the_log_evidence():
    # Model: u ~ Normal(0.2, 0.7) written as s = exp(u) ~ LogNormal, no data. A guide
    # equal to the prior has -ELBO = -log Z = 0 for every draw.
    def lognormal_model():
        pyro.sample("s", dist.LogNormal(0.2, 0.7))

    guide = AutoDiagonalNormal(lognormal_model, init_loc_fn=lambda site: torch.tensor(0.2).exp())
    guide()
    pyro.get_param_store()["AutoDiagonalNormal.scale"] = torch.tensor([0.7])
    losses = torch.tensor([Trace_ELBO().loss(lognormal_model, guide) for _ in range(5)])
    assert losses.abs().max() < 1e-5


def test_guide_list_with_a_hand_written_part_trains_both():
    data = torch.tensor([0.5, 1.5, 1.0, 2.0])

    def two_part_model():
        a = pyro.sample("a", dist.Normal(0.0, 10.0))
        z = pyro.sample("z", dist.Normal(0.0, 10.0))
        with pyro.plate("data", len(data)):
            pyro.sample("x", dist.Normal(a + z, 1.0), obs=data)

    def guide_z():
        loc = pyro.param("z_loc", torch.tensor(0.0))
        return {"z": pyro.sample("z", dist.Delta(loc))}

    guide = AutoGuideList(two_part_model)
    part_a = AutoDiagonalNormal(poutine.block(two_part_model, hide=["z"]))
    guide.append(part_a)
    guide.append(guide_z)
    assert guide[0] is part_a and len(guide) == 2
    result = guide()
    assert set(result) == {"a", "z"}
    optim = pyro.optim.Adam({"lr": 0.05})
    svi = pyro.infer.SVI(two_part_model, guide, optim, Trace_ELBO())
    for _ in range(300):
        svi.step()
    # Only a + z is identified; its posterior mean is sum(x) / (n + small prior terms).
    total = guide.median()["a"] + pyro.param("z_loc").detach()
    assert abs(total.item() - data.mean().item()) < 0.1  # posterior sd of a + z: 0.5
    assert set(guide.median()) == {"a"}  # a plain guide part has no median by default
    draws = guide.sample_posterior(sample_shape=(3,))
    assert draws["a"].shape == (3,) and draws["z"].shape == (3,)


def test_discrete_and_sequential_sites_get_clear_errors():
    def discrete_model():
        pyro.sample("c", dist.Bernoulli(0.3))

    with pytest.raises(ValueError, match=r"discrete latent site 'c'.*poutine.block"):
        AutoNormal(discrete_model)()

    def sequential_model():
        for i in pyro.plate("seq", 2):
            pyro.sample(f"z_{i}", dist.Normal(0.0, 1.0))

    with pytest.raises(NotImplementedError, match="sequential plate"):
        AutoDiagonalNormal(sequential_model)()
