"""pyrolite's optimizers against Pyro's on the same parameters and gradients."""

import pytest
import torch
from test_optim import quadratic_grad

import pyrolite.optim as optim

pyro = pytest.importorskip("pyro")
pyro_optim = pytest.importorskip("pyro.optim")


def pyro_params(init):
    pyro.clear_param_store()
    store = pyro.get_param_store()
    for name, value in init.items():
        pyro.param(name, value.clone())
    return [store._params[name] for name in init]


@pytest.mark.parametrize(
    "make_pyro, make_ours",
    [
        (lambda: pyro_optim.Adam({"lr": 0.05}), lambda: optim.Adam({"lr": 0.05})),
        (
            lambda: pyro_optim.ClippedAdam({"lr": 0.05, "lrd": 0.97, "clip_norm": 2.0}),
            lambda: optim.ClippedAdam({"lr": 0.05, "lrd": 0.97, "clip_norm": 2.0}),
        ),
        (
            lambda: pyro_optim.Adam(lambda m, n: {"lr": 0.1 if n == "a" else 0.01}),
            lambda: optim.Adam(lambda m, n: {"lr": 0.1 if n == "a" else 0.01}),
        ),
        (
            lambda: pyro_optim.SGD({"lr": 0.05}, {"clip_norm": 1.0, "clip_value": 0.7}),
            lambda: optim.SGD({"lr": 0.05}, {"clip_norm": 1.0, "clip_value": 0.7}),
        ),
    ],
    ids=["adam", "clipped_adam", "per_param_adam", "clipped_sgd"],
)
def test_trajectory_and_state_match_pyro(names, make_pyro, make_ours):
    init = {"a": torch.tensor([3.0, -4.0, 0.5]), "b": torch.tensor([[1.0, 2.0], [3.0, 4.0]])}
    theirs = pyro_params(init)
    ours = [names.param(name, value) for name, value in init.items()]
    pyro_opt, our_opt = make_pyro(), make_ours()
    for step in range(30):
        active = [0] if step < 5 else [0, 1]  # "b" first appears at step 5
        for i in active:
            theirs[i].grad = quadratic_grad(theirs[i])
            ours[i].grad = quadratic_grad(ours[i])
        pyro_opt([theirs[i] for i in active])
        our_opt([ours[i] for i in active])
        for i in active:
            theirs[i].grad = ours[i].grad = None
        for p, q in zip(theirs, ours):
            # pyrolite defaults to torch's fused Adam kernel, Pyro to the for-loop one:
            # they differ by rounding only (a few ulps over 30 steps).
            torch.testing.assert_close(q.detach(), p.detach(), rtol=1e-6, atol=1e-6)

    # Pyro's saved state loads into pyrolite and continues identically
    state = pyro_opt.get_state()
    resumed = make_ours()
    resumed.set_state(state)
    copies = [names.param(name, p.detach()) for name, p in zip(init, ours)]
    for _ in range(5):
        for p, q in zip(theirs, copies):
            p.grad = quadratic_grad(p)
            q.grad = quadratic_grad(q)
        pyro_opt(theirs)
        resumed(copies)
        for p, q in zip(theirs, copies):
            p.grad = q.grad = None
            torch.testing.assert_close(q.detach(), p.detach(), rtol=1e-6, atol=1e-6)


def test_scheduler_matches_pyro(names):
    theirs = pyro_params({"w": torch.tensor([2.0, -1.0])})
    ours = [names.param("w", torch.tensor([2.0, -1.0]))]
    args = {"optimizer": torch.optim.SGD, "optim_args": {"lr": 0.1}, "step_size": 3, "gamma": 0.5}
    pyro_sched = pyro_optim.StepLR(dict(args))
    our_sched = optim.StepLR(dict(args))
    for _ in range(10):
        for p in theirs + ours:
            p.grad = quadratic_grad(p)
        pyro_sched(theirs)
        our_sched(ours)
        pyro_sched.step()
        our_sched.step()
        torch.testing.assert_close(ours[0].detach(), theirs[0].detach(), rtol=0, atol=1e-7)
    pyro_state = pyro_sched.get_state()["w"]
    our_state = our_sched.get_state()["w"]
    assert our_state["scheduler"] == pyro_state["scheduler"]
    assert our_state["optimizer"]["param_groups"] == pyro_state["optimizer"]["param_groups"]
