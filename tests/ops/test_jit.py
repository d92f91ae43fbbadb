"""``pyrolite.ops.jit.trace``: compiled calls equal eager ones, reach the ParamStore
leaves, stay random, recompile per signature, and fall back (warning once) when a
trace would be wrong."""

import warnings

import pytest
import torch

import pyrolite as pyro
import pyrolite.distributions as dist
from pyrolite import poutine
from pyrolite.distributions import constraints
from pyrolite.ops.jit import CompiledFunction, JitFallbackWarning, trace


def noisy_weighted_sum(x, scale=1.0):
    w = pyro.param("w", torch.tensor([0.5, 2.0]), constraint=constraints.positive)
    b = pyro.param("b", torch.tensor(0.1))
    noise = dist.Normal(0.0, 1.0).rsample(x.shape[:-1])
    return ((w * x).sum(-1) + b + scale * noise).sum(), noise


def run_with_grads(fn, *args, seed=1):
    pyro.set_rng_seed(seed)
    out, noise = fn(*args)
    out.backward()
    store = pyro.get_param_store()
    grads = {n: store.unconstrained(n).grad.clone() for n in ("w", "b")}
    for n in ("w", "b"):
        store.unconstrained(n).grad = None
    return out.detach(), noise, grads


def test_compiled_equals_eager_values_and_grads():
    compiled = trace(noisy_weighted_sum)
    x = torch.randn(5, 2)
    results = [run_with_grads(compiled, x) for _ in range(3)]  # compile, then graph twice
    expected = run_with_grads(noisy_weighted_sum, x)
    assert compiled.compile_count == 1
    for out, noise, grads in results:
        assert torch.allclose(out, expected[0], atol=1e-5)
        assert torch.allclose(noise, expected[1], atol=1e-6)
        for name in ("w", "b"):
            assert torch.allclose(grads[name], expected[2][name], atol=1e-5)
    # d/d log w of sum_i w * x_i = w * sum_i x_i; d/db = number of rows.
    w = pyro.param("w").detach()
    assert torch.allclose(expected[2]["w"], w * x.sum(0), atol=1e-5)
    assert expected[2]["b"].item() == pytest.approx(5.0)


def test_params_are_created_lazily_on_the_first_call():
    compiled = trace(noisy_weighted_sum)
    assert "w" not in pyro.get_param_store()
    compiled(torch.ones(3, 2))
    assert set(pyro.get_param_store().keys()) == {"w", "b"}
    leaf = pyro.get_param_store().unconstrained("w")
    compiled(torch.ones(3, 2))  # traced call: the store's leaf is back in place
    assert pyro.get_param_store().unconstrained("w") is leaf
    assert torch.allclose(pyro.param("w").detach(), torch.tensor([0.5, 2.0]))


def test_sampling_stays_random_between_compiled_calls():
    compiled = trace(noisy_weighted_sum)
    x = torch.zeros(4, 2)
    noises = [compiled(x)[1] for _ in range(4)]
    assert compiled.compile_count == 1
    for i in range(4):
        for j in range(i):
            assert (noises[i] - noises[j]).abs().min() > 1e-6


def test_new_shapes_and_constants_recompile_and_repeats_hit_the_cache():
    compiled = trace(noisy_weighted_sum)
    compiled(torch.ones(3, 2))
    compiled(torch.ones(3, 2))
    assert compiled.compile_count == 1
    compiled(torch.ones(7, 2))
    assert compiled.compile_count == 2
    out, _ = compiled(torch.ones(3, 2), scale=0.0)
    assert compiled.compile_count == 3
    # scale=0.0 was frozen into that graph: no noise, sum_i (0.5 + 2) + 0.1.
    assert out.item() == pytest.approx(3 * 2.6, abs=1e-5)
    compiled(torch.ones(3, 2), scale=0.0)
    compiled(torch.ones(7, 2))
    assert compiled.compile_count == 3


def test_nested_tensor_arguments_are_flattened():
    @trace
    def total(data):
        w = pyro.param("w2", torch.tensor(3.0))
        return w * data["x"].sum() + sum(t.sum() for t in data["pair"])

    data = {"x": torch.ones(2), "pair": (torch.ones(3), torch.full((1,), 5.0))}
    assert [total(data).item() for _ in range(2)] == [14.0, 14.0]
    data2 = {"x": torch.zeros(2), "pair": (torch.ones(3), torch.full((1,), -1.0))}
    assert total(data2).item() == pytest.approx(2.0)  # new values, same graph
    assert total.compile_count == 1


def test_store_changes_are_seen():
    compiled = trace(noisy_weighted_sum)
    x = torch.ones(2, 2)
    compiled(x, scale=0.0)
    pyro.get_param_store()["b"] = torch.tensor(10.0)  # a new leaf for "b"
    out, _ = compiled(x, scale=0.0)
    assert out.item() == pytest.approx(2 * (2.5 + 10.0), abs=1e-5)
    assert compiled.compile_count == 2
    with torch.no_grad():
        pyro.get_param_store().unconstrained("b").fill_(-1.0)  # in place: same graph
    assert compiled(x, scale=0.0)[0].item() == pytest.approx(2 * (2.5 - 1.0), abs=1e-5)
    assert compiled.compile_count == 2


def test_outer_handlers_see_the_params_of_compiled_calls():
    compiled = trace(noisy_weighted_sum)
    for _ in range(2):
        tr = poutine.trace(compiled).get_trace(torch.ones(2, 2))
        assert [n for n, s in tr.nodes.items() if s["type"] == "param"] == ["w", "b"]
        assert torch.allclose(tr.nodes["w"]["value"], torch.tensor([0.5, 2.0]))
        # Sample sites stay inside the compiled function.
        assert not [n for n, s in tr.nodes.items() if s["type"] == "sample"]


def branchy(x):
    loc = pyro.param("loc", torch.tensor(1.0))
    if x.sum() > 0:
        return loc * x.sum()
    return -loc * x.sum() * 10


def test_data_dependent_control_flow_falls_back_with_one_warning():
    compiled = trace(branchy)
    with pytest.warns(JitFallbackWarning, match="branchy.*control flow depends on tensor values"):
        assert compiled(torch.ones(3)).item() == pytest.approx(3.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # Same signature, other branch: eager, so right, and no second warning.
        assert compiled(-torch.ones(3)).item() == pytest.approx(30.0)
        assert compiled(torch.ones(3)).item() == pytest.approx(3.0)
    assert compiled.compile_count == 0


def test_state_outside_the_arguments_is_caught_by_the_check_run():
    calls = []

    @trace
    def stateful(x):
        calls.append(None)
        return pyro.param("c", torch.tensor(1.0)) * x * len(calls)

    with pytest.warns(JitFallbackWarning, match="does not reproduce it"):
        stateful(torch.ones(2))
    assert stateful(torch.ones(2)).sum().item() == pytest.approx(2.0 * len(calls))


def test_ignore_warnings_silences_tracer_warnings():
    def noted(x):
        if torch.jit.is_tracing():
            warnings.warn("a note from the tracer", torch.jit.TracerWarning)
        return x * torch.tensor(2.5)  # a registered constant: harmless, never shown

    def warnings_of(ignore):
        compiled = trace(noted, ignore_warnings=ignore)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            values = [compiled(torch.ones(2)).sum().item() for _ in range(3)]
        assert values == [5.0, 5.0, 5.0] and compiled.compile_count == 1
        return [(w.category, str(w.message)) for w in caught]

    # torch.jit.trace's deprecation notice never reaches users.
    assert warnings_of(False) == [(torch.jit.TracerWarning, "a note from the tracer")]
    assert warnings_of(True) == []


def test_jit_options_reach_torch_jit_trace():
    def tracer_notes(jit_options):
        compiled = trace(noisy_weighted_sum, jit_options=jit_options)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            compiled(torch.ones(2, 2))
        assert compiled.compile_count == 1  # our own check run accepts the graph
        return [str(w.message) for w in caught if w.category is torch.jit.TracerWarning]

    # torch's check_trace re-runs the graph and flags the random op; off by default.
    assert any("nondeterministic nodes" in note for note in tracer_notes({"check_trace": True}))
    assert tracer_notes(None) == []


def test_decorator_forms():
    @trace(ignore_warnings=True)
    def double(x):
        return 2 * x

    assert isinstance(double, CompiledFunction) and double.__name__ == "double"
    assert [double(torch.ones(1)).item() for _ in range(2)] == [2.0, 2.0]
    assert double.compile_count == 1
