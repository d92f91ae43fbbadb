"""JitTrace_ELBO against Trace_ELBO on the same draws: losses and gradients of the coin,
a regression, subsampled plates, score-function sites and particles; recompilation,
randomness, eager fallback, SVI convergence, and Pyro as an oracle."""

import warnings

import pytest
import torch
from workloads import COIN, coin_guide, coin_model

import pyrolite as pyro
import pyrolite.distributions as dist
from pyrolite.distributions import constraints
from pyrolite.distributions.testing.fakes import NonreparameterizedNormal
from pyrolite.infer import SVI, JitTrace_ELBO, Trace_ELBO
from pyrolite.ops.jit import JitFallbackWarning
from pyrolite.optim import Adam

pytestmark = pytest.mark.filterwarnings("error::pyrolite.ops.jit.JitFallbackWarning")


def regression_data(n=200, p=3):
    generator = torch.Generator().manual_seed(7)
    x = torch.randn(n, p, generator=generator)
    y = 1.5 + x @ torch.tensor([2.0, -1.0, 0.5]) + 0.3 * torch.randn(n, generator=generator)
    return x, y


def regression_model(x, y):
    alpha = pyro.sample("alpha", dist.Normal(0.0, 10.0))
    beta = pyro.sample("beta", dist.Normal(torch.zeros(x.shape[1]), 10.0).to_event(1))
    sigma = pyro.sample("sigma", dist.HalfNormal(10.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", dist.Normal(alpha + x @ beta, sigma), obs=y)


def regression_guide(x, y):
    positive = constraints.positive
    a_loc = pyro.param("a_loc", torch.tensor(0.0))
    a_scale = pyro.param("a_scale", torch.tensor(0.1), constraint=positive)
    b_loc = pyro.param("b_loc", torch.zeros(x.shape[1]))
    b_scale = pyro.param("b_scale", torch.full((x.shape[1],), 0.1), constraint=positive)
    s_loc = pyro.param("s_loc", torch.tensor(0.0))
    s_scale = pyro.param("s_scale", torch.tensor(0.1), constraint=positive)
    pyro.sample("alpha", dist.Normal(a_loc, a_scale))
    pyro.sample("beta", dist.Normal(b_loc, b_scale).to_event(1))
    pyro.sample("sigma", dist.LogNormal(s_loc, s_scale))


def local_model(x):
    loc = pyro.sample("loc", dist.Normal(0.0, 10.0))
    with pyro.plate("data", len(x), subsample_size=4) as idx:
        z = pyro.sample("z", dist.Normal(loc, 1.0))
        pyro.sample("x", dist.Normal(z, 1.0), obs=x[idx])


def local_guide(x):
    m = pyro.param("m", torch.tensor(0.5))
    z_loc = pyro.param("z_loc", torch.linspace(-1.0, 1.0, len(x)))
    pyro.sample("loc", dist.Normal(m, 1.0))
    with pyro.plate("data", len(x), subsample_size=4) as idx:
        pyro.sample("z", dist.Normal(z_loc[idx], 1.0))


def nn_model(x):
    z = pyro.sample("z", dist.Normal(0.0, 1.0))
    with pyro.plate("data", len(x)):
        pyro.sample("x", dist.Normal(z, 1.0), obs=x)


def score_function_guide(x):
    m = pyro.param("m", torch.tensor(0.4))
    s = pyro.param("s", torch.tensor(0.7), constraint=constraints.positive)
    pyro.sample("z", NonreparameterizedNormal(m, s))


X = torch.tensor([0.3, 1.2, -0.4, 2.0, 0.9, -1.1, 0.2, 0.6])
VECTORIZED = dict(num_particles=10, vectorize_particles=True)
CASES = {
    "coin": (coin_model, coin_guide, (COIN,), {}),
    "regression": (regression_model, regression_guide, regression_data(), {}),
    "subsampled_plate": (local_model, local_guide, (X,), {}),
    "score_function": (nn_model, score_function_guide, (X,), {}),
    "vectorized_particles": (coin_model, coin_guide, (COIN,), VECTORIZED),
    "sequential_particles": (nn_model, score_function_guide, (X,), dict(num_particles=3)),
}


def loss_and_grads(elbo, model, guide, args, seed):
    """One ``loss_and_grads`` from ``seed``: the loss and every param's gradient."""
    pyro.set_rng_seed(seed)
    loss = elbo.loss_and_grads(model, guide, *args)
    store = pyro.get_param_store()
    grads = {}
    for name in store.keys():
        leaf = store.unconstrained(name)
        grads[name] = torch.zeros_like(leaf) if leaf.grad is None else leaf.grad.clone()
        leaf.grad = None
    return loss, grads


def compile_count(elbo, model, guide):
    return elbo._compiled_fns[(model, guide)].compile_count


@pytest.mark.parametrize("case", CASES)
def test_jit_loss_and_grads_equal_eager_on_the_same_draws(case):
    model, guide, args, options = CASES[case]
    jit, eager = JitTrace_ELBO(**options), Trace_ELBO(**options)
    assert len(pyro.get_param_store()) == 0  # the first compiled step creates the params
    for seed in range(3):  # the compiling call, then the graph twice
        jit_loss, jit_grads = loss_and_grads(jit, model, guide, args, seed)
        eager_loss, eager_grads = loss_and_grads(eager, model, guide, args, seed)
        assert jit_loss == pytest.approx(eager_loss, rel=1e-5, abs=1e-5)
        assert set(jit_grads) == set(eager_grads)
        for name, grad in eager_grads.items():
            assert grad.abs().sum() > 0 or case == "subsampled_plate"
            assert torch.allclose(jit_grads[name], grad, rtol=1e-5, atol=1e-5), name
    assert compile_count(jit, model, guide) == 1


@pytest.mark.parametrize("case", ["coin", "score_function"])
def test_jit_loss_and_differentiable_loss_equal_eager(case):
    model, guide, args, options = CASES[case]
    jit, eager = JitTrace_ELBO(**options), Trace_ELBO(**options)
    for seed in range(3):
        pyro.set_rng_seed(seed)
        jit_values = (jit.loss(model, guide, *args), jit.differentiable_loss(model, guide, *args))
        pyro.set_rng_seed(seed)
        eager_values = (
            eager.loss(model, guide, *args),
            eager.differentiable_loss(model, guide, *args),
        )
        assert jit_values[0] == pytest.approx(eager_values[0], rel=1e-5, abs=1e-5)
        assert jit_values[1].item() == pytest.approx(eager_values[1].item(), rel=1e-5, abs=1e-5)
        assert jit_values[1].requires_grad
    # One graph without gradients (loss) and one with (differentiable_loss).
    assert compile_count(jit, model, guide) == 2


def test_subsampling_scales_the_loss_and_touches_only_the_subsample():
    jit = JitTrace_ELBO()
    loss_and_grads(jit, local_model, local_guide, (X,), seed=0)
    _, grads = loss_and_grads(jit, local_model, local_guide, (X,), seed=1)
    # Only the 4 subsampled entries of z_loc get a gradient, scaled by 8 / 4.
    assert int((grads["z_loc"] != 0).sum()) == 4


def test_a_new_batch_shape_recompiles_and_old_shapes_hit_the_cache():
    jit = JitTrace_ELBO()
    longer = torch.cat([COIN, COIN])
    for data in (COIN, COIN, longer, longer, COIN):
        jit.loss_and_grads(coin_model, coin_guide, data)
    assert compile_count(jit, coin_model, coin_guide) == 2
    pyro.set_rng_seed(3)
    jit_loss = jit.loss_and_grads(coin_model, coin_guide, longer)
    pyro.set_rng_seed(3)
    assert jit_loss == pytest.approx(Trace_ELBO().loss(coin_model, coin_guide, longer), rel=1e-5)


def test_draws_differ_between_compiled_steps():
    jit = JitTrace_ELBO()
    losses = [jit.loss_and_grads(coin_model, coin_guide, COIN) for _ in range(6)]
    assert compile_count(jit, coin_model, coin_guide) == 1
    assert len({round(loss, 6) for loss in losses[1:]}) == 5


def branching_model(x):
    if x.sum() > 0:
        pyro.sample("up", dist.Normal(1.0, 1.0))
    else:
        pyro.sample("down", dist.Normal(-1.0, 1.0))


def branching_guide(x):
    loc = pyro.param("loc", torch.tensor(0.0))
    pyro.sample("up" if x.sum() > 0 else "down", dist.Normal(loc, 1.0))


def test_data_dependent_control_flow_falls_back_to_eager_with_one_warning():
    jit, eager = JitTrace_ELBO(), Trace_ELBO()
    with pytest.warns(JitFallbackWarning, match="branching_model.*control flow") as caught:
        jit_losses = []
        for seed, x in enumerate([torch.ones(2), -torch.ones(2), torch.ones(2), -torch.ones(2)]):
            pyro.set_rng_seed(seed)
            jit_losses.append(jit.loss_and_grads(branching_model, branching_guide, x))
            pyro.get_param_store().unconstrained("loc").grad = None
    assert len([w for w in caught if w.category is JitFallbackWarning]) == 1
    for seed, x in enumerate([torch.ones(2), -torch.ones(2), torch.ones(2), -torch.ones(2)]):
        pyro.set_rng_seed(seed)
        eager_loss = eager.loss_and_grads(branching_model, branching_guide, x)
        assert jit_losses[seed] == pytest.approx(eager_loss, abs=1e-6)
        # q = N(0, 1) against p = N(+-1, 1): KL is 0.5 on average; nonzero either way.
        assert eager_loss != 0.0


def test_svi_step_creates_params_lazily_and_updates_them():
    svi = SVI(coin_model, coin_guide, Adam({"lr": 0.1}), JitTrace_ELBO())
    svi.step(COIN)
    store = pyro.get_param_store()
    after_first = store["alpha_q"].item()
    assert set(store.keys()) == {"alpha_q", "beta_q"}
    for _ in range(3):  # compiled steps: the optimizer still receives the params
        svi.step(COIN)
        assert store["alpha_q"].item() != after_first
        after_first = store["alpha_q"].item()
        assert store.unconstrained("alpha_q").grad is None


def test_svi_converges_to_the_coin_posterior():
    elbo = JitTrace_ELBO(num_particles=16, vectorize_particles=True)
    for lr, num_steps in ((0.05, 400), (0.005, 200)):  # fast, then fine
        svi = SVI(coin_model, coin_guide, Adam({"lr": lr}), elbo)
        for _ in range(num_steps):
            svi.step(COIN)
    assert compile_count(elbo, coin_model, coin_guide) == 1
    alpha, beta = pyro.param("alpha_q").item(), pyro.param("beta_q").item()
    # Exact posterior Beta(16, 14): mean 0.5333, sd 0.0896.
    mean = alpha / (alpha + beta)
    sd = (alpha * beta / ((alpha + beta) ** 2 * (alpha + beta + 1))) ** 0.5
    assert mean == pytest.approx(16 / 30, rel=0.05)
    assert sd == pytest.approx((16 * 14 / (30**2 * 31)) ** 0.5, rel=0.05)
    assert (alpha, beta) == pytest.approx((16.0, 14.0), rel=0.1)


def test_jit_loss_equals_pyro_trace_elbo_on_the_same_seed():
    real_pyro = pytest.importorskip("pyro")
    import pyro.distributions as pyro_dist

    def pyro_guide(data):
        positive = pyro_dist.constraints.positive
        alpha_q = real_pyro.param("alpha_q", torch.tensor(15.0), constraint=positive)
        beta_q = real_pyro.param("beta_q", torch.tensor(15.0), constraint=positive)
        real_pyro.sample("latent_fairness", pyro_dist.Beta(alpha_q, beta_q))

    def pyro_model(data):
        f = real_pyro.sample("latent_fairness", pyro_dist.Beta(10.0, 10.0))
        with real_pyro.plate("data", len(data)):
            real_pyro.sample("obs", pyro_dist.Bernoulli(f), obs=data)

    real_pyro.clear_param_store()
    jit = JitTrace_ELBO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for seed in range(3):
            pyro.set_rng_seed(seed)
            ours = jit.loss(coin_model, coin_guide, COIN)
            real_pyro.set_rng_seed(seed)
            theirs = real_pyro.infer.Trace_ELBO().loss(pyro_model, pyro_guide, COIN)
            assert ours == pytest.approx(theirs, rel=1e-5)
