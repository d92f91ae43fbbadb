"""Shared fixtures: every test starts from an empty ParamStore, validation on, seed 0."""

import pytest
import torch

import pyrolite
import pyrolite.util


@pytest.fixture(autouse=True)
def _fresh_global_state():
    pyrolite.clear_param_store()
    pyrolite.enable_validation(True)
    pyrolite.util.reset_warn_once()
    pyrolite.set_rng_seed(0)
    yield


@pytest.fixture(
    params=[
        "cpu",
        pytest.param(
            "cuda",
            marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available"),
        ),
    ]
)
def device(request):
    """Run the test once on CPU and once on CUDA (when a GPU is present)."""
    return torch.device(request.param)
