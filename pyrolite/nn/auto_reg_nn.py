"""Masked autoregressive networks (MADE): ``MaskedLinear``, ``create_mask`` (the MADE masks),
``AutoRegressiveNN`` and ``ConditionalAutoRegressiveNN``, the autoregressive flows' hypernets."""

import itertools
import warnings
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F


def sample_mask_indices(input_dim: int, hidden_dim: int, simple: bool = True) -> torch.Tensor:
    """Degrees in ``1..input_dim`` for ``hidden_dim`` hidden units, spread evenly.

    With ``simple=False`` each evenly spaced value is rounded up or down at random, with the
    probability of rounding up equal to its fractional part.

    >>> sample_mask_indices(5, 10)
    tensor([1., 1., 2., 2., 3., 3., 4., 4., 5., 5.])
    """
    spaced = torch.linspace(1, input_dim, steps=hidden_dim)
    if simple:
        return torch.round(spaced)
    lower = torch.floor(spaced)
    return lower + torch.bernoulli(spaced - lower)


def create_mask(
    input_dim: int,
    context_dim: int,
    hidden_dims: List[int],
    permutation: torch.LongTensor,
    output_dim_multiplier: int,
) -> Tuple[List[torch.Tensor], torch.Tensor]:
    """The MADE masks: one per layer (hidden layers then output) and the skip-layer mask.

    Input ``permutation[i]`` gets degree ``i + 1``, each hidden unit a degree from
    :func:`sample_mask_indices`, and output ``j`` (repeated ``output_dim_multiplier`` times,
    multiplier-major) the degree of input ``j``; a path from input ``i`` to output ``j``
    exists only when the degree of ``i`` is below that of ``j``. Without a context, hidden
    degrees run over ``1..input_dim - 1`` and a hidden unit sees the inputs of degree up to
    its own; with one, they run over ``1..input_dim`` and a hidden unit sees the inputs of
    strictly lower degree, so units of degree 1 see the context alone and the first output
    still depends on it. The context columns (the first ``context_dim``) are always on.

    >>> masks, skip = create_mask(3, 0, [4], torch.tensor([0, 1, 2]), 1)
    >>> masks[0]
    tensor([[1., 0., 0.],
            [1., 0., 0.],
            [1., 1., 0.],
            [1., 1., 0.]])
    >>> skip
    tensor([[0., 0., 0.],
            [1., 0., 0.],
            [1., 1., 0.]])
    """
    dtype = torch.get_default_dtype()
    var_degree = torch.empty(permutation.shape, dtype=dtype)
    var_degree[permutation] = torch.arange(1, input_dim + 1, dtype=dtype)
    output_degree = var_degree.repeat(output_dim_multiplier)
    if context_dim == 0:
        hidden_degrees = [sample_mask_indices(input_dim - 1, h) for h in hidden_dims]
        first = var_degree[None, :] <= hidden_degrees[0][:, None]
        last = hidden_degrees[-1][None, :] < output_degree[:, None]
    else:
        hidden_degrees = [sample_mask_indices(input_dim, h) for h in hidden_dims]
        first = var_degree[None, :] < hidden_degrees[0][:, None]
        last = hidden_degrees[-1][None, :] <= output_degree[:, None]

    def with_context(mask: torch.Tensor) -> torch.Tensor:
        mask = mask.to(dtype)
        return torch.cat([torch.ones(mask.shape[:-1] + (context_dim,), dtype=dtype), mask], -1)

    masks = [with_context(first)]
    for prev, cur in zip(hidden_degrees[:-1], hidden_degrees[1:]):
        masks.append((prev[None, :] <= cur[:, None]).to(dtype))
    masks.append(last.to(dtype))
    mask_skip = with_context(var_degree[None, :] < output_degree[:, None])
    return masks, mask_skip


class MaskedLinear(torch.nn.Linear):
    """A ``Linear`` layer whose weight is multiplied by a fixed 0/1 ``mask`` (a buffer).

    >>> layer = MaskedLinear(2, 2, torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
    >>> torch.nn.init.ones_(layer.weight); torch.nn.init.zeros_(layer.bias)
    ... # doctest: +ELLIPSIS
    Parameter containing:...
    >>> layer(torch.tensor([1.0, 2.0])).tolist()
    [1.0, 3.0]
    """

    def __init__(
        self, in_features: int, out_features: int, mask: torch.Tensor, bias: bool = True
    ) -> None:
        super().__init__(in_features, out_features, bias)
        self.register_buffer("mask", mask.data)

    def forward(self, _input: torch.Tensor) -> torch.Tensor:
        return F.linear(_input, self.mask * self.weight, self.bias)


class ConditionalAutoRegressiveNN(torch.nn.Module):
    """A MADE network from ``[context, x]`` to parameters, autoregressive in ``x``.

    The output for input ``j`` depends on the context and on the inputs ordered before ``j``
    by ``permutation`` (random by default, a buffer; see :meth:`get_permutation`). Outputs
    have shape ``batch + (param_dim, input_dim)`` per entry of ``param_dims``; entries of
    size 1 drop that axis when all entries are 1; a single entry gives a tensor, several a
    tuple.

    >>> nn = ConditionalAutoRegressiveNN(4, 2, [8, 8], param_dims=[1, 3])
    >>> [p.shape for p in nn(torch.randn(5, 4), torch.randn(2))]
    [torch.Size([5, 1, 4]), torch.Size([5, 3, 4])]
    """

    def __init__(
        self,
        input_dim: int,
        context_dim: int,
        hidden_dims: List[int],
        # Pyro's defaults, kept so signatures match; neither is mutated.
        param_dims: List[int] = [1, 1],  # noqa: B006
        permutation: Optional[torch.LongTensor] = None,
        skip_connections: bool = False,
        nonlinearity: torch.nn.Module = torch.nn.ReLU(),  # noqa: B008
    ) -> None:
        super().__init__()
        if input_dim == 1:
            warnings.warn(
                f"{type(self).__name__} input_dim = 1. Consider using an affine "
                "transformation instead."
            )
        if len(hidden_dims) == 0:
            raise ValueError(f"{type(self).__name__}: hidden_dims must not be empty")
        for h in hidden_dims:
            if h < input_dim:
                raise ValueError(
                    "Hidden dimension must not be less than input dimension: got hidden_dims="
                    f"{list(hidden_dims)} for input_dim={input_dim}"
                )
        self.input_dim = input_dim
        self.context_dim = context_dim
        self.hidden_dims = hidden_dims
        self.param_dims = param_dims
        self.count_params = len(param_dims)
        self.output_multiplier = sum(param_dims)
        self.all_ones = all(p == 1 for p in param_dims)
        ends = list(itertools.accumulate(param_dims))
        self.param_slices = [slice(e - p, e) for p, e in zip(param_dims, ends)]

        if permutation is None:
            permutation = torch.randperm(input_dim, device="cpu")
        self.register_buffer("permutation", torch.as_tensor(permutation, dtype=torch.long))

        self.masks, self.mask_skip = create_mask(
            input_dim, context_dim, hidden_dims, self.permutation, self.output_multiplier
        )
        sizes = [input_dim + context_dim] + list(hidden_dims) + [input_dim * self.output_multiplier]
        self.layers = torch.nn.ModuleList(
            MaskedLinear(n_in, n_out, mask)
            for n_in, n_out, mask in zip(sizes[:-1], sizes[1:], self.masks)
        )
        self.skip_layer = None
        if skip_connections:
            self.skip_layer = MaskedLinear(
                input_dim + context_dim,
                input_dim * self.output_multiplier,
                self.mask_skip,
                bias=False,
            )
        self.f = nonlinearity

    def get_permutation(self) -> torch.LongTensor:
        """The order of the inputs: output ``permutation[i]`` depends on inputs
        ``permutation[:i]`` only."""
        return self.permutation

    def forward(
        self, x: torch.Tensor, context: torch.Tensor
    ) -> Union[Sequence[torch.Tensor], torch.Tensor]:
        context = context.expand(x.shape[:-1] + (context.size(-1),))
        return self._forward(torch.cat([context, x], dim=-1))

    def _forward(self, x: torch.Tensor) -> Union[Sequence[torch.Tensor], torch.Tensor]:
        h = x
        for layer in self.layers[:-1]:
            h = self.f(layer(h))
        h = self.layers[-1](h)
        if self.skip_layer is not None:
            h = h + self.skip_layer(x)
        if self.output_multiplier == 1:
            return h
        h = h.reshape(x.shape[:-1] + (self.output_multiplier, self.input_dim))
        if self.count_params == 1:
            return h
        if self.all_ones:
            return torch.unbind(h, dim=-2)
        return tuple(h[..., s, :] for s in self.param_slices)


class AutoRegressiveNN(ConditionalAutoRegressiveNN):
    """A MADE network from ``x`` to parameters: the output for input ``j`` depends only on the
    inputs ordered before ``j`` by ``permutation``.

    >>> nn = AutoRegressiveNN(3, [6], param_dims=[1, 1], permutation=torch.tensor([2, 0, 1]))
    >>> mean, log_scale = nn(torch.randn(10, 3))
    >>> mean.shape, nn.get_permutation().tolist()
    (torch.Size([10, 3]), [2, 0, 1])
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dims: List[int],
        # Pyro's defaults, kept so signatures match; neither is mutated.
        param_dims: List[int] = [1, 1],  # noqa: B006
        permutation: Optional[torch.LongTensor] = None,
        skip_connections: bool = False,
        nonlinearity: torch.nn.Module = torch.nn.ReLU(),  # noqa: B008
    ) -> None:
        super().__init__(
            input_dim,
            0,
            hidden_dims,
            param_dims=param_dims,
            permutation=permutation,
            skip_connections=skip_connections,
            nonlinearity=nonlinearity,
        )

    def forward(self, x: torch.Tensor) -> Union[Sequence[torch.Tensor], torch.Tensor]:
        return self._forward(x)
