"""Every step is checked: a finite loss with a non-finite gradient is not applied, an
interrupt never leaves a step half-applied, and observations are validated on every step."""

import signal

import pytest
import torch

import pyrolite as pyro
import pyrolite.distributions as dist
from pyrolite.infer import SVI, Trace_ELBO
from pyrolite.optim import SGD, Adam


def nan_grad_model():
    a = pyro.param("a", torch.tensor(0.0))
    pyro.sample("x", dist.Normal(torch.where(a > 0, a.log(), a), 1.0), obs=torch.tensor(0.5))


def inf_grad_model():
    b = pyro.param("b", torch.tensor(0.0))
    pyro.sample("x", dist.Normal(b.sqrt(), 1.0), obs=torch.tensor(0.5))


def guide():
    pass


@pytest.mark.parametrize(
    "model,name,optim",
    [(nan_grad_model, "a", Adam({"lr": 0.1})), (inf_grad_model, "b", SGD({"lr": 0.1}))],
    ids=["nan-adam", "inf-sgd"],
)
@pytest.mark.parametrize("compile", [False, True], ids=["eager", "compiled"])
def test_a_nonfinite_gradient_with_a_finite_loss_is_not_applied(model, name, optim, compile):
    pyro.clear_param_store()
    svi = SVI(model, guide, optim, Trace_ELBO(), compile=compile)
    for _ in range(3):  # every step, not only the first (and past the compiled warm-up)
        with pytest.raises(FloatingPointError, match=f"gradients of '{name}' are not"):
            svi.step()
        assert pyro.param(name).item() == 0.0  # nothing written
    assert svi.step_count == 0


def test_an_interrupt_between_optimizers_still_applies_the_whole_step():
    pyro.clear_param_store()

    def model():
        u = pyro.param("u", torch.tensor(1.0))
        v = pyro.param("v", torch.tensor(1.0))
        pyro.sample("x", dist.Normal(u + v, 1.0), obs=torch.tensor(5.0))

    optim = SGD({"lr": 0.1})
    svi = SVI(model, guide, optim, Trace_ELBO())
    svi.step()  # creates one torch optimizer per param
    first = optim.torch_optimizer(pyro.param("u").unconstrained())
    original = first.step

    def step_then_interrupt(*args, **kwargs):
        result = original(*args, **kwargs)
        signal.raise_signal(signal.SIGINT)  # Ctrl-C arrives between the two optimizers
        return result

    first.step = step_then_interrupt
    before = {n: pyro.param(n).item() for n in ("u", "v")}
    with pytest.raises(KeyboardInterrupt):
        svi.step()
    after = {n: pyro.param(n).item() for n in ("u", "v")}
    assert after["u"] != before["u"] and after["v"] != before["v"]  # both applied
    assert svi.step_count == 2


def bernoulli_model(data):
    p = pyro.param("p", torch.tensor(0.5), constraint=dist.constraints.unit_interval)
    with pyro.plate("data", len(data)):
        pyro.sample("obs", dist.Bernoulli(p), obs=data)


@pytest.mark.parametrize("kind", ["eager", "jit", "compiled"])
def test_observations_are_validated_on_every_step(kind):
    from pyrolite.infer import JitTrace_ELBO

    pyro.clear_param_store()
    elbo = JitTrace_ELBO() if kind == "jit" else Trace_ELBO()
    svi = SVI(
        bernoulli_model, lambda data: None, Adam({"lr": 0.1}), elbo, compile=kind == "compiled"
    )
    good = torch.tensor([1.0, 0.0, 1.0])
    for _ in range(4):  # past the first step of the structure (and the compiled warm-up)
        svi.step(good.clone())
    before = pyro.param("p").item()
    for _ in range(2):  # on every step
        with pytest.raises(ValueError, match="'obs'.*support.*Bernoulli|'obs'.*Bernoulli.*support"):
            svi.step(torch.tensor([1.0, 2.0, 1.0]))
        assert pyro.param("p").item() == before  # not applied
    data = good.clone()
    svi.step(data)
    data[1] = 2.0  # changed in place: checked again
    with pytest.raises(ValueError, match="'obs'"):
        svi.step(data)
    assert svi.step_count == 5


def test_a_reused_valid_observation_costs_no_check():
    pyro.clear_param_store()
    elbo = Trace_ELBO()
    data = torch.tensor([1.0, 0.0, 1.0])
    svi = SVI(bernoulli_model, lambda data: None, Adam({"lr": 0.1}), elbo)
    for _ in range(3):
        svi.step(data)
    elbo.loss_and_surrogate(bernoulli_model, lambda data: None, (data,), {})
    assert elbo.validation_failure() is None and not elbo._checks  # nothing to check again


def test_params_and_data_on_different_devices_are_named_with_both_devices():
    # The meta device stands in for a GPU: torch refuses to mix it with the CPU alike.
    def model(x):
        w = pyro.sample("w", dist.Normal(torch.zeros(3), 1.0).to_event(1))
        pyro.factor("fit", (w * x).sum())

    def device_guide(x):
        loc = pyro.param("loc", torch.zeros(3))  # created on the CPU (0-dim would mix)
        pyro.sample("w", dist.Normal(loc, 1.0).to_event(1))

    svi = SVI(model, device_guide, Adam({"lr": 0.1}), Trace_ELBO())
    x = torch.ones(3, device="meta")
    for _ in range(2):  # on every step, not only the first
        with pytest.raises(ValueError) as info:
            svi.step(x)
        message = str(info.value)
        assert "argument 0 on meta" in message and "param 'loc' on cpu" in message
        assert "device=x.device" in message
    assert svi.step_count == 0
