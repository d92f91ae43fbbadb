"""Shared fixtures: every test starts from an empty ParamStore, validation on, seed 0."""

import pytest
import torch

import pyrolite
import pyrolite.util

# The suite is many tiny ops: intra-op threads only add contention (on a loaded 2-core box
# a 20-element op took ~14 ms with 2 threads, 8 us with 1).
torch.set_num_threads(1)


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


@pytest.fixture
def float64():
    """Run the test with float64 as torch's default dtype (exactness checks)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)
