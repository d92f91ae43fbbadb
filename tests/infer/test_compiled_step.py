"""SVI(compile=True): one compiled step equals one eager step (loss, params, optimizer state).

Most tests compile with the ``aot_eager`` backend: it captures the very graph inductor would
get (dynamo + AOTAutograd: ELBO, ``autograd.grad`` and the optimizer update) and draws random
numbers with the same aten kernels, in the same order, as the eager step, so both steps see
the same draws after the RNG state is restored. The inductor tests (slow: ~15 s of C++
compilation each here) switch on ``fallback_random`` for the same reason.
"""

import warnings

import pytest
import torch
import torch._inductor.config as inductor_config
from workloads import coin_data, coin_guide, coin_model

import pyrolite as pyro
import pyrolite.distributions as dist
from pyrolite.distributions import constraints
from pyrolite.distributions.testing.fakes import NonreparameterizedNormal
from pyrolite.infer import SVI, Trace_ELBO
from pyrolite.optim import SGD, Adam, ClippedAdam, RMSprop

AOT = {"backend": "aot_eager"}
TOL = 1e-5


# --- workloads (the benchmark's W1 and W2) ---------------------------------------------


def regression_model(x, y):
    alpha = pyro.sample("alpha", dist.Normal(0.0, 100.0))
    beta = pyro.sample("beta", dist.Normal(torch.zeros(x.shape[1]), 10.0).to_event(1))
    sigma = pyro.sample("sigma", dist.HalfNormal(10.0))
    # beta is (P,), or (S, 1, P) under vectorized particles
    mu = alpha + x @ beta if beta.ndim == 1 else alpha + (beta @ x.T).squeeze(-2)
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", dist.Normal(mu, sigma), obs=y)


def regression_guide(x, y):
    p = x.shape[1]
    a_loc = pyro.param("alpha_loc", torch.tensor(0.0))
    a_scale = pyro.param("alpha_scale", torch.tensor(0.1), constraint=constraints.positive)
    b_loc = pyro.param("beta_loc", torch.zeros(p))
    b_scale = pyro.param("beta_scale", torch.full((p,), 0.1), constraint=constraints.positive)
    s_loc = pyro.param("log_sigma_loc", torch.tensor(0.0))
    s_scale = pyro.param("log_sigma_scale", torch.tensor(0.1), constraint=constraints.positive)
    pyro.sample("alpha", dist.Normal(a_loc, a_scale))
    pyro.sample("beta", dist.Normal(b_loc, b_scale).to_event(1))
    pyro.sample("sigma", dist.LogNormal(s_loc, s_scale))


def regression_data(n=200, p=3):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(n, p, generator=gen)
    y = 1.0 + x @ torch.linspace(-1.0, 1.0, p) + 0.5 * torch.randn(n, generator=gen)
    return x, y


WORKLOADS = {
    "W1": (coin_model, coin_guide, lambda: (coin_data(),)),
    "W2": (regression_model, regression_guide, regression_data),
}


# --- helpers ---------------------------------------------------------------------------


def leaves():
    store = pyro.get_param_store()
    return {name: store.unconstrained(name).detach().clone() for name in store.keys()}


def assert_states_close(actual, expected):
    assert actual.keys() == expected.keys()
    for name in expected:
        (got_group,), (want_group,) = actual[name]["param_groups"], expected[name]["param_groups"]
        assert got_group.keys() == want_group.keys()
        for k, v in want_group.items():
            assert got_group[k] == (pytest.approx(v, rel=1e-12) if isinstance(v, float) else v)
        got, want = actual[name]["state"], expected[name]["state"]
        assert got.keys() == want.keys()
        for i in want:
            assert got[i].keys() == want[i].keys()
            for k in want[i]:
                g, w = torch.as_tensor(got[i][k]).double(), torch.as_tensor(want[i][k]).double()
                assert torch.allclose(g, w, atol=TOL, rtol=TOL), (name, k, g, w)


def compiled_vs_eager(svi, make_eager, *args):
    """Take one compiled step from ``svi``'s state, then one eager step from the same state
    (params, optimizer, RNG); assert equal loss, params and optimizer state."""
    state = svi.get_state()
    compiled_before = svi.compile_info.compiled_graphs
    loss_c = svi.step(*args)
    assert svi.compile_info.compiled_graphs >= max(1, compiled_before)
    params_c, optim_c = leaves(), svi.optim.get_state()

    eager = make_eager()
    eager.set_state(state)
    loss_e = eager.step(*args)
    assert loss_c == pytest.approx(loss_e, abs=TOL, rel=TOL)
    params_e = leaves()
    for name in params_e:
        assert torch.allclose(params_c[name], params_e[name], atol=TOL, rtol=TOL), name
    assert_states_close(optim_c, eager.optim.get_state())
    svi.set_state(state)  # leave the compiled SVI where it was, for further steps
    return loss_c


def warm_up(svi, *args):
    """The eager initializing step and the uncompiled warm-up step of a new key."""
    for _ in range(2):
        svi.step(*args)
    assert svi.compile_info.compiled_graphs == 0


def check_workload(model, guide, args, optim=lambda: Adam({"lr": 0.05}), elbo=Trace_ELBO, **c):
    svi = SVI(model, guide, optim(), elbo(), compile=c or AOT)
    warm_up(svi, *args)
    return compiled_vs_eager(svi, lambda: SVI(model, guide, optim(), elbo()), *args), svi


# --- equality with the eager step ------------------------------------------------------


@pytest.mark.parametrize("workload", ["W1", "W2"])
def test_compiled_step_equals_eager_step(workload):
    model, guide, data = WORKLOADS[workload]
    loss, _ = check_workload(model, guide, data())
    assert loss > 0


@pytest.mark.slow
@pytest.mark.parametrize("workload", ["W1", "W2"])
def test_inductor_step_equals_eager_step_and_stays_random(workload):
    model, guide, data = WORKLOADS[workload]
    args = data()
    # aten's samplers instead of inductor's own RNG, so both steps draw the same numbers
    with inductor_config.patch(fallback_random=True):
        _, svi = check_workload(model, guide, args, backend="inductor")
    state = svi.get_state()
    losses = {svi.step(*args) for _ in range(3)}
    assert len(losses) == 3  # fresh draws on every call, not baked into the graph
    svi.set_state(state)
    assert svi.step(*args) in losses  # ... and the same draws after restoring the RNG


def test_compiled_step_on_the_data_device(device):
    """On CUDA through inductor (Triton kernels reject host tensors): the graph's inputs,
    the per-param learning rates included, live on the params' device."""
    x, y = (t.to(device) for t in regression_data())
    options = AOT if device.type == "cpu" else {"backend": "inductor"}
    with torch.device(device), inductor_config.patch(fallback_random=True):
        _, svi = check_workload(regression_model, regression_guide, (x, y), **options)
        svi.step(x, y)
    assert svi.compile_info.compiled_graphs == 1
    store = pyro.get_param_store()
    assert {store.unconstrained(n).device.type for n in store.keys()} == {device.type}


@pytest.mark.parametrize(
    "optim",
    [
        lambda: SGD({"lr": 0.01, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
        lambda: SGD({"lr": 0.01}),
        lambda: ClippedAdam({"lr": 0.05, "lrd": 0.9, "clip_norm": 0.5, "weight_decay": 0.1}),
        lambda: Adam({"lr": 0.05, "betas": (0.8, 0.99), "weight_decay": 0.1}),
    ],
    ids=["sgd-nesterov", "sgd", "clipped-adam", "adam-wd"],
)
def test_compiled_optimizers_equal_torch_optimizers(optim):
    _, svi = check_workload(coin_model, coin_guide, (coin_data(),), optim=optim)
    if "lrd" in svi.optim.pt_optim_args:  # ClippedAdam's lr decayed once per step
        lr = svi.optim.get_state()["alpha_q"]["param_groups"][0]["lr"]
        assert lr == pytest.approx(0.05 * 0.9**2)


def test_a_changed_learning_rate_reaches_the_compiled_step():
    args = (coin_data(),)
    make_eager = lambda: SVI(coin_model, coin_guide, Adam({"lr": 0.05}), Trace_ELBO())  # noqa: E731
    svi = SVI(coin_model, coin_guide, Adam({"lr": 0.05}), Trace_ELBO(), compile=AOT)
    warm_up(svi, *args)
    svi.step(*args)  # compiled, with lr 0.05
    assert svi.compile_info.compiled_graphs == 1
    store = pyro.get_param_store()
    for leaf in store.leaves(list(store.keys())):
        svi.optim.param_group(leaf)["lr"] = 0.5
    # the eager step starts from the state with the new lr: equal only if the graph sees it
    compiled_vs_eager(svi, make_eager, *args)


def local_model(x):
    loc = pyro.sample("loc", dist.Normal(0.0, 10.0))
    with pyro.plate("data", x.shape[0], subsample_size=4) as idx:
        z = pyro.sample("z", dist.Normal(loc, 1.0))
        pyro.sample("x", dist.Normal(z, 0.5), obs=x[idx])


def local_guide(x):
    m = pyro.param("m", torch.tensor(0.0))
    s = pyro.param("s", torch.tensor(1.0), constraint=constraints.positive)
    z_loc = pyro.param("z_loc", torch.zeros(x.shape[0]))
    pyro.sample("loc", NonreparameterizedNormal(m, s))  # score-function term
    with pyro.plate("data", x.shape[0], subsample_size=4) as idx:
        pyro.sample("z", dist.Normal(z_loc[idx], 0.5))


def test_plate_subsampling_and_score_function_site():
    x = torch.linspace(0.0, 3.0, 12)
    check_workload(local_model, local_guide, (x,))
    # only the subsampled entries of the local param move in a step
    svi = SVI(local_model, local_guide, SGD({"lr": 0.01}), Trace_ELBO(), compile=AOT)
    warm_up(svi, x)
    before = pyro.param("z_loc").detach().clone()
    svi.step(x)
    assert svi.compile_info.compiled_graphs == 1
    assert int((pyro.param("z_loc") != before).sum()) == 4


def test_ten_vectorized_particles():
    x, y = regression_data(n=50)
    # max_plate_nesting given: guessing it would draw (in the eager reference step only)
    elbo = lambda: Trace_ELBO(num_particles=10, vectorize_particles=True, max_plate_nesting=1)  # noqa: E731
    check_workload(regression_model, regression_guide, (x, y), elbo=elbo)


# --- keys, fallback, checkpoints --------------------------------------------------------


def test_new_batch_shape_compiles_a_new_graph():
    svi = SVI(coin_model, coin_guide, Adam({"lr": 0.05}), Trace_ELBO(), compile=AOT)
    small, large = coin_data(10), coin_data(30)
    warm_up(svi, small)
    svi.step(small)
    assert svi.compile_info.compiled_graphs == 1
    for _ in range(2):  # the new shape's eager and warm-up steps
        svi.step(large)
    assert svi.compile_info.compiled_graphs == 1
    make_eager = lambda: SVI(coin_model, coin_guide, Adam({"lr": 0.05}), Trace_ELBO())  # noqa: E731
    compiled_vs_eager(svi, make_eager, large)
    assert svi.compile_info.compiled_graphs == 2
    compiled_vs_eager(svi, make_eager, small)  # the first graph is still there
    assert svi.compile_info.compiled_graphs == 2


def branching_model(obs):
    f = pyro.sample("latent_fairness", dist.Beta(10.0, 10.0))
    if f > 0.5:  # data-dependent Python control flow: no single graph
        f = f * 0.99
    with pyro.plate("data", obs.shape[0]):
        pyro.sample("obs", dist.Bernoulli(probs=f), obs=obs)


@pytest.mark.parametrize(
    "model, optim, reason",
    [
        (branching_model, lambda: Adam({"lr": 0.05}), "cannot be compiled"),
        (coin_model, lambda: RMSprop({"lr": 0.05}), "RMSprop has no compiled update"),
    ],
    ids=["data-dependent-branch", "unsupported-optimizer"],
)
def test_fallback_warns_once_and_steps_eagerly(model, optim, reason):
    data = coin_data()
    svi = SVI(model, coin_guide, optim(), Trace_ELBO(), compile=AOT)
    with pytest.warns(RuntimeWarning, match=reason) as record:
        losses = [svi.step(data) for _ in range(5)]
    assert sum("cannot be compiled" in str(w.message) for w in record) == 1
    assert svi.compile_info.compiled_graphs == 0
    assert svi.step_count == 5
    assert all(torch.isfinite(torch.tensor(losses)))
    assert pyro.param("alpha_q").item() != pytest.approx(15.0, abs=1e-3)


def test_checkpoint_after_compiled_steps_resumes_eagerly(tmp_path):
    data = coin_data()
    svi = SVI(coin_model, coin_guide, Adam({"lr": 0.05}), Trace_ELBO(), compile=AOT)
    for _ in range(5):
        svi.step(data)
    assert svi.compile_info.compiled_graphs == 1
    path = tmp_path / "svi.pt"
    svi.save(path)
    compiled_losses = [svi.step(data) for _ in range(3)]
    compiled_params = leaves()

    pyro.clear_param_store()
    eager = SVI(coin_model, coin_guide, Adam({"lr": 0.05}), Trace_ELBO())
    eager.load(path)
    assert eager.step_count == 5
    eager_losses = [eager.step(data) for _ in range(3)]
    assert eager_losses == pytest.approx(compiled_losses, abs=TOL, rel=TOL)
    for name, value in leaves().items():
        assert torch.allclose(value, compiled_params[name], atol=TOL, rtol=TOL), name

    # the compiled SVI loads too: new leaves get one eager step, then compiled ones
    svi.load(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no fallback
        again = [svi.step(data) for _ in range(3)]
    assert again == pytest.approx(compiled_losses, abs=TOL, rel=TOL)
    assert svi.step_count == 8


def test_nonfinite_loss_raises_and_leaves_params_unchanged():
    data = coin_data()
    svi = SVI(coin_model, coin_guide, Adam({"lr": 0.05}), Trace_ELBO(), compile=AOT)
    for _ in range(3):
        svi.step(data)
    before = leaves()
    # NaN observations: the per-step observation checks (in the graph) name the site
    with pytest.raises(ValueError, match="site 'obs'.*outside the support"):
        svi.step(torch.full((10,), float("nan")))  # same key: the compiled step
    assert all(torch.equal(before[n], v) for n, v in leaves().items())
    assert svi.step_count == 3


def test_validated_steps_compile_once():
    # The observation checks run inside the graph; the host-side record of checked
    # values changes after every step and must not be guarded on (a recompile per step).
    import torch._dynamo.utils as dynamo_utils

    data = coin_data()
    svi = SVI(coin_model, coin_guide, Adam({"lr": 0.01}), Trace_ELBO(), compile=AOT)
    before = dynamo_utils.counters["stats"]["unique_graphs"]
    for _ in range(6):
        svi.step(data)
    assert pyro.validation_enabled()
    assert dynamo_utils.counters["stats"]["unique_graphs"] - before == 1
    assert svi.compile_info == (True, 1, ())
