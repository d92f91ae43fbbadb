"""Matrix-exponential flow (Hoogeboom et al., 2020): ``y = exp(W) x`` with ``exp`` a
truncated Taylor series, inverse ``exp(-W) y``, ``log|det| = trace(W)``; plain, conditional,
helpers."""

from typing import List, Optional

import torch
from torch.distributions.transforms import Transform

from pyrolite.distributions import constraints
from pyrolite.distributions.transforms.conditional import ConditionalTransformModule
from pyrolite.distributions.transforms.module import TransformModule
from pyrolite.nn.dense_nn import DenseNN


def _check_normalization(normalization: str) -> None:
    if normalization not in ("none", "weight", "spectral"):
        raise ValueError(
            f"normalization must be 'none', 'weight' or 'spectral', got {normalization!r}"
        )
    if normalization != "none":
        # Pyro 1.9 accepts the names but implements neither; so does pyrolite.
        raise NotImplementedError("Normalization is currently not implemented.")


class ConditionedMatrixExponential(Transform):
    """``exp(W) x`` for a fixed ``weights`` matrix ``W`` of shape ``(..., d, d)``."""

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(
        self,
        weights: Optional[torch.Tensor] = None,
        iterations: int = 8,
        normalization: str = "none",
        bound: Optional[float] = None,
    ):
        super().__init__(cache_size=1)
        if iterations < 1:
            raise ValueError(f"iterations must be a positive integer, got {iterations}")
        _check_normalization(normalization)
        self._fixed_weights = weights
        self.iterations = iterations
        self.normalization = normalization
        self.bound = bound

    def _weights(self) -> torch.Tensor:
        return self._fixed_weights

    def _exp(self, x: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
        # sum_{k=0}^{iterations} W^k x / k!. One (d, d) series costs d^3 per term, applying
        # it to a batch costs batch * d^2 per term: form the matrix unless W is batched.
        if W.dim() == 2:
            term = torch.eye(W.size(-1), dtype=W.dtype, device=W.device)
            total = term
            for k in range(1, self.iterations + 1):
                term = term @ W / k
                total = total + term
            return x @ total.T
        term = x
        total = x
        for k in range(1, self.iterations + 1):
            term = (W @ term.unsqueeze(-1)).squeeze(-1) / k
            total = total + term
        return total

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        return self._exp(x, self._weights())

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        return self._exp(y, -self._weights())

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # Pyro returns trace(W) without broadcasting to the batch of x; TransformedDistribution
        # broadcasts it.
        return self._weights().diagonal(dim1=-2, dim2=-1).sum(-1)


class MatrixExponential(ConditionedMatrixExponential, TransformModule):
    """Matrix-exponential flow with a learnable ``weights`` matrix ``(input_dim, input_dim)``.

    ``iterations`` is the order of the Taylor series; ``normalization`` other than
    ``'none'`` raises ``NotImplementedError`` (as in Pyro) and ``bound`` is unused.

    >>> flow = MatrixExponential(3)
    >>> x = torch.randn(5, 3)
    >>> bool(torch.allclose(flow.inv(flow(x).clone()), x, atol=1e-5))
    True
    """

    def __init__(
        self,
        input_dim: int,
        iterations: int = 8,
        normalization: str = "none",
        bound: Optional[float] = None,
    ):
        super().__init__(None, iterations, normalization, bound)
        self.weights = torch.nn.Parameter(torch.empty(input_dim, input_dim))
        self.reset_parameters()

    def _weights(self):
        return self.weights

    def reset_parameters(self) -> None:
        stdv = self.weights.size(0) ** -0.5
        with torch.no_grad():
            self.weights.uniform_(-stdv, stdv)


class ConditionalMatrixExponential(ConditionalTransformModule):
    """Matrix-exponential flow whose ``W`` is ``nn(context)`` reshaped to ``(..., d, d)``
    (row-major, ``param_dims=[d * d]``).

    >>> flow = conditional_matrix_exponential(3, context_dim=2)
    >>> flow.condition(torch.randn(2))(torch.randn(5, 3)).shape
    torch.Size([5, 3])
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(
        self,
        input_dim: int,
        nn: torch.nn.Module,
        iterations: int = 8,
        normalization: str = "none",
        bound: Optional[float] = None,
    ):
        super().__init__()
        _check_normalization(normalization)
        self.input_dim = input_dim
        self.nn = nn
        self.iterations = iterations
        self.normalization = normalization
        self.bound = bound

    def condition(self, context: torch.Tensor) -> ConditionedMatrixExponential:
        weights = self.nn(context)
        weights = weights.reshape(weights.shape[:-1] + (self.input_dim, self.input_dim))
        return ConditionedMatrixExponential(
            weights, self.iterations, self.normalization, self.bound
        )


def matrix_exponential(
    input_dim: int,
    iterations: int = 8,
    normalization: str = "none",
    bound: Optional[float] = None,
) -> MatrixExponential:
    """A :class:`MatrixExponential` flow on vectors of size ``input_dim``.

    >>> matrix_exponential(4).weights.shape
    torch.Size([4, 4])
    """
    return MatrixExponential(
        input_dim, iterations=iterations, normalization=normalization, bound=bound
    )


def conditional_matrix_exponential(
    input_dim: int,
    context_dim: int,
    hidden_dims: Optional[List[int]] = None,
    iterations: int = 8,
    normalization: str = "none",
    bound: Optional[float] = None,
) -> ConditionalMatrixExponential:
    """A :class:`ConditionalMatrixExponential` with a :class:`~pyrolite.nn.dense_nn.DenseNN`
    hypernet (hidden layers default to ``[10 * input_dim, 10 * input_dim]``).

    >>> conditional_matrix_exponential(4, 2).nn.param_dims
    [16]
    """
    if hidden_dims is None:
        hidden_dims = [input_dim * 10, input_dim * 10]
    nn = DenseNN(context_dim, hidden_dims, param_dims=[input_dim * input_dim])
    return ConditionalMatrixExponential(
        input_dim, nn, iterations=iterations, normalization=normalization, bound=bound
    )
