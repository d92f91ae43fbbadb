"""TraceGraph_ELBO: downstream costs, unbiased and lower-variance score-function gradients,
baselines (decaying average, neural, user value), their state, errors, Jit and compiled.

Equality with Pyro on the same draws is in ``test_estimator_conformance.py``.
"""

import math
import warnings

import pytest
import torch

import pyrolite as pyro
import pyrolite.distributions as dist
from pyrolite import poutine
from pyrolite.distributions import constraints
from pyrolite.distributions.testing.fakes import NonreparameterizedBeta, NonreparameterizedNormal
from pyrolite.infer import SVI, JitTraceGraph_ELBO, Trace_ELBO, TraceGraph_ELBO
from pyrolite.optim import SGD, Adam

# --- helpers --------------------------------------------------------------------------


def grads_of(elbo, model, guide, *args, names, lib=pyro):
    """(loss, {name: grad of the unconstrained param, None if it got none}) of one
    ``loss_and_grads``; ``lib`` is pyrolite, or pyro-ppl as the oracle."""
    store = lib.get_param_store()
    for name in names:
        if name in store:
            lib.param(name).unconstrained().grad = None
    loss = elbo.loss_and_grads(model, guide, *args)
    grads = {n: lib.param(n).unconstrained().grad for n in names}
    return loss, {n: None if g is None else g.clone() for n, g in grads.items()}


def gradient_samples(elbo, model, guide, names, count, *args):
    """``count`` single-estimate gradients, flattened and stacked: (count, num elements)."""
    rows = []
    for _ in range(count):
        _, grads = grads_of(elbo, model, guide, *args, names=names)
        rows.append(torch.cat([grads[n].reshape(-1) for n in names]))
    return torch.stack(rows)


# --- the downstream cost ----------------------------------------------------------------


def test_loss_equals_trace_elbo_and_the_plate_element_sees_only_its_own_terms():
    x = torch.tensor([0.5, -1.0, 2.0])

    def model():
        with pyro.plate("data", 3):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(z, 1.0), obs=x)

    def guide():
        m = pyro.param("m", torch.tensor([0.1, 0.2, 0.3]))
        with pyro.plate("data", 3):
            pyro.sample("z", NonreparameterizedNormal(m, 1.0))

    pyro.set_rng_seed(1)
    loss, grads = grads_of(TraceGraph_ELBO(), model, guide, names=["m"])
    pyro.set_rng_seed(1)
    z = poutine.trace(guide).get_trace().nodes["z"]["value"]
    m = pyro.param("m").detach()
    normal = torch.distributions.Normal
    cost = normal(0.0, 1.0).log_prob(z) + normal(z, 1.0).log_prob(x) - normal(m, 1.0).log_prob(z)
    # d/dm of -(log q(z_i) * cost_i): element i's cost only (Rao-Blackwellized by the plate)
    assert torch.allclose(grads["m"], -(z - m) * cost, atol=1e-5)
    pyro.set_rng_seed(1)
    assert loss == pytest.approx(Trace_ELBO().loss(model, guide), abs=1e-5)
    assert loss == pytest.approx(-cost.sum().item(), abs=1e-5)


def test_terms_that_do_not_depend_on_a_draw_are_left_out_of_its_cost():
    """b's draw does not use a's value: b's cost has neither a's terms nor x_a."""

    def model():
        a = pyro.sample("a", dist.Normal(0.0, 1.0))
        b = pyro.sample("b", dist.Normal(0.0, 1.0))
        pyro.sample("x_a", dist.Normal(a, 1.0), obs=torch.tensor(1.0))
        pyro.sample("x_b", dist.Normal(b, 1.0), obs=torch.tensor(-1.0))

    def guide():
        pa = pyro.param("pa", torch.tensor(0.2))
        pb = pyro.param("pb", torch.tensor(-0.3))
        pyro.sample("a", NonreparameterizedNormal(pa, 1.0))
        pyro.sample("b", NonreparameterizedNormal(pb, 1.0))

    pyro.set_rng_seed(2)
    _, grads = grads_of(TraceGraph_ELBO(), model, guide, names=["pa", "pb"])
    pyro.set_rng_seed(2)
    tr = poutine.trace(guide).get_trace()
    a, b = tr.nodes["a"]["value"], tr.nodes["b"]["value"]
    n = torch.distributions.Normal
    cost_b = (
        n(0.0, 1.0).log_prob(b) + n(b, 1.0).log_prob(torch.tensor(-1.0)) - n(-0.3, 1.0).log_prob(b)
    )
    cost_a = (
        n(0.0, 1.0).log_prob(a) + n(a, 1.0).log_prob(torch.tensor(1.0)) - n(0.2, 1.0).log_prob(a)
    )
    assert grads["pb"].item() == pytest.approx(-((b + 0.3) * cost_b).item(), abs=1e-5)
    assert grads["pa"].item() == pytest.approx(-((a - 0.2) * cost_a).item(), abs=1e-5)


def test_a_draw_that_feeds_a_later_site_carries_that_sites_terms():
    """Guide b ~ q(b | a): a's cost includes b's terms and b's observation."""

    def model():
        a = pyro.sample("a", dist.Normal(0.0, 1.0))
        b = pyro.sample("b", dist.Normal(a, 1.0))
        pyro.sample("x", dist.Normal(b, 1.0), obs=torch.tensor(0.5))

    def guide():
        pa = pyro.param("pa", torch.tensor(0.2))
        a = pyro.sample("a", NonreparameterizedNormal(pa, 1.0))
        pyro.sample("b", dist.Normal(a * 0.5, 1.0))  # reparameterized, but fed by a

    pyro.set_rng_seed(3)
    _, grads = grads_of(TraceGraph_ELBO(), model, guide, names=["pa"])
    pyro.set_rng_seed(3)
    tr = poutine.trace(guide).get_trace()
    a, b = tr.nodes["a"]["value"], tr.nodes["b"]["value"].detach()
    n = torch.distributions.Normal
    cost = (
        n(0.0, 1.0).log_prob(a)
        + n(a, 1.0).log_prob(b)
        + n(b, 1.0).log_prob(torch.tensor(0.5))
        - n(0.2, 1.0).log_prob(a)
        - n(a * 0.5, 1.0).log_prob(b)
    )
    # score-function part of d/dpa, plus the pathwise part through b = a/2 + eps (none:
    # a is not reparameterized, so b's draw carries no gradient to pa)
    assert grads["pa"].item() == pytest.approx(-((a - 0.2) * cost).item(), abs=1e-5)


def test_a_mixture_assignment_indexes_its_way_into_the_cost():
    """locs[k]: the observation depends on the Categorical draw through indexing."""
    data = torch.tensor([-2.0, 0.1, 2.5])
    locs = torch.tensor([-2.0, 2.0])

    def model():
        with pyro.plate("data", 3):
            k = pyro.sample("k", dist.Categorical(torch.tensor([0.5, 0.5])))
            pyro.sample("obs", dist.Normal(locs[k], 1.0), obs=data)

    def guide():
        logits = pyro.param("logits", torch.zeros(3, 2))
        with pyro.plate("data", 3):
            pyro.sample("k", dist.Categorical(logits=logits))

    pyro.set_rng_seed(4)
    _, grads = grads_of(TraceGraph_ELBO(), model, guide, names=["logits"])
    pyro.set_rng_seed(4)
    k = poutine.trace(guide).get_trace().nodes["k"]["value"]
    cost = math.log(0.5) + torch.distributions.Normal(locs[k], 1.0).log_prob(data) - math.log(0.5)
    score_grad = torch.nn.functional.one_hot(k, 2) - 0.5  # d log softmax at logits 0
    assert torch.allclose(grads["logits"], -score_grad * cost[:, None], atol=1e-5)


# --- unbiased, and variance reduced ---------------------------------------------------


def test_many_particle_gradient_is_the_analytic_elbo_gradient():
    """z ~ N(0, 1), x | z ~ N(z, 1), q = N(m, s) scored by its score function:
    ELBO(m, s) = const - m**2/2 - (x - m)**2/2 - s**2 + log s, so
    d/dm = x - 2m and d/d(log s) = s * (1/s - 2s)."""
    x, m0, s0 = 1.5, 0.2, 0.8

    def model():
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        pyro.sample("x", dist.Normal(z, 1.0), obs=torch.tensor(x))

    def guide():
        m = pyro.param("m", torch.tensor(m0))
        s = pyro.param("s", torch.tensor(s0), constraint=constraints.positive)
        pyro.sample("z", NonreparameterizedNormal(m, s))

    elbo = TraceGraph_ELBO(num_particles=4000, vectorize_particles=True, max_plate_nesting=0)
    estimates = gradient_samples(elbo, model, guide, ["m", "s"], 10)
    mean, stderr = estimates.mean(0), estimates.std(0) / math.sqrt(len(estimates))
    analytic = -torch.tensor([x - 2 * m0, s0 * (1 / s0 - 2 * s0)])  # of the loss, -ELBO
    # within 4 standard errors of the 10 estimates (each a mean of 4000 particles)
    assert torch.all((mean - analytic).abs() < 4 * stderr + 1e-3), (mean, analytic, stderr)
    assert torch.all(stderr < 0.05)  # the check above has teeth


def _chain():
    """Guide: a ~ q(a), then b ~ q(b | a); a's observation is noisy and loud (x_a far out),
    which only a's cost needs, while b's cost is just b's terms."""

    def model():
        a = pyro.sample("a", dist.Normal(0.0, 1.0))
        pyro.sample("x_a", dist.Normal(a, 0.5), obs=torch.tensor(4.0))
        b = pyro.sample("b", dist.Normal(0.0, 1.0))
        pyro.sample("x_b", dist.Normal(b, 1.0), obs=torch.tensor(0.5))

    def guide():
        pa = pyro.param("pa", torch.tensor(0.0))
        pb = pyro.param("pb", torch.tensor(0.0))
        pyro.sample("a", NonreparameterizedNormal(pa, 1.0))
        pyro.sample(
            "b",
            NonreparameterizedNormal(pb, 1.0),
            infer={"baseline": {"use_decaying_avg_baseline": True, "baseline_beta": 0.95}},
        )

    return model, guide


def _mixture():
    """A Categorical assignment per data point, in a plate, next to a global latent with
    loud observations of its own (noise to the assignments' costs, which Trace_ELBO's
    plate-only Rao-Blackwellization keeps and TraceGraph drops). The points lie between
    the clusters, so both assignments cost about the same large amount: an offset the
    baseline removes."""
    data = torch.tensor([-0.3, 0.1, 0.4, -0.2, 0.0, 0.2])
    other = torch.linspace(-1.0, 1.0, 20)
    locs = torch.tensor([-2.0, 2.0])

    def model():
        g = pyro.sample("g", dist.Normal(0.0, 1.0))
        with pyro.plate("other", len(other)):
            pyro.sample("y", dist.Normal(g, 0.3), obs=other)
        with pyro.plate("data", len(data)):
            k = pyro.sample("k", dist.Categorical(torch.tensor([0.5, 0.5])))
            pyro.sample("obs", dist.Normal(locs[k], 0.5), obs=data)

    def guide():
        logits = pyro.param("logits", torch.zeros(len(data), 2))
        pyro.sample("g", dist.Normal(0.2, 0.4))
        with pyro.plate("data", len(data)):
            pyro.sample(
                "k",
                dist.Categorical(logits=logits),
                infer={"baseline": {"use_decaying_avg_baseline": True}},
            )

    return model, guide


@pytest.mark.parametrize(
    "program, names", [(_chain, ["pb"]), (_mixture, ["logits"])], ids=["chain", "mixture"]
)
def test_gradient_variance_is_below_trace_elbos_and_the_baseline_lowers_it(program, names):
    model, guide = program()
    pyro.set_rng_seed(5)
    trace_var = gradient_samples(Trace_ELBO(), model, guide, names, 600).var(0).sum()
    pyro.set_rng_seed(5)
    graph_var = gradient_samples(_no_baselines(TraceGraph_ELBO()), model, guide, names, 600)
    graph_var = graph_var.var(0).sum()
    elbo = TraceGraph_ELBO()
    gradient_samples(elbo, model, guide, names, 100)  # the running average settles
    pyro.set_rng_seed(5)
    baseline_var = gradient_samples(elbo, model, guide, names, 600).var(0).sum()
    ratio, further = (graph_var / trace_var).item(), (baseline_var / graph_var).item()
    assert ratio < 0.7, f"TraceGraph/Trace_ELBO gradient variance ratio {ratio:.3f}"
    assert further < 0.8, f"baseline/no-baseline gradient variance ratio {further:.3f}"


def _no_baselines(elbo):
    """``elbo`` with every site's baseline request dropped (same program otherwise)."""
    original = elbo.particle

    def particle(plan, model_trace, guide_trace):
        for site in guide_trace.nodes.values():
            if site["type"] == "sample":
                site["infer"] = {k: v for k, v in site["infer"].items() if k != "baseline"}
        return original(plan, model_trace, guide_trace)

    elbo.particle = particle
    return elbo


# --- seed 004: steps to converge ------------------------------------------------------

DATA = torch.cat([torch.ones(6), torch.zeros(4)])


def coin_model(baseline):
    f = pyro.sample("latent_fairness", dist.Beta(10.0, 10.0))
    with pyro.plate("data_plate"):
        pyro.sample("obs", dist.Bernoulli(f), obs=DATA)


def coin_guide(baseline):
    alpha_q = pyro.param("alpha_q", torch.tensor(15.0), constraint=constraints.positive)
    beta_q = pyro.param("beta_q", torch.tensor(15.0), constraint=constraints.positive)
    pyro.sample(
        "latent_fairness",
        NonreparameterizedBeta(alpha_q, beta_q),
        infer=dict(baseline=baseline(alpha_q) if callable(baseline) else baseline),
    )


def steps_to_converge(baseline, seed, optim=None, max_steps=4000):
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    optim = optim or Adam({"lr": 0.0005, "betas": (0.93, 0.999)})
    svi = SVI(coin_model, coin_guide, optim, TraceGraph_ELBO())
    for k in range(max_steps):
        svi.step(baseline)
        alpha, beta = pyro.param("alpha_q").item(), pyro.param("beta_q").item()
        if abs(alpha - 16.0) < 0.8 and abs(beta - 14.0) < 0.8:
            return k
    return max_steps


def test_seed_004_the_decaying_average_baseline_needs_35_percent_fewer_steps():
    with_baseline = {"use_decaying_avg_baseline": True, "baseline_beta": 0.90}
    without = {"use_decaying_avg_baseline": False, "baseline_beta": 0.90}
    steps_with = [steps_to_converge(with_baseline, seed) for seed in range(10)]
    steps_without = [steps_to_converge(without, seed) for seed in range(10)]
    mean_with, mean_without = sum(steps_with) / 10, sum(steps_without) / 10
    assert max(steps_with) < 4000 and max(steps_without) < 4000
    assert mean_with <= 0.65 * mean_without, (steps_with, steps_without)


def test_seed_004_a_neural_baseline_on_a_constant_input_converges():
    net = torch.nn.Linear(1, 1)
    with torch.no_grad():
        net.weight.zero_()
        net.bias.zero_()

    def baseline(alpha_q):
        pyro.module("my_baseline", net)
        return {"nn_baseline": net, "nn_baseline_input": torch.ones(1)}

    def per_param_args(module_name, param_name):
        if "baseline" in module_name or "baseline" in param_name:
            return {"lr": 0.1}
        return {"lr": 0.0005, "betas": (0.93, 0.999)}

    steps = [steps_to_converge(baseline, seed, Adam(per_param_args)) for seed in range(3)]
    assert max(steps) < 4000, steps
    assert abs(net.bias.item()) > 0.5  # it learned to track the cost (about -6 here)


# --- baselines: state, gradients, errors --------------------------------------------


def _one_site(baseline):
    """One Bernoulli latent: the downstream cost is log p(z) - log q(z) = -loss."""

    def model():
        pyro.sample("z", dist.Bernoulli(0.3))

    def guide():
        p = pyro.param("p", torch.tensor(0.6), constraint=constraints.unit_interval)
        pyro.sample("z", dist.Bernoulli(p), infer={"baseline": baseline()})

    return model, guide


def test_the_decaying_average_is_updated_in_place_once_per_step_from_the_cost():
    model, guide = _one_site(lambda: {"use_decaying_avg_baseline": True, "baseline_beta": 0.75})
    svi = SVI(model, guide, SGD({"lr": 0.0}), TraceGraph_ELBO())
    name = "baseline_avg_downstream_cost/z"
    expected, state, costs = 0.0, None, set()
    for _ in range(8):
        cost = -svi.step()
        costs.add(round(cost, 4))
        expected = 0.75 * expected + 0.25 * cost
        current = svi.elbo.state_tensors()[name]
        state = current if state is None else state
        assert current is state  # the same tensor: updated in place
        assert current.item() == pytest.approx(expected, abs=1e-6)
    assert len(costs) == 2  # both outcomes were drawn: the average saw both costs
    assert svi.elbo.get_state()[name].item() == pytest.approx(expected, abs=1e-6)


def test_a_failed_step_or_an_evaluation_leaves_the_average_alone():
    model, guide = _one_site(lambda: {"use_decaying_avg_baseline": True})
    elbo = TraceGraph_ELBO()
    svi = SVI(model, guide, SGD({"lr": 0.01}), elbo)
    for _ in range(3):
        svi.step()
    before = elbo.get_state()
    svi.evaluate_loss()
    elbo.loss(model, guide)
    assert torch.equal(
        elbo.get_state()["baseline_avg_downstream_cost/z"], before["baseline_avg_downstream_cost/z"]
    )

    def bad_model():
        pyro.sample("z", dist.Bernoulli(0.3))
        pyro.factor("boom", torch.tensor(float("nan")))

    bad = SVI(bad_model, guide, SGD({"lr": 0.01}), elbo)
    with pytest.raises(ValueError, match="log_factor"):  # validation stops the step
        bad.step()
    with pyro.validation_enabled(False), pytest.raises(FloatingPointError, match="not applied"):
        bad.step()
    assert torch.equal(
        elbo.get_state()["baseline_avg_downstream_cost/z"], before["baseline_avg_downstream_cost/z"]
    )


def test_a_checkpoint_with_a_decaying_average_resumes_exactly(tmp_path):
    baseline = {"use_decaying_avg_baseline": True, "baseline_beta": 0.9}

    def run(steps, save_at=None, load=None):
        pyro.clear_param_store()
        pyro.set_rng_seed(11)
        svi = SVI(coin_model, coin_guide, Adam({"lr": 0.01}), TraceGraph_ELBO())
        if load is not None:
            svi.load(load)
        while svi.step_count < steps:
            svi.step(baseline)
            if svi.step_count == save_at:
                svi.save(tmp_path / "mid.pt")
        return pyro.param("alpha_q").item(), pyro.param("beta_q").item(), svi.elbo.get_state()

    straight = run(30, save_at=15)
    resumed = run(30, load=tmp_path / "mid.pt")
    assert straight[:2] == resumed[:2]
    assert torch.equal(
        straight[2]["baseline_avg_downstream_cost/latent_fairness"],
        resumed[2]["baseline_avg_downstream_cost/latent_fairness"],
    )


def test_a_checkpoint_whose_average_has_the_wrong_shape_is_refused_and_nothing_changes(tmp_path):
    model, guide = _one_site(lambda: {"use_decaying_avg_baseline": True})
    svi = SVI(model, guide, SGD({"lr": 0.01}), TraceGraph_ELBO())
    svi.step()
    state = svi.get_state()
    before = svi.elbo.get_state()
    state["elbo"] = {"baseline_avg_downstream_cost/z": torch.zeros(5)}
    with pytest.raises(ValueError, match=r"baseline_avg_downstream_cost/z.*shape \(5,\)"):
        svi.set_state(state)
    assert torch.equal(
        svi.elbo.get_state()["baseline_avg_downstream_cost/z"],
        before["baseline_avg_downstream_cost/z"],
    )


def test_the_neural_baseline_learns_from_its_own_loss_and_the_elbo_from_its_own():
    torch.manual_seed(0)
    net = torch.nn.Linear(2, 1)
    features = torch.tensor([0.5, -1.0])

    def model(kind):
        pyro.sample("z", dist.Bernoulli(0.3))

    def guide(kind):
        pyro.module("net", net)
        p = pyro.param("p", torch.tensor(0.6), constraint=constraints.unit_interval)
        if kind == "nn":
            baseline = {"nn_baseline": net, "nn_baseline_input": features}
        else:  # the same baseline value, detached: the ELBO gradient must not change
            baseline = {"baseline_value": net(features).detach()}
        pyro.sample("z", dist.Bernoulli(p), infer={"baseline": baseline})

    names = ["p", "net$$$weight", "net$$$bias"]
    grads = {}
    for kind in ("nn", "value"):
        pyro.set_rng_seed(3)
        grads[kind] = grads_of(TraceGraph_ELBO(), model, guide, kind, names=names)[1]
    assert torch.allclose(grads["nn"]["p"], grads["value"]["p"])
    assert grads["value"]["net$$$bias"] is None  # a detached value trains nothing
    pyro.set_rng_seed(3)
    z = poutine.trace(guide).get_trace("value").nodes["z"]["value"]
    cost = torch.log(torch.where(z > 0, 0.3, 0.7)) - torch.log(torch.where(z > 0, 0.6, 0.4))
    b = net(features).detach()
    # d/dbias (cost - b)**2 = -2 (cost - b); d/dweight = that times the input
    assert torch.allclose(grads["nn"]["net$$$bias"], -2 * (cost - b), atol=1e-5)
    assert torch.allclose(grads["nn"]["net$$$weight"], -2 * (cost - b) * features, atol=1e-5)


@pytest.mark.parametrize(
    "baseline, error, match",
    [
        (
            {"use_decaying_avg_baselin": True},
            ValueError,
            r"'use_decaying_avg_baselin' \(did you mean 'use_decaying_avg_baseline'\?\) "
            r"at site 'z'.*options are",
        ),
        (
            {"use_decaying_avg_baseline": True, "baseline_value": torch.tensor(0.0)},
            ValueError,
            r"site 'z' asks for use_decaying_avg_baseline and baseline_value at once",
        ),
        (
            {"use_decaying_avg_baseline": True, "baseline_beta": 1.0},
            ValueError,
            r"baseline_beta at site 'z' must be a number in \[0, 1\)",
        ),
        ({"use_decaying_avg_baseline": True, "baseline_beta": -0.1}, ValueError, r"\[0, 1\)"),
        (
            {"nn_baseline": "not a module"},
            TypeError,
            r"nn_baseline at site 'z' must be an nn.Module",
        ),
        (
            {"baseline_value": torch.zeros(4, 1)},
            ValueError,
            r"site 'z' has shape \(4, 1\), which does not broadcast to the site's batch "
            r"shape \(4,\)",
        ),
        ("decaying", TypeError, r"infer\['baseline'\] at site 'z' must be a dict"),
    ],
    ids=["typo", "two-kinds", "beta-1", "beta-negative", "not-a-module", "shape", "not-a-dict"],
)
def test_bad_baseline_configuration_names_the_site(baseline, error, match):
    def model(bad):
        with pyro.plate("data", 4):
            pyro.sample("z", dist.Bernoulli(0.3))

    def guide(bad):
        p = pyro.param("p", torch.full((4,), 0.6), constraint=constraints.unit_interval)
        with pyro.plate("data", 4):
            pyro.sample("z", dist.Bernoulli(p), infer={"baseline": baseline if bad else {}})

    svi = SVI(model, guide, SGD({"lr": 0.01}), TraceGraph_ELBO())
    svi.step(False)
    svi.step(False)
    for _ in range(2):  # on every step, not only the first
        with pytest.raises(error, match=match):
            svi.step(True)


def test_an_nn_baseline_of_the_wrong_shape_names_both_shapes():
    _, model, guide = _nn_program(torch.nn.Linear(3, 2), size=4, features=3)
    with pytest.raises(ValueError, match=r"nn_baseline at site 'z' has shape \(4, 2\).*\(4,\)"):
        TraceGraph_ELBO().loss_and_grads(model, guide)


def test_a_baseline_on_a_reparameterized_site_warns_once_that_it_is_unused():
    def model():
        pyro.sample("z", dist.Normal(0.0, 1.0))

    def guide():
        loc = pyro.param("loc", torch.tensor(0.0))
        pyro.sample(
            "z", dist.Normal(loc, 1.0), infer={"baseline": {"use_decaying_avg_baseline": True}}
        )

    svi = SVI(model, guide, SGD({"lr": 0.01}), TraceGraph_ELBO())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            svi.step()
    unused = [w for w in caught if "baseline is unused" in str(w.message)]
    assert len(unused) == 1 and "'z'" in str(unused[0].message)
    assert svi.elbo.get_state() == {}


# --- Jit and compiled ----------------------------------------------------------------


def _nn_program(net=None, size=3, features=1):
    """Bernoulli draws in a plate of ``size``, with a neural baseline fed ``features``
    ones per element (by default one baseline per element: (3, 1) -> (3,))."""
    if net is None:
        net = torch.nn.Sequential(torch.nn.Linear(features, 1), torch.nn.Flatten(0))

    def model():
        with pyro.plate("data", size):
            pyro.sample("z", dist.Bernoulli(0.3))

    def guide():
        pyro.module("net", net)
        p = pyro.param("p", torch.full((size,), 0.6), constraint=constraints.unit_interval)
        with pyro.plate("data", size):
            baseline = {"nn_baseline": net, "nn_baseline_input": torch.ones(size, features)}
            pyro.sample("z", dist.Bernoulli(p), infer={"baseline": baseline})

    return net, model, guide


def _decaying_program():
    return None, coin_model, coin_guide


@pytest.mark.parametrize("program", [_decaying_program, _nn_program], ids=["decaying", "nn"])
@pytest.mark.parametrize("variant", ["jit", "compiled"])
def test_jit_and_compiled_steps_equal_eager_with_baselines(program, variant):
    runs = []
    for compiled in (False, True):
        pyro.clear_param_store()
        net, model, guide = program()
        if net is not None:
            torch.manual_seed(0)
            net[0].reset_parameters()
        elbo = JitTraceGraph_ELBO() if (compiled and variant == "jit") else TraceGraph_ELBO()
        options = {"backend": "aot_eager"} if (compiled and variant == "compiled") else False
        svi = SVI(model, guide, Adam({"lr": 0.05}), elbo, compile=options)
        args = ({"use_decaying_avg_baseline": True, "baseline_beta": 0.8},) if net is None else ()
        pyro.set_rng_seed(9)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no fallback to eager
            losses = [svi.step(*args) for _ in range(6)]
        params = {n: v.detach().clone() for n, v in pyro.get_param_store().items()}
        runs.append((losses, params, elbo.get_state(), svi.compile_info))
    (eager_losses, eager_params, eager_state, _), (losses, params, state, info) = runs
    if variant == "jit":
        assert runs[1][0] and elbo.compile_count == 1
    else:
        assert info.compiled_graphs == 1 and info.fallback_reasons == ()
    assert losses == pytest.approx(eager_losses, abs=1e-5, rel=1e-5)
    for n, v in eager_params.items():
        assert torch.allclose(params[n], v, atol=1e-5, rtol=1e-5), n
    assert state.keys() == eager_state.keys()
    for n, v in eager_state.items():
        assert torch.allclose(state[n], v, atol=1e-5, rtol=1e-5), n


def test_elbo_module_and_loss_and_grads_advance_the_average_themselves():
    model, guide = _one_site(lambda: {"use_decaying_avg_baseline": True})
    elbo = TraceGraph_ELBO()
    module = elbo(model, guide)
    name = "baseline_avg_downstream_cost/z"
    first = -module().item()
    assert elbo.get_state()[name].item() == pytest.approx(0.1 * first, abs=1e-6)
    second = -elbo.loss_and_grads(model, guide)
    assert elbo.get_state()[name].item() == pytest.approx(
        0.9 * 0.1 * first + 0.1 * second, abs=1e-6
    )


def test_dense_trace_edges_work_on_any_edge_set():
    tr = poutine.Trace(graph_type="dense")
    tr.add_node("a", type="sample", name="a")
    tr.add_edge("a", "b")  # b is not in the trace yet: added as a bare node
    tr.add_edge("b", "c")
    assert list(tr.nodes) == ["a", "b", "c"] and tr.nodes["c"]["type"] == "node"
    assert tr.successors("a") == {"b"} and tr.predecessors("c") == {"b"}
    assert tr.topological_sort(reverse=True) == ["c", "b", "a"]
    copied = tr.copy()
    assert sorted(copied.edges) == [("a", "b"), ("b", "c")]


def test_clearing_the_param_store_starts_the_average_afresh_as_in_pyro():
    model, guide = _one_site(lambda: {"use_decaying_avg_baseline": True})
    elbo = TraceGraph_ELBO()
    svi = SVI(model, guide, SGD({"lr": 0.01}), elbo)
    for _ in range(3):
        svi.step()
    assert elbo.get_state()["baseline_avg_downstream_cost/z"].item() != 0.0
    pyro.clear_param_store()  # Pyro keeps the average in the store: it goes with it
    assert elbo.get_state() == {}
    cost = -svi.step()
    assert elbo.get_state()["baseline_avg_downstream_cost/z"].item() == pytest.approx(
        0.1 * cost, abs=1e-6
    )


@pytest.mark.parametrize("kind", ["nn", "value", "decaying"])
def test_loss_and_gradients_equal_pyros_with_each_baseline(kind):
    """On the same draws (same seed), for three estimates in a row (so a decaying average
    has moved): the loss and every gradient, the neural baseline's included, equal
    pyro-ppl's TraceGraph_ELBO."""
    pyro_oracle = pytest.importorskip("pyro")
    import pyro.distributions as pdist
    from pyro.distributions import constraints as pconstraints

    data = torch.tensor([1.0, 0.0, 1.0])

    def program(lib, d, c):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.Flatten(0))

        def model():
            f = lib.sample("f", d.Normal(0.0, 1.0))
            with lib.plate("data", 3):
                lib.sample("z", d.Bernoulli(torch.sigmoid(f).expand(3)))
                lib.sample("x", d.Normal(lib.sample("y", d.Normal(0.0, 1.0)), 1.0), obs=data)

        def guide():
            lib.module("net", net)
            a = lib.param("a", torch.tensor(0.3))
            p = lib.param("p", torch.full((3,), 0.4), constraint=c.unit_interval)
            f = lib.sample("f", d.Normal(a, 0.8))  # reparameterized, upstream of z
            with lib.plate("data", 3):
                features = torch.stack([f.detach().expand(3), torch.arange(3.0)], -1)
                baseline = {
                    "nn": {"nn_baseline": net, "nn_baseline_input": features},
                    "value": {"baseline_value": net(features)},
                    "decaying": {"use_decaying_avg_baseline": True, "baseline_beta": 0.7},
                }[kind]
                lib.sample("z", d.Bernoulli(p), infer={"baseline": baseline})
                lib.sample("y", d.Normal(p, 1.0))

        return model, guide

    names = ["a", "p", "net$$$0.weight", "net$$$0.bias"]
    results = {}
    for lib, d, c in ((pyro, dist, constraints), (pyro_oracle, pdist, pconstraints)):
        lib.clear_param_store()
        model, guide = program(lib, d, c)
        elbo = lib.infer.TraceGraph_ELBO()
        runs = []
        for seed in (1, 2, 3):
            torch.manual_seed(seed)
            runs.append(grads_of(elbo, model, guide, names=names, lib=lib))
        results[lib] = runs
    for (ours, our_grads), (theirs, their_grads) in zip(results[pyro], results[pyro_oracle]):
        assert ours == pytest.approx(theirs, abs=1e-5)
        for n in names:
            if their_grads[n] is None:
                assert our_grads[n] is None or not our_grads[n].any(), n
            else:
                assert torch.allclose(our_grads[n], their_grads[n], atol=1e-5), n
