"""Every estimator on every path: eager, Jit and compiled agree, and eager agrees with Pyro.

For each of Trace_ELBO, TraceMeanField_ELBO, RenyiELBO and TraceGraph_ELBO (its guide with
a non-reparameterized site and a decaying-average baseline, whose state the Jit and compiled
paths must carry), at 1 particle, 3 sequential and 3 vectorized particles: the Jit variant's
loss and gradients equal the eager ones from the same seed, the compiled SVI step
(``aot_eager`` backend: the very graph inductor would get, drawing with the same kernels)
takes the same steps as the eager SVI, and the eager loss and gradients equal ``pyro-ppl``'s
on the same draws (where it is installed).
"""

import importlib
import warnings

import pytest
import torch

import pyrolite as pyro
import pyrolite.distributions as dist
from pyrolite.distributions import constraints
from pyrolite.infer import SVI, jit_variant
from pyrolite.optim import SGD

TOL = 1e-5
X = torch.tensor([0.3, -1.2, 2.0, 0.7, 1.1, -0.4])
PARAMS = ("m", "s", "z_loc")

ESTIMATORS = {  # name -> its own options
    "Trace_ELBO": {},
    "TraceMeanField_ELBO": {},
    "RenyiELBO": {"alpha": 0.5},
    "TraceGraph_ELBO": {},
}
# Estimators whose guide scores "loc" by its score function, with a decaying-average baseline.
SCORE_FUNCTION = {"TraceGraph_ELBO"}
PARTICLES = {
    "1": dict(num_particles=1),
    "3-sequential": dict(num_particles=3),
    "3-vectorized": dict(num_particles=3, vectorize_particles=True, max_plate_nesting=1),
}


def make_model_guide(lib, d, c, score_function=False, baseline=True):
    """A global latent, plated local latents, observations: every kind of site.

    ``score_function``: the global latent's guide is non-reparameterized (with a
    decaying-average baseline if ``baseline``)."""
    loc_dist = d.Normal
    infer = {}
    if score_function:
        loc_dist = importlib.import_module(f"{lib.__name__}.distributions.testing.fakes")
        loc_dist = loc_dist.NonreparameterizedNormal
        infer = {"baseline": {"use_decaying_avg_baseline": baseline, "baseline_beta": 0.8}}

    def model(x):
        loc = lib.sample("loc", d.Normal(0.0, 2.0))
        with lib.plate("data", x.shape[-1]):
            z = lib.sample("z", d.Normal(loc, 1.0))
            lib.sample("x", d.Normal(z, 0.5), obs=x)

    def guide(x):
        m = lib.param("m", INITIAL["m"].clone())
        s = lib.param("s", INITIAL["s"].clone(), constraint=c.positive)
        # Clones: Pyro adopts an init tensor as its leaf (then shared between runs).
        z_loc = lib.param("z_loc", INITIAL["z_loc"].clone())
        lib.sample("loc", loc_dist(m, s), infer=infer)
        with lib.plate("data", x.shape[-1]):
            lib.sample("z", d.Normal(z_loc, 0.7))

    return model, guide


def make_elbo(elbo_class, estimator, particles):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # RenyiELBO warns at one particle
        return elbo_class(**ESTIMATORS[estimator], **PARTICLES[particles])


INITIAL = {
    "m": torch.tensor(0.3),
    "s": torch.tensor(0.8),
    "z_loc": torch.linspace(-0.5, 0.5, X.shape[-1]),
}
_PROGRAMS = {}


def loss_and_grads(lib, elbo, seed=3, baseline=True):
    """Loss and unconstrained-param gradients of one estimate from ``seed``.

    One model/guide per library (and kind of guide), and params reset in place (not
    re-created), so that a Jit estimator sees the same program and the same leaves on
    every call. State kept between steps (a baseline's average) carries on.
    """
    score_function = type(elbo).__name__.lstrip("Jit") in SCORE_FUNCTION
    key = (lib, score_function, baseline)
    if key not in _PROGRAMS:
        lib.clear_param_store()
        _PROGRAMS[key] = make_model_guide(lib, *LIBS[lib], score_function, baseline)
    model, guide = _PROGRAMS[key]
    store = lib.get_param_store()
    for name, value in INITIAL.items():
        if name in store:
            leaf = lib.param(name).unconstrained()
            with torch.no_grad():
                leaf.copy_(value.log() if name == "s" else value)
            leaf.grad = None
    torch.manual_seed(seed)
    loss = elbo.loss_and_grads(model, guide, X)
    grads = {n: lib.param(n).unconstrained().grad.clone() for n in PARAMS}
    return loss, grads


LIBS = {pyro: (dist, constraints)}

MATRIX = pytest.mark.parametrize(
    "estimator, particles", [(e, p) for e in ESTIMATORS for p in PARTICLES]
)


@MATRIX
def test_jit_variant_equals_eager(estimator, particles):
    eager_class = getattr(pyro.infer, estimator)
    eager = make_elbo(eager_class, estimator, particles)
    jitted = make_elbo(jit_variant(eager_class), estimator, particles)
    expected = loss_and_grads(pyro, eager)
    # The tracing call, then calls of the graph (an estimator keeping state runs its first
    # call eagerly and traces on the second); state, where kept, evolves the same.
    for seed in (3, 4, 5):
        got = loss_and_grads(pyro, jitted, seed)
        want = expected if seed == 3 else loss_and_grads(pyro, eager, seed)
        assert got[0] == pytest.approx(want[0], abs=TOL, rel=TOL)
        for n in PARAMS:
            assert torch.allclose(got[1][n], want[1][n], atol=TOL, rtol=TOL), n
    assert jitted.compile_count == 1
    for name, value in eager.get_state().items():
        assert torch.allclose(jitted.get_state()[name], value, atol=TOL, rtol=TOL), name


@MATRIX
def test_compiled_step_equals_eager_step(estimator, particles):
    runs = []
    for compile in (False, {"backend": "aot_eager"}):
        pyro.clear_param_store()
        model, guide = make_model_guide(pyro, dist, constraints, estimator in SCORE_FUNCTION)
        svi = SVI(
            model,
            guide,
            SGD({"lr": 0.01}),
            make_elbo(getattr(pyro.infer, estimator), estimator, particles),
            compile=compile,
        )
        torch.manual_seed(7)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # no fallback to eager
            losses = [svi.step(X) for _ in range(4)]  # init, warm-up, compiled, compiled
        params = {n: pyro.param(n).detach().clone() for n in PARAMS}
        runs.append((losses, params, svi.compile_info, svi.elbo.get_state()))
    (eager_losses, eager_params, _, eager_state), (losses, params, info, state) = runs
    assert info.compiled_graphs == 1 and info.fallback_reasons == ()
    assert losses == pytest.approx(eager_losses, abs=TOL, rel=TOL)
    for n in PARAMS:
        assert torch.allclose(params[n], eager_params[n], atol=TOL, rtol=TOL), n
    assert state.keys() == eager_state.keys()
    for name, value in eager_state.items():
        assert torch.allclose(state[name], value, atol=TOL, rtol=TOL), name


@MATRIX
def test_eager_equals_pyro_on_the_same_draws(estimator, particles):
    pyro_oracle = pytest.importorskip("pyro")
    import pyro.distributions as pdist
    from pyro.distributions import constraints as pconstraints

    LIBS[pyro_oracle] = (pdist, pconstraints)
    # Pyro advances a decaying average after each sequential particle and keeps one per
    # vectorized particle; pyrolite keeps one, advanced once per step from the particles'
    # mean cost (by design). So with several particles the baselines differ after the
    # first particle or step: compare those without the baseline.
    baseline = particles == "1"
    ours_elbo = make_elbo(getattr(pyro.infer, estimator), estimator, particles)
    their_elbo = make_elbo(getattr(pyro_oracle.infer, estimator), estimator, particles)
    # Two estimates: the second one's baseline is the average the first one left.
    for seed in (3, 4):
        ours = loss_and_grads(pyro, ours_elbo, seed, baseline)
        theirs = loss_and_grads(pyro_oracle, their_elbo, seed, baseline)
        assert ours[0] == pytest.approx(theirs[0], abs=TOL, rel=TOL)
        for n in PARAMS:
            assert torch.allclose(ours[1][n], theirs[1][n], atol=1e-4, rtol=1e-4), n
