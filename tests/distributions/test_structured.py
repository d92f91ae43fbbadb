"""Analytic checks (no Pyro) of the structured families: spanning trees, matchings,
diagonal-Normal mixtures and their pathwise gradients, Rejector, the coalescent,
MaskedMixture and ExpandedDistribution."""

import math

import pytest
import torch

from pyrolite.distributions import Bernoulli, Categorical, Exponential, Normal
from pyrolite.distributions.coalescent import (
    CoalescentRateLikelihood,
    CoalescentTimes,
    CoalescentTimesWithRate,
)
from pyrolite.distributions.diag_normal_mixture import (
    MixtureOfDiagNormals,
    MixtureOfDiagNormalsSharedCovariance,
)
from pyrolite.distributions.expanded import ExpandedDistribution
from pyrolite.distributions.gaussian_scale_mixture import GaussianScaleMixture
from pyrolite.distributions.masked_mixture import MaskedMixture
from pyrolite.distributions.one_one_matching import OneOneMatching
from pyrolite.distributions.one_two_matching import OneTwoMatching
from pyrolite.distributions.rejector import Rejector
from pyrolite.distributions.spanning_tree import SpanningTree, make_complete_graph


def chi_square(values: torch.Tensor, support: torch.Tensor, probs: torch.Tensor) -> float:
    """Pearson's statistic of the draws ``values`` against ``probs`` over ``support``."""
    event = support.shape[1:]
    match = (values.reshape(-1, 1, *event) == support.unsqueeze(0)).flatten(2).all(-1)
    assert bool((match.sum(-1) == 1).all()), "every draw must be in the support exactly once"
    counts = torch.bincount(match.float().argmax(-1), minlength=len(support)).double()
    expected = len(values) * probs.double()
    return float(((counts - expected) ** 2 / expected).sum())


def chi_square_bound(num_cells: int) -> float:
    # mean df plus 5 standard deviations (sqrt(2 df)) of the chi-square law
    df = num_cells - 1
    return df + 5 * math.sqrt(2 * df)


# ----------------------------------------------------------------------------- spanning trees


@pytest.mark.parametrize("num_vertices", [2, 3, 4, 5])
def test_spanning_tree_log_prob_normalizes_over_support(num_vertices):
    d = SpanningTree(torch.randn(num_vertices * (num_vertices - 1) // 2))
    trees = d.enumerate_support()
    assert trees.shape == (num_vertices ** (num_vertices - 2), num_vertices - 1, 2)  # Cayley
    assert d.log_prob(trees).exp().sum().item() == pytest.approx(1.0, abs=1e-5)


def test_spanning_tree_log_partition_function_is_matrix_tree_determinant():
    logits = torch.randn(10).double()
    d = SpanningTree(logits)
    trees = d.enumerate_support()
    brute = logits[trees[..., 0] + trees[..., 1] * (trees[..., 1] - 1) // 2].sum(-1).logsumexp(0)
    assert d.log_partition_function.item() == pytest.approx(brute.item(), abs=1e-10)


def test_spanning_tree_edge_mean_and_mode_match_enumeration():
    d = SpanningTree(torch.randn(10).double())
    trees = d.enumerate_support()
    probs = d.log_prob(trees).exp()
    marginal = torch.zeros(5, 5, dtype=torch.float64)
    for tree, p in zip(trees, probs):
        marginal[tree[:, 0], tree[:, 1]] += p
    marginal = marginal + marginal.t()
    assert torch.allclose(d.edge_mean, marginal, atol=1e-10)
    assert torch.equal(d.mode, trees[probs.argmax()])


def test_spanning_tree_exact_sampler_matches_probs():
    d = SpanningTree(torch.randn(6))
    trees = d.enumerate_support()
    values = d.sample((20000,))
    assert values.shape == (20000, 3, 2)
    stat = chi_square(values, trees, d.log_prob(trees).exp())
    assert stat < chi_square_bound(len(trees))


def test_spanning_tree_mcmc_sampler_from_init_edges_matches_probs():
    d0 = SpanningTree(torch.randn(6))
    trees = d0.enumerate_support()
    d = SpanningTree(d0.edge_logits, sampler_options={"init_edges": trees[0], "mcmc_steps": 10})
    values = d.sample((20000,))
    stat = chi_square(values, trees, d.log_prob(trees).exp())
    assert stat < chi_square_bound(len(trees))


def test_spanning_tree_samples_are_valid_trees_for_realistic_size():
    d = SpanningTree(torch.randn(45), validate_args=True)
    values = d.sample((500,))
    d.validate_edges(values)  # raises if any draw is not a canonical tree
    assert d.log_prob(values).shape == (500,)


def test_spanning_tree_validation_and_options_errors():
    d = SpanningTree(torch.zeros(6))
    for bad, message in [
        ([[0, 1], [0, 2], [1, 2]], "tree"),
        ([[1, 0], [0, 2], [0, 3]], "sorted in each edge"),
        ([[0, 1], [0, 3], [0, 2]], "colexicographically"),
        ([[0, 1], [0, 2]], "shape"),
    ]:
        with pytest.raises(ValueError, match=message):
            d.validate_edges(torch.tensor(bad))
    with pytest.raises(TypeError, match="unknown sampler_options"):
        SpanningTree(torch.zeros(6), sampler_options={"foo": 1})
    with pytest.raises(ValueError, match="unknown backend"):
        SpanningTree(torch.zeros(6), sampler_options={"backend": "fortran"})
    with pytest.raises(ValueError, match="V\\*\\(V-1\\)//2"):
        SpanningTree(torch.zeros(5))
    assert make_complete_graph(3).tolist() == [[0, 0, 1], [1, 2, 2]]


# --------------------------------------------------------------------------------- matchings


@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_one_one_matching_exact_log_prob_normalizes(size):
    d = OneOneMatching(torch.randn(size, size))
    values = d.enumerate_support()
    assert values.shape == (math.factorial(size), size)
    assert d.log_prob(values).exp().sum().item() == pytest.approx(1.0, abs=1e-5)
    assert torch.equal(d.mode(), values[d.log_prob(values).argmax()])


@pytest.mark.parametrize("size", [1, 2, 3])
def test_one_two_matching_exact_log_prob_normalizes(size):
    d = OneTwoMatching(torch.randn(2 * size, size))
    values = d.enumerate_support()
    assert values.shape == (math.factorial(2 * size) // 2**size, 2 * size)
    assert bool(d.support.check(values).all())
    assert d.log_prob(values).exp().sum().item() == pytest.approx(1.0, abs=1e-5)
    assert torch.equal(d.mode(), values[d.log_prob(values).argmax()])


def test_one_one_matching_sampler_matches_probs():
    d = OneOneMatching(torch.randn(3, 3))
    values = d.enumerate_support()
    stat = chi_square(d.sample((20000,)), values, d.log_prob(values).exp())
    assert stat < chi_square_bound(len(values))


def test_one_two_matching_sampler_matches_probs():
    d = OneTwoMatching(torch.randn(4, 2))
    values = d.enumerate_support()
    stat = chi_square(d.sample((20000,)), values, d.log_prob(values).exp())
    assert stat < chi_square_bound(len(values))


def test_matching_bethe_approximation_known_values():
    # Uniform 3x3: Bethe beliefs 1/3, so log Z_B = 3 log 3 + 6 log(2/3).
    expected = 3 * math.log(3) + 6 * math.log(2 / 3)
    bethe = OneOneMatching(torch.zeros(3, 3), bp_iters=20).log_partition_function
    assert bethe.item() == pytest.approx(expected, abs=1e-5)
    # The Bethe permanent of a 2x2 matrix is its larger diagonal product.
    logits = torch.tensor([[0.3, -1.0], [0.5, 1.2]], dtype=torch.float64)
    bethe = OneOneMatching(logits, bp_iters=30).log_partition_function
    assert bethe.item() == pytest.approx(1.5, abs=1e-6)
    # Uniform (4, 2): sources 4 log 2, destination pairs 2 log 6, edges 8 log 2.
    bethe = OneTwoMatching(torch.zeros(4, 2), bp_iters=20).log_partition_function
    assert bethe.item() == pytest.approx(math.log(9 / 4), abs=1e-5)


def test_matching_bethe_is_a_lower_bound_close_to_exact():
    logits = torch.randn(5, 5).double()
    exact = OneOneMatching(logits).log_partition_function
    bethe = OneOneMatching(logits, bp_iters=100).log_partition_function
    # Gurvits: perm / 2**(N/2) <= Bethe permanent <= perm.
    assert exact.item() - 2.5 * math.log(2) <= bethe.item() <= exact.item() + 1e-9


# ---------------------------------------------------------------- mixtures of diagonal Normals


def _replicated_gradient(make, params, f, reps=10, num_samples=4000):
    grads = []
    for _ in range(reps):
        value = make(*params).rsample((num_samples,))
        grads.append(torch.cat([g.flatten() for g in torch.autograd.grad(f(value).mean(), params)]))
    grads = torch.stack(grads)
    return grads.mean(0), grads.std(0) / math.sqrt(reps)


def _quadratic(coeffs):
    return lambda x: (coeffs * x * x + x).sum(-1)


def test_mixture_of_diag_normals_log_prob_is_weighted_normal_density():
    locs, scales, logits = torch.randn(3, 2), torch.rand(3, 2) + 0.5, torch.randn(3)
    x = torch.randn(7, 2)
    component = Normal(locs, scales).log_prob(x.unsqueeze(-2)).sum(-1)
    expected = (logits.log_softmax(-1) + component).logsumexp(-1)
    d = MixtureOfDiagNormals(locs, scales, logits)
    assert torch.allclose(d.log_prob(x), expected, atol=1e-5)
    shared = MixtureOfDiagNormalsSharedCovariance(locs, scales[0], logits)
    component = Normal(locs, scales[0]).log_prob(x.unsqueeze(-2)).sum(-1)
    expected = (logits.log_softmax(-1) + component).logsumexp(-1)
    assert torch.allclose(shared.log_prob(x), expected, atol=1e-5)


def test_mixture_of_diag_normals_rsample_gradients_are_unbiased():
    num_components, dim = 3, 3
    coeffs = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    params = [
        torch.randn(num_components, dim, dtype=torch.float64).requires_grad_(),
        (torch.rand(num_components, dim, dtype=torch.float64) + 0.5).requires_grad_(),
        torch.randn(num_components, dtype=torch.float64).requires_grad_(),
    ]
    locs, scales, logits = params
    weights = logits.softmax(-1).unsqueeze(-1)
    exact = (weights * (coeffs * (locs**2 + scales**2) + locs)).sum()
    analytic = torch.cat([g.flatten() for g in torch.autograd.grad(exact, params)])
    mean, se = _replicated_gradient(MixtureOfDiagNormals, params, _quadratic(coeffs))
    assert bool(((mean - analytic).abs() < 5 * se + 1e-3).all())


def test_shared_covariance_mixture_rsample_gradients_are_unbiased():
    coeffs = torch.tensor([1.0, 0.5], dtype=torch.float64)
    params = [
        torch.randn(2, 2, dtype=torch.float64).requires_grad_(),
        (torch.rand(2, dtype=torch.float64) + 0.5).requires_grad_(),
        torch.randn(2, dtype=torch.float64).requires_grad_(),
    ]
    locs, scale, logits = params
    weights = logits.softmax(-1).unsqueeze(-1)
    exact = (weights * (coeffs * (locs**2 + scale**2) + locs)).sum()
    analytic = torch.cat([g.flatten() for g in torch.autograd.grad(exact, params)])
    mean, se = _replicated_gradient(
        MixtureOfDiagNormalsSharedCovariance, params, _quadratic(coeffs)
    )
    assert bool(((mean - analytic).abs() < 5 * se + 1e-3).all())


def test_gaussian_scale_mixture_rsample_gradients_are_unbiased():
    coeffs = torch.tensor([1.0, 2.0], dtype=torch.float64)
    params = [
        (torch.rand(2, dtype=torch.float64) + 0.5).requires_grad_(),
        torch.randn(3, dtype=torch.float64).requires_grad_(),
        (torch.rand(3, dtype=torch.float64) + 0.5).requires_grad_(),
    ]
    coord_scale, logits, component_scale = params
    variance = (component_scale.unsqueeze(-1) * coord_scale) ** 2
    exact = (logits.softmax(-1).unsqueeze(-1) * coeffs * variance).sum()
    analytic = torch.cat([g.flatten() for g in torch.autograd.grad(exact, params)])
    mean, se = _replicated_gradient(GaussianScaleMixture, params, _quadratic(coeffs))
    assert bool(((mean - analytic).abs() < 5 * se + 1e-3).all())


def test_gaussian_scale_mixture_density_integrates_to_one():
    d = GaussianScaleMixture(
        torch.tensor([0.7, 1.3]), torch.tensor([0.2, -0.4]), torch.tensor([0.5, 1.5])
    )
    grid = torch.linspace(-12, 12, 801, dtype=torch.float64)
    x = torch.stack(torch.meshgrid(grid, grid, indexing="ij"), -1).float()
    total = d.log_prob(x).double().exp().sum() * (grid[1] - grid[0]) ** 2
    assert total.item() == pytest.approx(1.0, abs=1e-4)


def test_mixture_sample_moments():
    locs = torch.tensor([[0.0, 1.0], [3.0, -1.0]])
    scales = torch.tensor([[1.0, 0.5], [0.5, 2.0]])
    logits = torch.tensor([0.0, 1.0])
    values = MixtureOfDiagNormals(locs, scales, logits).rsample((20000,))
    weights = logits.softmax(-1).unsqueeze(-1)
    mean = (weights * locs).sum(0)
    variance = (weights * (scales**2 + locs**2)).sum(0) - mean**2
    assert bool(((values.mean(0) - mean).abs() < 5 * (variance / 20000).sqrt()).all())


# ----------------------------------------------------------------------------------- Rejector


def _rejector():
    # Proposal N(0, 1) accepted with probability sigmoid(3x); by symmetry the total
    # acceptance probability is exactly 1/2.
    return Rejector(
        Normal(torch.zeros(2), 1.0),
        lambda x: torch.nn.functional.logsigmoid(3 * x),
        torch.tensor(0.5).log(),
    )


def test_rejector_density_integrates_to_one_and_samples_match_it():
    d = _rejector()
    grid = torch.linspace(-10, 10, 20001, dtype=torch.float64)
    density = d.log_prob(grid.float().unsqueeze(-1)).double().exp()[:, 0]
    step = grid[1] - grid[0]
    assert (density.sum() * step).item() == pytest.approx(1.0, abs=1e-4)
    mean = (grid * density).sum() * step
    sd = (((grid - mean) ** 2 * density).sum() * step).sqrt()
    values = d.rsample((20000,))
    assert values.shape == (20000, 2)
    assert bool(((values.double().mean(0) - mean).abs() < 5 * sd / math.sqrt(20000)).all())


def test_rejector_score_parts_hold_the_acceptance_term():
    d = _rejector()
    x = torch.tensor([0.5, -0.2])
    parts = d.score_parts(x)
    assert torch.allclose(parts.score_function, torch.nn.functional.logsigmoid(3 * x) + math.log(2))
    assert parts.entropy_term is parts.log_prob
    expanded = d.expand([3, 2])
    assert isinstance(expanded, ExpandedDistribution)
    assert expanded.rsample().shape == (3, 2) and expanded.has_rsample


# --------------------------------------------------------------------------------- coalescent


def test_coalescent_two_leaves_is_exponential():
    rate = torch.tensor([0.5, 2.0])
    d = CoalescentTimes(torch.zeros(2), rate)
    value = torch.tensor([-0.7])
    assert torch.allclose(d.log_prob(value), rate.log() - rate * 0.7)


def test_coalescent_three_leaves_hand_computed():
    # Leaves at 0, 1, 1.5 and merges at 0.5, -1 (rate 2): one pair over [0.5, 1] and one
    # over [-1, 0]: 2 * (log 2 - 2 * 0.5) ... = 2 log 2 - 3.
    d = CoalescentTimes(torch.tensor([0.0, 1.0, 1.5]), 2.0)
    assert d.log_prob(torch.tensor([-1.0, 0.5])).item() == pytest.approx(2 * math.log(2) - 3)
    # Three leaves at 0: rate C(3,2) = 3 until -0.5, then 1 until -1.
    d = CoalescentTimes(torch.zeros(3))
    assert d.log_prob(torch.tensor([-1.0, -0.5])).item() == pytest.approx(math.log(3) - 2.0)


def test_coalescent_with_rate_hand_computed_and_split_per_cell():
    rate_grid = torch.tensor([1.0, 2.0, 0.5])
    d = CoalescentTimesWithRate(torch.tensor([2.5, 2.5]), rate_grid)
    # Exposure 0.5 at rate 0.5, 1 at rate 2, 0.5 at rate 1; the merge at 0.5 has rate 1.
    assert d.log_prob(torch.tensor([0.5])).item() == pytest.approx(-2.75)
    likelihood = CoalescentRateLikelihood(torch.tensor([2.5, 2.5]), torch.tensor([0.5]), 3)
    assert torch.allclose(likelihood(rate_grid), torch.tensor([-0.5, -2.0, -0.25]))
    assert likelihood(rate_grid[1], 1).item() == pytest.approx(-2.0)
    # A constant grid is CoalescentTimes.
    leaves, coal = torch.tensor([0.0, 1.0, 1.5]), torch.tensor([-1.0, 0.5])
    assert torch.allclose(
        CoalescentTimesWithRate(leaves, torch.full((4,), 2.0)).log_prob(coal),
        CoalescentTimes(leaves, 2.0).log_prob(coal),
    )


def test_coalescent_support_and_sample_moments():
    d = CoalescentTimes(torch.tensor([0.0, 1.0, 1.5]))
    check = d.support.check
    assert check(torch.tensor([-1.0, 0.5])) and not check(torch.tensor([0.5, -1.0]))
    assert not check(torch.tensor([-1.0, 1.2]))  # only one lineage above 1
    rate = 2.0
    values = CoalescentTimes(torch.zeros(3), rate).sample((20000,))
    assert bool(d.support.check(CoalescentTimes(torch.tensor([0.0, 1.0, 1.5])).sample()))
    first, second = 1 / (3 * rate), 1 / rate  # exponential waits, rates 3r and r
    mean = torch.tensor([-(first + second), -first])
    sd = torch.tensor([math.sqrt(first**2 + second**2), first])
    assert bool(((values.mean(0) - mean).abs() < 5 * sd / math.sqrt(20000)).all())


# --------------------------------------------------------------- MaskedMixture, Expanded


def test_masked_mixture_selects_component_per_mask():
    mask = torch.tensor([True, False, True])
    d = MaskedMixture(mask, Normal(0.0, 1.0), Exponential(torch.ones(3)))
    x = torch.tensor([1.0, -1.0, 2.0])
    expected = torch.tensor([-1.0, Normal(0.0, 1.0).log_prob(torch.tensor(-1.0)), -2.0])
    assert torch.allclose(d.log_prob(x), expected)
    assert torch.allclose(d.mean, torch.tensor([1.0, 0.0, 1.0]))
    assert d.has_rsample and not bool(d.support.check(torch.tensor([-1.0, -1.0, 1.0])).all())
    values = d.sample((5000,))
    assert bool((values[:, [0, 2]] >= 0).all()) and bool((values[:, 1] < 0).any())
    with pytest.raises(ValueError, match="bool"):
        MaskedMixture(torch.tensor([1, 0]), Normal(0.0, 1.0), Normal(0.0, 1.0))
    assert d.expand([4, 3]).log_prob(x).shape == (4, 3)


def test_expanded_distribution_draws_independently_along_stretched_dims():
    d = ExpandedDistribution(Normal(torch.tensor([[0.0], [10.0]]), 1.0), [4, 2, 3])
    values = d.sample((2000,))
    assert values.shape == (2000, 4, 2, 3)
    assert (values[..., 1, :].mean() - 10).abs() < 0.05  # the stretched slot keeps its base
    corr = torch.corrcoef(torch.stack([values[:, 0, 0, 0], values[:, 0, 0, 1]]))[0, 1]
    assert corr.abs() < 5 / math.sqrt(2000)
    assert d.log_prob(torch.zeros(3)).shape == (4, 2, 3)
    assert d.mean.shape == (4, 2, 3)


def test_expanded_distribution_enumerates_and_expands_again():
    d = ExpandedDistribution(Categorical(torch.ones(2, 1, 3)), [2, 4])
    assert d.enumerate_support().shape == (3, 2, 4)
    assert d.enumerate_support(expand=False).shape == (3, 1, 1)
    again = d.expand([5, 2, 4])
    assert again.batch_shape == (5, 2, 4) and again.base_dist is d.base_dist
    with pytest.raises(ValueError, match="Cannot broadcast"):
        ExpandedDistribution(Bernoulli(torch.tensor([0.2, 0.7])), [3])
