"""AdagradRMSProp, DCTAdam, Muon, HorovodOptimizer and the extra LR-scheduler wrappers."""

import pytest
import torch

from pyrolite.optim import pytorch_optimizers as wrappers
from pyrolite.optim.adagrad_rmsprop import AdagradRMSProp
from pyrolite.optim.dct_adam import DCTAdam
from pyrolite.optim.horovod import HorovodOptimizer

TARGET = torch.tensor([[1.0, -2.0, 3.0, 0.5], [-1.0, 4.0, 0.0, 2.0], [2.5, -0.5, 1.5, -3.0]])


def _trajectory(make_optimizer, steps=20, attrs=None, subsamples=None):
    """Positions of a param minimizing the quadratic 0.5 * scale * (w - TARGET)**2."""
    w = torch.zeros_like(TARGET, requires_grad=True)
    for name, value in (attrs or {}).items():
        setattr(w, name, value)
    optimizer = make_optimizer([w])
    scale = torch.linspace(0.5, 20.0, TARGET.numel()).reshape(TARGET.shape)
    path = []
    for i in range(steps):
        if subsamples is not None:
            w._pyro_subsample = subsamples[i % len(subsamples)]
        optimizer.zero_grad()
        (0.5 * scale * (w - TARGET) ** 2).sum().backward()
        optimizer.step()
        path.append(w.detach().clone())
    return torch.stack(path)


SUBSAMPLES = [
    {-2: torch.tensor([0, 2])},
    {-2: torch.tensor([1, 2])},
    {-1: torch.tensor([3])},
    {-2: torch.tensor([0, 1]), -1: torch.tensor([0, 2])},
]


def test_adagrad_rmsprop_follows_pyros_trajectory():
    pyro_optim = pytest.importorskip("pyro.optim.adagrad_rmsprop")
    kwargs = dict(eta=0.7, delta=1e-3, t=0.3)
    ours = _trajectory(lambda p: AdagradRMSProp(p, **kwargs))
    theirs = _trajectory(lambda p: pyro_optim.AdagradRMSProp(p, **kwargs))
    assert torch.allclose(ours, theirs, atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    "attrs, subsample_aware, subsamples",
    [
        ({}, False, None),
        ({"_pyro_dct_dim": -1}, False, None),
        ({"_pyro_dct_dim": -2}, True, None),
        ({}, True, SUBSAMPLES),
    ],
    ids=["plain", "dct-last-dim", "dct-first-dim", "subsampled"],
)
def test_dct_adam_follows_pyros_trajectory(attrs, subsample_aware, subsamples):
    pyro_optim = pytest.importorskip("pyro.optim.dct_adam")
    # clip_norm=30 clips some elements but never two of one time series to the same value:
    # equal clipped values make a DCT coefficient exactly zero up to rounding, and Adam's
    # first step (lr * sign) would then follow the rounding noise.
    kwargs = dict(lr=0.2, betas=(0.8, 0.99), clip_norm=30.0, lrd=0.97)
    kwargs["subsample_aware"] = subsample_aware
    ours = _trajectory(lambda p: DCTAdam(p, **kwargs), attrs=attrs, subsamples=subsamples)
    theirs = _trajectory(
        lambda p: pyro_optim.DCTAdam(p, **kwargs), attrs=attrs, subsamples=subsamples
    )
    assert torch.allclose(ours, theirs, atol=1e-5, rtol=0)


def test_subsampled_dct_adam_leaves_unseen_slices_alone():
    path = _trajectory(
        lambda p: DCTAdam(p, lr=0.1, subsample_aware=True),
        steps=3,
        subsamples=[{-2: torch.tensor([0, 2])}],
    )
    assert torch.equal(path[:, 1], torch.zeros(3, 4))
    assert (path[-1, [0, 2]] != 0).all()


def test_wrapped_optimizers_follow_pyros_wrappers():
    pyro_optim = pytest.importorskip("pyro.optim")
    for name, args in [("AdagradRMSProp", {"eta": 0.5}), ("DCTAdam", {"lr": 0.1})]:
        paths = []
        for wrapper in (getattr(wrappers, name), getattr(pyro_optim, name)):
            w = torch.zeros(3, requires_grad=True)
            optim = wrapper(args)
            for _ in range(20):
                w.grad = 2 * (w.detach() - torch.tensor([1.0, -2.0, 3.0]))
                optim([w])
            paths.append(w.detach())
        assert torch.allclose(paths[0], paths[1], atol=1e-6), name


@pytest.mark.parametrize(
    "make",
    [
        lambda p: AdagradRMSProp(p, eta=1.0),
        lambda p: DCTAdam(p, lr=0.1),
    ],
    ids=["AdagradRMSProp", "DCTAdam"],
)
def test_converges_to_the_minimum_of_a_quadratic(make):
    path = _trajectory(make, steps=600)
    assert torch.allclose(path[-1], TARGET, atol=2e-2)


def test_dct_transform_is_orthonormal_so_a_time_series_still_converges():
    path = _trajectory(lambda p: DCTAdam(p, lr=0.05), steps=800, attrs={"_pyro_dct_dim": -1})
    assert torch.allclose(path[-1], TARGET, atol=2e-2)


def test_first_adagrad_rmsprop_step_is_eta_g_over_one_plus_abs_g():
    w = torch.zeros(2, requires_grad=True)
    opt = AdagradRMSProp([w], eta=2.0)
    w.grad = torch.tensor([3.0, -1.0])
    opt.step()
    assert torch.allclose(w.detach(), torch.tensor([-1.5, 1.0]))


def test_bad_hyperparameters_name_the_argument():
    w = torch.zeros(1, requires_grad=True)
    with pytest.raises(ValueError, match="eta"):
        AdagradRMSProp([w], eta=0.0)
    with pytest.raises(ValueError, match="clip_norm"):
        DCTAdam([w], clip_norm=0.0)
    w._pyro_dct_dim = 0
    w.grad = torch.ones(1)
    with pytest.raises(ValueError, match="_pyro_dct_dim"):
        DCTAdam([w]).step()


def test_horovod_optimizer_says_horovod_is_missing_and_points_to_distributed_svi():
    with pytest.raises(ImportError, match="horovod") as info:
        HorovodOptimizer(wrappers.Adam({"lr": 0.1}))
    assert "pyrolite.infer.DistributedSVI" in str(info.value)


@pytest.mark.skipif(not hasattr(torch.optim, "Muon"), reason="torch has no Muon")
def test_muon_wraps_torch_muon_like_pyro():
    w = torch.zeros(3, 2, requires_grad=True)
    optim = wrappers.Muon({"lr": 0.1})
    reference = torch.zeros(3, 2, requires_grad=True)
    torch_optim = torch.optim.Muon([reference], lr=0.1)
    for _ in range(5):
        for p in (w, reference):
            p.grad = p.detach() - torch.arange(6.0).reshape(3, 2)
        optim([w])
        torch_optim.step()
    assert torch.equal(w.detach(), reference.detach())
    assert not torch.equal(w.detach(), torch.zeros(3, 2))


def test_sequential_lr_follows_its_schedules():
    w = torch.zeros(1, requires_grad=True)

    def make(optimizer):
        first = torch.optim.lr_scheduler.ConstantLR(optimizer, factor=0.5, total_iters=2)
        second = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.1)
        return torch.optim.lr_scheduler.SequentialLR(optimizer, [first, second], milestones=[2])

    scheduler = wrappers.PyroLRScheduler(
        make, {"optimizer": torch.optim.SGD, "optim_args": {"lr": 1.0}}
    )
    for _ in range(4):
        w.grad = torch.ones(1)
        scheduler([w])
        scheduler.step()
    # steps of 0.5, 0.5, then ExponentialLR from 1.0: 1.0, 0.1
    assert torch.allclose(w.detach(), torch.tensor([-2.1]))
    assert wrappers.SequentialLR.__name__ == "SequentialLR"
    assert wrappers.ChainedScheduler.__name__ == "ChainedScheduler"
    assert wrappers.LRScheduler.__name__ == "LRScheduler"
