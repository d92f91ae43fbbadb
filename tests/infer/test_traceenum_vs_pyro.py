"""TraceEnum_ELBO (and JitTraceEnum_ELBO, compute_marginals) against Pyro's, in float64.

Each model is written once as a function of the library module (``lib`` is pyrolite or
pyro-ppl, the oracle) and run with both on the same data and the same parameter values;
losses and the gradients of the unconstrained parameters must agree to 1e-8.
"""

import functools

import pytest
import torch

import pyrolite

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("float64")  # tests/conftest.py


def oracle():
    pyro = pytest.importorskip("pyro")
    pytest.importorskip("pyro.ops.indexing")  # makes pyro.ops.indexing reachable as lib.ops
    return pyro


def grads_of(elbo, model, guide, *args, names, lib):
    """(loss, {name: grad of the unconstrained param}) of one ``loss_and_grads``."""
    store = lib.get_param_store()
    for name in names:
        if name in store:
            lib.param(name).unconstrained().grad = None
    loss = elbo.loss_and_grads(model, guide, *args)
    return loss, {n: lib.param(n).unconstrained().grad.clone() for n in names}


def run_both(make_elbo, model, guide, *args, names):
    """{lib: (loss, grads)} of one ``loss_and_grads`` with each library, from a fresh
    param store (both stores get the same constrained values from the models' inits)."""
    results = {}
    for lib in (pyrolite, oracle()):
        lib.clear_param_store()
        elbo = make_elbo(lib)
        results[lib] = grads_of(
            elbo,
            functools.partial(model, lib),
            functools.partial(guide, lib),
            *args,
            names=names,
            lib=lib,
        )
    return results


def assert_same(results, names):
    (ours, our_grads), (theirs, their_grads) = results.values()
    assert ours == pytest.approx(theirs, abs=1e-8, rel=1e-10)
    for name in names:
        assert our_grads[name].shape == their_grads[name].shape, name
        assert torch.allclose(our_grads[name], their_grads[name], atol=1e-8, rtol=0), name
        assert their_grads[name].abs().max() > 1e-3, name  # a real gradient is compared


def empty_guide(lib, *args):
    pass


# --- a Gaussian mixture in a plate, MAP (Delta) guide on the globals -------------------------

K = 3
_gen = torch.Generator().manual_seed(0)
MIX_DATA = torch.cat(
    [
        torch.randn(7, generator=_gen, dtype=F64) * 0.6 - 2.0,
        torch.randn(6, generator=_gen, dtype=F64) * 0.6 + 0.5,
        torch.randn(7, generator=_gen, dtype=F64) * 0.6 + 3.0,
    ]
)  # N = 20


def mixture(lib, data):
    dist = lib.distributions
    weights = lib.sample("weights", dist.Dirichlet(0.5 * torch.ones(K)))
    with lib.plate("components", K):
        locs = lib.sample("locs", dist.Normal(0.0, 10.0))
    scale = lib.sample("scale", dist.LogNormal(0.0, 2.0))
    with lib.plate("data", len(data)):
        z = lib.sample("z", dist.Categorical(weights))
        lib.sample("x", dist.Normal(locs[z], scale), obs=data)


def mixture_guide(lib, data):
    dist, constraints = lib.distributions, lib.distributions.constraints
    weights = lib.param(
        "weights_map", torch.tensor([0.2, 0.3, 0.5]), constraint=constraints.simplex
    )
    locs = lib.param("locs_map", torch.tensor([-1.5, 0.0, 2.0]))
    scale = lib.param("scale_map", torch.tensor(0.9), constraint=constraints.positive)
    lib.sample("weights", dist.Delta(weights, event_dim=1))
    with lib.plate("components", K):
        lib.sample("locs", dist.Delta(locs))
    lib.sample("scale", dist.Delta(scale))


def enumerated_mixture(lib, data):
    return lib.infer.config_enumerate(functools.partial(mixture, lib))(data)


MIX_NAMES = ["weights_map", "locs_map", "scale_map"]


def test_mixture_with_a_map_guide_matches_pyro():
    results = run_both(
        lambda lib: lib.infer.TraceEnum_ELBO(max_plate_nesting=1),
        enumerated_mixture,
        mixture_guide,
        MIX_DATA,
        names=MIX_NAMES,
    )
    assert_same(results, MIX_NAMES)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.filterwarnings("ignore:.*torch.jit.trace.* is deprecated:DeprecationWarning")
def test_jit_mixture_matches_pyros_jit_over_steps_with_changing_params():
    """Three steps of each JitTraceEnum_ELBO, the params set to new (equal) values before
    each: the compiled programs read the current values and agree with each other."""
    pyro = oracle()
    steps = [
        {},
        {"locs_map": torch.tensor([-2.0, 0.4, 3.1]), "scale_map": torch.tensor(0.6)},
        {
            "weights_map": torch.tensor([0.4, 0.25, 0.35]),
            "locs_map": torch.tensor([-1.0, 1.0, 2.5]),
        },
    ]
    per_lib = {}
    for lib in (pyrolite, pyro):
        lib.clear_param_store()
        elbo = lib.infer.JitTraceEnum_ELBO(max_plate_nesting=1)
        model = functools.partial(enumerated_mixture, lib)
        guide = functools.partial(mixture_guide, lib)
        runs = []
        for values in steps:
            for name, value in values.items():
                lib.get_param_store()[name] = value
            runs.append(grads_of(elbo, model, guide, MIX_DATA, names=MIX_NAMES, lib=lib))
        per_lib[lib] = runs
    for k in range(len(steps)):
        assert_same({lib: per_lib[lib][k] for lib in per_lib}, MIX_NAMES)
    losses = [loss for loss, _ in per_lib[pyrolite]]
    assert len({round(x, 6) for x in losses}) == 3  # each step saw its own params


# --- an HMM: 4 sequences in a plate, markov, Vindex -----------------------------------------

T, B = 10, 4
HMM_DATA = torch.randn(T, B, generator=torch.Generator().manual_seed(1), dtype=F64) * 1.5


def hmm(lib, data):
    dist, constraints = lib.distributions, lib.distributions.constraints
    Vindex = lib.ops.indexing.Vindex
    init = lib.param("init", torch.tensor([0.5, 0.3, 0.2]), constraint=constraints.simplex)
    trans = lib.param(
        "trans",
        torch.tensor([[0.7, 0.2, 0.1], [0.15, 0.7, 0.15], [0.2, 0.2, 0.6]]),
        constraint=constraints.simplex,
    )
    locs = lib.param("locs", torch.tensor([-1.0, 0.5, 2.0]))
    scale = lib.param("scale", torch.tensor(0.9), constraint=constraints.positive)
    with lib.plate("sequences", data.shape[1], dim=-1):
        x = None
        for t in lib.markov(range(len(data))):
            probs = init if x is None else Vindex(trans)[x]
            x = lib.sample(f"x_{t}", dist.Categorical(probs), infer={"enumerate": "parallel"})
            lib.sample(f"y_{t}", dist.Normal(Vindex(locs)[x], scale), obs=data[t])


HMM_NAMES = ["init", "trans", "locs", "scale"]


def test_hmm_matches_pyro():
    results = run_both(
        lambda lib: lib.infer.TraceEnum_ELBO(max_plate_nesting=1),
        hmm,
        empty_guide,
        HMM_DATA,
        names=HMM_NAMES,
    )
    assert_same(results, HMM_NAMES)


def test_hmm_marginals_match_pyros():
    pyro = oracle()
    found = {}
    for lib in (pyrolite, pyro):
        lib.clear_param_store()
        elbo = lib.infer.TraceEnum_ELBO(max_plate_nesting=1)
        found[lib] = elbo.compute_marginals(
            functools.partial(hmm, lib), functools.partial(empty_guide, lib), HMM_DATA
        )
    ours, theirs = found[pyrolite], found[pyro]
    assert sorted(ours) == sorted(theirs) == sorted(f"x_{t}" for t in range(T))
    for name in theirs:
        assert type(ours[name]).__name__ == type(theirs[name]).__name__ == "Categorical"
        expected = theirs[name].probs
        assert expected.shape == (B, K)
        assert torch.allclose(ours[name].probs, expected, atol=1e-8), name


def test_hmm_marginals_have_pyros_batch_shapes():
    pyro = oracle()
    shapes = {}
    for lib in (pyrolite, pyro):
        lib.clear_param_store()
        elbo = lib.infer.TraceEnum_ELBO(max_plate_nesting=1)
        marginals = elbo.compute_marginals(
            functools.partial(hmm, lib), functools.partial(empty_guide, lib), HMM_DATA
        )
        shapes[lib] = {name: tuple(d.batch_shape) for name, d in marginals.items()}
    assert shapes[pyrolite] == shapes[pyro]


# --- nested plates: a global enumerated site, a local one in plate i, data in plate j --------

NESTED_DATA = torch.randn(3, 4, generator=torch.Generator().manual_seed(2), dtype=F64) + 1.0


def nested(lib, data):
    dist, constraints = lib.distributions, lib.distributions.constraints
    Vindex = lib.ops.indexing.Vindex
    pz = lib.param("pz", torch.tensor([0.4, 0.6]), constraint=constraints.simplex)
    py = lib.param(
        "py", torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.3, 0.6]]), constraint=constraints.simplex
    )
    locs = lib.param("locs", torch.tensor([[0.0, 1.0, 2.0], [0.5, 1.5, 3.0]]))
    z = lib.sample("z", dist.Categorical(pz), infer={"enumerate": "parallel"})
    with lib.plate("i", data.shape[0], dim=-2):
        y = lib.sample("y", dist.Categorical(Vindex(py)[z]), infer={"enumerate": "parallel"})
        with lib.plate("j", data.shape[1], dim=-1):
            lib.sample("x", dist.Normal(Vindex(locs)[z, y], 1.0), obs=data)


NESTED_NAMES = ["pz", "py", "locs"]


def test_nested_plates_match_pyro():
    results = run_both(
        lambda lib: lib.infer.TraceEnum_ELBO(max_plate_nesting=2),
        nested,
        empty_guide,
        NESTED_DATA,
        names=NESTED_NAMES,
    )
    assert_same(results, NESTED_NAMES)


# --- a discrete site enumerated in the guide, and one in the model ----------------------------

GE_DATA = torch.tensor([0.3, 2.2, 1.1, -0.4, 1.8], dtype=F64)


def guide_enum_model(lib, data):
    dist, constraints = lib.distributions, lib.distributions.constraints
    Vindex = lib.ops.indexing.Vindex
    pg = lib.param("pg", torch.tensor([0.3, 0.7]), constraint=constraints.simplex)
    pz = lib.param(
        "pz", torch.tensor([[0.2, 0.5, 0.3], [0.6, 0.2, 0.2]]), constraint=constraints.simplex
    )
    loc = lib.param("loc", torch.tensor([0.0, 1.0, 2.0]))
    g = lib.sample("g", dist.Categorical(pg))
    z = lib.sample("z", dist.Categorical(Vindex(pz)[g]), infer={"enumerate": "parallel"})
    with lib.plate("data", len(data)):
        lib.sample("x", dist.Normal(Vindex(loc)[z] + g, 1.0), obs=data)


def guide_enum_guide(lib, data):
    dist, constraints = lib.distributions, lib.distributions.constraints
    qg = lib.param("qg", torch.tensor([0.6, 0.4]), constraint=constraints.simplex)
    lib.sample("g", dist.Categorical(qg), infer={"enumerate": "parallel"})


def local_guide_enum_model(lib, data):
    """g (global) and h (in the plate) are enumerated in the guide; w (in the plate, given
    h) in the model. Pyro requires model-enumerated sites to be no more global than
    guide-enumerated ones, so w is local."""
    dist, constraints = lib.distributions, lib.distributions.constraints
    Vindex = lib.ops.indexing.Vindex
    pg = lib.param("pg", torch.tensor([0.3, 0.7]), constraint=constraints.simplex)
    ph = lib.param("ph", torch.tensor(0.4), constraint=constraints.unit_interval)
    pw = lib.param(
        "pw", torch.tensor([[0.2, 0.5, 0.3], [0.6, 0.2, 0.2]]), constraint=constraints.simplex
    )
    loc = lib.param("loc", torch.tensor([0.0, 1.0, 2.0]))
    g = lib.sample("g", dist.Categorical(pg))
    with lib.plate("data", len(data)):
        h = lib.sample("h", dist.Bernoulli(ph))
        w = lib.sample("w", dist.Categorical(Vindex(pw)[h.long()]), infer={"enumerate": "parallel"})
        lib.sample("x", dist.Normal(Vindex(loc)[w] + g - h, 1.0), obs=data)


def local_guide_enum_guide(lib, data):
    dist, constraints = lib.distributions, lib.distributions.constraints
    qg = lib.param("qg", torch.tensor([0.6, 0.4]), constraint=constraints.simplex)
    qh = lib.param("qh", torch.linspace(0.2, 0.8, len(data)), constraint=constraints.unit_interval)
    lib.sample("g", dist.Categorical(qg), infer={"enumerate": "parallel"})
    with lib.plate("data", len(data)):
        lib.sample("h", dist.Bernoulli(qh), infer={"enumerate": "parallel"})


@pytest.mark.parametrize(
    "model,guide,names",
    [
        (guide_enum_model, guide_enum_guide, ["pg", "pz", "loc", "qg"]),
        (local_guide_enum_model, local_guide_enum_guide, ["pg", "ph", "pw", "loc", "qg", "qh"]),
    ],
    ids=["global", "global_and_local_in_plate"],
)
def test_guide_and_model_enumeration_match_pyro(model, guide, names):
    results = run_both(
        lambda lib: lib.infer.TraceEnum_ELBO(max_plate_nesting=1),
        model,
        guide,
        GE_DATA,
        names=names,
    )
    assert_same(results, names)
