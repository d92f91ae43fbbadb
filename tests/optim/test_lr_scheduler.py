import pytest
import torch
from test_optim import quadratic_grad, run_pyrolite

import pyrolite.optim as optim
from pyrolite.optim.pytorch_optimizers import SCHEDULER_NAMES


def lr_of(scheduler, name):
    return scheduler.get_state()[name]["optimizer"]["param_groups"][0]["lr"]


def test_step_lr_values_after_k_steps(names):
    w = names.param("w", torch.zeros(2))
    scheduler = optim.StepLR(
        {"optimizer": torch.optim.SGD, "optim_args": {"lr": 1.0}, "step_size": 2, "gamma": 0.1}
    )
    seen = []
    for _ in range(6):
        run_pyrolite(scheduler, [w], 1)
        seen.append(lr_of(scheduler, "w"))
        scheduler.step()
    assert seen == pytest.approx([1.0, 1.0, 0.1, 0.1, 0.01, 0.01], rel=1e-12)


def test_exponential_lr_sets_the_sgd_step_size(names):
    w = names.param("w", torch.zeros(1))
    scheduler = optim.ExponentialLR(
        {"optimizer": torch.optim.SGD, "optim_args": {"lr": 0.01}, "gamma": 0.1}
    )
    for k in range(4):
        before = w.detach().clone()
        w.grad = torch.ones(1)
        scheduler([w])
        torch.testing.assert_close(before - w.detach(), torch.tensor([0.01 * 0.1**k]))
        scheduler.step()
    assert lr_of(scheduler, "w") == pytest.approx(0.01 * 0.1**4, rel=1e-12)


def test_reduce_lr_on_plateau_reduces_after_patience(names):
    w = names.param("w", torch.zeros(1))
    scheduler = optim.ReduceLROnPlateau(
        {"optimizer": torch.optim.SGD, "optim_args": {"lr": 1.0}, "patience": 2, "factor": 0.5}
    )
    lrs = []
    for loss in [3.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]:
        w.grad = torch.zeros(1)
        scheduler([w])
        scheduler.step(loss)
        lrs.append(lr_of(scheduler, "w"))
    # best is 2.0 at epoch 2; three more non-improving epochs exceed patience=2
    assert lrs == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]


def test_param_first_seen_later_starts_its_own_schedule(names):
    a = names.param("a", torch.zeros(1))
    b = names.param("b", torch.zeros(1))
    scheduler = optim.ExponentialLR(
        {"optimizer": torch.optim.SGD, "optim_args": {"lr": 1.0}, "gamma": 0.5}
    )
    for _ in range(3):
        run_pyrolite(scheduler, [a], 1)
        scheduler.step()
    run_pyrolite(scheduler, [a, b], 1)
    assert lr_of(scheduler, "a") == 0.125
    assert lr_of(scheduler, "b") == 1.0


SCHEDULER_KWARGS = {
    "ConstantLR": {"factor": 0.5, "total_iters": 3},
    "CosineAnnealingLR": {"T_max": 4},
    "CosineAnnealingWarmRestarts": {"T_0": 3},
    "CyclicLR": {"base_lr": 0.01, "max_lr": 0.1, "step_size_up": 2},
    "ExponentialLR": {"gamma": 0.7},
    "LambdaLR": {"lr_lambda": lambda epoch: 1.0 / (epoch + 1)},
    "LinearLR": {"start_factor": 0.25, "total_iters": 4},
    "MultiStepLR": {"milestones": [2, 4], "gamma": 0.5},
    "MultiplicativeLR": {"lr_lambda": lambda epoch: 0.8},
    "OneCycleLR": {"max_lr": 0.2, "total_steps": 10},
    "PolynomialLR": {"total_iters": 4, "power": 2.0},
    "ReduceLROnPlateau": {"patience": 0, "factor": 0.5},
    "StepLR": {"step_size": 2, "gamma": 0.5},
}


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_every_scheduler_wrapper_matches_torch_and_round_trips(names, name, tmp_path):
    kwargs = SCHEDULER_KWARGS[name]
    torch_class = getattr(torch.optim.lr_scheduler, name)
    w = names.param("w", torch.tensor([0.5, -1.0]))
    ref = w.detach().clone().requires_grad_()
    ref_opt = torch.optim.SGD([ref], lr=0.1, momentum=0.9)
    ref_sched = torch_class(ref_opt, **kwargs)
    wrapped = getattr(optim, name)(
        {"optimizer": torch.optim.SGD, "optim_args": {"lr": 0.1, "momentum": 0.9}, **kwargs}
    )
    metric_args = (1.0,) if name == "ReduceLROnPlateau" else ()
    for step in range(8):
        if step == 4:  # restart mid-run from a checkpoint, with a new tensor object
            wrapped.save(tmp_path / "sched.pt")
            w = names.param("w", w.detach())
            wrapped = getattr(optim, name)(
                {"optimizer": torch.optim.SGD, "optim_args": {"lr": 0.1, "momentum": 0.9}, **kwargs}
            )
            wrapped.load(tmp_path / "sched.pt")
        ref.grad = quadratic_grad(ref)
        ref_opt.step()
        ref_sched.step(*metric_args)
        run_pyrolite(wrapped, [w], 1)
        wrapped.step(*metric_args)
        assert lr_of(wrapped, "w") == ref_opt.param_groups[0]["lr"]
        assert torch.equal(w, ref)


def test_scheduler_needs_an_optimizer_class():
    with pytest.raises(ValueError, match="'optimizer'"):
        optim.StepLR({"optim_args": {"lr": 0.1}, "step_size": 1})
