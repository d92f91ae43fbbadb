"""NumPyro worker: the shared model/guide on JAX, one jitted ``svi.update`` per step or a
jitted ``lax.scan`` over a whole timing block.

Data are passed to the jitted functions as arguments (not closed over), so XLA does not fold
them into the program as constants.

On a GPU (``JAX_PLATFORMS=cuda``, set by ``benchmarks.run --device cuda``) the data are put on the
device before the memory baseline (``to_device``). A step waits for its result: ``float(loss)``
copies the loss to the host, which waits for the jitted update that computes both the loss and
the new state (one XLA program; its outputs become ready together).

W4 runs NumPyro's ``TraceGraph_ELBO``: NumPyro has no ``testing.fakes`` module, but a
distribution whose ``reparametrized_params`` is empty reports ``has_rsample`` False, and NumPyro
then stops the sample's gradient and adds the score-function term (it has no baselines, so only
the no-baseline config runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
import numpyro.infer
import numpyro.optim
from numpyro.infer.autoguide import AutoDiagonalNormal

from .. import data as bench_data
from ..measure import SkipConfig
from ..models import Backend, model_and_guide
from ..registry import WORKLOADS, Config, num_particles
from . import Trainer

ARRAYS = "jax"  # what the worker moves the data to and measures device memory with


def prepare(framework: str) -> dict:
    return {"numpyro": numpyro.__version__, "jax": jax.__version__}


@dataclass
class DeviceData:
    """The torch data (for scoring) and their JAX copies on the device (for the steps)."""

    host: object
    arrays: tuple

    def args(self):
        return self.arrays


def to_device(dataset, device: str) -> DeviceData:
    target = jax.devices()[0]
    if device == "cuda" and target.platform != "gpu":
        raise RuntimeError(f"JAX has no GPU here (its devices: {jax.devices()})")
    arrays = tuple(jax.device_put(t.numpy(), target) for t in dataset.args())
    return DeviceData(dataset, jax.block_until_ready(arrays))


class NonreparameterizedBeta(dist.Beta):
    """NumPyro's Beta declared non-reparameterized (``has_rsample`` is False), as Pyro's
    ``pyro.distributions.testing.fakes.NonreparameterizedBeta``."""

    reparametrized_params = []


def _backend() -> Backend:
    return Backend(
        ppl=numpyro,
        dist=dist,
        constraints=dist.constraints,
        scalar=lambda v: jnp.asarray(v, dtype=jnp.float32),
        full=lambda n, v: jnp.full((n,), v, dtype=jnp.float32),
        fakes=SimpleNamespace(NonreparameterizedBeta=NonreparameterizedBeta),
    )


def _elbo(workload: str, config: Config):
    particles = num_particles(workload, config)
    if config.option("baseline"):
        raise SkipConfig("NumPyro's TraceGraph_ELBO has no baselines")
    if config.option("elbo") == "tracegraph":
        return numpyro.infer.TraceGraph_ELBO(num_particles=particles)
    return numpyro.infer.Trace_ELBO(num_particles=particles)


def _quality(workload: str, svi, state, guide, is_auto: bool, dataset) -> float:
    params = svi.get_params(state)
    if workload in bench_data.COIN_WORKLOADS:
        a, b = float(params["alpha_q"]), float(params["beta_q"])
        return bench_data.coin_quality(workload, a, b, dataset.obs)
    if is_auto:
        medians = guide.median(params)
        alpha, beta = medians["alpha"], medians["beta"]
    else:
        alpha, beta = params["alpha_loc"], params["beta_loc"]
    reference = bench_data.least_squares_coefficients(dataset.x, dataset.y)
    return bench_data.regression_error(float(alpha), jax.device_get(beta), reference)


def _scan_block(svi, length: int):
    def run_block(state, *args):
        def body(carry, _):
            return svi.update(carry, *args)

        return jax.lax.scan(body, state, None, length=length)

    return jax.jit(run_block)


def build(
    framework: str,
    workload: str,
    config: Config,
    dataset,
    block_steps: int,
    device: str = "cpu",
    seed: int = 0,
) -> Trainer:
    spec = WORKLOADS[workload]
    if isinstance(dataset, DeviceData):  # already on the device (made before the baseline)
        dataset, args = dataset.host, dataset.arrays
    else:
        args = tuple(jnp.asarray(t.numpy()) for t in dataset.args())
    model, guide = model_and_guide(workload, _backend(), bench_data.NUM_FEATURES)
    is_auto = config.option("guide") == "autodiag"
    if is_auto:
        guide = AutoDiagonalNormal(model, init_loc_fn=numpyro.infer.init_to_median)
    betas = dict(zip(("b1", "b2"), spec.adam_betas)) if spec.adam_betas else {}
    optimizer = numpyro.optim.Adam(spec.lr, **betas)
    svi = numpyro.infer.SVI(model, guide, optimizer, _elbo(workload, config))
    holder = {"state": svi.init(jax.random.PRNGKey(seed), *args)}

    if config.option("loop") == "scan":
        run_block = _scan_block(svi, block_steps)

        def step() -> float:
            holder["state"], losses = run_block(holder["state"], *args)
            return float(losses[-1])

        steps_per_call = block_steps
    else:
        update = jax.jit(svi.update)

        def step() -> float:
            holder["state"], loss = update(holder["state"], *args)
            return float(loss)

        steps_per_call = 1

    def quality() -> float:
        return _quality(workload, svi, holder["state"], guide, is_auto, dataset)

    return Trainer(step=step, quality=quality, steps_per_call=steps_per_call)
