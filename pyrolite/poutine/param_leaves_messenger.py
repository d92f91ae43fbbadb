"""``ParamLeavesMessenger``: answer ``param`` sites from given unconstrained tensors.

The compilers (TorchScript tracing, the compiled SVI step) pass each param's leaf in as
a graph input and read params through this handler, so the traced code never touches
the ParamStore's own storage.
"""

from typing import Any, Mapping, Optional

import torch

from .messenger import Messenger
from .runtime import Message


class MissingLeaf(KeyError):
    """A ``param`` site whose leaf was not given."""


class ParamLeavesMessenger(Messenger):
    """Read param ``name`` as ``transforms[name](leaves[name])`` (the leaf itself if None).

    >>> import torch, pyrolite
    >>> from torch.distributions.transforms import ExpTransform
    >>> with ParamLeavesMessenger({"s": torch.zeros(1)}, {"s": ExpTransform()}):
    ...     pyrolite.param("s", torch.ones(1))
    tensor([1.])
    """

    def __init__(
        self,
        leaves: Mapping[str, torch.Tensor],
        transforms: Optional[Mapping[str, Any]] = None,
    ):
        self.leaves = leaves
        self.transforms: Mapping[str, Any] = transforms or {}

    def _pyro_param(self, msg: Message) -> None:
        name = msg["name"]
        leaf = self.leaves.get(name)
        if leaf is None:
            raise MissingLeaf(f"param {name!r} has no leaf in this compiled function")
        transform = self.transforms.get(name)
        msg["value"] = leaf if transform is None else transform(leaf)
        msg["done"] = True


__all__ = ["MissingLeaf", "ParamLeavesMessenger"]
