"""``ELBOModule`` under ``torch.nn.parallel.DistributedDataParallel`` and PyTorch Lightning.

The DDP test runs two gloo processes on loopback (each bounded by a timeout, so a hang
fails instead of stalling the suite) and compares their ParamStores with one process
training on the union of their shards; the Lightning tests wrap the ``ELBOModule`` as
Pyro's Lightning example does.
"""

import functools
import os
import socket
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

import pyrolite as pyro
import pyrolite.distributions as pdist
from pyrolite import poutine
from pyrolite.distributions import constraints
from pyrolite.infer import Trace_ELBO

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is missing")

WORLD_SIZE = 2
NUM_DATA = 200
SIGMA = 0.5
TRUE_WEIGHT = torch.tensor([1.5, -0.7])
TRUE_BIAS = 0.3
DDP_SEED, DDP_STEPS, DDP_LR = 123, 25, 1e-3
PROCESS_TIMEOUT = 90  # seconds for all ranks together: a hang fails the test


def regression_data():
    """``(x, y)``: ``y = x @ TRUE_WEIGHT + TRUE_BIAS + SIGMA * noise``, the same on every call."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(NUM_DATA, 2, generator=generator)
    y = x @ TRUE_WEIGHT + TRUE_BIAS + SIGMA * torch.randn(NUM_DATA, generator=generator)
    return x, y


def regression_model(x, y, scale=1.0):
    """Bayesian linear regression; ``scale`` weighs the likelihood of this (sub)set of data."""
    weight = pyro.sample("weight", pdist.Normal(torch.zeros(2), 1.0).to_event(1))
    bias = pyro.sample("bias", pdist.Normal(0.0, 1.0))
    with poutine.scale(scale=scale), pyro.plate("data", len(x)):
        pyro.sample("y", pdist.Normal((x * weight).sum(-1) + bias, SIGMA), obs=y)


def regression_guide(x, y):
    """Mean-field Normal guide whose params start at random values (``torch.randn``)."""
    weight_loc = pyro.param("weight_loc", lambda: torch.randn(2))
    weight_scale = pyro.param(
        "weight_scale", lambda: 0.1 + torch.rand(2), constraint=constraints.positive
    )
    bias_loc = pyro.param("bias_loc", lambda: torch.randn(()))
    bias_scale = pyro.param(
        "bias_scale", lambda: 0.1 + torch.rand(()), constraint=constraints.positive
    )
    pyro.sample("weight", pdist.Normal(weight_loc, weight_scale).to_event(1))
    pyro.sample("bias", pdist.Normal(bias_loc, bias_scale))


def exact_posterior_mean():
    """The conjugate posterior mean of ``(weight, bias)`` under N(0, 1) priors."""
    x, y = regression_data()
    features = torch.cat([x, torch.ones(NUM_DATA, 1)], dim=-1).double()
    precision = torch.eye(3, dtype=torch.double) + features.T @ features / SIGMA**2
    mean = torch.linalg.solve(precision, features.T @ y.double() / SIGMA**2)
    return mean.float(), precision.inverse().diagonal().sqrt().float()


def store_leaves():
    """Copies of the ParamStore's unconstrained leaves, by name."""
    return {name: leaf.detach().clone() for name, leaf in pyro.get_param_store().named_parameters()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_processes(target, args, timeout=PROCESS_TIMEOUT):
    """Run ``target(rank, *args)`` on ``WORLD_SIZE`` spawned processes; kill them on overrun."""
    context = mp.get_context("spawn")
    procs = [context.Process(target=target, args=(rank, *args)) for rank in range(WORLD_SIZE)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + timeout
    try:
        for p in procs:
            p.join(max(0.0, deadline - time.monotonic()))
    finally:
        hung = [p.is_alive() for p in procs]
        for p in procs:
            if p.is_alive():
                p.kill()
            p.join()
    assert not any(hung), f"ranks still running after {timeout} s (a hang): {hung}"
    assert [p.exitcode for p in procs] == [0] * WORLD_SIZE, "a rank failed (see its stderr)"


def train_shard_with_ddp(rank: int, port: int, out_dir: str) -> None:
    """One rank: its half of the data, its own guide init, ``DDP_STEPS`` SGD steps via DDP."""
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=WORLD_SIZE,
        timeout=timedelta(seconds=60),
    )
    try:
        x, y = (t.chunk(WORLD_SIZE)[rank] for t in regression_data())
        pyro.clear_param_store()
        torch.manual_seed(rank)  # each rank starts from other params: DDP must broadcast
        # Each rank sees half the data, so its likelihood counts twice: the average of the
        # ranks' gradients (what DDP all-reduces) is then the full-data gradient.
        model = functools.partial(regression_model, scale=float(WORLD_SIZE))
        loss_fn = Trace_ELBO()(model, regression_guide)
        loss_fn(x, y)  # creates the params
        own_init = store_leaves()
        ddp = DistributedDataParallel(loss_fn)
        after_construction = store_leaves()
        optimizer = torch.optim.SGD(ddp.parameters(), lr=DDP_LR)
        pyro.set_rng_seed(DDP_SEED)  # the same guide noise on every rank
        for _ in range(DDP_STEPS):
            optimizer.zero_grad()
            ddp(x, y).backward()
            optimizer.step()
        result = {
            "own_init": own_init,
            "after_construction": after_construction,
            "final": store_leaves(),
            "parameter_names": [name for name, _ in ddp.named_parameters()],
            "state_dict": {k: v.clone() for k, v in ddp.state_dict().items()},
        }
        torch.save(result, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_ddp_broadcasts_rank0_params_and_matches_one_process_on_all_data(tmp_path):
    run_processes(train_shard_with_ddp, (free_port(), str(tmp_path)))
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD_SIZE)]

    # One process, all the data, unscaled likelihood, rank 0's init and the same draws.
    x, y = regression_data()
    pyro.clear_param_store()
    torch.manual_seed(0)
    loss_fn = Trace_ELBO()(regression_model, regression_guide)
    loss_fn(x, y)
    optimizer = torch.optim.SGD(loss_fn.parameters(), lr=DDP_LR)
    pyro.set_rng_seed(DDP_SEED)
    for _ in range(DDP_STEPS):
        optimizer.zero_grad()
        loss_fn(x, y).backward()
        optimizer.step()
    expected = store_leaves()

    names = ["weight_loc", "weight_scale", "bias_loc", "bias_scale"]
    rank0, rank1 = ranks
    assert rank0["parameter_names"] == [f"module.{n}" for n in names]
    assert list(rank0["state_dict"]) == [f"module.{n}" for n in names]
    for name in names:
        assert not torch.equal(rank0["own_init"][name], rank1["own_init"][name])
        for rank in ranks:  # DDP's construction broadcast landed in each ParamStore
            assert torch.equal(rank["after_construction"][name], rank0["own_init"][name])
        assert torch.equal(rank0["final"][name], rank1["final"][name])
        assert torch.equal(rank0["state_dict"][f"module.{name}"], rank0["final"][name])
        # Only the float summation order differs from the one-process run.
        torch.testing.assert_close(rank0["final"][name], expected[name], atol=1e-5, rtol=0)
        assert not torch.allclose(expected[name], rank0["own_init"][name], atol=1e-3)


def test_elbo_module_state_dict_is_the_param_store_leaves_and_loads_in_place():
    pyro.clear_param_store()
    x, y = regression_data()
    pyro.param("linear.weight", torch.zeros(2))  # a dotted store name, as PyroModule makes

    def guide(x, y):
        regression_guide(x, y)
        pyro.param("linear.weight")

    loss_fn = Trace_ELBO()(regression_model, guide)
    loss_fn(x, y)
    store = pyro.get_param_store()
    names = ["weight_loc", "weight_scale", "bias_loc", "bias_scale", "linear.weight"]
    assert [n for n, _ in loss_fn.named_parameters()] == names
    assert all(p is store.unconstrained(n) for n, p in loss_fn.named_parameters())
    outer = torch.nn.ModuleDict({"loss": loss_fn})  # torch's own walk finds the leaves too
    assert [n for n, _ in outer.named_parameters()] == [f"loss.{n}" for n in names]

    state = outer.state_dict()
    assert list(state) == [f"loss.{n}" for n in names]
    leaves = [store.unconstrained(n) for n in names]
    new = {k: v + 1.0 for k, v in state.items()}
    result = outer.load_state_dict(new, assign=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    for name, leaf in zip(names, leaves):
        assert store.unconstrained(name) is leaf  # written in place, not replaced
        assert torch.equal(leaf.detach(), new[f"loss.{name}"])

    with pytest.raises(RuntimeError, match="Missing key.*loss.bias_scale"):
        outer.load_state_dict({k: v for k, v in new.items() if k != "loss.bias_scale"})
    with pytest.raises(RuntimeError, match="size mismatch for loss.bias_loc"):
        outer.load_state_dict({**new, "loss.bias_loc": torch.zeros(3)})


# --- PyTorch Lightning ---------------------------------------------------------------------


def __getattr__(name):
    # Spawned DDP workers import this file; building the Lightning class on first use
    # keeps ``import lightning`` (seconds) out of the workers that do not need it.
    if name != "PyroLightningModule":
        raise AttributeError(name)
    import lightning

    class PyroLightningModule(lightning.LightningModule):
        """Pyro's Lightning example: the ``ELBOModule`` is the loss; ``setup`` creates the
        params in each worker's own ParamStore (a spawned worker starts with an empty one)."""

        def __init__(self, loss_fn, lr, milestones=(), out_dir=None):
            super().__init__()
            self.loss_fn, self.lr, self.out_dir = loss_fn, lr, out_dir
            self.milestones = list(milestones)

        def setup(self, stage):
            if self.out_dir is not None:  # a spawned worker
                # A hung worker would hang the test: end it instead (the parent then fails).
                watchdog = threading.Timer(PROCESS_TIMEOUT, os._exit, args=(3,))
                watchdog.daemon = True
                watchdog.start()
                torch.manual_seed(self.global_rank)  # another init on each rank
                x, y = regression_data()
                self.loss_fn(x[:1], y[:1])
                self.own_init = store_leaves()

        def on_train_start(self):
            self.at_start = store_leaves()

        def training_step(self, batch, batch_idx):
            return self.loss_fn(*batch)

        def configure_optimizers(self):
            optimizer = torch.optim.Adam(self.loss_fn.parameters(), lr=self.lr)
            # Adam's steps stay about ``lr`` long in noise: a smaller lr at the end lets
            # the last iterate settle near the optimum.
            scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, self.milestones, 0.1)
            return {"optimizer": optimizer, "lr_scheduler": scheduler}

        def on_train_end(self):
            if self.out_dir is not None:
                path = Path(self.out_dir) / f"rank{self.global_rank}.pt"
                result = {"own_init": self.own_init, "at_start": self.at_start}
                torch.save({**result, "final": store_leaves()}, path)

    PyroLightningModule.__module__, PyroLightningModule.__qualname__ = __name__, name  # pickles
    globals()[name] = PyroLightningModule
    return PyroLightningModule


def lightning_trainer(lightning, **kwargs):
    return lightning.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


def test_lightning_trainer_fits_the_exact_posterior_mean():
    lightning = pytest.importorskip("lightning")
    lightning.seed_everything(0, verbose=False)
    pyro.clear_param_store()
    x, y = regression_data()
    batch_size = 100
    model = functools.partial(regression_model, scale=NUM_DATA / batch_size)
    loss_fn = Trace_ELBO(num_particles=32, vectorize_particles=True)(model, regression_guide)
    loss_fn(x[:batch_size], y[:batch_size])  # creates the params before configure_optimizers
    plan = __getattr__("PyroLightningModule")(loss_fn, lr=0.05, milestones=[60, 80])
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=batch_size, shuffle=False
    )
    lightning_trainer(lightning, max_epochs=100, devices=1).fit(plan, train_dataloaders=loader)

    mean, sd = exact_posterior_mean()
    fitted = torch.cat([pyro.param("weight_loc"), pyro.param("bias_loc").reshape(1)]).detach()
    # A mean-field Normal guide of a Gaussian posterior has the exact means at its optimum;
    # what is left is optimization noise, at most 0.2 posterior sd (sd about 0.035 here)
    # over six seeds of this schedule, while the random init is tens of sd away.
    torch.testing.assert_close(fitted, mean, atol=0.5 * sd.min().item(), rtol=0)


def test_lightning_ddp_spawn_broadcasts_rank0_params_and_keeps_ranks_equal(tmp_path):
    lightning = pytest.importorskip("lightning")
    from lightning.pytorch.strategies import DDPStrategy

    lightning.seed_everything(0, verbose=False)
    pyro.clear_param_store()
    x, y = regression_data()
    batch_size = 50  # per rank: each rank holds half the data (DistributedSampler)
    model = functools.partial(regression_model, scale=NUM_DATA / batch_size)
    loss_fn = Trace_ELBO()(model, regression_guide)
    loss_fn(x[:batch_size], y[:batch_size])  # the parent's params: they get rank 0's result
    plan = __getattr__("PyroLightningModule")(loss_fn, lr=0.05, out_dir=str(tmp_path))
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=batch_size, shuffle=False
    )
    strategy = DDPStrategy(start_method="spawn", timeout=timedelta(seconds=60))
    trainer = lightning_trainer(lightning, max_epochs=5, devices=WORLD_SIZE, strategy=strategy)
    trainer.fit(plan, train_dataloaders=loader)

    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD_SIZE))
    recovered = store_leaves()  # Lightning loads rank 0's state_dict into the parent's plan
    for name in ["weight_loc", "weight_scale", "bias_loc", "bias_scale"]:
        assert not torch.equal(rank0["own_init"][name], rank1["own_init"][name])
        assert torch.equal(rank1["at_start"][name], rank0["own_init"][name])
        assert torch.equal(rank0["final"][name], rank1["final"][name])
        assert not torch.equal(rank0["final"][name], rank0["own_init"][name])
        assert torch.equal(recovered[name], rank0["final"][name])
