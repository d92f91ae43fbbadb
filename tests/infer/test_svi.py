"""SVI: convergence to known posteriors, checkpoints, failure safety, fit/run, and Pyro parity."""

import math
import warnings

import numpy as np
import pytest
import torch
from workloads import COIN, coin_guide, coin_model, seed003_data

import pyrolite as pyro
import pyrolite.distributions as dist
from pyrolite.distributions import constraints
from pyrolite.infer import SVI, Trace_ELBO
from pyrolite.optim import Adam, ClippedAdam


def test_coin_converges_to_exact_beta_posterior():
    # Exact posterior Beta(16, 14). Many particles + a decaying step size make the
    # final iterate's noise well under the 5% tolerance.
    svi = SVI(
        coin_model,
        coin_guide,
        ClippedAdam({"lr": 0.05, "lrd": 0.999}),
        Trace_ELBO(num_particles=64, vectorize_particles=True),
    )
    for _ in range(3000):
        svi.step(COIN)
    assert pyro.param("alpha_q").item() == pytest.approx(16.0, rel=0.05)
    assert pyro.param("beta_q").item() == pytest.approx(14.0, rel=0.05)


def normal_model(x):
    loc = pyro.sample("loc", dist.Normal(1.0, 2.0))
    with pyro.plate("data", len(x)):
        pyro.sample("x", dist.Normal(loc, 0.5), obs=x)


def normal_guide(x):
    m = pyro.param("m", torch.tensor(0.0))
    s = pyro.param("s", torch.tensor(1.0), constraint=constraints.positive)
    pyro.sample("loc", dist.Normal(m, s))


def test_normal_normal_posterior_mean_and_variance():
    x = torch.tensor([2.1, 2.9, 1.7, 2.4, 3.3, 2.2, 2.8, 1.9])
    precision = 1 / 2.0**2 + len(x) / 0.5**2
    post_mean = (1.0 / 2.0**2 + x.sum().item() / 0.5**2) / precision
    post_sd = precision**-0.5
    svi = SVI(
        normal_model,
        normal_guide,
        ClippedAdam({"lr": 0.05, "lrd": 0.999}),
        Trace_ELBO(num_particles=32, vectorize_particles=True),
    )
    for _ in range(3000):
        svi.step(x)
    assert pyro.param("m").item() == pytest.approx(post_mean, abs=0.1 * post_sd)
    assert pyro.param("s").item() == pytest.approx(post_sd, rel=0.05)


def seed003_model(x, y):
    P = x.shape[1]
    alpha = pyro.sample("alpha", dist.Normal(0.0, 100.0))
    beta = pyro.sample("beta", dist.Normal(torch.zeros(P), 10.0))
    sigma = pyro.sample("sigma", dist.HalfNormal(10.0))
    mu = alpha + x @ beta
    return pyro.sample("y", dist.Normal(mu, sigma), obs=y)


def seed003_guide(x, y):
    P = x.shape[1]
    a_loc = pyro.param("a_loc", torch.tensor(0.0))
    a_scale = pyro.param("a_scale", torch.tensor(1.0), constraint=constraints.positive)
    b_loc = pyro.param("b_loc", torch.zeros(P))
    b_scale = pyro.param("b_scale", torch.ones(P), constraint=constraints.positive)
    s_loc = pyro.param("s_loc", torch.tensor(0.0))
    s_scale = pyro.param("s_scale", torch.tensor(0.1), constraint=constraints.positive)
    pyro.sample("alpha", dist.Normal(a_loc, a_scale))
    pyro.sample("beta", dist.Normal(b_loc, b_scale))
    pyro.sample("sigma", dist.LogNormal(s_loc, s_scale))


def test_seed003_linear_regression_recovers_coefficients():
    x, y, alpha_true, beta_true, sigma_true = seed003_data()
    svi = SVI(seed003_model, seed003_guide, ClippedAdam({"lr": 0.1, "lrd": 0.999}), Trace_ELBO())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # beta's [8] batch dim outside a plate, as in the seed
        for _ in range(2500):
            svi.step(x, y)
    # Least squares is the posterior mean up to the (negligible) prior; the residual sd
    # is sigma_true (~0.17 here), so coefficient errors of 0.05 are many posterior sds.
    design = torch.cat([torch.ones(len(x), 1), x], 1)
    lstsq = torch.linalg.lstsq(design, y.unsqueeze(-1)).solution.squeeze(-1)
    assert pyro.param("a_loc").item() == pytest.approx(lstsq[0].item(), abs=0.05)
    assert torch.allclose(pyro.param("b_loc"), lstsq[1:], atol=0.05)
    sigma_median = math.exp(pyro.param("s_loc").item())
    assert sigma_median == pytest.approx(sigma_true.item(), rel=0.15)


def run_steps(svi, n, *args):
    return [svi.step(*args) for _ in range(n)]


def test_checkpoint_resume_reproduces_losses_exactly(tmp_path):
    def make_svi():
        return SVI(coin_model, coin_guide, Adam({"lr": 0.01}), Trace_ELBO())

    pyro.set_rng_seed(11)
    svi = make_svi()
    first = run_steps(svi, 20, COIN)
    path = tmp_path / "svi.ckpt"
    svi.save(path)
    uninterrupted = run_steps(svi, 20, COIN)

    pyro.clear_param_store()
    pyro.set_rng_seed(999)  # a different stream: load must restore the saved one
    resumed_svi = make_svi()
    resumed_svi.load(path)
    resumed = run_steps(resumed_svi, 20, COIN)
    assert resumed == uninterrupted
    assert resumed_svi.step_count == 40
    assert first[-1] != resumed[0]


def test_loading_a_foreign_file_is_refused_and_changes_nothing(tmp_path):
    svi = SVI(coin_model, coin_guide, Adam({"lr": 0.01}), Trace_ELBO())
    run_steps(svi, 3, COIN)
    before = {k: v.detach().clone() for k, v in pyro.get_param_store().items()}
    path = tmp_path / "foreign.pt"
    torch.save({"weights": torch.ones(3)}, path)
    with pytest.raises(ValueError, match="not a pyrolite SVI checkpoint"):
        svi.load(path)
    path.write_bytes(b"\x00garbage")
    with pytest.raises(ValueError):
        svi.load(path)
    for k, v in pyro.get_param_store().items():
        assert torch.equal(v, before[k])


def snapshot(svi):
    params = {k: v.detach().clone() for k, v in pyro.get_param_store().items()}
    return params, svi.optim.get_state()


def assert_same_state(a, b):
    params_a, optim_a = a
    params_b, optim_b = b
    assert params_a.keys() == params_b.keys()
    for k in params_a:
        assert torch.equal(params_a[k], params_b[k])
    assert str(optim_a) == str(optim_b)


def test_nonfinite_loss_raises_naming_the_site_and_loses_no_state():
    data = {"x": torch.tensor([0.5, 0.2])}

    def model():
        loc = pyro.sample("loc", dist.Normal(0.0, 1.0))
        with pyro.plate("d", 2):
            pyro.sample("x", dist.Normal(loc, 1.0), obs=data["x"])

    svi = SVI(model, normal_guide_noargs, Adam({"lr": 0.01}), Trace_ELBO())
    run_steps(svi, 3)
    before = snapshot(svi)
    data["x"] = torch.tensor([0.5, float("inf")])
    with pytest.raises(FloatingPointError, match=r"model site 'x'"):
        svi.step()
    assert_same_state(before, snapshot(svi))
    assert all(p.grad is None for _, p in pyro.get_param_store().named_parameters())


def test_nonfinite_loss_under_jit_names_the_site_by_an_eager_rerun():
    from pyrolite.infer import JitTrace_ELBO

    def model(x):
        loc = pyro.sample("loc", dist.Normal(0.0, 1.0))
        with pyro.plate("d", 2):
            pyro.sample("x", dist.Normal(loc, 1.0), obs=x)

    def guide(x):
        normal_guide_noargs()

    svi = SVI(model, guide, Adam({"lr": 0.01}), JitTrace_ELBO(ignore_jit_warnings=True))
    for _ in range(3):
        svi.step(torch.tensor([0.5, 0.2]))
    before = snapshot(svi)
    with pytest.raises(FloatingPointError, match=r"model site 'x'.*eager re-run"):
        svi.step(torch.tensor([0.5, float("inf")]))
    assert_same_state(before, snapshot(svi))


def normal_guide_noargs():
    m = pyro.param("m", torch.tensor(0.0))
    s = pyro.param("s", torch.tensor(1.0), constraint=constraints.positive)
    pyro.sample("loc", dist.Normal(m, s))


def test_exception_inside_model_loses_no_state():
    calls = {"n": 0}

    def flaky_model():
        calls["n"] += 1
        loc = pyro.sample("loc", dist.Normal(0.0, 1.0))
        if calls["n"] == 4:
            raise RuntimeError("boom")
        pyro.sample("x", dist.Normal(loc, 1.0), obs=torch.tensor(0.3))

    svi = SVI(flaky_model, normal_guide_noargs, Adam({"lr": 0.01}), Trace_ELBO())
    run_steps(svi, 3)
    before = snapshot(svi)
    with pytest.raises(RuntimeError, match="boom"):
        svi.step()
    assert_same_state(before, snapshot(svi))
    assert pyro.poutine.runtime._STACK == []
    svi.step()  # and training goes on


def test_fit_stable_update_skips_nonfinite_steps():
    data = {"x": torch.tensor(0.3)}

    def model():
        loc = pyro.sample("loc", dist.Normal(0.0, 1.0))
        pyro.sample("x", dist.Normal(loc, 1.0), obs=data["x"])

    svi = SVI(model, normal_guide_noargs, Adam({"lr": 0.01}), Trace_ELBO())
    svi.fit(5, progress_bar=False)
    before = snapshot(svi)
    data["x"] = torch.tensor(float("nan"))
    result = svi.fit(4, progress_bar=False, stable_update=True)
    assert svi.skipped_steps == 4
    assert np.isnan(result.losses).all()
    assert_same_state(before, snapshot(svi))


def test_fit_returns_params_and_every_loss_and_shows_init_loss(capsys):
    svi = SVI(coin_model, coin_guide, Adam({"lr": 0.01}), Trace_ELBO())
    result = svi.fit(120, COIN, progress_bar=True)
    assert result.losses.shape == (120,)
    assert np.isfinite(result.losses).all()
    assert set(result.params) == {"alpha_q", "beta_q"}
    assert result.params["alpha_q"].item() == pytest.approx(pyro.param("alpha_q").item())
    err = capsys.readouterr().err
    assert "init loss: " in err and "avg. loss [" in err


def test_fit_init_params_sets_the_starting_point():
    svi = SVI(coin_model, coin_guide, Adam({"lr": 1e-6}), Trace_ELBO())
    svi.fit(1, COIN, progress_bar=False)
    result = svi.fit(1, COIN, progress_bar=False, init_params={"alpha_q": torch.tensor(3.0)})
    assert result.params["alpha_q"].item() == pytest.approx(3.0, rel=1e-4)


def test_params_created_during_training_are_optimized():
    def model(data):
        coin_model(data)
        if svi.step_count >= 5:
            extra = pyro.param("extra", torch.tensor(1.0))
            pyro.factor("pull", -((extra - 3.0) ** 2))

    svi = SVI(model, coin_guide, Adam({"lr": 0.1}), Trace_ELBO())
    run_steps(svi, 300, COIN)
    # The factor adds -(extra - 3)^2 to log p: maximizing the ELBO pulls extra to 3.
    assert pyro.param("extra").item() == pytest.approx(3.0, abs=0.05)


def test_run_returns_posterior_marginals_seed003_style():
    x, y, *_ = seed003_data(N=50, P=8)
    svi = SVI(seed003_model, seed003_guide, Adam({"lr": 0.01}), Trace_ELBO(), num_samples=30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        svi.step(x, y)
        posterior = svi.run(x, y)
    support = posterior.marginal(["alpha", "beta", "sigma"]).support()
    assert support["alpha"].shape == (30,)
    assert support["beta"].shape == (30, 8)
    assert (support["sigma"] > 0).all()
    # Guide samples: mean of alpha near its guide loc (sd 1, 30 draws -> se 0.18).
    assert support["alpha"].mean().item() == pytest.approx(pyro.param("a_loc").item(), abs=0.8)


def test_optim_must_be_a_pyrolite_optimizer():
    with pytest.raises(TypeError, match="pyrolite.optim.Adam"):
        SVI(coin_model, coin_guide, torch.optim.Adam, Trace_ELBO())


def test_model_guide_mismatches_are_named():
    def guide_extra(data):
        coin_guide(data)
        pyro.sample("typo_site", dist.Normal(0.0, 1.0))

    with pytest.warns(UserWarning, match="typo_site"):
        Trace_ELBO().loss(coin_model, guide_extra, COIN)

    def model_two(data):
        coin_model(data)
        pyro.sample("unguided", dist.Normal(0.0, 1.0))

    with pytest.warns(UserWarning, match="unguided"):
        Trace_ELBO().loss(model_two, coin_guide, COIN)

    def guide_bad_shape(data):
        coin_guide(data)
        pyro.sample("unguided", dist.Normal(torch.zeros(3), 1.0))

    with pytest.raises(ValueError, match=r"'unguided'.*shape \(3,\).*shape \(\)"):
        Trace_ELBO().loss(model_two, guide_bad_shape, COIN)

    def guide_samples_obs(data):
        coin_guide(data)
        with pyro.plate("data_plate", len(data)):
            pyro.sample("obs", dist.Bernoulli(0.5))

    with pytest.raises(ValueError, match=r"\['obs'\].*observed in the model"):
        Trace_ELBO().loss(coin_model, guide_samples_obs, COIN)


def test_same_loss_as_pyro_on_the_same_draws():
    pyro_oracle = pytest.importorskip("pyro")
    import pyro.distributions as pdist
    from pyro.distributions import constraints as pconstraints

    x, y, *_ = seed003_data(N=40, P=3)

    def make(lib, d, c):
        def model(x, y):
            alpha = lib.sample("alpha", d.Normal(0.0, 100.0))
            beta = lib.sample("beta", d.Normal(torch.zeros(3), 10.0).to_event(1))
            sigma = lib.sample("sigma", d.HalfNormal(10.0))
            with lib.plate("data", len(x), subsample=torch.tensor([0, 5, 7, 9])) as idx:
                lib.sample("y", d.Normal(alpha + x[idx] @ beta, sigma), obs=y[idx])

        def guide(x, y):
            a = lib.param("a", torch.tensor(40.0))
            b = lib.param("b", torch.tensor([1.0, -1.0, 0.5]))
            s = lib.param("s", torch.tensor(0.5), constraint=c.positive)
            lib.sample("alpha", d.Normal(a, 2.0))
            lib.sample("beta", d.Normal(b, s).to_event(1))
            lib.sample("sigma", d.LogNormal(0.0, s))

        return model, guide

    losses = []
    for lib, d, c, elbo in (
        (pyro, dist, constraints, Trace_ELBO()),
        (pyro_oracle, pdist, pconstraints, pyro_oracle.infer.Trace_ELBO()),
    ):
        lib.clear_param_store()
        model, guide = make(lib, d, c)
        torch.manual_seed(5)
        losses.append(elbo.loss(model, guide, x, y))
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)
