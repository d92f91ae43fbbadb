"""GaussianHMM, GammaGaussianHMM, GaussianMRF, LinearHMM and IndependentHMM against Pyro 1.9 as
an oracle: log_prob on the same parameters and values (batched), filter, conjugate_update,
prefix_condition, shapes of samples, gradients, and LinearHMM's draws at the same seed."""

import inspect

import pytest
import torch

import pyrolite.distributions.gaussian_hmm as ours
import pyrolite.distributions.torch as ours_torch

pyro_dist = pytest.importorskip("pyro.distributions")

F64 = torch.float64
NAMES = ["GaussianHMM", "GammaGaussianHMM", "LinearHMM", "IndependentHMM", "GaussianMRF"]


def _tensors(seed, hidden, obs, steps, batch):
    g = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(shape, generator=g, dtype=F64)

    def tril(*shape):
        n = shape[-1]
        return randn(*shape, n).tril(-1) * 0.3 + torch.diag_embed(
            0.5 + torch.rand(shape, generator=g, dtype=F64)
        )

    return {
        "init_loc": randn(*batch, hidden),
        "init_tril": tril(*batch, hidden),
        "trans_matrix": 0.5 * randn(*batch, steps, hidden, hidden),
        "trans_loc": randn(*batch, steps, hidden),
        "trans_tril": tril(*batch, steps, hidden),
        "obs_matrix": randn(*batch, steps, hidden, obs),
        "obs_loc": randn(*batch, steps, obs),
        "obs_tril": tril(*batch, steps, obs),
        "obs_scale": 0.5 + torch.rand(batch + (steps, obs), generator=g, dtype=F64),
    }


def _parts(lib, t, diag_obs=False):
    mvn = lib.MultivariateNormal
    obs = (
        lib.Normal(t["obs_loc"], t["obs_scale"]).to_event(1)
        if diag_obs
        else mvn(t["obs_loc"], scale_tril=t["obs_tril"])
    )
    return (
        mvn(t["init_loc"], scale_tril=t["init_tril"]),
        t["trans_matrix"],
        mvn(t["trans_loc"], scale_tril=t["trans_tril"]),
        t["obs_matrix"],
        obs,
    )


def _parameters(cls):
    """Names, kinds and defaults of the constructor's parameters (not the type hints)."""
    params = inspect.signature(cls.__init__).parameters.values()
    return [(p.name, p.kind, p.default) for p in params]


@pytest.mark.parametrize("name", NAMES)
def test_constructor_signatures_match_pyro(name):
    assert _parameters(getattr(ours, name)) == _parameters(getattr(pyro_dist, name))


@pytest.mark.parametrize("batch", [(), (3,)])
@pytest.mark.parametrize("steps", [1, 5])
@pytest.mark.parametrize("diag_obs", [False, True])
def test_gaussian_hmm_log_prob_and_filter_match_pyro(batch, steps, diag_obs):
    t = _tensors(0, 3, 2, steps, batch)
    mine = ours.GaussianHMM(*_parts(ours_torch, t, diag_obs))
    theirs = pyro_dist.GaussianHMM(*_parts(pyro_dist, t, diag_obs))
    assert (mine.batch_shape, mine.event_shape) == (theirs.batch_shape, theirs.event_shape)
    assert mine.support == theirs.support or str(mine.support) == str(theirs.support)
    value = torch.randn((4,) + batch + (5, 2), dtype=F64)
    torch.testing.assert_close(mine.log_prob(value), theirs.log_prob(value))
    mine_post, theirs_post = mine.filter(value), theirs.filter(value)
    torch.testing.assert_close(mine_post.loc, theirs_post.loc)
    torch.testing.assert_close(mine_post.covariance_matrix, theirs_post.covariance_matrix)


def test_gaussian_hmm_log_prob_gradients_match_pyro():
    t = _tensors(1, 2, 2, 6, (2,))
    value = torch.randn(2, 6, 2, dtype=F64)
    grads = []
    for lib, module in [(ours_torch, ours), (pyro_dist, pyro_dist)]:
        leaves = {k: v.clone().requires_grad_() for k, v in t.items()}
        loss = module.GaussianHMM(*_parts(lib, leaves)).log_prob(value).sum()
        names = ["init_loc", "init_tril", "trans_matrix", "trans_tril", "obs_matrix", "obs_loc"]
        grads.append(torch.autograd.grad(loss, [leaves[k] for k in names]))
    for mine, theirs in zip(*grads):
        torch.testing.assert_close(mine, theirs)


def test_gaussian_hmm_rsample_shapes_and_means_match_pyro():
    t = _tensors(2, 2, 2, 1, ())
    mine = ours.GaussianHMM(*_parts(ours_torch, t), duration=4)
    theirs = pyro_dist.GaussianHMM(*_parts(pyro_dist, t), duration=4)
    assert mine.duration == theirs.duration == 4
    for sample_shape in [(), (3,), (2, 3)]:
        assert mine.rsample(sample_shape).shape == theirs.rsample(sample_shape).shape
    assert mine.expand([5]).rsample([2]).shape == theirs.expand([5]).rsample([2]).shape
    # Different samplers (same law): the means agree within 5 standard errors of the gap.
    a, b = mine.rsample([20000]), theirs.rsample([20000])
    gap_se = (a.var(0) / 20000 + b.var(0) / 20000).sqrt()
    assert ((a.mean(0) - b.mean(0)).abs() < 5 * gap_se).all()
    value = torch.randn(3, 4, 2, dtype=F64)
    assert (
        mine.rsample_posterior(value, torch.Size([7])).shape
        == theirs.rsample_posterior(value, torch.Size([7])).shape
    )


def test_gaussian_hmm_expand_matches_pyro():
    t = _tensors(3, 2, 2, 5, ())
    mine = ours.GaussianHMM(*_parts(ours_torch, t)).expand([4, 3])
    theirs = pyro_dist.GaussianHMM(*_parts(pyro_dist, t)).expand([4, 3])
    assert (mine.batch_shape, mine.event_shape) == (theirs.batch_shape, theirs.event_shape)
    assert mine.duration == theirs.duration
    value = torch.randn(5, 2, dtype=F64)
    torch.testing.assert_close(mine.log_prob(value), theirs.log_prob(value))


@pytest.mark.parametrize("likelihood", ["mvn", "normal"])
def test_gaussian_hmm_conjugate_update_matches_pyro(likelihood):
    t = _tensors(4, 2, 2, 5, ())
    loc = torch.randn(3, 5, 2, dtype=F64)
    results = []
    for lib, module in [(ours_torch, ours), (pyro_dist, pyro_dist)]:
        hmm = module.GaussianHMM(*_parts(lib, t))
        if likelihood == "mvn":
            other = lib.MultivariateNormal(loc, 2.0 * torch.eye(2, dtype=F64)).to_event(1)
        else:
            other = lib.Normal(loc, 1.5).to_event(2)
        updated, log_normalizer = hmm.conjugate_update(other)
        value = torch.randn(5, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
        results.append((updated.batch_shape, log_normalizer, updated.log_prob(value)))
    (shape, norm, lp), (shape_p, norm_p, lp_p) = results
    assert shape == shape_p
    torch.testing.assert_close(norm, norm_p)
    torch.testing.assert_close(lp, lp_p)


@pytest.mark.parametrize("steps", [1, 6])
def test_gaussian_hmm_prefix_condition_matches_pyro(steps):
    t = _tensors(5, 2, 2, steps, ())
    data = torch.randn(3, 4, 2, dtype=F64)
    future = torch.randn(3, 2, 2, dtype=F64)
    mine = ours.GaussianHMM(*_parts(ours_torch, t), duration=6).prefix_condition(data)
    theirs = pyro_dist.GaussianHMM(*_parts(pyro_dist, t), duration=6).prefix_condition(data)
    assert (mine.batch_shape, mine.event_shape) == (theirs.batch_shape, theirs.event_shape)
    torch.testing.assert_close(mine.log_prob(future), theirs.log_prob(future))


@pytest.mark.parametrize("batch", [(), (2,)])
def test_gamma_gaussian_hmm_log_prob_and_filter_match_pyro(batch):
    t = _tensors(6, 2, 2, 4, batch)
    concentration = torch.tensor(2.5, dtype=F64)
    rate = torch.tensor(1.5, dtype=F64)
    value = torch.randn((3,) + batch + (4, 2), dtype=F64)
    mine = ours.GammaGaussianHMM(ours_torch.Gamma(concentration, rate), *_parts(ours_torch, t))
    theirs = pyro_dist.GammaGaussianHMM(pyro_dist.Gamma(concentration, rate), *_parts(pyro_dist, t))
    assert (mine.batch_shape, mine.event_shape) == (theirs.batch_shape, theirs.event_shape)
    assert mine.has_rsample == theirs.has_rsample
    torch.testing.assert_close(mine.log_prob(value), theirs.log_prob(value))
    (scale, state), (scale_p, state_p) = mine.filter(value), theirs.filter(value)
    torch.testing.assert_close(scale.concentration, scale_p.concentration.expand(scale.batch_shape))
    torch.testing.assert_close(scale.rate, scale_p.rate)
    torch.testing.assert_close(state.loc, state_p.loc)
    # Pyro 1.9 returns the posterior precision (given s = 1) as the covariance matrix; ours
    # returns it as the precision (the analytic test checks it against a Kalman filter).
    torch.testing.assert_close(state.precision_matrix, state_p.covariance_matrix)


@pytest.mark.parametrize("batch", [(), (3,)])
@pytest.mark.parametrize("steps", [1, 4])
def test_gaussian_mrf_log_prob_and_gradient_match_pyro(batch, steps):
    g = torch.Generator().manual_seed(7)

    def mvn_params(n, *shape):
        tril = torch.randn(shape + (n, n), generator=g, dtype=F64).tril(-1) * 0.3
        tril = tril + torch.diag_embed(0.5 + torch.rand(shape + (n,), generator=g, dtype=F64))
        return torch.randn(shape + (n,), generator=g, dtype=F64), tril

    params = [mvn_params(2, *batch), mvn_params(4, *batch, steps), mvn_params(5, *batch, steps)]
    value = torch.randn((2,) + batch + (4, 3), dtype=F64)
    results = []
    for lib, module in [(ours_torch, ours), (pyro_dist, pyro_dist)]:
        loc = params[2][0].clone().requires_grad_()
        dists = [lib.MultivariateNormal(m, scale_tril=s) for m, s in params[:2]]
        dists.append(lib.MultivariateNormal(loc, scale_tril=params[2][1]))
        mrf = module.GaussianMRF(*dists)
        log_prob = mrf.log_prob(value)
        (grad,) = torch.autograd.grad(log_prob.sum(), [loc])
        results.append((mrf.batch_shape, mrf.event_shape, log_prob, grad))
        assert mrf.expand((5,) + batch).batch_shape == (5,) + batch
    (b, e, lp, grad), (b_p, e_p, lp_p, grad_p) = results
    assert (b, e) == (b_p, e_p)
    torch.testing.assert_close(lp, lp_p)
    torch.testing.assert_close(grad, grad_p)


def test_independent_hmm_matches_pyro():
    t = _tensors(8, 2, 1, 5, (3,))
    value = torch.randn(4, 5, 3, dtype=F64)
    mine = ours.IndependentHMM(ours.GaussianHMM(*_parts(ours_torch, t)))
    theirs = pyro_dist.IndependentHMM(pyro_dist.GaussianHMM(*_parts(pyro_dist, t)))
    assert (mine.batch_shape, mine.event_shape) == (theirs.batch_shape, theirs.event_shape)
    assert mine.duration == theirs.duration and mine.has_rsample == theirs.has_rsample
    torch.testing.assert_close(mine.log_prob(value), theirs.log_prob(value))
    assert mine.rsample([2]).shape == theirs.rsample([2]).shape
    assert mine.expand([6]).batch_shape == theirs.expand([6]).batch_shape


def _linear_parts(lib, t, steps):
    return (
        lib.StudentT(4.0, t["init_loc"], 1.0).to_event(1),
        t["trans_matrix"],
        lib.StudentT(3.0, t["trans_loc"], 0.5).to_event(1),
        t["obs_matrix"],
        lib.LogNormal(t["obs_loc"], 0.3).to_event(1),
    )


def test_linear_hmm_draws_and_gradients_match_pyro_at_the_same_seed():
    steps = 7
    t = _tensors(9, 3, 2, steps, (2,))
    results = []
    for lib, module in [(ours_torch, ours), (pyro_dist, pyro_dist)]:
        matrix = t["trans_matrix"].clone().requires_grad_()
        parts = list(_linear_parts(lib, t, steps))
        parts[1] = matrix
        hmm = module.LinearHMM(*parts)
        torch.manual_seed(11)
        draw = hmm.rsample([4])
        (grad,) = torch.autograd.grad(draw.log().sum(), [matrix])
        results.append((hmm.batch_shape, hmm.event_shape, hmm.duration, draw, grad))
        with pytest.raises(NotImplementedError, match="LinearHMM.log_prob"):
            hmm.log_prob(draw[0])
        assert hmm.expand([5, 2]).rsample().shape == (5, 2, steps, 2)
    (b, e, d, draw, grad), (b_p, e_p, d_p, draw_p, grad_p) = results
    assert (b, e, d) == (b_p, e_p, d_p)
    torch.testing.assert_close(draw, draw_p)
    torch.testing.assert_close(grad, grad_p)


def test_linear_hmm_stored_parts_match_pyro():
    t = _tensors(10, 2, 2, 5, ())
    mine = ours.LinearHMM(*_linear_parts(ours_torch, t, 5))
    theirs = pyro_dist.LinearHMM(*_linear_parts(pyro_dist, t, 5))
    for name in ["transition_matrix", "observation_matrix"]:
        torch.testing.assert_close(getattr(mine, name), getattr(theirs, name))
    for name in ["initial_dist", "transition_dist", "observation_dist"]:
        assert getattr(mine, name).batch_shape == getattr(theirs, name).batch_shape
    assert [type(x).__name__ for x in mine.transforms] == ["ExpTransform"]
    assert [type(x).__name__ for x in theirs.transforms] == ["ExpTransform"]
