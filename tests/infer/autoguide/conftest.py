"""Autoguide tests run single-threaded: their tensors are tiny, and extra threads only
contend with each other (and with other test runs) on a shared machine."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
