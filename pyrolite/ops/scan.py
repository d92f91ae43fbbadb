"""Log-space matrix products and their parallel (pairwise tree) reduction over time.

A Markov chain's log-factors ``(..., T, K, K)`` collapse to one ``(..., K, K)`` matrix in
``ceil(log2 T)`` rounds of batched matrix products instead of ``T`` sequential steps: the
reduction behind :class:`~pyrolite.distributions.DiscreteHMM`.
"""

from typing import Callable, List

import torch

LogMatmul = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _finite_or_zero(shift: torch.Tensor) -> torch.Tensor:
    # A row (or column) that is all -inf has max -inf; shifting by it would give nan.
    return torch.where(torch.isfinite(shift), shift, torch.zeros_like(shift))


def logmatmulexp(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``log(exp(x) @ exp(y))`` over the last two dims, batch dims broadcasting.

    Each row of ``x`` and column of ``y`` is shifted by its max before exponentiating (one
    batched matmul, no ``(..., I, K, J)`` intermediate). The cost of that: entry ``(i, j)``
    underflows to ``-inf`` when every term ``x[i, k] + y[k, j]`` lies more than about 87
    nats (float32; 708 in float64) below row ``i``'s max plus column ``j``'s max, as in
    ``[[0, -1000], [-1000, 0]]`` squared. In an HMM that needs transition probabilities
    that small, or structural zeros together with data the model finds that improbable.
    Gradients are exact: the shifts are constants, since the result does not depend on them.

    >>> x = torch.tensor([[0.0, -50.0], [-50.0, 0.0]], dtype=torch.float64)
    >>> logmatmulexp(x, x)
    tensor([[  0.0000, -49.3069],
            [-49.3069,   0.0000]], dtype=torch.float64)
    """
    if x.size(-1) != y.size(-2):
        raise ValueError(
            f"logmatmulexp: x of shape {tuple(x.shape)} and y of shape {tuple(y.shape)} do "
            f"not chain: x's last dim ({x.size(-1)}) must equal y's second-last "
            f"({y.size(-2)})."
        )
    x_shift = _finite_or_zero(x.detach().amax(-1, keepdim=True))
    y_shift = _finite_or_zero(y.detach().amax(-2, keepdim=True))
    product = torch.matmul((x - x_shift).exp(), (y - y_shift).exp())
    return product.log() + x_shift + y_shift


def logmaxmatmul(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The max-plus analogue of :func:`logmatmulexp`: ``max_k x[..., i, k] + y[..., k, j]``.

    Chaining it over time gives the log-weight of the best path between two states (the
    Viterbi recursion) where :func:`logmatmulexp` gives the log-sum over all paths. It
    builds a ``(..., I, K, J)`` intermediate.

    >>> x = torch.tensor([[0.0, -1.0], [-2.0, -3.0]])
    >>> logmaxmatmul(x, x)
    tensor([[ 0., -1.],
            [-2., -3.]])
    """
    if x.size(-1) != y.size(-2):
        raise ValueError(
            f"logmaxmatmul: x of shape {tuple(x.shape)} and y of shape {tuple(y.shape)} do "
            f"not chain: x's last dim ({x.size(-1)}) must equal y's second-last "
            f"({y.size(-2)})."
        )
    return (x.unsqueeze(-1) + y.unsqueeze(-3)).amax(-2)


def _check_chain(name: str, logits: torch.Tensor) -> None:
    if logits.dim() < 3 or logits.size(-1) != logits.size(-2):
        raise ValueError(
            f"{name}: expected logits of shape (..., T, K, K), a time dim then square "
            f"matrices, got shape {tuple(logits.shape)}."
        )


def scan_levels(logits: torch.Tensor, matmul: LogMatmul = logmatmulexp) -> List[torch.Tensor]:
    """Every level of the pairwise tree that reduces ``logits`` (..., T, K, K) over time.

    Level 0 is ``logits``; level ``l + 1`` holds ``matmul`` of neighbouring pairs
    ``(2i, 2i + 1)`` of level ``l``, and, when level ``l`` has an odd count, its last
    matrix carried up unchanged. The last level has time size 1 (T >= 1). Entry ``i`` of
    level ``l`` is the product over times ``[i * 2**l, min((i + 1) * 2**l, T))``; the
    levels are what a top-down pass (such as sampling a path) needs.

    >>> [level.shape[-3] for level in scan_levels(torch.zeros(5, 2, 2))]
    [5, 3, 2, 1]
    """
    _check_chain("scan_levels", logits)
    levels = [logits]
    while levels[-1].size(-3) > 1:
        level = levels[-1]
        paired = 2 * (level.size(-3) // 2)
        products = matmul(level[..., 0:paired:2, :, :], level[..., 1:paired:2, :, :])
        if paired < level.size(-3):
            products = torch.cat([products, level[..., paired:, :, :]], dim=-3)
        levels.append(products)
    return levels


def _log_identity(logits: torch.Tensor) -> torch.Tensor:
    size = logits.size(-1)
    eye = torch.eye(size, dtype=torch.bool, device=logits.device)
    zero = torch.zeros((), dtype=logits.dtype, device=logits.device)
    identity = torch.where(eye, zero, zero - float("inf"))
    return identity.expand(logits.shape[:-3] + (size, size))


def sequential_logmatmulexp(logits: torch.Tensor) -> torch.Tensor:
    """The log-space product ``logits[..., 0, :, :] @ ... @ logits[..., T - 1, :, :]`` in
    time order, by a pairwise tree (``ceil(log2 T)`` rounds of batched products).

    ``logits`` has shape ``(..., T, K, K)``; the result ``(..., K, K)`` is differentiable.
    An empty time dim (T = 0) gives the log-identity (0 on the diagonal, -inf off it).

    >>> step = torch.tensor([[0.0, 0.0], [-float("inf"), 0.0]])  # 0 -> {0, 1}; 1 -> 1
    >>> sequential_logmatmulexp(step.expand(3, 2, 2)).exp()
    tensor([[1., 3.],
            [0., 1.]])
    """
    _check_chain("sequential_logmatmulexp", logits)
    if logits.size(-3) == 0:
        return _log_identity(logits)
    return scan_levels(logits, logmatmulexp)[-1].squeeze(-3)


def sequential_logmaxmatmul(logits: torch.Tensor) -> torch.Tensor:
    """:func:`sequential_logmatmulexp` in the max-plus semiring: entry ``(i, j)`` is the
    log-weight of the best path from state ``i`` before time 0 to state ``j`` at T - 1.

    >>> step = torch.tensor([[0.0, -1.0], [-2.0, 0.0]])
    >>> sequential_logmaxmatmul(step.expand(3, 2, 2))
    tensor([[ 0., -1.],
            [-2.,  0.]])
    """
    _check_chain("sequential_logmaxmatmul", logits)
    if logits.size(-3) == 0:
        return _log_identity(logits)
    return scan_levels(logits, logmaxmatmul)[-1].squeeze(-3)


__all__ = [
    "logmatmulexp",
    "logmaxmatmul",
    "scan_levels",
    "sequential_logmatmulexp",
    "sequential_logmaxmatmul",
]
