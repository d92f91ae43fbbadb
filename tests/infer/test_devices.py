"""Every tensor pyrolite creates follows the device and dtype of the user's data and params.

The ``device`` fixture runs each test on the CPU and, where one is present, on CUDA. The
tables below drive one test body each: every estimator, eager, ``Jit*`` and compiled
(``SVI(compile=...)``), and every autoguide, trained a few steps with data and params on
the device in float64 (so a tensor made in the default float32 shows up as well). The
CUDA-only tests count host syncs with torch's sync debug mode: one ``svi.step()`` reads
its loss (one sync) and nothing else, ``svi.fit(n)`` reads once per batch of steps.
"""

import math
import warnings
from typing import Callable, NamedTuple

import pytest
import torch

import pyrolite as pyro
import pyrolite.distributions as dist
from pyrolite import poutine
from pyrolite.distributions import constraints
from pyrolite.distributions.testing.fakes import NonreparameterizedNormal
from pyrolite.infer import (
    SVI,
    JitRenyiELBO,
    JitTrace_ELBO,
    JitTraceEnum_ELBO,
    JitTraceGraph_ELBO,
    JitTraceMeanField_ELBO,
    Predictive,
    RenyiELBO,
    Trace_ELBO,
    TraceEnum_ELBO,
    TraceGraph_ELBO,
    TraceMeanField_ELBO,
    infer_discrete,
)
from pyrolite.infer.autoguide import (
    AutoDelta,
    AutoDiagonalNormal,
    AutoLaplaceApproximation,
    AutoLowRankMultivariateNormal,
    AutoMultivariateNormal,
    AutoNormal,
)
from pyrolite.infer.autoguide.initialization import init_to_feasible, init_to_uniform
from pyrolite.ops.jit import JitFallbackWarning
from pyrolite.optim import Adam

DTYPE = torch.float64
AOT = {"backend": "aot_eager"}
cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")


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


# --- models -------------------------------------------------------------------------------
# Constants come from ``x.new_zeros``/``new_full`` (a fill on the device) and inits are
# lambdas: a tensor made from Python data on each step (``x.new_tensor(1.0)``) would be a
# host-to-device copy, which the sync counts below would charge to pyrolite.


def data(device, n=8):
    return torch.linspace(-2.0, 2.0, n, dtype=DTYPE, device=device)


def global_model(x):
    loc = pyro.sample("loc", dist.Normal(x.new_zeros(()), x.new_full((), 10.0)))
    with pyro.plate("data", len(x), subsample_size=len(x) // 2, device=x.device) as idx:
        pyro.sample("x", dist.Normal(loc, x.new_ones(())), obs=x[idx])


def global_guide(x):
    m = pyro.param("m", lambda: x.new_zeros(()))
    s = pyro.param("s", lambda: x.new_ones(()), constraint=constraints.positive)
    pyro.sample("loc", dist.Normal(m, s))


def baseline_guide(x):
    """A score-function site with a decaying-average baseline: state the ELBO keeps."""
    m = pyro.param("m", lambda: x.new_zeros(()))
    s = pyro.param("s", lambda: x.new_ones(()), constraint=constraints.positive)
    baseline = {"baseline": {"use_decaying_avg_baseline": True}}
    pyro.sample("loc", NonreparameterizedNormal(m, s), infer=baseline)


def mixture_model(x):
    weights = pyro.param("weights", lambda: x.new_full((2,), 0.5), constraint=constraints.simplex)
    locs = pyro.param("locs", lambda: torch.linspace(-1.0, 1.0, 2, dtype=x.dtype, device=x.device))
    shift = pyro.sample("shift", dist.Normal(x.new_zeros(()), x.new_full((), 10.0)))
    with pyro.plate("data", len(x), device=x.device):
        z = pyro.sample("z", dist.Categorical(weights), infer={"enumerate": "parallel"})
        pyro.sample("x", dist.Normal(locs[z] + shift, x.new_ones(())), obs=x)


def shift_guide(x):
    """The mixture's guide: its global shift, a score-function site with a baseline."""
    m = pyro.param("m", lambda: x.new_zeros(()))
    baseline = {"baseline": {"use_decaying_avg_baseline": True}}
    pyro.sample("shift", NonreparameterizedNormal(m, x.new_full((), 0.5)), infer=baseline)


def local_model(x):
    """A global latent and a local one per (subsampled) data point: per-site guides."""
    loc = pyro.sample("loc", dist.Normal(x.new_zeros(()), x.new_full((), 10.0)))
    scale = pyro.sample("scale", dist.LogNormal(x.new_zeros(()), x.new_ones(())))
    with pyro.plate("data", len(x), subsample_size=len(x) // 2, device=x.device) as idx:
        z = pyro.sample("z", dist.Normal(loc, scale))
        pyro.sample("x", dist.Normal(z, x.new_full((), 0.5)), obs=x[idx])


def flat_model(x):
    """Global latents only (the flat guides' joint vector): a 2-vector and a scale."""
    loc = pyro.sample("loc", dist.Normal(x.new_zeros(2), x.new_full((), 10.0)).to_event(1))
    scale = pyro.sample("scale", dist.LogNormal(x.new_zeros(()), x.new_ones(())))
    pairs = x.reshape(-1, 2)
    with pyro.plate("data", len(pairs), device=x.device):
        pyro.sample("x", dist.Normal(loc, scale).to_event(1), obs=pairs)


# --- the tables ----------------------------------------------------------------------------


class Estimator(NamedTuple):
    eager: type
    jit: type
    options: dict
    model: Callable
    guide: Callable
    keeps_state: bool = False  # a baseline's running average: ELBO state


VECTORIZED = {"num_particles": 2, "vectorize_particles": True, "max_plate_nesting": 1}
ESTIMATORS = {
    "Trace_ELBO": Estimator(Trace_ELBO, JitTrace_ELBO, VECTORIZED, global_model, global_guide),
    "TraceGraph_ELBO": Estimator(
        TraceGraph_ELBO, JitTraceGraph_ELBO, {}, global_model, baseline_guide, True
    ),
    "TraceMeanField_ELBO": Estimator(
        TraceMeanField_ELBO, JitTraceMeanField_ELBO, {}, global_model, global_guide
    ),
    "RenyiELBO": Estimator(
        RenyiELBO, JitRenyiELBO, {"num_particles": 2}, global_model, global_guide
    ),
    "TraceEnum_ELBO": Estimator(
        TraceEnum_ELBO,
        JitTraceEnum_ELBO,
        {"max_plate_nesting": 1},
        mixture_model,
        shift_guide,
        True,
    ),
}

# Compiling a step takes seconds on a CPU: one compiled estimator runs by default.
ROWS = [
    pytest.param(
        name,
        mode,
        id=f"{name}-{mode}",
        marks=[pytest.mark.slow] if mode == "compiled" and name != "Trace_ELBO" else [],
    )
    for name in ESTIMATORS
    for mode in ("eager", "jit", "compiled")
]
EAGER_AND_JIT_ROWS = [p for p in ROWS if p.values[1] != "compiled"]

# name: (class, model, options)
AUTOGUIDES = {
    "AutoDelta": (AutoDelta, local_model, {}),
    "AutoNormal": (AutoNormal, local_model, {}),
    "AutoDiagonalNormal": (AutoDiagonalNormal, flat_model, {"init_loc_fn": init_to_feasible}),
    "AutoMultivariateNormal": (
        AutoMultivariateNormal,
        flat_model,
        {"init_loc_fn": init_to_uniform},
    ),
    "AutoLowRankMultivariateNormal": (AutoLowRankMultivariateNormal, flat_model, {}),
    "AutoLaplaceApproximation": (
        AutoLaplaceApproximation,
        flat_model,
        {"init_loc_fn": init_to_feasible},  # near the MAP: a positive definite Hessian
    ),
}


def make_svi(name, mode):
    e = ESTIMATORS[name]
    elbo = (e.jit if mode == "jit" else e.eager)(**e.options)
    compile = AOT if mode == "compiled" else False
    return SVI(e.model, e.guide, Adam({"lr": 0.05}), elbo, compile=compile)


def make_autoguide_svi(name):
    guide_class, model, options = AUTOGUIDES[name]
    guide = guide_class(model, **options)
    return SVI(model, guide, Adam({"lr": 0.05}), Trace_ELBO()), guide


def warm_up(svi, x):
    """Steps until every graph is built (a compiled step compiles at the third step), then a
    short fit (which steps masked on the device)."""
    for _ in range(3):
        svi.step(x)
    return svi.fit(2, x, progress_bar=False)


# --- checks --------------------------------------------------------------------------------


def assert_on(tensor, device, dtype=DTYPE, what=""):
    assert isinstance(tensor, torch.Tensor), what
    assert tensor.device.type == device.type, f"{what} is on {tensor.device}"
    if dtype is not None:
        assert tensor.dtype == dtype, f"{what} has dtype {tensor.dtype}"


def assert_training_state_on(svi, device):
    """Every param (constrained and leaf), optimizer state tensor and ELBO state tensor."""
    store = pyro.get_param_store()
    assert len(store) > 0
    for name, value in store.items():
        assert_on(value, device, what=f"param {name!r}")
        assert_on(store.unconstrained(name), device, what=f"leaf of {name!r}")
    optim_state = svi.optim.get_state()
    assert set(optim_state) == set(store.keys())
    for name, entry in optim_state.items():
        (state,) = entry["state"].values()
        for key, value in state.items():
            # torch keeps Adam's step counter in float32 whatever the param's dtype
            dtype = torch.float32 if key == "step" else DTYPE
            assert_on(value, device, dtype, what=f"optimizer state {key!r} of {name!r}")
    for name, value in svi.elbo.get_state().items():
        assert_on(value, device, what=f"ELBO state {name!r}")


def assert_samples_on(samples, device, what):
    assert samples
    for name, value in samples.items():
        dtype = DTYPE if value.is_floating_point() else None
        assert_on(value, device, dtype, what=f"{what} {name!r}")


def fallbacks(caught):
    """The warnings saying a Jit or compiled step ran eagerly instead."""
    return [
        str(w.message)
        for w in caught
        if issubclass(w.category, JitFallbackWarning) or "cannot be compiled" in str(w.message)
    ]


@pytest.mark.parametrize("name, mode", ROWS)
def test_every_estimator_keeps_tensors_on_the_data_device(device, name, mode):
    model, guide = ESTIMATORS[name].model, ESTIMATORS[name].guide
    x = data(device)
    svi = make_svi(name, mode)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loss = svi.step(x)
        result = warm_up(svi, x)
    assert fallbacks(caught) == []
    if mode == "compiled":
        assert svi.compile_info.compiled_graphs == 1
    elif mode == "jit":
        assert svi.elbo.compile_count >= 1
    assert isinstance(loss, float) and math.isfinite(loss)
    assert result.losses.shape == (2,)
    assert result.losses.dtype == torch.zeros((), dtype=DTYPE).numpy().dtype
    assert_training_state_on(svi, device)
    if ESTIMATORS[name].keeps_state:
        assert svi.elbo.get_state()  # the baseline's running average
    assert_on(svi.elbo.differentiable_loss(model, guide, x), device, what="the loss")

    assert_samples_on(Predictive(model, guide=guide, num_samples=3)(x), device, "Predictive")
    if name == "TraceEnum_ELBO":
        for temperature in (0, 1):
            sampled = infer_discrete(model, first_available_dim=-2, temperature=temperature)
            z = poutine.trace(sampled).get_trace(x).nodes["z"]["value"]
            assert_on(z, device, torch.long, what=f"infer_discrete(temperature={temperature})")
            assert z.shape == x.shape


@pytest.mark.parametrize("name", list(AUTOGUIDES))
def test_every_autoguide_keeps_tensors_on_the_data_device(device, name):
    x = data(device)
    svi, guide = make_autoguide_svi(name)
    warm_up(svi, x)
    assert_training_state_on(svi, device)
    latent = {"loc", "scale", "z"} if AUTOGUIDES[name][1] is local_model else {"loc", "scale"}
    medians = guide.median(x)
    assert set(medians) == latent
    assert_samples_on(medians, device, "median")
    quantiles = guide.quantiles([0.25, 0.5, 0.75], x)
    assert set(quantiles) == latent and all(q.shape[0] == 3 for q in quantiles.values())
    assert_samples_on(quantiles, device, "quantiles")
    assert_samples_on(guide.sample_posterior(x, sample_shape=(2,)), device, "sample_posterior")
    predictive = Predictive(guide.model, guide=guide, num_samples=2)
    assert_samples_on(predictive(x), device, "Predictive")
    if name == "AutoLaplaceApproximation":
        gaussian = guide.laplace_approximation(x)
        assert_samples_on(gaussian.median(x), device, "Laplace median")
        assert_on(gaussian.scale_tril, device, what="Laplace scale_tril")


@pytest.mark.parametrize("name, mode", EAGER_AND_JIT_ROWS)
def test_a_warm_step_creates_no_tensor_off_the_data_device(device, name, mode):
    """Inside ``torch.device("meta")`` every tensor made without an explicit device is a
    meta tensor: one that pyrolite made on the host instead of next to the data (on
    CUDA, a host-to-device copy per step) meets the data and raises. This catches on a
    CPU what would be a sync per step on a GPU."""
    x = data(device)
    svi = make_svi(name, mode)
    warm_up(svi, x)
    with torch.device("meta"):
        svi.step(x)
        svi.fit(2, x, progress_bar=False)
    assert_training_state_on(svi, device)


@pytest.mark.parametrize("name", list(AUTOGUIDES))
def test_a_warm_autoguide_step_creates_no_tensor_off_the_data_device(device, name):
    x = data(device)
    svi, _ = make_autoguide_svi(name)
    warm_up(svi, x)
    with torch.device("meta"):
        svi.step(x)
        svi.fit(2, x, progress_bar=False)
    assert_training_state_on(svi, device)


def test_checkpoint_saved_on_cpu_resumes_on_the_device(device, tmp_path):
    """Params, optimizer state and the ELBO's baseline state all move with map_location."""
    cpu = torch.device("cpu")
    svi = make_svi("TraceGraph_ELBO", "eager")
    warm_up(svi, data(cpu))
    svi.save(tmp_path / "ckpt")
    store = pyro.get_param_store()
    params = {name: value.detach().clone() for name, value in store.items()}
    elbo_state = svi.elbo.get_state()
    assert elbo_state
    pyro.clear_param_store()

    resumed = make_svi("TraceGraph_ELBO", "eager")
    resumed.load(tmp_path / "ckpt", map_location=device)
    for name, value in params.items():
        assert_on(store[name], device, what=f"loaded param {name!r}")
        assert torch.equal(store[name].detach().cpu(), value)
    for name, value in resumed.elbo.get_state().items():
        assert_on(value, device, what=f"loaded ELBO state {name!r}")
        assert torch.equal(value.cpu(), elbo_state[name])
    for name, entry in resumed.optim.get_state().items():
        for key, value in entry["state"][0].items():
            assert_on(value, device, None, what=f"loaded optimizer state {key!r} of {name!r}")
    resumed.step(data(device))
    assert_training_state_on(resumed, device)


# --- CUDA: host syncs ----------------------------------------------------------------------


def host_syncs(fn) -> list:
    """Where ``fn()`` synchronizes with the GPU: one ``file:line`` per synchronizing CUDA
    operation torch's sync debug mode warns about (device-to-host reads such as
    ``.item()``, and host-to-device copies of host data)."""
    torch.cuda.synchronize()
    previous = torch.cuda.get_sync_debug_mode()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode(previous)
    return [f"{w.filename}:{w.lineno}" for w in caught if "synchroniz" in str(w.message)]


def fit_batches(num_steps: int) -> int:
    """How many batches ``SVI.fit(num_steps)`` reads its losses in (its batch size rule)."""
    batch = max(1, min(100, num_steps // 50))
    return math.ceil(num_steps / batch)


def assert_syncs_once_per_step_and_batch(svi, x):
    warm_up(svi, x)
    syncs = host_syncs(lambda: svi.step(x))
    assert len(syncs) <= 1, syncs  # the loss
    num_steps = 100  # batches of 2 steps: a sync per step would be twice too many
    assert fit_batches(num_steps) == 50
    syncs = host_syncs(lambda: svi.fit(num_steps, x, progress_bar=False))
    assert len(syncs) <= fit_batches(num_steps), sorted(set(syncs))


@cuda_only
@pytest.mark.parametrize("name, mode", ROWS)
def test_cuda_step_syncs_once_and_fit_once_per_batch(name, mode):
    assert_syncs_once_per_step_and_batch(make_svi(name, mode), data(torch.device("cuda")))


@cuda_only
@pytest.mark.parametrize("name", list(AUTOGUIDES))
def test_cuda_autoguide_step_syncs_once_and_fit_once_per_batch(name):
    svi, _ = make_autoguide_svi(name)
    assert_syncs_once_per_step_and_batch(svi, data(torch.device("cuda")))
