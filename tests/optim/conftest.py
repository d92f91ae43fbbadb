import pytest
import torch

import pyrolite.optim.optim as optim_module


class FakeNames:
    """Stands in for the ParamStore's reverse lookup (tensor -> name)."""

    def __init__(self):
        self._names = {}

    def param(self, name, value):
        tensor = torch.as_tensor(value, dtype=torch.get_default_dtype()).clone()
        tensor.requires_grad_(True)
        self._names[tensor] = name
        return tensor

    def name_of(self, tensor):
        return self._names.get(tensor)


@pytest.fixture
def names(monkeypatch):
    fake = FakeNames()
    monkeypatch.setattr(optim_module, "_param_name", fake.name_of)
    return fake
