"""TraceEnum_ELBO against brute force: explicit sums over every joint assignment of the
enumerated sites (each model run conditioned on one assignment), in float64."""

import itertools
import math
import warnings

import pytest
import torch

import pyrolite as pyro
import pyrolite.distributions as dist
from pyrolite import poutine
from pyrolite.distributions import constraints
from pyrolite.infer import (
    SVI,
    JitTraceEnum_ELBO,
    Trace_ELBO,
    TraceEnum_ELBO,
    config_enumerate,
)
from pyrolite.ops.indexing import Vindex
from pyrolite.optim import Adam

pytestmark = pytest.mark.usefixtures("float64")  # tests/conftest.py


def grads_of(elbo, model, guide, *args, names, lib=pyro):
    """(loss, {name: grad of the unconstrained param}) of one ``loss_and_grads``."""
    for name in names:
        if name in lib.get_param_store():
            lib.param(name).unconstrained().grad = None
    loss = elbo.loss_and_grads(model, guide, *args)
    return loss, {n: lib.param(n).unconstrained().grad.clone() for n in names}


def brute_log_marginal(model, sites, *args):
    """log sum over every joint value of ``sites`` ({name: (batch shape, support)}) of the
    model's log joint, each assignment run with ``poutine.condition``."""
    names = list(sites)
    per_site = []
    for name in names:
        shape, support = sites[name]
        cells = math.prod(shape)
        per_site.append(
            [torch.tensor(v).reshape(shape) for v in itertools.product(support, repeat=cells)]
        )
    terms = []
    for values in itertools.product(*per_site):
        conditioned = poutine.condition(model, data=dict(zip(names, values)))
        terms.append(poutine.trace(conditioned).get_trace(*args).log_prob_sum())
    return torch.logsumexp(torch.stack(terms), 0)


def brute_grads(objective, names):
    loss = objective()
    leaves = [pyro.param(n).unconstrained() for n in names]
    grads = torch.autograd.grad(loss, leaves)
    return loss.item(), dict(zip(names, grads))


def assert_close(actual, expected, atol=1e-6):
    loss, grads = actual
    exp_loss, exp_grads = expected
    assert loss == pytest.approx(exp_loss, abs=atol, rel=1e-8)
    for name in exp_grads:
        assert torch.allclose(grads[name], exp_grads[name], atol=atol), name


# --- a Gaussian mixture in a plate ---------------------------------------------------------

MIX_DATA = torch.tensor([-1.0, 0.2, 3.9, 4.4, 9.0], dtype=torch.float64)


def mixture_model(data):
    weights = pyro.param("weights", torch.tensor([0.2, 0.3, 0.5]), constraint=constraints.simplex)
    locs = pyro.param("locs", torch.tensor([0.0, 4.0, 8.0]))
    scale = pyro.param("scale", torch.tensor(1.5), constraint=constraints.positive)
    with pyro.plate("data", len(data)):
        z = pyro.sample("z", dist.Categorical(weights), infer={"enumerate": "parallel"})
        pyro.sample("x", dist.Normal(locs[z], scale), obs=data)


def empty_guide(*args):
    pass


MIX_NAMES = ["weights", "locs", "scale"]


def test_mixture_in_a_plate_equals_brute_force():
    pyro.clear_param_store()
    actual = grads_of(
        TraceEnum_ELBO(max_plate_nesting=1), mixture_model, empty_guide, MIX_DATA, names=MIX_NAMES
    )
    sites = {"z": ((len(MIX_DATA),), range(3))}
    expected = brute_grads(lambda: -brute_log_marginal(mixture_model, sites, MIX_DATA), MIX_NAMES)
    assert_close(actual, expected)


def test_config_enumerate_and_expand_give_the_same_loss():
    pyro.clear_param_store()

    def unmarked(data):
        weights = pyro.param(
            "weights", torch.tensor([0.2, 0.3, 0.5]), constraint=constraints.simplex
        )
        locs = pyro.param("locs", torch.tensor([0.0, 4.0, 8.0]))
        with pyro.plate("data", len(data)):
            z = pyro.sample("z", dist.Categorical(weights))
            pyro.sample("x", dist.Normal(Vindex(locs)[z], 1.0), obs=data)

    elbo = TraceEnum_ELBO(max_plate_nesting=1)
    plain = elbo.loss(config_enumerate(unmarked), empty_guide, MIX_DATA)
    expanded = elbo.loss(config_enumerate(unmarked, expand=True), empty_guide, MIX_DATA)
    exact = -brute_log_marginal(unmarked, {"z": ((len(MIX_DATA),), range(3))}, MIX_DATA)
    assert plain == pytest.approx(exact.item(), abs=1e-9)
    assert expanded == pytest.approx(exact.item(), abs=1e-9)


# --- nested plates ---------------------------------------------------------------------------

NESTED_DATA = torch.tensor([[0.5, 1.5, -0.3], [2.0, 2.5, 1.0]], dtype=torch.float64)  # (I=2, J=3)


def nested_model(data):
    pz = pyro.param("pz", torch.tensor([0.4, 0.6]), constraint=constraints.simplex)
    py = pyro.param("py", torch.tensor([[0.7, 0.3], [0.2, 0.8]]), constraint=constraints.simplex)
    locs = pyro.param("locs", torch.tensor([[0.0, 1.0], [2.0, 3.0]]))
    z = pyro.sample("z", dist.Categorical(pz), infer={"enumerate": "parallel"})
    with pyro.plate("i", 2, dim=-2):
        y = pyro.sample("y", dist.Categorical(Vindex(py)[z]), infer={"enumerate": "parallel"})
        with pyro.plate("j", 3, dim=-1):
            pyro.sample("x", dist.Normal(Vindex(locs)[z, y], 1.0), obs=data)


def test_nested_plates_equal_brute_force():
    pyro.clear_param_store()
    names = ["pz", "py", "locs"]
    actual = grads_of(
        TraceEnum_ELBO(max_plate_nesting=2), nested_model, empty_guide, NESTED_DATA, names=names
    )
    sites = {"z": ((), range(2)), "y": ((2, 1), range(2))}
    expected = brute_grads(lambda: -brute_log_marginal(nested_model, sites, NESTED_DATA), names)
    assert_close(actual, expected)


# --- two dependent discrete sites -----------------------------------------------------------


def dependent_model(x):
    pa = pyro.param("pa", torch.tensor([0.5, 0.3, 0.2]), constraint=constraints.simplex)
    pb = pyro.param(
        "pb", torch.tensor([[0.6, 0.4], [0.1, 0.9], [0.5, 0.5]]), constraint=constraints.simplex
    )
    la = pyro.param("la", torch.tensor([-1.0, 0.0, 1.0]))
    lb = pyro.param("lb", torch.tensor([0.5, -0.5]))
    a = pyro.sample("a", dist.Categorical(pa), infer={"enumerate": "parallel"})
    b = pyro.sample("b", dist.Categorical(Vindex(pb)[a]), infer={"enumerate": "parallel"})
    pyro.sample("x", dist.Normal(Vindex(la)[a] + Vindex(lb)[b], 0.7), obs=x)


def test_two_dependent_sites_equal_brute_force():
    pyro.clear_param_store()
    names = ["pa", "pb", "la", "lb"]
    x = torch.tensor(0.8)
    actual = grads_of(
        TraceEnum_ELBO(max_plate_nesting=0), dependent_model, empty_guide, x, names=names
    )
    sites = {"a": ((), range(3)), "b": ((), range(2))}
    expected = brute_grads(lambda: -brute_log_marginal(dependent_model, sites, x), names)
    assert_close(actual, expected)


# --- a discrete site in the guide and one in the model ----------------------------------------


def guide_model_model(x):
    pg = pyro.param("pg", torch.tensor([0.3, 0.7]), constraint=constraints.simplex)
    pz = pyro.param(
        "pz", torch.tensor([[0.2, 0.5, 0.3], [0.6, 0.2, 0.2]]), constraint=constraints.simplex
    )
    loc = pyro.param("loc", torch.tensor([0.0, 1.0, 2.0]))
    g = pyro.sample("g", dist.Categorical(pg))
    z = pyro.sample("z", dist.Categorical(Vindex(pz)[g]), infer={"enumerate": "parallel"})
    with pyro.plate("data", len(x)):
        pyro.sample("x", dist.Normal(Vindex(loc)[z] + g, 1.0), obs=x)


def guide_model_guide(x, how="parallel"):
    qg = pyro.param("qg", torch.tensor([0.6, 0.4]), constraint=constraints.simplex)
    pyro.sample("g", dist.Categorical(qg), infer={"enumerate": how})


def guide_model_exact(x):
    """-sum_g q(g) [log sum_z p(g, z, x) - log q(g)], each term by brute force."""
    qg = pyro.param("qg")
    total = 0.0
    for g in range(2):
        conditioned = poutine.condition(guide_model_model, data={"g": torch.tensor(g)})
        log_p = brute_log_marginal(conditioned, {"z": ((), range(3))}, x)
        total = total + qg[g] * (log_p - qg[g].log())
    return -total


GM_NAMES = ["pg", "pz", "loc", "qg"]
GM_DATA = torch.tensor([0.3, 2.2, 1.1], dtype=torch.float64)


@pytest.mark.parametrize("how", ["parallel", "sequential"])
def test_guide_and_model_enumeration_equal_brute_force(how):
    pyro.clear_param_store()
    guide = lambda x: guide_model_guide(x, how)  # noqa: E731
    actual = grads_of(
        TraceEnum_ELBO(max_plate_nesting=1), guide_model_model, guide, GM_DATA, names=GM_NAMES
    )
    expected = brute_grads(lambda: guide_model_exact(GM_DATA), GM_NAMES)
    assert_close(actual, expected)


def test_sampled_guide_site_gives_unbiased_score_function_gradients():
    """The guide samples g (no enumeration): the score-function estimate over 20000
    vectorized particles is within 4 standard errors of the exact gradient."""
    pyro.clear_param_store()
    guide = lambda x: guide_model_guide(x, None)  # noqa: E731
    pyro.set_rng_seed(0)
    n = 20000
    elbo = TraceEnum_ELBO(max_plate_nesting=1, num_particles=n, vectorize_particles=True)
    _, grads = grads_of(elbo, guide_model_model, guide, GM_DATA, names=GM_NAMES)
    _, exact = brute_grads(lambda: guide_model_exact(GM_DATA), GM_NAMES)
    # per-particle gradient scale is O(1) here: 4 / sqrt(n) * 3 as the tolerance
    for name in GM_NAMES:
        assert torch.allclose(grads[name], exact[name], atol=12 / math.sqrt(n)), name


# --- an HMM with markov -----------------------------------------------------------------------

HMM_DATA = torch.tensor([0.1, 1.9, 2.2, 0.3, -0.2], dtype=torch.float64)


def hmm_model(data):
    init = pyro.param("init", torch.tensor([0.5, 0.3, 0.2]), constraint=constraints.simplex)
    trans = pyro.param(
        "trans",
        torch.tensor([[0.8, 0.1, 0.1], [0.2, 0.6, 0.2], [0.3, 0.3, 0.4]]),
        constraint=constraints.simplex,
    )
    locs = pyro.param("locs", torch.tensor([0.0, 2.0, -1.0]))
    x = None
    for t in pyro.markov(range(len(data))):
        probs = init if x is None else Vindex(trans)[x]
        x = pyro.sample(f"x_{t}", dist.Categorical(probs), infer={"enumerate": "parallel"})
        pyro.sample(f"y_{t}", dist.Normal(Vindex(locs)[x], 1.0), obs=data[t])


HMM_NAMES = ["init", "trans", "locs"]


def test_hmm_with_markov_equals_brute_force():
    pyro.clear_param_store()
    elbo = TraceEnum_ELBO(max_plate_nesting=0)
    actual = grads_of(elbo, hmm_model, empty_guide, HMM_DATA, names=HMM_NAMES)
    sites = {f"x_{t}": ((), range(3)) for t in range(len(HMM_DATA))}
    expected = brute_grads(lambda: -brute_log_marginal(hmm_model, sites, HMM_DATA), HMM_NAMES)
    assert_close(actual, expected)


def forward_algorithm(init, trans, locs, scale, data):
    """log p(data) of a batch of sequences (data: (T, B)) by the forward algorithm."""
    alpha = init.log() + dist.Normal(locs, scale).log_prob(data[0][:, None])
    for t in range(1, len(data)):
        alpha = torch.logsumexp(alpha[:, :, None] + trans.log(), -2) + dist.Normal(
            locs, scale
        ).log_prob(data[t][:, None])
    return torch.logsumexp(alpha, -1).sum()


def batched_hmm(data):
    K = 3
    init = pyro.param("init", torch.ones(K) / K, constraint=constraints.simplex)
    trans = pyro.param("trans", 0.1 + 0.7 * torch.eye(K), constraint=constraints.simplex)
    locs = pyro.param("locs", torch.tensor([0.0, 2.0, -1.0]))
    scale = pyro.param("scale", torch.tensor(0.8), constraint=constraints.positive)
    with pyro.plate("sequences", data.shape[1], dim=-1):
        x = None
        for t in pyro.markov(range(len(data))):
            probs = init if x is None else Vindex(trans)[x]
            x = pyro.sample(f"x_{t}", dist.Categorical(probs), infer={"enumerate": "parallel"})
            pyro.sample(f"y_{t}", dist.Normal(Vindex(locs)[x], scale), obs=data[t])


def test_a_long_batched_hmm_equals_the_forward_algorithm_with_bounded_dims():
    pyro.clear_param_store()
    pyro.set_rng_seed(1)
    data = torch.randn(1000, 4)
    elbo = TraceEnum_ELBO(max_plate_nesting=1)
    names = ["init", "trans", "locs", "scale"]
    actual = grads_of(elbo, batched_hmm, empty_guide, data, names=names)
    assert elbo.enum_dims_used == 2  # markov(history=1) recycles: two dims for 1000 sites
    expected = brute_grads(lambda: -forward_algorithm(*(pyro.param(n) for n in names), data), names)
    assert_close(actual, expected, atol=1e-6)


# --- sampled enumeration -----------------------------------------------------------------------


def test_sampled_enumeration_estimates_the_likelihood_without_bias():
    """With num_samples=k draws of z, exp(-loss) is an unbiased estimate of p(x)."""
    pyro.clear_param_store()

    def model(x):
        z = pyro.sample(
            "z",
            dist.Categorical(torch.tensor([0.2, 0.5, 0.3])),
            infer={"enumerate": "parallel", "num_samples": 4},
        )
        pyro.sample("x", dist.Normal(Vindex(torch.tensor([-1.0, 0.0, 2.0]))[z], 1.0), obs=x)

    x = torch.tensor(1.2)
    elbo = TraceEnum_ELBO(max_plate_nesting=0)
    pyro.set_rng_seed(0)
    estimates = torch.tensor([math.exp(-elbo.loss(model, empty_guide, x)) for _ in range(4000)])
    exact = brute_log_marginal(model, {"z": ((), range(3))}, x).exp()
    sem = estimates.std() / math.sqrt(len(estimates))
    assert abs(estimates.mean() - exact) < 4 * sem
    assert sem < 0.01 * exact  # the check has power


# --- errors and warnings -----------------------------------------------------------------------


def test_too_many_plates_for_max_plate_nesting_names_site_plates_and_value():
    pyro.clear_param_store()
    with pytest.raises(ValueError, match=r"'y'.*plates \['i', 'j'\].*max_plate_nesting=2"):
        TraceEnum_ELBO(max_plate_nesting=1).loss(lambda: _two_plate_model(), empty_guide)


def _two_plate_model():
    with pyro.plate("i", 2, dim=-2), pyro.plate("j", 3, dim=-1):
        pyro.sample("y", dist.Bernoulli(0.5), infer={"enumerate": "parallel"})


def test_a_plate_on_an_enumeration_dim_is_an_error_on_every_step():
    def model():
        with pyro.plate("deep", 2, dim=-2):
            pyro.sample("y", dist.Bernoulli(0.5), infer={"enumerate": "parallel"})

    elbo = TraceEnum_ELBO(max_plate_nesting=1)
    for _ in range(2):
        with pytest.raises(ValueError, match=r"plate\('deep'\).*dim -2.*max_plate_nesting=2"):
            elbo.loss(model, empty_guide)


def test_enumerating_a_continuous_site_is_an_error():
    def model():
        pyro.sample("c", dist.Normal(0.0, 1.0), infer={"enumerate": "parallel"})

    with pytest.raises(ValueError, match="'c'.*no\\s+finite support"):
        TraceEnum_ELBO(max_plate_nesting=0).loss(model, empty_guide)


def test_nothing_enumerated_warns_unless_told_not_to():
    def model():
        pyro.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor(0.5))

    with pytest.warns(UserWarning, match="TraceEnum_ELBO found no sample sites configured"):
        TraceEnum_ELBO(max_plate_nesting=0).loss(model, empty_guide)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TraceEnum_ELBO(max_plate_nesting=0, strict_enumeration_warning=False).loss(
            model, empty_guide
        )


def test_sequential_enumeration_of_a_huge_support_warns_with_its_size():
    def model():
        pyro.sample("z", dist.Categorical(torch.ones(300) / 300))

    def guide():
        pyro.sample("z", dist.Categorical(torch.ones(300) / 300), infer={"enumerate": "sequential"})

    with pytest.warns(UserWarning, match="'z' is enumerated sequentially over 300 values"):
        TraceEnum_ELBO(max_plate_nesting=0).loss(model, guide)


def test_running_out_of_dims_is_a_clear_error():
    def model():
        for t in range(70):  # no markov: every site keeps its dim
            pyro.sample(f"b_{t}", dist.Bernoulli(0.5), infer={"enumerate": "parallel"})

    with pytest.raises(ValueError, match="out of dims.*markov"):
        TraceEnum_ELBO(max_plate_nesting=0).loss(model, empty_guide)


def test_a_non_tree_plate_structure_is_a_clear_error():
    def model():
        with pyro.plate("i", 2, dim=-1):
            a = pyro.sample("a", dist.Bernoulli(0.5), infer={"enumerate": "parallel"})
        with pyro.plate("j", 2, dim=-2):
            b = pyro.sample("b", dist.Bernoulli(0.5), infer={"enumerate": "parallel"})
        with pyro.plate("i2", 2, dim=-1), pyro.plate("j2", 2, dim=-2):
            pyro.sample("x", dist.Normal(a + b, 1.0), obs=torch.zeros(2, 2))

    with pytest.raises(ValueError):
        TraceEnum_ELBO(max_plate_nesting=2).loss(model, empty_guide)


# --- compiled variants -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model,data,nesting",
    [
        (mixture_model, MIX_DATA, 1),
        (hmm_model, HMM_DATA, 0),
    ],
    ids=["mixture", "hmm"],
)
def test_jit_equals_eager(model, data, nesting):
    pyro.clear_param_store()
    names = {mixture_model: MIX_NAMES, hmm_model: HMM_NAMES}[model]
    eager = grads_of(
        TraceEnum_ELBO(max_plate_nesting=nesting), model, empty_guide, data, names=names
    )
    jit = JitTraceEnum_ELBO(max_plate_nesting=nesting)
    for _ in range(2):  # the first call traces, the second runs the graph
        compiled = grads_of(jit, model, empty_guide, data, names=names)
        assert_close(compiled, eager, atol=1e-9)


def test_compiled_svi_equals_eager_svi():
    def run(compile):
        pyro.clear_param_store()
        svi = SVI(
            mixture_model,
            empty_guide,
            Adam({"lr": 0.05}),
            TraceEnum_ELBO(max_plate_nesting=1),
            compile=compile,
        )
        losses = [svi.step(MIX_DATA) for _ in range(5)]
        return losses, {n: pyro.param(n).detach().clone() for n in MIX_NAMES}

    eager_losses, eager_params = run(False)
    compiled_losses, compiled_params = run(True)
    assert compiled_losses == pytest.approx(eager_losses, abs=1e-9)
    for name in MIX_NAMES:
        assert torch.allclose(compiled_params[name], eager_params[name], atol=1e-9)


def test_trace_elbo_warns_about_unused_enumeration():
    pyro.clear_param_store()
    with pytest.warns(UserWarning, match="does not enumerate"):
        Trace_ELBO().loss(mixture_model, empty_guide, MIX_DATA)


def test_sampled_guide_sites_take_tracegraph_baselines():
    pyro.clear_param_store()

    def guide(x, baseline):
        qg = pyro.param("qg", torch.tensor([0.6, 0.4]), constraint=constraints.simplex)
        pyro.sample("g", dist.Categorical(qg), infer={"baseline": baseline})

    elbo = TraceEnum_ELBO(max_plate_nesting=1)
    decaying = {"use_decaying_avg_baseline": True, "baseline_beta": 0.5}
    for _ in range(3):
        elbo.loss_and_grads(guide_model_model, lambda x: guide(x, decaying), GM_DATA)
    ((name, average),) = elbo.get_state().items()
    assert name == "baseline_avg_downstream_cost/g" and average.shape == () and average != 0
    with pytest.raises(ValueError, match="TraceEnum_ELBO: unknown baseline option 'use_decaying'"):
        elbo.loss_and_grads(guide_model_model, lambda x: guide(x, {"use_decaying": True}), GM_DATA)
