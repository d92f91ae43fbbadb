"""Data-parallel SVI: seed 003's Bayesian linear regression, trained on sharded data.

Seed 003 fits ``y = alpha + x @ beta + noise`` (N=2500 rows, P=8 features, data simulated
with ``set_rng_seed(42)``) with a mean-field Normal guide (``AutoDiagonalNormal``). Here
the same model is trained by several processes at once, each holding only its own rows
of the data, with :class:`~pyrolite.infer.distributed.DistributedSVI`.

Run it on two processes of this machine (CPU: gloo; one GPU per process: NCCL):

    torchrun --nproc_per_node=2 tutorials/distributed_regression.py

or as one process, without torchrun (the one-process fit, to compare with):

    python tutorials/distributed_regression.py

Across machines, run the same command on every machine, naming one of them (any host
and free port every machine can reach) as the rendezvous point:

    torchrun --nnodes=2 --nproc_per_node=2 --rdzv_backend=c10d \\
        --rdzv_endpoint=HOST:PORT --rdzv_id=JOB tutorials/distributed_regression.py

What each process holds
-----------------------
* its own rows of the data (``rows[rank::world_size]``), and a model whose data plate is
  ``plate("data", len(my_rows))``. In this script every process simulates the whole data
  set and keeps its rows, so that all processes see the seed's data; a real program
  would have each process read only its own part (its files, its range of rows);
* the same model, guide and optimizer, and the same params: rank 0 creates them and the
  others receive them, so every ParamStore starts identical and stays identical;
* the same RNG streams (``DistributedSVI`` gives every process rank 0's): each process
  draws the same global latents (``alpha``, ``beta``, ``sigma``) at every step.

What a step does
----------------
Each process computes the ELBO and its gradients on its own rows. ``local_plates=["data"]``
tells ``DistributedSVI`` that the plate "data" is this process's share of the data, so its
log-likelihood is weighed by ``world_size``: each process's loss is then an estimate of
the loss over *all* rows, and the average of the processes' losses (and gradients) is
exactly the one-process loss over the whole data set (the sum of every process's rows).
One all-reduce per step averages gradients and loss; every process then applies the
same update. ``svi.step`` returns that global (averaged) loss on every process.

Without ``local_plates`` the plate would be taken as a full plate over the whole data
on every process: each process's loss would cover only its rows, unweighted, and the
averaged loss would be ``1 / world_size`` of the data's, a posterior as if the data set
were ``world_size`` times smaller.

Checkpoints: ``svi.save(path)`` is called by every process (it writes from rank 0 and
returns once the file is complete); ``svi.load(path)`` (``--resume``) reads the file on
every process, so across machines ``--checkpoint`` must be on a file system every
process can read (e.g. a shared mount).

Optimizer: the seed runs Adam at lr 1e-2 for 30000 steps. This script uses ``ClippedAdam``
with a learning rate that starts at ``--lr`` and decays 100-fold over the run, which
reaches the seed's posterior in 1500 steps.
"""

import argparse
import datetime
import os
import tempfile
import time

import torch
import torch.distributed as torch_dist

import pyrolite as pyro
import pyrolite.distributions as dist
from pyrolite.infer import JitTraceGraph_ELBO
from pyrolite.infer.autoguide import AutoDiagonalNormal
from pyrolite.infer.distributed import DistributedSVI
from pyrolite.optim import ClippedAdam

N = 2500  # rows in the whole data set (the seed's)
P = 8  # features
#: The seed's reported posterior means (Pyro, Adam at lr 1e-2 for 30000 steps).
SEED_MEANS = {
    "alpha": [45.3709],
    "beta": [1.2963, 2.3403, 2.3068, -11.227, -1.8562, 22.0912, -6.3839, 4.6194],
    "sigma": [0.1673],
}


def parse_args():
    parser = argparse.ArgumentParser(
        description="Seed 003's Bayesian linear regression, data-parallel over processes."
    )
    parser.add_argument("--steps", type=int, default=1500, help="SVI steps in all")
    parser.add_argument("--lr", type=float, default=0.3, help="initial learning rate")
    parser.add_argument("--print-every", type=int, default=0, help="default: steps / 10")
    parser.add_argument(
        "--checkpoint",
        default=os.path.join(tempfile.gettempdir(), "distributed_regression.ckpt"),
        help="where svi.save writes (rank 0); must be the same path on every process",
    )
    parser.add_argument(
        "--resume", action="store_true", help="load --checkpoint first, then train up to --steps"
    )
    parser.add_argument("--cpu", action="store_true", help="gloo on CPU even with GPUs")
    parser.add_argument("--samples", type=int, default=3000, help="posterior draws to summarize")
    return parser.parse_args()


# --- processes and devices ----------------------------------------------------------------


def start_processes(cpu_only: bool):
    """Join the process group; return (rank, world_size, device).

    torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and
    MASTER_PORT in every process it starts, and ``init_process_group`` reads them
    (``env://``). Run without torchrun, the script is one process: a group of one, whose
    rendezvous is an in-process store (no port, no network).
    """
    launched = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    # NCCL only if *every* process on this machine gets a GPU of its own: all processes
    # must pick the same backend, and NCCL refuses two processes on one GPU.
    use_nccl = (
        not cpu_only
        and torch.cuda.is_available()
        and torch_dist.is_nccl_available()
        and local_world <= torch.cuda.device_count()
    )
    if use_nccl:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)  # before init: NCCL binds each rank to its GPU
    else:
        device = torch.device("cpu")
        torch.set_num_threads(1)  # one core per process: tiny tensors, no thread overhead
    backend = "nccl" if use_nccl else "gloo"
    timeout = datetime.timedelta(minutes=5)
    if launched:
        torch_dist.init_process_group(backend, timeout=timeout)
    else:
        torch_dist.init_process_group(
            backend, store=torch_dist.HashStore(), rank=0, world_size=1, timeout=timeout
        )
    return torch_dist.get_rank(), torch_dist.get_world_size(), device


# --- data and model ----------------------------------------------------------------------


def seed_data():
    """The seed's simulated data set: every draw as in seed 003, in the same order."""
    pyro.set_rng_seed(42)
    alpha_true = dist.Normal(42.0, 10.0).sample()
    beta_true = dist.Normal(torch.zeros(P), 10.0).sample()
    sigma_true = dist.Exponential(1.0).sample()
    eps = dist.Normal(0.0, sigma_true).sample([N])
    x = torch.randn(N, P)
    y = alpha_true + x @ beta_true + eps
    truth = {"alpha": alpha_true, "beta": beta_true, "sigma": sigma_true}
    return x, y, truth


def my_rows(x, y, rank, world_size, device):
    """This process's share: rows rank, rank + world_size, ... (any split works, even an
    uneven one: each process's log-likelihood is weighed by world_size, so the average
    over processes is the sum over every row, whatever each holds)."""
    return x[rank::world_size].to(device), y[rank::world_size].to(device)


def model(x, y):
    # The seed's model. Priors are built on the data's device (GPU or CPU), so the
    # autoguide's params, initialized from them, live there too.
    zero = x.new_zeros(())
    alpha = pyro.sample("alpha", dist.Normal(zero, 100.0))
    beta = pyro.sample("beta", dist.Normal(x.new_zeros(P), 10.0).to_event(1))
    sigma = pyro.sample("sigma", dist.HalfNormal(zero + 10.0))
    mu = alpha + x @ beta
    # The plate is over the rows this process holds, not over all N: DistributedSVI is
    # told (local_plates=["data"]) that it is this process's part of the data.
    with pyro.plate("data", len(x)):
        pyro.sample("y", dist.Normal(mu, sigma), obs=y)


def least_squares(x, y):
    """The exact posterior mean of (alpha, beta) on the whole data (the priors are so
    wide that it is the least-squares fit), and sigma's estimate sqrt(RSS / (N - P - 1)):
    what the fit should approach."""
    design = torch.cat([torch.ones(len(x), 1), x], dim=1).double()
    coef = torch.linalg.lstsq(design, y.double().unsqueeze(-1)).solution.squeeze(-1)
    rss = (y.double() - design @ coef).pow(2).sum()
    sigma = (rss / (len(x) - design.shape[1])).sqrt()
    return {"alpha": coef[:1], "beta": coef[1:], "sigma": sigma.reshape(1)}


# --- the program -------------------------------------------------------------------------


def main():
    args = parse_args()
    rank, world_size, device = start_processes(args.cpu)
    say = print if rank == 0 else (lambda *a, **k: None)  # only rank 0 prints

    x_all, y_all, truth = seed_data()
    x, y = my_rows(x_all, y_all, rank, world_size, device)
    say(
        f"{world_size} process(es), backend {torch_dist.get_backend()}, device {device}; "
        f"rank 0 holds {len(x)} of the {N} rows"
    )

    pyro.clear_param_store()
    guide = AutoDiagonalNormal(model)
    # The seed's estimator; every latent is reparameterized, so it is the plain ELBO,
    # traced with TorchScript. Each process traces its own (its rows, its plate size).
    elbo = JitTraceGraph_ELBO()
    optim = ClippedAdam({"lr": args.lr, "lrd": 0.01 ** (1 / args.steps)})
    # Built where a one-process program builds SVI. From here on every process must call
    # step / save / load in the same order (each call waits for all the processes).
    svi = DistributedSVI(model, guide, optim, elbo, local_plates=["data"])

    if args.resume:
        svi.load(args.checkpoint)  # every process reads the file itself
        say(f"resumed from {args.checkpoint} at step {svi.step_count}")

    every = args.print_every or max(1, args.steps // 10)
    start = time.perf_counter()
    first = None
    while svi.step_count < args.steps:
        # Every process passes its own rows; the loss returned is the global one (the
        # average over processes of their full-data estimates), the same on every rank.
        loss = svi.step(x, y)
        first = loss if first is None else first
        step = svi.step_count - 1
        if step % every == 0 or svi.step_count == args.steps:
            say(f"step {step:>6}  loss {loss:14.2f}")
    elapsed = time.perf_counter() - start
    if first is not None:
        say(f"first loss {first:.2f}  final loss {loss:.2f}")
    say(f"trained to step {svi.step_count} in {elapsed:.2f} s")

    # Every rank calls save; rank 0 writes the file (atomically) while the others wait.
    svi.save(args.checkpoint)
    say(f"checkpoint: {args.checkpoint}")

    # The posterior summary. Every process draws it (their params and RNG streams are
    # identical, so they draw the same numbers and stay in lockstep); rank 0 prints it.
    draws = guide.sample_posterior(sample_shape=(args.samples,))
    exact = least_squares(x_all, y_all)
    say(f"\n{'name':>8} {'mean':>10} {'sd':>8} {'exact':>10} {'seed':>10} {'true':>10}")
    for name in ("alpha", "beta", "sigma"):
        values = draws[name].reshape(args.samples, -1).cpu()
        for i in range(values.shape[1]):
            label = name if values.shape[1] == 1 else f"{name}[{i}]"
            say(
                f"{label:>8} {values[:, i].mean().item():10.4f} {values[:, i].std().item():8.4f}"
                f" {exact[name][i].item():10.4f} {SEED_MEANS[name][i]:10.4f}"
                f" {truth[name].reshape(-1)[i].item():10.4f}"
            )
    say(
        "(exact: least squares on all rows, the posterior mean the fit approaches; seed: "
        "the seed's reported Pyro fit; true: the simulation's values)"
    )

    torch_dist.destroy_process_group()


if __name__ == "__main__":
    main()
