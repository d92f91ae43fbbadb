"""``ops.tensor_utils.dct``/``idct``: the orthonormal DCT on both of its code paths (the
cached matrix for short transforms, the FFT for long ones), against its definition."""

import math

import pytest
import torch

from pyrolite.ops.tensor_utils import dct, idct


def _definition(x: torch.Tensor) -> torch.Tensor:
    n = x.size(-1)
    j = torch.arange(n, dtype=x.dtype)
    rows = [
        torch.cos(math.pi * k * (2 * j + 1) / (2 * n)) * math.sqrt((1 if k == 0 else 2) / n)
        for k in range(n)
    ]
    return x @ torch.stack(rows).T


@pytest.mark.parametrize("n", [1, 5, 64, 65, 200])
def test_dct_is_the_orthonormal_dct_ii_and_idct_inverts_it(n):
    x = torch.randn(3, n, 2, dtype=torch.float64)
    y = dct(x, dim=-2)
    expected = _definition(x.movedim(-2, -1)).movedim(-1, -2)
    assert torch.allclose(y, expected, atol=1e-10)
    assert torch.allclose(idct(y, dim=-2), x, atol=1e-10)


@pytest.mark.parametrize("n", [7, 100])
def test_dct_matches_pyro(n):
    tensor_utils = pytest.importorskip("pyro.ops.tensor_utils")
    x = torch.randn(4, n, dtype=torch.float64)
    assert torch.allclose(dct(x), tensor_utils.dct(x), atol=1e-10)
    assert torch.allclose(idct(x), tensor_utils.idct(x), atol=1e-10)
