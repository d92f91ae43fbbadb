"""Pyro and pyrolite workers: the same code, with the package name as the only difference.

Only Pyro's public API is used here (``import pyrolite as pyro`` must run it unchanged), so a
pyrolite row measures exactly what a Pyro user's script would do. On a GPU the data, the param
inits and the priors' numbers are device tensors (see ``models.Backend``), as a GPU user writes
them; no default-device switch (``torch.set_default_device`` puts a Python hook on every op).
"""

from __future__ import annotations

import importlib
import warnings
from types import SimpleNamespace

import torch

from .. import data as bench_data
from ..measure import SkipConfig
from ..models import Backend, model_and_guide
from ..registry import WORKLOADS, Config, num_particles
from . import Trainer

ARRAYS = "torch"  # what the worker moves the data to and measures device memory with


def prepare(framework: str) -> dict:
    """Import the package and its submodules; return their versions."""
    lib = _import(framework)
    return {framework: getattr(lib.pyro, "__version__", "?"), "torch": torch.__version__}


def _import(framework: str) -> SimpleNamespace:
    name = "pyro" if framework == "pyro" else "pyrolite"
    return SimpleNamespace(
        pyro=importlib.import_module(name),
        dist=importlib.import_module(f"{name}.distributions"),
        infer=importlib.import_module(f"{name}.infer"),
        optim=importlib.import_module(f"{name}.optim"),
        fakes=importlib.import_module(f"{name}.distributions.testing.fakes"),
        name=name,
    )


def to_device(dataset, device: str):
    return dataset.to(device)


def _vindex(lib: SimpleNamespace):
    """``<package>.ops.indexing.Vindex``, imported only for the workloads that index with it
    (so the other workloads run while a package lacks it)."""
    return importlib.import_module(f"{lib.name}.ops.indexing").Vindex


def _backend(lib: SimpleNamespace, device: str = "cpu", vindex=None) -> Backend:
    on = torch.device(device)
    return Backend(
        ppl=lib.pyro,
        dist=lib.dist,
        constraints=lib.dist.constraints,
        scalar=lambda v: torch.tensor(v, device=on),
        full=lambda n, v: torch.full((n,), v, device=on),
        const=float if on.type == "cpu" else (lambda v: torch.tensor(v, device=on)),
        fakes=lib.fakes,
        array=lambda values: torch.tensor(values, device=on),
        vindex=vindex,
    )


def _autoguide(lib: SimpleNamespace, model):
    try:
        autoguide = importlib.import_module(f"{lib.name}.infer.autoguide")
        guide_class = autoguide.AutoDiagonalNormal
    except (ImportError, AttributeError) as error:
        missing = f"{lib.name}.infer.autoguide.AutoDiagonalNormal missing ({error})"
        raise SkipConfig(missing) from error
    return guide_class(model)


# The ``elbo`` option of a config and the class it names in ``<package>.infer``.
ELBO_CLASSES = {
    "trace": "Trace_ELBO",
    "jit-trace": "JitTrace_ELBO",
    "meanfield": "TraceMeanField_ELBO",
    "jit-meanfield": "JitTraceMeanField_ELBO",
    "renyi": "RenyiELBO",
    "jit-renyi": "JitRenyiELBO",
    "tracegraph": "TraceGraph_ELBO",
    "jit-tracegraph": "JitTraceGraph_ELBO",
    "enum": "TraceEnum_ELBO",
    "jit-enum": "JitTraceEnum_ELBO",
}


def _elbo(lib: SimpleNamespace, workload: str, config: Config):
    """The config's ELBO; a class the package lacks (yet) makes the config skipped."""
    name = ELBO_CLASSES[config.option("elbo", "trace")]
    elbo_class = getattr(lib.infer, name, None)
    if elbo_class is None:
        raise SkipConfig(f"{lib.name}.infer.{name} missing")
    kwargs = {}
    particles = num_particles(workload, config)
    if particles > 1:
        kwargs = dict(num_particles=particles, max_plate_nesting=1)
        kwargs["vectorize_particles"] = config.option("particles") == "vectorized"
    if name.endswith("RenyiELBO"):
        kwargs["alpha"] = 0  # the importance-weighted (IWAE) bound
    if name.endswith("TraceEnum_ELBO"):
        kwargs["max_plate_nesting"] = 1  # W5's data plate, the HMMs' sequences plate
    return elbo_class(**kwargs)


def _quality(lib: SimpleNamespace, workload: str, guide, is_auto: bool, dataset) -> float:
    param = lib.pyro.param
    with torch.no_grad():
        if workload in bench_data.COIN_WORKLOADS:
            a, b = float(param("alpha_q")), float(param("beta_q"))
            return bench_data.coin_quality(workload, a, b, dataset.obs)
        if workload in bench_data.MIXTURE_WORKLOADS:
            locs = param("locs_q").detach().cpu().numpy()
            return bench_data.locs_error(locs, bench_data.MIXTURE_LOCS)
        if workload in bench_data.HMM_WORKLOADS:
            locs = param("locs").detach().cpu().numpy()
            return bench_data.locs_error(locs, bench_data.HMM_LOCS)
        if is_auto:
            medians = guide.median()
            alpha, beta = medians["alpha"], medians["beta"]
        else:
            alpha, beta = param("alpha_loc"), param("beta_loc")
        reference = bench_data.least_squares_coefficients(dataset.x, dataset.y)
        return bench_data.regression_error(float(alpha), beta.detach().cpu().numpy(), reference)


def _compile_info(svi) -> dict:
    """Did ``SVI(compile=True)`` compile? (it falls back to eager, with a warning, if not).

    Reads ``svi.compile_info`` (``enabled``, ``compiled_graphs``, ``fallback_reasons``); an SVI
    without that property reports nothing, so the row keeps its timings.
    """
    info = getattr(svi, "compile_info", None)
    if info is None:
        return {}
    reasons = list(info.fallback_reasons)
    if not info.enabled and not reasons:
        reasons = ["compile disabled"]
    return {"compiled_graphs": info.compiled_graphs, "compile_fallback": reasons}


def build(
    framework: str,
    workload: str,
    config: Config,
    dataset,
    block_steps: int,
    device: str = "cpu",
    seed: int = 0,
) -> Trainer:
    lib = _import(framework)
    warnings.filterwarnings("ignore")  # JIT tracer warnings would flood the worker's stderr
    lib.pyro.clear_param_store()
    lib.pyro.set_rng_seed(seed)
    lib.pyro.enable_validation(config.option("validation", "on") != "off")
    spec = WORKLOADS[workload]
    hmm_form = config.option("hmm", "markov")
    markov_hmm = workload in bench_data.HMM_WORKLOADS and hmm_form == "markov"
    model, guide = model_and_guide(
        workload,
        _backend(lib, device, vindex=_vindex(lib) if markov_hmm else None),
        bench_data.NUM_FEATURES,
        baseline=config.option("baseline") == "decaying",
        hmm_form=hmm_form,
    )
    is_auto = config.option("guide") == "autodiag"
    if is_auto:
        guide = _autoguide(lib, model)
    adam_args = {"lr": spec.lr}
    if spec.adam_betas is not None:
        adam_args["betas"] = spec.adam_betas
    optimizer = lib.optim.Adam(adam_args)
    svi_kwargs = {}
    if config.option("compile"):
        svi_kwargs["compile"] = True  # pyrolite only: the compiled whole step
    svi = lib.infer.SVI(model, guide, optimizer, _elbo(lib, workload, config), **svi_kwargs)
    args = dataset.args()

    def step() -> float:
        return svi.step(*args)

    def quality() -> float:
        return _quality(lib, workload, guide, is_auto, dataset)

    def info() -> dict:
        return _compile_info(svi) if svi_kwargs else {}

    return Trainer(step=step, quality=quality, info=info)
