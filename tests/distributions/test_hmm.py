"""The parallel-scan ops and DiscreteHMM against left-to-right loops, brute-force sums over
all state paths, a sequential forward algorithm, and Pyro's DiscreteHMM."""

import itertools
import math

import pytest
import torch

import pyrolite
import pyrolite.distributions as dist
from pyrolite.ops.scan import (
    logmatmulexp,
    logmaxmatmul,
    scan_levels,
    sequential_logmatmulexp,
    sequential_logmaxmatmul,
)

F64 = torch.float64


def _naive_logmatmulexp(x, y):
    return (x.unsqueeze(-1) + y.unsqueeze(-3)).logsumexp(-2)


def _loop_product(logits, matmul=_naive_logmatmulexp):
    result = logits[..., 0, :, :]
    for t in range(1, logits.size(-3)):
        result = matmul(result, logits[..., t, :, :])
    return result


# ----------------------------------------------------------------------------- scan ops


def test_logmatmulexp_equals_log_of_matmul_with_broadcast_batch_dims():
    x = torch.randn(3, 1, 4, 5, dtype=F64)
    y = torch.randn(2, 5, 6, dtype=F64)
    expected = torch.log(x.exp() @ y.exp())
    assert logmatmulexp(x, y).shape == (3, 2, 4, 6)
    torch.testing.assert_close(logmatmulexp(x, y), expected, rtol=1e-12, atol=1e-12)


def test_logmatmulexp_is_stable_for_large_logits_and_all_minus_inf_rows():
    x = torch.tensor([[1000.0, 999.0], [-math.inf, -math.inf]], dtype=F64)
    y = torch.tensor([[-1000.0, 0.0], [-1000.0, -math.inf]], dtype=F64)
    result = logmatmulexp(x, y)
    torch.testing.assert_close(result[0], _naive_logmatmulexp(x, y)[0], rtol=1e-14, atol=1e-12)
    assert result[0, 0].item() == pytest.approx(math.log1p(math.exp(-1.0)), abs=1e-12)
    assert torch.equal(result[1], torch.full((2,), -math.inf, dtype=F64))


@pytest.mark.parametrize("T", [1, 2, 3, 5, 8, 13, 100])
def test_sequential_logmatmulexp_equals_left_to_right_loop(T):
    logits = torch.randn(2, 3, T, 4, 4, dtype=F64)
    result = sequential_logmatmulexp(logits)
    assert result.shape == (2, 3, 4, 4)
    torch.testing.assert_close(result, _loop_product(logits), rtol=1e-12, atol=1e-10)


def test_sequential_logmatmulexp_keeps_time_order_of_non_commuting_factors():
    # One-hot permutations: the product of log-permutation matrices is a permutation, and
    # reversing the order changes it.
    perms = [torch.randperm(4) for _ in range(7)]
    logits = torch.stack([torch.eye(4, dtype=F64)[p].log() for p in perms])
    expected = torch.eye(4, dtype=F64)
    for p in perms:
        expected = expected @ torch.eye(4, dtype=F64)[p]
    assert torch.equal(sequential_logmatmulexp(logits).exp(), expected)


def test_sequential_logmatmulexp_gradient_equals_loop_gradient():
    logits = torch.randn(2, 11, 3, 3, dtype=F64, requires_grad=True)
    weights = torch.randn(2, 3, 3, dtype=F64)
    (grad,) = torch.autograd.grad((sequential_logmatmulexp(logits) * weights).sum(), logits)
    (expected,) = torch.autograd.grad((_loop_product(logits) * weights).sum(), logits)
    torch.testing.assert_close(grad, expected, rtol=1e-10, atol=1e-12)


def test_sequential_logmatmulexp_of_empty_chain_is_log_identity():
    result = sequential_logmatmulexp(torch.zeros(2, 0, 3, 3))
    assert result.shape == (2, 3, 3)
    assert torch.equal(result.exp(), torch.eye(3).expand(2, 3, 3))


@pytest.mark.parametrize("T", [1, 6, 13])
def test_sequential_logmaxmatmul_equals_max_plus_loop(T):
    logits = torch.randn(3, T, 4, 4, dtype=F64)
    naive_max = lambda x, y: (x.unsqueeze(-1) + y.unsqueeze(-3)).amax(-2)
    expected = _loop_product(logits, naive_max)
    assert torch.equal(
        logmaxmatmul(logits[:, 0], logits[:, -1]), naive_max(logits[:, 0], logits[:, -1])
    )
    torch.testing.assert_close(sequential_logmaxmatmul(logits), expected, rtol=1e-14, atol=1e-12)


def test_scan_levels_entries_are_products_over_their_time_spans():
    logits = torch.randn(5, 2, 2, dtype=F64)
    levels = scan_levels(logits)
    assert [level.shape[0] for level in levels] == [5, 3, 2, 1]
    spans = {1: [(0, 2), (2, 4), (4, 5)], 2: [(0, 4), (4, 5)], 3: [(0, 5)]}
    for depth, level_spans in spans.items():
        for i, (start, stop) in enumerate(level_spans):
            torch.testing.assert_close(levels[depth][i], _loop_product(logits[start:stop]))


def test_scan_ops_name_the_shapes_when_they_do_not_chain():
    with pytest.raises(ValueError, match=r"shape \(2, 3\).*shape \(4, 2\)"):
        logmatmulexp(torch.zeros(2, 3), torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"\(\.\.\., T, K, K\).*\(5, 2, 3\)"):
        sequential_logmatmulexp(torch.zeros(5, 2, 3))


# ----------------------------------------------------------------------------- references

K, T = 3, 4


def _normal_log_density(x, loc, scale):
    return -0.5 * ((x - loc) / scale) ** 2 - torch.log(scale) - 0.5 * math.log(2 * math.pi)


def _obs_log_likelihood(kind, params, value):
    """``log p(x[..., t] | z[t] = k)``, shape (..., T, K), written without the HMM's code."""
    if kind == "normal":
        loc, scale = params
        return _normal_log_density(value.unsqueeze(-1), loc, scale)
    (logits,) = params
    log_probs = logits.log_softmax(-1)  # (..., T or 1, K, C)
    log_probs = log_probs.expand(value.shape + log_probs.shape[-2:])
    index = value.long()[..., None, None].expand(value.shape + (log_probs.size(-2), 1))
    return log_probs.gather(-1, index).squeeze(-1)


def _make_obs(kind, params):
    if kind == "normal":
        return dist.Normal(*params)
    return dist.Categorical(logits=params[0])


def _brute_force_final_joint(initial_logits, transition_logits, obs_log_lik):
    """``log p(x, z[T-1] = j)`` by summing over all K**(T+1) paths z[-1], z[0..T-1]."""
    num_steps, num_states = obs_log_lik.size(-2), obs_log_lik.size(-1)
    init = initial_logits.log_softmax(-1)
    trans = transition_logits.log_softmax(-1)
    trans = trans.expand(trans.shape[:-3] + (num_steps, num_states, num_states))
    per_final = [[] for _ in range(num_states)]
    for path in itertools.product(range(num_states), repeat=num_steps + 1):
        total = init[..., path[0]]
        for t in range(num_steps):
            total = total + trans[..., t, path[t], path[t + 1]] + obs_log_lik[..., t, path[t + 1]]
        per_final[path[-1]].append(total)
    return torch.stack([torch.stack(terms, -1).logsumexp(-1) for terms in per_final], -1)


def _forward_algorithm(initial_logits, transition_logits, obs_log_lik):
    """Sequential forward recursion over time: ``log p(x)``."""
    alpha = initial_logits.log_softmax(-1)
    trans = transition_logits.log_softmax(-1)
    for t in range(obs_log_lik.size(-2)):
        step = trans[..., t if trans.size(-3) > 1 else 0, :, :]
        alpha = (alpha.unsqueeze(-1) + step).logsumexp(-2) + obs_log_lik[..., t, :]
    return alpha.logsumexp(-1)


def _random_hmm(kind, transition_time, obs_time, batch=(2,), num_steps=T):
    initial_logits = torch.randn(batch + (K,), dtype=F64)
    transition_logits = torch.randn(batch + (transition_time, K, K), dtype=F64)
    if kind == "normal":
        params = (torch.randn(obs_time, K, dtype=F64), torch.rand(obs_time, K, dtype=F64) + 0.5)
        value = torch.randn(batch + (num_steps,), dtype=F64)
    else:
        params = (torch.randn(obs_time, K, 5, dtype=F64),)
        value = torch.randint(5, batch + (num_steps,)).to(F64)
    return initial_logits, transition_logits, params, value


# ----------------------------------------------------------------------------- DiscreteHMM


@pytest.mark.parametrize("kind", ["normal", "categorical"])
@pytest.mark.parametrize("transition_time", [1, T], ids=["homogeneous", "time_varying"])
@pytest.mark.parametrize("obs_time", [1, T], ids=["obs_homogeneous", "obs_time_varying"])
def test_log_prob_and_filter_equal_brute_force_sum_over_paths(kind, transition_time, obs_time):
    initial_logits, transition_logits, params, value = _random_hmm(kind, transition_time, obs_time)
    hmm = dist.DiscreteHMM(initial_logits, transition_logits, _make_obs(kind, params))
    assert hmm.batch_shape == (2,)
    assert hmm.event_shape == ((T,) if max(transition_time, obs_time) > 1 else (1,))
    joint = _brute_force_final_joint(
        initial_logits, transition_logits, _obs_log_likelihood(kind, params, value)
    )
    torch.testing.assert_close(hmm.log_prob(value), joint.logsumexp(-1), rtol=1e-12, atol=1e-12)
    posterior = hmm.filter(value)
    assert isinstance(posterior, dist.Categorical) and posterior.batch_shape == (2,)
    torch.testing.assert_close(posterior.probs, (joint - joint.logsumexp(-1, True)).exp())
    torch.testing.assert_close(posterior.logits.logsumexp(-1), torch.zeros(2, dtype=F64))


def test_log_prob_with_transitions_without_time_dim_and_vector_events():
    initial_logits = torch.randn(K, dtype=F64)
    transition_logits = torch.randn(K, K, dtype=F64)
    loc = torch.randn(T, K, 2, dtype=F64)
    value = torch.randn(5, T, 2, dtype=F64)
    hmm = dist.DiscreteHMM(initial_logits, transition_logits, dist.Normal(loc, 1.0).to_event(1))
    assert (hmm.batch_shape, hmm.event_shape) == ((), (T, 2))
    obs_log_lik = _normal_log_density(value.unsqueeze(-2), loc, torch.ones((), dtype=F64)).sum(-1)
    joint = _brute_force_final_joint(initial_logits, transition_logits.unsqueeze(-3), obs_log_lik)
    torch.testing.assert_close(hmm.log_prob(value), joint.logsumexp(-1), rtol=1e-12, atol=1e-12)


def test_homogeneous_hmm_scores_data_of_any_length():
    initial_logits, transition_logits, params, _ = _random_hmm("normal", 1, 1, batch=())
    hmm = dist.DiscreteHMM(initial_logits, transition_logits, _make_obs("normal", params))
    for num_steps in (1, 2, 5):
        value = torch.randn(num_steps, dtype=F64)
        obs_log_lik = _obs_log_likelihood("normal", params, value)
        expected = _brute_force_final_joint(initial_logits, transition_logits, obs_log_lik)
        torch.testing.assert_close(hmm.log_prob(value), expected.logsumexp(-1))


def test_value_batch_dims_broadcast_against_hmm_batch():
    initial_logits, transition_logits, params, _ = _random_hmm("normal", T, T)
    hmm = dist.DiscreteHMM(initial_logits, transition_logits, _make_obs("normal", params))
    value = torch.randn(6, 1, T, dtype=F64)
    result = hmm.log_prob(value)
    assert result.shape == (6, 2)
    for i in range(6):
        torch.testing.assert_close(result[i], hmm.log_prob(value[i].expand(2, T)))


@pytest.mark.parametrize("transition_time", [1, 200], ids=["homogeneous", "time_varying"])
def test_log_prob_and_gradients_equal_sequential_forward_algorithm_at_T_200(transition_time):
    num_steps = 200
    initial_logits = torch.randn(3, K, dtype=F64, requires_grad=True)
    transition_logits = torch.randn(3, transition_time, K, K, dtype=F64, requires_grad=True)
    loc = torch.randn(num_steps, K, dtype=F64, requires_grad=True)
    value = torch.randn(3, num_steps, dtype=F64)
    hmm = dist.DiscreteHMM(initial_logits, transition_logits, dist.Normal(loc, 1.0))
    obs_log_lik = _normal_log_density(value.unsqueeze(-1), loc, torch.ones((), dtype=F64))
    expected = _forward_algorithm(initial_logits, transition_logits, obs_log_lik)
    actual = hmm.log_prob(value)
    torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-10)
    inputs = (initial_logits, transition_logits, loc)
    grads = torch.autograd.grad(actual.sum(), inputs)
    expected_grads = torch.autograd.grad(expected.sum(), inputs)
    for grad, expected_grad in zip(grads, expected_grads):
        torch.testing.assert_close(grad, expected_grad, rtol=1e-9, atol=1e-10)


def test_log_prob_in_float32_matches_float64_forward_algorithm_at_T_200():
    initial_logits, transition_logits, params, value = _random_hmm(
        "normal", 200, 200, batch=(2,), num_steps=200
    )
    obs_log_lik = _obs_log_likelihood("normal", params, value)
    expected = _forward_algorithm(initial_logits, transition_logits, obs_log_lik)
    obs32 = dist.Normal(params[0].float(), params[1].float())
    hmm = dist.DiscreteHMM(initial_logits.float(), transition_logits.float(), obs32)
    torch.testing.assert_close(hmm.log_prob(value.float()).double(), expected, rtol=1e-5, atol=0)


def test_expand_broadcasts_every_parameter_and_keeps_log_prob():
    initial_logits, transition_logits, params, value = _random_hmm("normal", T, 1, batch=(1,))
    hmm = dist.DiscreteHMM(initial_logits, transition_logits, _make_obs("normal", params))
    expanded = hmm.expand((5, 2))
    assert type(expanded) is dist.DiscreteHMM
    assert (expanded.batch_shape, expanded.event_shape) == ((5, 2), (T,))
    assert expanded.observation_dist.batch_shape == (5, 2, 1, K)
    assert expanded.transition_logits.shape == (5, 2, T, K, K)
    torch.testing.assert_close(expanded.log_prob(value), hmm.log_prob(value).expand(5, 2))
    assert hmm.expand_by([3]).batch_shape == (3, 1)


def test_declared_attributes_match_pyro():
    hmm = dist.DiscreteHMM(torch.zeros(K), torch.zeros(K, K), dist.Categorical(torch.ones(K, 4)))
    assert not hmm.has_rsample and not hmm.has_enumerate_support
    assert set(hmm.arg_constraints) == {"initial_logits", "transition_logits"}
    assert hmm.support.event_dim == 1
    assert bool(hmm.support.check(torch.tensor([0.0, 3.0, 2.0])))
    assert not bool(hmm.support.check(torch.tensor([0.0, 4.0])))
    torch.testing.assert_close(hmm.initial_logits.exp(), torch.full((K,), 1 / K))
    with_duration = dist.DiscreteHMM(
        torch.zeros(K), torch.zeros(K, K), hmm.observation_dist, duration=7
    )
    assert with_duration.event_shape == (7,) and with_duration.expand((2,)).event_shape == (7,)
    assert dist.DiscreteHMM in (getattr(dist, name) for name in dist.__all__)


def test_trace_log_prob_sum_of_observed_hmm_equals_log_prob():
    initial_logits, transition_logits, params, value = _random_hmm("normal", T, T)
    hmm = dist.DiscreteHMM(initial_logits, transition_logits, _make_obs("normal", params))

    def model():
        with pyrolite.plate("batch", 2):
            pyrolite.sample("x", hmm, obs=value)

    trace = pyrolite.poutine.trace(model).get_trace()
    torch.testing.assert_close(trace.log_prob_sum(), hmm.log_prob(value).sum())


# ----------------------------------------------------------------------------- sampling


def _path_probabilities(initial_logits, transition_logits, num_steps):
    """Prior probability of every state path z[0..T-1] (a dict keyed by the path)."""
    num_states = initial_logits.size(-1)
    obs_log_lik = torch.zeros(num_steps, num_states, dtype=F64)
    probs = {}
    for path in itertools.product(range(num_states), repeat=num_steps):
        pinned = obs_log_lik.clone()
        for t, state in enumerate(path):
            pinned[t] = -math.inf
            pinned[t, state] = 0.0
        joint = _brute_force_final_joint(initial_logits, transition_logits, pinned)
        probs[path] = joint.logsumexp(-1).exp().item()
    return probs


@pytest.mark.parametrize(
    "num_states,num_steps,transition_time,duration",
    [(2, 5, 5, None), (3, 3, 1, 3)],
    ids=["time_varying_odd_T", "homogeneous_with_duration"],
)
def test_sampled_paths_follow_brute_force_path_probabilities(
    num_states, num_steps, transition_time, duration
):
    initial_logits = torch.randn(num_states, dtype=F64)
    transition_logits = torch.randn(transition_time, num_states, num_states, dtype=F64)
    # Observations equal to the states make the draws the state paths themselves.
    reveal = dist.Categorical(probs=torch.eye(num_states, dtype=F64))
    hmm = dist.DiscreteHMM(initial_logits, transition_logits, reveal, duration=duration)
    num_draws = 20000
    draws = hmm.sample((num_draws,))
    assert draws.shape == (num_draws, num_steps)
    codes = (draws.long() * num_states ** torch.arange(num_steps)).sum(-1)
    counts = torch.bincount(codes, minlength=num_states**num_steps).double()
    for path, prob in _path_probabilities(initial_logits, transition_logits, num_steps).items():
        code = sum(state * num_states**t for t, state in enumerate(path))
        sigma = math.sqrt(prob * (1 - prob) / num_draws)
        assert abs(counts[code].item() / num_draws - prob) < 4.5 * sigma + 1e-4, path


def test_sample_gathers_each_observation_at_its_state_with_batch_and_event_dims():
    num_steps = 6
    loc = (torch.arange(K, dtype=F64) * 10).expand(num_steps, 2, K).transpose(-1, -2)
    loc = loc + torch.tensor([0.0, 1.0], dtype=F64) + 100 * torch.arange(num_steps)[:, None, None]
    obs = dist.Normal(loc, 1e-9).to_event(1)  # batch (T, K), event (2,)
    hmm = dist.DiscreteHMM(torch.zeros(4, K), torch.zeros(num_steps, K, K), obs)
    draws = hmm.sample((3,))
    assert draws.shape == (3, 4, num_steps, 2)
    states = (draws[..., 0] - 100 * torch.arange(num_steps)) / 10
    assert torch.allclose(states, states.round(), atol=1e-6)
    assert set(states.round().long().unique().tolist()) <= set(range(K))
    torch.testing.assert_close(
        draws[..., 1] - draws[..., 0], torch.ones(3, 4, num_steps, dtype=F64)
    )
    assert not hmm.sample().requires_grad and hmm().shape == (4, num_steps, 2)


def test_sample_of_homogeneous_hmm_without_duration_asks_for_it():
    hmm = dist.DiscreteHMM(torch.zeros(K), torch.zeros(K, K), dist.Normal(torch.zeros(K), 1.0))
    with pytest.raises(ValueError, match="duration=T"):
        hmm.sample()


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "initial_shape,transition_shape,obs_batch,duration,match",
    [
        ((), (K, K), (K,), None, r"initial_logits \(\).*a dim is missing"),
        ((K,), (K,), (K,), None, r"transition_logits \(3,\).*a dim is missing"),
        ((K,), (K + 1, K + 1), (K,), None, r"transition_logits \(4, 4\).*K = 3"),
        ((K,), (K, K), (K + 1,), None, r"observation_dist.batch_shape \(4,\).*K = 3"),
        ((K,), (4, K, K), (5, K), None, r"time sizes 4 \(transitions\) and 5"),
        ((K,), (4, K, K), (K,), 5, r"duration=5 .* T = 4"),
        ((2, K), (3, 1, K, K), (K,), None, r"\(2, 3\).*\(3, 1, 3, 3\).*do not broadcast"),
    ],
)
def test_mismatched_shapes_raise_value_error_naming_them(
    initial_shape, transition_shape, obs_batch, duration, match
):
    obs = dist.Normal(torch.zeros(obs_batch), 1.0)
    with pytest.raises(ValueError, match=match):
        dist.DiscreteHMM(
            torch.zeros(initial_shape), torch.zeros(transition_shape), obs, duration=duration
        )


def test_observation_dist_must_be_a_distribution():
    with pytest.raises(ValueError, match="observation_dist must be a distribution, got Tensor"):
        dist.DiscreteHMM(torch.zeros(K), torch.zeros(K, K), torch.zeros(K))


def test_log_prob_of_misshapen_or_unsupported_value_names_the_shapes():
    hmm = dist.DiscreteHMM(
        torch.zeros(2, K), torch.zeros(T, K, K), dist.Normal(torch.zeros(K), 1.0)
    )
    with pytest.raises(ValueError, match=r"value of shape \(2, 5\).*event_shape \(4,\)"):
        hmm.log_prob(torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"value of shape \(3, 4\).*batch_shape \(2,\)"):
        hmm.log_prob(torch.zeros(3, T))
    vector = dist.DiscreteHMM(
        torch.zeros(K), torch.zeros(K, K), dist.Normal(torch.zeros(K, 2), 1.0).to_event(1)
    )
    with pytest.raises(ValueError, match=r"expected \(\.\.\., T\) \+ \(2,\)"):
        vector.log_prob(torch.zeros(T, 3))
    counts = dist.DiscreteHMM(torch.zeros(K), torch.zeros(K, K), dist.Categorical(torch.ones(K, 4)))
    with pytest.raises(ValueError, match="outside the support"):
        counts.log_prob(torch.tensor([0.0, 7.0]))


# ----------------------------------------------------------------------------- Pyro


@pytest.mark.parametrize("kind", ["normal", "categorical"])
@pytest.mark.parametrize("transition_time", [1, T], ids=["homogeneous", "time_varying"])
def test_log_prob_gradients_and_filter_equal_pyro(kind, transition_time):
    pyro_dist = pytest.importorskip("pyro.distributions")
    initial_logits, transition_logits, params, value = _random_hmm(kind, transition_time, T)
    params = tuple(p.requires_grad_() for p in params)
    inputs = (initial_logits.requires_grad_(), transition_logits.requires_grad_()) + params
    ours = dist.DiscreteHMM(initial_logits, transition_logits, _make_obs(kind, params))
    if kind == "normal":
        pyro_obs = pyro_dist.Normal(*params)
    else:
        pyro_obs = pyro_dist.Categorical(logits=params[0])
    theirs = pyro_dist.DiscreteHMM(initial_logits, transition_logits, pyro_obs)
    assert (ours.batch_shape, ours.event_shape) == (theirs.batch_shape, theirs.event_shape)
    torch.testing.assert_close(ours.log_prob(value), theirs.log_prob(value), rtol=1e-12, atol=1e-12)
    grads = torch.autograd.grad(ours.log_prob(value).sum(), inputs)
    pyro_grads = torch.autograd.grad(theirs.log_prob(value).sum(), inputs)
    for grad, pyro_grad in zip(grads, pyro_grads):
        torch.testing.assert_close(grad, pyro_grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ours.filter(value).logits, theirs.filter(value).logits)


def test_sample_shapes_equal_pyro():
    pyro_dist = pytest.importorskip("pyro.distributions")
    initial_logits = torch.randn(2, K)
    transition_logits = torch.randn(K, K)
    loc = torch.randn(K, 2)
    ours = dist.DiscreteHMM(
        initial_logits, transition_logits, dist.Normal(loc, 1.0).to_event(1), duration=5
    )
    theirs = pyro_dist.DiscreteHMM(
        initial_logits, transition_logits, pyro_dist.Normal(loc, 1.0).to_event(1), duration=5
    )
    assert ours.sample((3,)).shape == theirs.sample((3,)).shape == (3, 2, 5, 2)
    assert ours.expand((4, 2)).event_shape == theirs.expand((4, 2)).event_shape
