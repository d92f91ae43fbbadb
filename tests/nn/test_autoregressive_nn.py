"""MADE networks: the masks make every output depend only on earlier inputs (and the
context), outputs have Pyro's shapes for each ``param_dims``, skip connections keep the
property, and the masked weights get no gradient."""

import pytest
import torch
from torch.autograd.functional import jacobian

from pyrolite.nn.auto_reg_nn import (
    AutoRegressiveNN,
    ConditionalAutoRegressiveNN,
    MaskedLinear,
    create_mask,
    sample_mask_indices,
)


def _output_input_dependence(net, x, context=None):
    """``dep[p, j, i]``: whether output ``j`` of parameter ``p`` moves with input ``i``."""

    def flat(v):
        out = net(v) if context is None else net(v, context)
        out = out if isinstance(out, tuple) else (out,)
        return torch.cat([o.reshape(-1, o.shape[-1]) for o in out])

    J = jacobian(flat, x)  # (rows, input_dim, input_dim)
    return J.abs() > 0


@pytest.mark.parametrize("skip_connections", [False, True])
@pytest.mark.parametrize("hidden_dims", [[5], [8, 6], [5, 20, 7]])
def test_outputs_depend_only_on_earlier_inputs(hidden_dims, skip_connections, float64):
    input_dim = 5
    net = AutoRegressiveNN(
        input_dim, hidden_dims, param_dims=[1, 2], skip_connections=skip_connections
    )
    perm = net.get_permutation()
    rank = torch.empty_like(perm)
    rank[perm] = torch.arange(input_dim)
    allowed = rank[None, :] < rank[:, None]  # output j may see input i
    for x in torch.randn(3, input_dim):
        dep = _output_input_dependence(net, x)
        assert not (dep & ~allowed).any()
    # Every allowed connection exists through the masks (the network is not degenerate).
    masks, mask_skip = create_mask(input_dim, 0, hidden_dims, perm, 3)
    path = masks[0]
    for m in masks[1:]:
        path = m @ path
    assert torch.equal(path[:input_dim] > 0, allowed)
    assert torch.equal(mask_skip[:input_dim] > 0, allowed)


def test_conditional_outputs_depend_on_the_context_and_earlier_inputs(float64):
    net = ConditionalAutoRegressiveNN(4, 3, [8, 8], param_dims=[1, 1], skip_connections=True)
    perm = net.get_permutation()
    rank = torch.empty_like(perm)
    rank[perm] = torch.arange(4)
    x, context = torch.randn(4), torch.randn(3)
    dep = _output_input_dependence(net, x, context)
    assert not (dep & ~(rank[None, :] < rank[:, None])).any()
    # The first output in the order still sees the context.
    J_context = jacobian(lambda c: net(x, c)[0], context)
    assert (J_context[perm[0]].abs() > 0).any()


@pytest.mark.parametrize(
    "param_dims,shapes",
    [
        ([1, 1], [(6, 4), (6, 4)]),
        ([2], [(6, 2, 4)]),
        ([1, 3], [(6, 1, 4), (6, 3, 4)]),
        ([1], [(6, 4)]),
        ([2, 2, 1], [(6, 2, 4), (6, 2, 4), (6, 1, 4)]),
        ([1, 1, 1, 1], [(6, 4)] * 4),
    ],
)
@pytest.mark.parametrize("skip_connections", [False, True])
def test_output_shapes_follow_param_dims(param_dims, shapes, skip_connections):
    net = AutoRegressiveNN(4, [10], param_dims=param_dims, skip_connections=skip_connections)
    out = net(torch.randn(6, 4))
    if len(param_dims) == 1:
        assert torch.is_tensor(out) and out.shape == shapes[0]
    else:
        assert isinstance(out, tuple) and [o.shape for o in out] == [torch.Size(s) for s in shapes]
    conditional = ConditionalAutoRegressiveNN(4, 2, [10], param_dims=param_dims)
    out = conditional(torch.randn(6, 4), torch.randn(2))
    outs = [out] if torch.is_tensor(out) else list(out)
    assert [o.shape for o in outs] == [torch.Size(s) for s in shapes]


def test_context_broadcasts_over_batch_dims():
    net = ConditionalAutoRegressiveNN(3, 2, [6])
    mean, scale = net(torch.randn(2, 5, 3), torch.randn(5, 2))
    assert mean.shape == scale.shape == (2, 5, 3)


def test_skip_connection_adds_a_masked_bias_free_layer():
    net = AutoRegressiveNN(3, [6, 6], param_dims=[1, 2], skip_connections=True)
    names = [n for n, _ in net.named_parameters()]
    assert names[-1] == "skip_layer.weight" and "skip_layer.bias" not in names
    assert net.skip_layer.weight.shape == (9, 3)
    plain = AutoRegressiveNN(3, [6, 6], param_dims=[1, 2])
    assert plain.skip_layer is None


def test_state_dict_keys_and_the_given_permutation():
    perm = torch.tensor([2, 0, 1])
    net = AutoRegressiveNN(3, [7, 8], permutation=perm)
    assert torch.equal(net.get_permutation(), perm)
    assert list(net.state_dict()) == [
        "permutation",
        "layers.0.weight",
        "layers.0.bias",
        "layers.0.mask",
        "layers.1.weight",
        "layers.1.bias",
        "layers.1.mask",
        "layers.2.weight",
        "layers.2.bias",
        "layers.2.mask",
    ]
    assert [layer.weight.shape for layer in net.layers] == [(7, 3), (8, 7), (6, 8)]


def test_masked_weights_get_no_gradient():
    mask = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    layer = MaskedLinear(2, 2, mask)
    layer(torch.randn(5, 2)).sum().backward()
    assert torch.equal(layer.weight.grad * (1 - mask), torch.zeros(2, 2))
    assert (layer.weight.grad[mask.bool()] != 0).all()


def test_hidden_layers_narrower_than_the_input_are_rejected():
    with pytest.raises(ValueError, match="Hidden dimension"):
        AutoRegressiveNN(4, [3])
    with pytest.warns(UserWarning, match="input_dim = 1"):
        AutoRegressiveNN(1, [2])


def test_mask_degrees_are_evenly_spread():
    assert sample_mask_indices(4, 7).tolist() == [1.0, 2.0, 2.0, 2.0, 3.0, 4.0, 4.0]
    torch.manual_seed(0)
    random = sample_mask_indices(4, 7, simple=False)
    spread = torch.linspace(1, 4, 7)
    assert ((random - spread).abs() < 1).all() and set(random.tolist()) <= {1.0, 2.0, 3.0, 4.0}
