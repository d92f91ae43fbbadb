"""pyrolite.ops.einsum: contract/contract_expression with each backend, against brute
force on small tensors and against Pyro's backends on the same inputs."""

import itertools

import pytest
import torch

from pyrolite.ops.einsum import (
    _PATH_CACHE,
    contract,
    contract_expression,
    torch_log,
    torch_map,
    torch_marginal,
    torch_sample,
)

try:
    import pyro.ops.einsum as pyro_einsum
except ImportError:  # the oracle is optional
    pyro_einsum = None

needs_pyro = pytest.mark.skipif(pyro_einsum is None, reason="pyro not installed")

EQUATIONS = [
    ("ab,bc->ac", [(2, 3), (3, 4)]),
    ("ab,bc,cd->a", [(2, 3), (3, 4), (4, 2)]),
    ("ab,bc,cd,de->", [(2, 3), (3, 4), (4, 2), (2, 3)]),
    ("abc,bd,cd->da", [(2, 3, 4), (3, 2), (4, 2)]),
    ("ab,ab->ab", [(2, 3), (2, 3)]),
    ("ab,cd->ac", [(2, 3), (4, 5)]),
    ("a,a,a->", [(3,), (3,), (3,)]),
]
BACKENDS = ["torch_log", "torch_map", "torch_sample", "torch_marginal"]


def _packed_operands(equation, shapes, seed=0):
    generator = torch.Generator().manual_seed(seed)
    inputs = equation.split("->")[0].split(",")
    operands = []
    for spec, shape in zip(inputs, shapes):
        x = torch.randn(shape, generator=generator, dtype=torch.float64)
        x._pyro_dims = spec
        operands.append(x)
    return operands


def _brute_force(equation, operands, reduce):
    """The joint over all letters (broadcast sum of logs), reduced over the summed ones."""
    inputs, output = equation.split("->")
    inputs = inputs.split(",")
    letters = sorted(set("".join(inputs)))
    sizes = {}
    for spec, x in zip(inputs, operands):
        sizes.update(zip(spec, x.shape))
    joint = 0
    for spec, x in zip(inputs, operands):
        view = x.permute(sorted(range(len(spec)), key=lambda i: letters.index(spec[i])))
        joint = joint + view.reshape([sizes[c] if c in spec else 1 for c in letters])
    joint = joint.expand([sizes[c] for c in letters])
    summed = [i for i, c in enumerate(letters) if c not in output]
    if summed:
        joint = reduce(joint, summed)
    kept = [c for c in letters if c in output]
    return joint.permute([kept.index(c) for c in output])


def _logsumexp(x, dims):
    return x.logsumexp(dims)


def _amax(x, dims):
    return x.amax(dims)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("equation,shapes", EQUATIONS)
def test_contract_matches_brute_force(equation, shapes, backend):
    operands = _packed_operands(equation, shapes)
    result = contract(equation, *operands, backend="pyrolite.ops.einsum." + backend)
    reduce = _amax if backend == "torch_map" else _logsumexp
    expected = _brute_force(equation, operands, reduce)
    assert result.shape == expected.shape
    assert torch.allclose(result, expected, atol=1e-10)
    if backend in ("torch_map", "torch_sample"):
        assert result._pyro_dims == equation.split("->")[1]


@pytest.mark.parametrize("equation,shapes", EQUATIONS)
def test_contract_torch_backend_is_ordinary_einsum(equation, shapes):
    operands = [x.exp() for x in _packed_operands(equation, shapes)]
    result = contract(equation, *operands, backend="torch")
    assert torch.allclose(result, torch.einsum(equation, *operands))
    assert torch.allclose(contract(equation, *operands), result)  # torch is the default


def test_pyro_backend_names_map_to_ours():
    x, y = _packed_operands("ab,b->a", [(2, 3), (3,)])
    for backend in BACKENDS:
        ours = contract("ab,b->a", x, y, backend="pyrolite.ops.einsum." + backend)
        pyros = contract("ab,b->a", x, y, backend="pyro.ops.einsum." + backend)
        assert torch.equal(ours, pyros)


def test_log_backend_is_stable_for_large_and_impossible_values():
    x = torch.tensor([[1000.0, 1000.0], [-float("inf"), -float("inf")]])
    y = torch.tensor([0.0, -float("inf")])
    result = contract("ab,b->a", x, y, backend="pyrolite.ops.einsum.torch_log")
    assert result[0].item() == pytest.approx(1000.0)
    assert result[1].item() == -float("inf")


def test_log_backend_gradient_is_softmax_weight():
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    contract("ab->", x, backend="pyrolite.ops.einsum.torch_log").backward()
    assert torch.allclose(x.grad, torch.softmax(x.detach().reshape(-1), 0).reshape(3, 4))


@pytest.mark.parametrize("module", [torch_log, torch_map, torch_sample, torch_marginal])
def test_backend_tensordot_matches_einsum(module):
    x, y = _packed_operands("abc,cbd->ad", [(2, 3, 4), (4, 3, 2)])
    direct = module.einsum("abc,cbd->ad", x, y)
    via = module.tensordot(x, y, axes=([1, 2], [1, 0]))
    assert torch.allclose(via, direct)
    assert module.transpose(via, (1, 0)).shape == (2, 2)


def test_contract_caches_paths_per_equation_and_shapes():
    x, y = _packed_operands("ab,bc->a", [(2, 3), (3, 4)])
    before = len(_PATH_CACHE)
    contract("ab,bc->a", x, y, backend="pyrolite.ops.einsum.torch_log")
    contract("ab,bc->a", x + 1, y, backend="pyrolite.ops.einsum.torch_log")
    assert len(_PATH_CACHE) == before + 1
    uncached = contract("ab,bc->a", x, y, backend="pyrolite.ops.einsum.torch_log", cache_path=False)
    assert len(_PATH_CACHE) == before + 1
    assert torch.allclose(uncached, _brute_force("ab,bc->a", [x, y], _logsumexp))


def test_contract_expression_reused_across_operands_and_backends():
    expression = contract_expression("ab,bc,cd->ad", (2, 3), (3, 4), (4, 2))
    for seed in range(3):
        operands = _packed_operands("ab,bc,cd->ad", [(2, 3), (3, 4), (4, 2)], seed)
        log = expression(*operands, backend="pyrolite.ops.einsum.torch_log")
        assert torch.allclose(log, _brute_force("ab,bc,cd->ad", operands, _logsumexp))
        best = expression(*operands, backend="pyro.ops.einsum.torch_map")
        assert torch.allclose(best, _brute_force("ab,bc,cd->ad", operands, _amax))
        linear = expression(*[x.exp() for x in operands], backend="torch")
        assert torch.allclose(linear, log.exp())
    with pytest.raises(ValueError):
        expression(*operands[:2], backend="torch")


@needs_pyro
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("equation,shapes", EQUATIONS)
def test_contract_matches_pyro(equation, shapes, backend):
    ours = _packed_operands(equation, shapes)
    theirs = _packed_operands(equation, shapes)
    name = "pyro.ops.einsum." + backend
    expected = pyro_einsum.contract(equation, *theirs, backend=name)
    result = contract(equation, *ours, backend=name)
    assert torch.allclose(result, expected, atol=1e-10)
    # Pyro's transpose drops the dim names (e.g. after a tensordot); ours keeps them.
    if getattr(expected, "_pyro_dims", None) is not None:
        assert result._pyro_dims == expected._pyro_dims


@needs_pyro
def test_contract_expression_matches_pyro():
    shapes = [(2, 3), (3, 4), (4, 2)]
    ours = contract_expression("ab,bc,cd->a", *shapes)
    theirs = pyro_einsum.contract_expression("ab,bc,cd->a", *shapes)
    for backend, seed in itertools.product(["torch_log", "torch_marginal"], range(2)):
        operands = _packed_operands("ab,bc,cd->a", shapes, seed)
        name = "pyro.ops.einsum." + backend
        assert torch.allclose(ours(*operands, backend=name), theirs(*operands, backend=name))
