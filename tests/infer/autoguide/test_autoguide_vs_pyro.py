"""Pyro as an oracle: the same AutoDiagonalNormal, started at the same point with the same
random draw, has the same loss."""

import pytest
import torch

import pyrolite
import pyrolite.distributions as dist
from pyrolite.infer import Trace_ELBO
from pyrolite.infer.autoguide import AutoDiagonalNormal, init_to_value

X = torch.linspace(-1.0, 1.0, 6).unsqueeze(-1) * torch.tensor([1.0, 0.5, -2.0])
Y = torch.tensor([0.1, -0.4, 0.3, 1.2, 0.8, 2.0])
INIT = {
    "alpha": torch.tensor(0.3),
    "beta": torch.tensor([0.5, -1.0, 0.2]),
    "sigma": torch.tensor(0.8),
    "p": torch.tensor([0.2, 0.5, 0.3]),
}


def make_model(pyro, d):
    def model(x, y):
        alpha = pyro.sample("alpha", d.Normal(0.0, 10.0))
        beta = pyro.sample("beta", d.Normal(torch.zeros(3), 1.0).to_event(1))
        sigma = pyro.sample("sigma", d.HalfNormal(1.0))
        p = pyro.sample("p", d.Dirichlet(torch.ones(3)))
        with pyro.plate("data", len(y)):
            pyro.sample("y", d.Normal(alpha + x @ beta + p[0], sigma), obs=y)

    return model


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_diagonal_normal_loss_at_init_matches_pyro(seed):
    pyro = pytest.importorskip("pyro")
    import pyro.distributions as pyro_dist
    from pyro.infer.autoguide import AutoDiagonalNormal as PyroAutoDiagonalNormal
    from pyro.infer.autoguide.initialization import init_to_value as pyro_init_to_value

    model = make_model(pyrolite, dist)
    guide = AutoDiagonalNormal(model, init_loc_fn=init_to_value(values=INIT), init_scale=0.3)
    guide(X, Y)
    pyrolite.set_rng_seed(seed)
    ours = Trace_ELBO().loss(model, guide, X, Y)

    pyro.clear_param_store()
    pyro_model = make_model(pyro, pyro_dist)
    pyro_guide = PyroAutoDiagonalNormal(
        pyro_model, init_loc_fn=pyro_init_to_value(values=INIT), init_scale=0.3
    )
    pyro_guide(X, Y)
    pyro.set_rng_seed(seed)
    theirs = pyro.infer.Trace_ELBO().loss(pyro_model, pyro_guide, X, Y)
    pyro.clear_param_store()
    # Same draw, same arithmetic up to float32 summation order.
    assert abs(ours - theirs) < 1e-4 * max(1.0, abs(theirs))
    assert torch.allclose(guide.loc.detach(), pyro_guide.loc.detach())
