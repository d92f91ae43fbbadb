"""Every tensor pyrolite creates follows the device and dtype of the user's data and params."""

import pytest
import torch

import pyrolite as pyro
import pyrolite.distributions as dist
from pyrolite.distributions import constraints
from pyrolite.infer import SVI, Trace_ELBO
from pyrolite.optim import Adam


def make_model_guide(x):
    def model(x):
        loc = pyro.sample("loc", dist.Normal(x.new_tensor(0.0), x.new_tensor(10.0)))
        with pyro.plate("data", len(x), subsample_size=len(x) // 2, device=x.device) as idx:
            pyro.sample("x", dist.Normal(loc, x.new_tensor(1.0)), obs=x[idx])

    def guide(x):
        m = pyro.param("m", x.new_tensor(0.0))
        s = pyro.param("s", x.new_tensor(1.0), constraint=constraints.positive)
        pyro.sample("loc", dist.Normal(m, s))

    return model, guide


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_training_stays_on_the_data_device_and_dtype(device, dtype):
    x = torch.linspace(1.0, 3.0, 20, dtype=dtype, device=device)
    model, guide = make_model_guide(x)
    svi = SVI(
        model, guide, Adam({"lr": 0.05}), Trace_ELBO(num_particles=4, vectorize_particles=True)
    )
    result = svi.fit(300, x, progress_bar=False)
    for name, value in pyro.get_param_store().items():
        assert value.device.type == device.type, name
        assert value.dtype == dtype, name
    assert result.losses.dtype == (torch.zeros((), dtype=dtype).numpy().dtype)
    # Posterior mean of loc: sum(x) / (n + 1/100) ~ mean(x) = 2.
    assert pyro.param("m").item() == pytest.approx(2.0, abs=0.15)


def test_checkpoint_map_location_moves_params(device, tmp_path):
    x = torch.linspace(1.0, 3.0, 20, device=device)
    model, guide = make_model_guide(x)
    svi = SVI(model, guide, Adam({"lr": 0.05}), Trace_ELBO())
    for _ in range(3):
        svi.step(x)
    svi.save(tmp_path / "ckpt")
    expected = pyro.param("m").detach().cpu().clone()
    pyro.clear_param_store()
    svi.load(tmp_path / "ckpt", map_location="cpu")
    assert pyro.param("m").device.type == "cpu"
    assert torch.equal(pyro.param("m").detach(), expected)
