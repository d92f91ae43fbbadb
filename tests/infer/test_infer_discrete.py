"""infer_discrete and TraceEnum_ELBO.compute_marginals against independent oracles, in
float64: a Viterbi decoder written here, per-point posteriors by hand, and brute force
over every joint assignment of the enumerated sites (each run with ``poutine.condition``).

Sampling (temperature=1) is checked by chi-square tests at a fixed seed; one call draws
thousands of independent samples by replicating the data along a plate.
"""

import contextlib
import itertools
import math
import warnings

import pytest
import torch

import pyrolite as pyro
import pyrolite.distributions as dist
from pyrolite import poutine
from pyrolite.infer import TraceEnum_ELBO, infer_discrete
from pyrolite.ops.indexing import Vindex

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("float64")  # tests/conftest.py


# --- oracles -----------------------------------------------------------------------------


def joint_posterior(model, sites, *args):
    """Every joint value of ``sites`` ({name: (batch shape, support)}) and its exact
    posterior probability: (dict name -> tensor (M, *shape) of values, probs (M,)), each
    log joint from a run of the model conditioned on that assignment."""
    names = list(sites)
    per_site = []
    for name in names:
        shape, support = sites[name]
        per_site.append(list(itertools.product(support, repeat=math.prod(shape))))
    rows, log_joints = [], []
    for combo in itertools.product(*per_site):
        values = {n: torch.tensor(v).reshape(sites[n][0]) for n, v in zip(names, combo)}
        trace = poutine.trace(poutine.condition(model, data=values)).get_trace(*args)
        rows.append(values)
        log_joints.append(trace.log_prob_sum())
    probs = torch.softmax(torch.stack(log_joints), 0)
    return {n: torch.stack([r[n] for r in rows]) for n in names}, probs


def marginal_of(values, probs, name, support_size):
    """P(site = k) per cell of the site: tensor (*shape, K)."""
    v = values[name]
    return torch.stack(
        [
            (probs.reshape((-1,) + (1,) * (v.dim() - 1)) * (v == k)).sum(0)
            for k in range(support_size)
        ],
        -1,
    )


def pair_marginal(values, probs, a, b, support_size):
    """P(a = i, b = j) of two scalar sites: (K, K)."""
    out = torch.zeros(support_size, support_size, dtype=F64)
    for i, j, p in zip(values[a].tolist(), values[b].tolist(), probs.tolist()):
        out[i, j] += p
    return out


def viterbi(init, trans, locs, scale, ys):
    """The most probable state path of one sequence ``ys`` (T,) of the HMM below, by
    max-product dynamic programming with backpointers, in plain Python floats."""
    K = len(init)

    def emit(k, y):
        return -0.5 * ((y - locs[k]) / scale) ** 2 - math.log(scale) - 0.5 * math.log(2 * math.pi)

    delta = [math.log(init[k]) + emit(k, ys[0]) for k in range(K)]
    back = []
    for y in ys[1:]:
        pointers, new = [], []
        for j in range(K):
            scores = [delta[i] + math.log(trans[i][j]) for i in range(K)]
            best = max(range(K), key=scores.__getitem__)
            pointers.append(best)
            new.append(scores[best] + emit(j, y))
        back.append(pointers)
        delta = new
    state = max(range(K), key=delta.__getitem__)
    path = [state]
    for pointers in reversed(back):
        state = pointers[state]
        path.append(state)
    return path[::-1], max(delta)


# Chi-square critical values at p = 0.001 (upper tail), by degrees of freedom.
CHI2_999 = {1: 10.828, 2: 13.816, 3: 16.266, 4: 18.467, 5: 20.515, 6: 22.458, 7: 24.322, 8: 26.124}


def chi_square(counts, probs):
    """(statistic, degrees of freedom) of observed ``counts`` against ``probs``; cells
    expected fewer than 5 times are pooled into one (the chi-square approximation needs
    it), and a pool expected fewer than 5 times joins the smallest other cell."""
    counts, probs = counts.reshape(-1).to(F64), probs.reshape(-1).to(F64)
    n = counts.sum()
    expected = n * probs
    small = expected < 5
    obs = counts[~small].tolist()
    exp = expected[~small].tolist()
    if small.any():
        pooled_obs, pooled_exp = counts[small].sum().item(), expected[small].sum().item()
        if pooled_exp < 5:
            k = min(range(len(exp)), key=exp.__getitem__)
            obs[k] += pooled_obs
            exp[k] += pooled_exp
        else:
            obs.append(pooled_obs)
            exp.append(pooled_exp)
    stat = sum((o - e) ** 2 / e for o, e in zip(obs, exp))
    return stat, len(obs) - 1


def assert_frequencies_match(draws, probs, what):
    """``draws``: integer samples of a K-valued variable (or flattened pairs); ``probs``:
    their exact distribution. A correct sampler fails this at a given seed with probability
    0.001 (so a handful of checks at a fixed seed is a fair test, not a flaky one); with
    4000 draws a shift of 0.04 in a probability near 0.3 exceeds the critical value."""
    counts = torch.bincount(draws.reshape(-1), minlength=probs.numel())
    stat, df = chi_square(counts, probs)
    assert stat < CHI2_999[df], f"{what}: chi-square {stat:.2f} on {df} df; counts {counts}"
    return stat, df


def one_copy(value, batch_shape):
    """``value``, checked to have exactly ``batch_shape`` (no enumeration dims of the
    site's enumerated parents left over)."""
    assert tuple(value.shape) == tuple(batch_shape), (tuple(value.shape), batch_shape)
    return value


# --- models ----------------------------------------------------------------------------------

K = 3
INIT = torch.tensor([0.5, 0.3, 0.2], dtype=F64)
TRANS = torch.tensor([[0.7, 0.2, 0.1], [0.15, 0.7, 0.15], [0.2, 0.2, 0.6]], dtype=F64)
LOCS = torch.tensor([-1.0, 0.5, 2.0], dtype=F64)
SCALE = 0.9
# (T=8, B=3): three sequences
HMM_DATA = torch.tensor(
    [
        [-1.2, 0.4, 2.3],
        [-0.8, 0.9, 1.7],
        [0.3, 0.2, 2.1],
        [0.6, -1.1, 0.4],
        [1.8, -0.7, 0.5],
        [2.2, 0.1, -1.3],
        [0.4, 1.9, -0.9],
        [-0.5, 2.4, 0.2],
    ],
    dtype=F64,
)


def hmm(data):
    """Data (T,): one chain; (T, B): B chains in plate "seq". Returns the states."""
    plate = (
        pyro.plate("seq", data.shape[1], dim=-1) if data.dim() == 2 else contextlib.nullcontext()
    )
    xs = []
    with plate:
        x = None
        for t in pyro.markov(range(len(data))):
            probs = INIT if x is None else Vindex(TRANS)[x]
            x = pyro.sample(f"x_{t}", dist.Categorical(probs), infer={"enumerate": "parallel"})
            pyro.sample(f"y_{t}", dist.Normal(Vindex(LOCS)[x], SCALE), obs=data[t])
            xs.append(x)
    return xs


def hmm_viterbi(ys):
    return viterbi(INIT.tolist(), TRANS.tolist(), LOCS.tolist(), SCALE, ys.tolist())


MIX_WEIGHTS = torch.tensor([0.25, 0.35, 0.4], dtype=F64)
MIX_LOCS = torch.tensor([-2.0, 0.0, 2.5], dtype=F64)
MIX_SCALE = 1.1
MIX_DATA = torch.tensor([-2.5, -0.9, 0.3, 1.2, 1.4, 3.0], dtype=F64)


def mixture(data):
    with pyro.plate("data", len(data)):
        z = pyro.sample("z", dist.Categorical(MIX_WEIGHTS), infer={"enumerate": "parallel"})
        pyro.sample("x", dist.Normal(Vindex(MIX_LOCS)[z], MIX_SCALE), obs=data)
    return z


def mixture_posterior(data):
    """p(z_n = k | x_n) by hand: (N, K)."""
    log_p = MIX_WEIGHTS.log() + dist.Normal(MIX_LOCS, MIX_SCALE).log_prob(data[:, None])
    return torch.softmax(log_p, -1)


def dependent(x, pa, pb, la, lb):
    """b depends on a, and both explain x."""
    a = pyro.sample("a", dist.Categorical(pa), infer={"enumerate": "parallel"})
    b = pyro.sample("b", dist.Categorical(Vindex(pb)[a]), infer={"enumerate": "parallel"})
    pyro.sample("x", dist.Normal(Vindex(la)[a] + Vindex(lb)[b], 1.0), obs=x)
    return a, b


DEPENDENT_CASES = {
    # Nearly flat prior on a, b nearly determined by a, x weakly informative: the joint MAP
    # (0, 0) holds the single most likely a, but b = 1 wins marginally (a = 1 or 2 both give it).
    "joint_map_differs": (
        torch.tensor(0.05, dtype=F64),
        torch.tensor([0.35, 0.33, 0.32], dtype=F64),
        torch.tensor([[0.98, 0.02], [0.02, 0.98], [0.02, 0.98]], dtype=F64),
        torch.tensor([0.0, 0.05, 0.1], dtype=F64),
        torch.tensor([0.0, 0.05], dtype=F64),
    ),
    "joint_map_agrees": (
        torch.tensor(-1.2, dtype=F64),
        torch.tensor([0.5, 0.3, 0.2], dtype=F64),
        torch.tensor([[0.7, 0.3], [0.4, 0.6], [0.5, 0.5]], dtype=F64),
        torch.tensor([-1.0, 0.0, 1.0], dtype=F64),
        torch.tensor([-0.5, 0.5], dtype=F64),
    ),
}


# --- temperature = 0: joint MAP -------------------------------------------------------------


def test_viterbi_oracle_equals_brute_force_over_all_paths():
    """The decoder is itself checked: the argmax over all 3^8 paths of one sequence."""
    ys = HMM_DATA[:, 0]
    paths = torch.tensor(list(itertools.product(range(K), repeat=len(ys))))
    log_joint = INIT.log()[paths[:, 0]] + dist.Normal(LOCS[paths], SCALE).log_prob(ys).sum(-1)
    log_joint = log_joint + TRANS.log()[paths[:, :-1], paths[:, 1:]].sum(-1)
    path, best = hmm_viterbi(ys)
    assert path == paths[log_joint.argmax()].tolist()
    assert best == pytest.approx(log_joint.max().item(), abs=1e-10)


@pytest.mark.parametrize("column", [0, 1, 2])
def test_map_of_one_chain_is_the_viterbi_path(column):
    ys = HMM_DATA[:, column]
    expected, _ = hmm_viterbi(ys)
    decode = infer_discrete(hmm, first_available_dim=-1, temperature=0)
    returned = [one_copy(x, ()).item() for x in decode(ys)]
    assert returned == expected
    trace = poutine.trace(decode).get_trace(ys)
    assert [one_copy(trace.nodes[f"x_{t}"]["value"], ()).item() for t in range(len(ys))] == expected


def test_map_of_chains_in_a_plate_is_the_viterbi_path_of_each():
    expected = torch.tensor([hmm_viterbi(HMM_DATA[:, b])[0] for b in range(3)]).T  # (T, B)
    assert len({tuple(c) for c in expected.T.tolist()}) == 3  # the sequences decode differently
    decode = infer_discrete(hmm, first_available_dim=-2, temperature=0)
    returned = torch.stack([one_copy(x, (3,)) for x in decode(HMM_DATA)])
    assert torch.equal(returned, expected)
    trace = poutine.trace(decode).get_trace(HMM_DATA)
    values = torch.stack([one_copy(trace.nodes[f"x_{t}"]["value"], (3,)) for t in range(8)])
    assert torch.equal(values, expected)
    assert trace.nodes["x_0"]["value"].shape == (3,)  # no parent: no spurious dims


def test_map_of_a_mixture_is_the_argmax_of_each_points_posterior():
    expected = mixture_posterior(MIX_DATA).argmax(-1)
    assert len(set(expected.tolist())) == 3  # every component is some point's MAP
    decode = infer_discrete(mixture, first_available_dim=-2, temperature=0)
    z = decode(MIX_DATA)
    assert z.shape == (len(MIX_DATA),)
    assert torch.equal(z, expected)
    trace = poutine.trace(decode).get_trace(MIX_DATA)
    site = trace.nodes["z"]
    assert site["value"].shape == (len(MIX_DATA),)
    assert torch.equal(site["value"], expected)
    # The replayed trace scores the MAP assignment: its log joint equals the one by hand.
    log_joint = (
        MIX_WEIGHTS.log()[expected] + dist.Normal(MIX_LOCS[expected], MIX_SCALE).log_prob(MIX_DATA)
    ).sum()
    assert trace.log_prob_sum().item() == pytest.approx(log_joint.item(), abs=1e-10)


@pytest.mark.parametrize("case", sorted(DEPENDENT_CASES))
def test_map_of_two_dependent_sites_is_the_joint_map(case):
    args = DEPENDENT_CASES[case]
    values, probs = joint_posterior(dependent, {"a": ((), range(3)), "b": ((), range(2))}, *args)
    best = probs.argmax()
    joint_map = (values["a"][best].item(), values["b"][best].item())
    marginal_maps = (
        marginal_of(values, probs, "a", 3).argmax().item(),
        marginal_of(values, probs, "b", 2).argmax().item(),
    )
    assert (joint_map != marginal_maps) == (case == "joint_map_differs")
    decode = infer_discrete(dependent, first_available_dim=-1, temperature=0)
    a, b = decode(*args)
    assert (a.item(), one_copy(b, ()).item()) == joint_map
    trace = poutine.trace(decode).get_trace(*args)
    assert trace.nodes["a"]["value"].shape == ()
    assert (trace.nodes["a"]["value"].item(), one_copy(trace.nodes["b"]["value"], ()).item()) == (
        joint_map
    )


# --- temperature = 1: posterior samples --------------------------------------------------------

SHORT_T = 4
REPLICAS = 4000


def test_hmm_samples_match_the_exact_smoothing_marginals():
    """Two sequences, each replicated 4000 times along the plate: one call draws 4000
    independent paths per sequence. Per-step marginals and the (x_0, x_1) joint match
    brute force; the draws reject the filtering marginal p(x_1 | y_0, y_1) (the test can tell
    forward filtering from forward-filter backward-sample); pairs of replicas are
    independent."""
    sequences = HMM_DATA[:SHORT_T, :2]
    data = sequences.repeat_interleave(REPLICAS, dim=1)  # (T, 2 * REPLICAS)
    pyro.set_rng_seed(0)
    draws = infer_discrete(hmm, first_available_dim=-2, temperature=1)(data)
    draws = torch.stack([one_copy(x, (2 * REPLICAS,)) for x in draws]).reshape(SHORT_T, 2, REPLICAS)
    sites = {f"x_{t}": ((), range(K)) for t in range(SHORT_T)}
    for s in range(2):
        values, probs = joint_posterior(hmm, sites, sequences[:, s])
        for t in range(SHORT_T):
            exact = marginal_of(values, probs, f"x_{t}", K)
            assert_frequencies_match(draws[t, s], exact, f"seq {s} x_{t}")
        pair = pair_marginal(values, probs, "x_0", "x_1", K)
        assert_frequencies_match(draws[0, s] * K + draws[1, s], pair, f"seq {s} (x_0, x_1)")
        # filtering p(x_1 | y_0, y_1), forward only: what a sampler that skipped the
        # backward pass would draw x_1 from
        alpha = INIT * dist.Normal(LOCS, SCALE).log_prob(sequences[0, s]).exp()
        alpha = (alpha @ TRANS) * dist.Normal(LOCS, SCALE).log_prob(sequences[1, s]).exp()
        stat, df = chi_square(torch.bincount(draws[1, s], minlength=K), alpha / alpha.sum())
        assert stat > CHI2_999[df], f"seq {s}: samples do not tell smoothing from filtering"
        exact_0 = marginal_of(values, probs, "x_0", K)
        even, odd = draws[0, s, 0::2], draws[0, s, 1::2]
        assert_frequencies_match(even * K + odd, torch.outer(exact_0, exact_0), "replica pairs")
    # the two sequences' posteriors differ, and so do their draws' frequencies
    assert not torch.equal(
        torch.bincount(draws[0, 0], minlength=K), torch.bincount(draws[0, 1], minlength=K)
    )


def test_mixture_samples_match_each_points_posterior_and_are_independent():
    points = MIX_DATA[[0, 2, 4]]
    data = points.repeat_interleave(REPLICAS)
    pyro.set_rng_seed(0)
    z = infer_discrete(mixture, first_available_dim=-2, temperature=1)(data)
    assert z.shape == (3 * REPLICAS,)
    z = z.reshape(3, REPLICAS)
    # Brute force over the 27 joint assignments of the three points agrees with the hand
    # posterior (the model factorizes over points), which is then the reference.
    values, probs = joint_posterior(mixture, {"z": ((3,), range(K))}, points)
    exact = marginal_of(values, probs, "z", K)
    assert torch.allclose(exact, mixture_posterior(points), atol=1e-12)
    for n in range(3):
        assert_frequencies_match(z[n], exact[n], f"point {n}")
        even, odd = z[n, 0::2], z[n, 1::2]
        assert_frequencies_match(even * K + odd, torch.outer(exact[n], exact[n]), "pairs")


def test_repeated_calls_draw_afresh_for_each_plate_element():
    """1000 calls on three distinct points: each element's frequencies over calls match
    its posterior, and elements 0 and 1 are independent of each other."""
    points = MIX_DATA[[1, 2, 3]]
    sample = infer_discrete(mixture, first_available_dim=-2, temperature=1)
    pyro.set_rng_seed(1)
    z = torch.stack([sample(points) for _ in range(1000)])  # (1000, 3)
    exact = mixture_posterior(points)
    for n in range(3):
        assert_frequencies_match(z[:, n], exact[n], f"element {n}")
    assert_frequencies_match(z[:, 0] * K + z[:, 1], torch.outer(exact[0], exact[1]), "0 and 1")


# --- compute_marginals -----------------------------------------------------------------------


def empty_guide(*args):
    pass


def marginals(model, nesting, *args):
    return TraceEnum_ELBO(max_plate_nesting=nesting).compute_marginals(model, empty_guide, *args)


def test_marginals_of_a_chain_equal_brute_force():
    ys = HMM_DATA[:5, 1]
    found = marginals(hmm, 0, ys)
    values, probs = joint_posterior(hmm, {f"x_{t}": ((), range(K)) for t in range(5)}, ys)
    assert sorted(found) == [f"x_{t}" for t in range(5)]
    for t in range(5):
        d = found[f"x_{t}"]
        assert type(d) is dist.Categorical
        exact = marginal_of(values, probs, f"x_{t}", K)
        assert torch.allclose(one_copy(d.probs, (K,)), exact, atol=1e-8), t
        assert torch.allclose(one_copy(d.logits, (K,)).exp(), exact, atol=1e-8), t


def test_marginals_of_chains_in_a_plate_equal_brute_force_per_chain():
    data = HMM_DATA[:4]
    found = marginals(hmm, 1, data)
    for b in range(3):
        values, probs = joint_posterior(
            hmm, {f"x_{t}": ((), range(K)) for t in range(4)}, data[:, b]
        )
        for t in range(4):
            probs_t = one_copy(found[f"x_{t}"].probs, (3, K))[b]
            assert torch.allclose(probs_t, marginal_of(values, probs, f"x_{t}", K), atol=1e-8)
    assert found["x_0"].batch_shape == (3,)


def test_marginals_of_a_mixture_have_the_plate_as_batch_shape():
    points = MIX_DATA[:4]
    found = marginals(mixture, 1, points)
    d = found["z"]
    assert type(d) is dist.Categorical
    assert d.batch_shape == (4,)
    values, probs = joint_posterior(mixture, {"z": ((4,), range(K))}, points)
    exact = marginal_of(values, probs, "z", K)
    assert torch.allclose(d.probs, exact, atol=1e-8)
    assert torch.allclose(d.logits.exp(), exact, atol=1e-8)  # logits are normalized


def test_marginals_of_a_bernoulli_site_are_bernoulli():
    obs = torch.tensor([1.7, 0.2], dtype=F64)

    def model(x):
        z = pyro.sample("z", dist.Bernoulli(0.3), infer={"enumerate": "parallel"})
        with pyro.plate("data", 2):
            w = pyro.sample(
                "w",
                dist.Bernoulli(torch.tensor([0.4, 0.6])[z.long()]),
                infer={"enumerate": "parallel"},
            )
            pyro.sample("x", dist.Normal(2.0 * z + w, 1.0), obs=x)

    found = marginals(model, 1, obs)
    values, probs = joint_posterior(model, {"z": ((), (0.0, 1.0)), "w": ((2,), (0.0, 1.0))}, obs)
    for name, shape in (("z", ()), ("w", (2,))):
        d = found[name]
        assert type(d) is dist.Bernoulli
        exact = marginal_of(values, probs, name, 2)[..., 1]
        assert torch.allclose(one_copy(d.probs, shape), exact, atol=1e-8), name
        logit = (exact / (1 - exact)).log()
        assert torch.allclose(one_copy(d.logits, shape), logit, atol=1e-8), name


NESTED_DATA = torch.tensor([[0.5, 1.5, -0.3], [2.0, 2.5, 1.0]], dtype=F64)  # (I=2, J=3)
NESTED_PZ = torch.tensor([0.4, 0.6], dtype=F64)
NESTED_PY = torch.tensor([[0.7, 0.3], [0.2, 0.8]], dtype=F64)
NESTED_LOCS = torch.tensor([[0.0, 1.0], [2.0, 3.0]], dtype=F64)


def nested(data):
    z = pyro.sample("z", dist.Categorical(NESTED_PZ), infer={"enumerate": "parallel"})
    with pyro.plate("i", 2, dim=-2):
        y = pyro.sample(
            "y", dist.Categorical(Vindex(NESTED_PY)[z]), infer={"enumerate": "parallel"}
        )
        with pyro.plate("j", 3, dim=-1):
            pyro.sample("x", dist.Normal(Vindex(NESTED_LOCS)[z, y], 1.0), obs=data)


def nested_posterior():
    return joint_posterior(nested, {"z": ((), range(2)), "y": ((2, 1), range(2))}, NESTED_DATA)


def test_map_in_nested_plates_is_the_joint_map():
    values, probs = nested_posterior()
    best = probs.argmax()
    decode = infer_discrete(nested, first_available_dim=-3, temperature=0)
    trace = poutine.trace(decode).get_trace(NESTED_DATA)
    assert trace.nodes["z"]["value"].item() == values["z"][best].item()
    assert torch.equal(trace.nodes["y"]["value"], values["y"][best])
    assert len(set(values["y"][best].reshape(-1).tolist())) == 2  # the elements differ


def test_marginals_in_nested_plates_equal_brute_force():
    found = marginals(nested, 2, NESTED_DATA)
    values, probs = nested_posterior()
    assert found["z"].batch_shape == ()
    assert torch.allclose(found["z"].probs, marginal_of(values, probs, "z", 2), atol=1e-8)
    exact_y = marginal_of(values, probs, "y", 2)  # (2, 1, 2)
    assert not torch.allclose(exact_y[0], exact_y[1], atol=1e-3)  # the plate elements differ
    assert found["y"].batch_shape == (2, 1)
    assert torch.allclose(found["y"].probs, exact_y, atol=1e-8)


# --- errors and edge cases ---------------------------------------------------------------------


def test_a_temperature_other_than_0_or_1_is_an_error():
    with pytest.raises(ValueError, match="temperature must be 0 or 1, got 0.5"):
        infer_discrete(mixture, first_available_dim=-2, temperature=0.5)


def test_a_nonnegative_first_available_dim_is_an_error():
    with pytest.raises(ValueError, match="first_available_dim must be negative"):
        infer_discrete(mixture, first_available_dim=0)


def test_nothing_enumerated_warns_and_returns_the_models_own_draw():
    def model():
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        pyro.sample("x", dist.Normal(z, 1.0), obs=torch.tensor(0.5))
        return z

    pyro.set_rng_seed(3)
    expected = model()
    pyro.set_rng_seed(3)
    with pytest.warns(UserWarning, match="infer_discrete found no sites marked for enumeration"):
        z = infer_discrete(model, first_available_dim=-1)()
    assert z.item() == expected.item()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        infer_discrete(model, first_available_dim=-1, strict_enumeration_warning=False)()


# --- values and marginals have the sites' own batch shapes ---------------------------------


def test_map_values_have_the_site_batch_shape_and_score_the_path_once():
    ys = HMM_DATA[:, 0]
    decode = infer_discrete(hmm, first_available_dim=-1, temperature=0)
    trace = poutine.trace(decode).get_trace(ys)
    _, best = hmm_viterbi(ys)
    shapes = [tuple(trace.nodes[f"x_{t}"]["value"].shape) for t in range(8)]
    assert shapes == [()] * 8
    assert trace.log_prob_sum().item() == pytest.approx(best, abs=1e-10)


def test_map_values_in_a_plate_have_the_plate_shape():
    decode = infer_discrete(hmm, first_available_dim=-2, temperature=0)
    returned = decode(HMM_DATA)
    assert [tuple(x.shape) for x in returned] == [(3,)] * 8


def test_marginals_have_the_site_plate_batch_shape():
    assert marginals(hmm, 1, HMM_DATA[:4])["x_1"].batch_shape == (3,)
