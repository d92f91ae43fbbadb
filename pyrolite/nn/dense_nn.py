"""Fully connected networks that output several parameter tensors (``DenseNN``), optionally
from an input concatenated with a context (``ConditionalDenseNN``); the flows' hypernets."""

import itertools
from typing import List, Sequence, Union

import torch


class ConditionalDenseNN(torch.nn.Module):
    """An MLP from ``[context, x]`` to ``len(param_dims)`` outputs of sizes ``param_dims``.

    The hidden layers and the output layer are ``layers.0``, ``layers.1``, ... (``Linear``
    modules) and ``nonlinearity`` follows every hidden layer, not the output. With a single
    parameter the output is one tensor, otherwise a tuple; each keeps its trailing dim even
    when it is 1. ``context`` is broadcast to ``x``'s batch shape.

    >>> nn = ConditionalDenseNN(3, 2, [8], param_dims=[1, 3])
    >>> [p.shape for p in nn(torch.randn(5, 3), torch.randn(2))]
    [torch.Size([5, 1]), torch.Size([5, 3])]
    """

    def __init__(
        self,
        input_dim: int,
        context_dim: int,
        hidden_dims: List[int],
        # Pyro's defaults, kept so signatures match; neither is mutated.
        param_dims: List[int] = [1, 1],  # noqa: B006
        nonlinearity: torch.nn.Module = torch.nn.ReLU(),  # noqa: B008
    ) -> None:
        super().__init__()
        if len(hidden_dims) == 0:
            raise ValueError("DenseNN: hidden_dims must name at least one hidden layer, got []")
        self.input_dim = input_dim
        self.context_dim = context_dim
        self.hidden_dims = hidden_dims
        self.param_dims = param_dims
        self.count_params = len(param_dims)
        self.output_multiplier = sum(param_dims)
        ends = list(itertools.accumulate(param_dims))
        starts = [0] + ends[:-1]
        self.param_slices = [slice(s, e) for s, e in zip(starts, ends)]

        sizes = [input_dim + context_dim] + list(hidden_dims) + [self.output_multiplier]
        self.layers = torch.nn.ModuleList(
            torch.nn.Linear(n_in, n_out) for n_in, n_out in zip(sizes[:-1], sizes[1:])
        )
        self.f = nonlinearity

    def forward(
        self, x: torch.Tensor, context: torch.Tensor
    ) -> Union[Sequence[torch.Tensor], torch.Tensor]:
        context = context.expand(x.shape[:-1] + (context.size(-1),))
        return self._forward(torch.cat([context, x], dim=-1))

    def _forward(self, h: torch.Tensor) -> Union[Sequence[torch.Tensor], torch.Tensor]:
        for layer in self.layers[:-1]:
            h = self.f(layer(h))
        h = self.layers[-1](h)
        if self.count_params == 1:
            return h
        return tuple(h[..., s] for s in self.param_slices)


class DenseNN(ConditionalDenseNN):
    """An MLP from ``x`` to ``len(param_dims)`` outputs of sizes ``param_dims``.

    >>> nn = DenseNN(3, [8, 8], param_dims=[2])
    >>> nn(torch.randn(5, 3)).shape
    torch.Size([5, 2])
    >>> [name for name, _ in nn.named_parameters()][:2]
    ['layers.0.weight', 'layers.0.bias']
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dims: List[int],
        # Pyro's defaults, kept so signatures match; neither is mutated.
        param_dims: List[int] = [1, 1],  # noqa: B006
        nonlinearity: torch.nn.Module = torch.nn.ReLU(),  # noqa: B008
    ) -> None:
        super().__init__(
            input_dim, 0, hidden_dims, param_dims=param_dims, nonlinearity=nonlinearity
        )

    def forward(self, x: torch.Tensor) -> Union[Sequence[torch.Tensor], torch.Tensor]:
        return self._forward(x)
