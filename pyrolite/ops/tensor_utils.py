"""Tensor helpers Pyro keeps in ``pyro.ops.tensor_utils``: the orthonormal discrete cosine
transform and its inverse. Short transforms multiply by a cached DCT matrix (one matmul);
long ones use one FFT (Makhoul's method), O(n log n)."""

import math
from typing import Dict, Tuple

import torch

# Up to this length one (cached) matmul beats the FFT's several small kernels.
_MATRIX_MAX_LENGTH = 64
_MATRICES: Dict[Tuple[int, torch.dtype, torch.device], torch.Tensor] = {}


def _dct_matrix(n: int, like: torch.Tensor) -> torch.Tensor:
    """Row ``k``: ``sqrt(2 / n) cos(pi k (2 j + 1) / (2 n))``, row 0 scaled by ``1/sqrt(2)``."""
    key = (n, like.dtype, like.device)
    if key not in _MATRICES:
        k = torch.arange(n, dtype=like.dtype, device=like.device)
        matrix = torch.cos(math.pi / (2 * n) * torch.outer(k, 2 * k + 1)) * math.sqrt(2.0 / n)
        matrix[0] = matrix[0] / math.sqrt(2.0)
        _MATRICES[key] = matrix
    return _MATRICES[key]


def _twiddle(n: int, like: torch.Tensor, sign: float) -> torch.Tensor:
    k = torch.arange(n, dtype=like.dtype, device=like.device)
    return torch.polar(torch.ones_like(k), sign * math.pi * k / (2 * n))


def _dct_last(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal DCT-II along the last dim."""
    n = x.size(-1)
    if n <= _MATRIX_MAX_LENGTH:
        return x @ _dct_matrix(n, x).T
    v = torch.cat([x[..., ::2], x[..., 1::2].flip(-1)], -1)
    c = (torch.fft.fft(v) * _twiddle(n, x, -1.0)).real
    scale = torch.full((n,), math.sqrt(2.0 / n), dtype=x.dtype, device=x.device)
    scale[0] = math.sqrt(1.0 / n)
    return c * scale


def _idct_last(y: torch.Tensor) -> torch.Tensor:
    """The inverse (and transpose) of :func:`_dct_last`: the orthonormal DCT-III."""
    n = y.size(-1)
    if n <= _MATRIX_MAX_LENGTH:
        return y @ _dct_matrix(n, y)
    scale = torch.full((n,), math.sqrt(n / 2.0), dtype=y.dtype, device=y.device)
    scale[0] = math.sqrt(float(n))
    c = y * scale
    c_reflected = torch.cat([torch.zeros_like(c[..., :1]), c[..., 1:].flip(-1)], -1)
    v = torch.fft.ifft(torch.complex(c, -c_reflected) * _twiddle(n, y, 1.0)).real
    x = torch.empty_like(y)
    x[..., ::2] = v[..., : (n + 1) // 2]
    x[..., 1::2] = v[..., (n + 1) // 2 :].flip(-1)
    return x


def dct(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """The orthonormal DCT-II of ``x`` along ``dim``.

    >>> [round(float(v), 4) for v in dct(torch.tensor([1.0, 2.0, 4.0]))]
    [4.0415, -2.1213, 0.4082]
    """
    return _dct_last(x.movedim(dim, -1)).movedim(-1, dim)


def idct(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """The inverse of :func:`dct` along ``dim`` (the orthonormal DCT-III; also its transpose).

    >>> [round(float(v), 4) for v in idct(dct(torch.tensor([1.0, 2.0, 4.0])))]
    [1.0, 2.0, 4.0]
    """
    return _idct_last(x.movedim(dim, -1)).movedim(-1, dim)
