"""``enum``: replace discrete sites marked for enumeration by all their values at once.

Each site with ``infer={"enumerate": "parallel"}`` gets its support as the value,
shaped to live in a fresh dim left of the plate dims (``first_available_dim`` and
further left), so later computations broadcast over every value of it.
"""

from typing import Dict

from .messenger import Messenger
from .runtime import Message, broadcast_site


class EnumMessenger(Messenger):
    """Parallel enumeration; ``first_available_dim`` is ``-1 - max_plate_nesting``.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> def model():
    ...     return pyrolite.sample("b", dist.Bernoulli(0.3), infer={"enumerate": "parallel"})
    >>> poutine.enum(model, first_available_dim=-1)().shape
    torch.Size([2])
    """

    def __init__(self, first_available_dim: int = None):
        if first_available_dim is not None and first_available_dim >= 0:
            raise ValueError(f"first_available_dim must be negative, got {first_available_dim}")
        self.first_available_dim = first_available_dim
        self._dims: Dict[str, int] = {}

    def __enter__(self):
        self._next_dim = self.first_available_dim if self.first_available_dim is not None else -1
        self._dims = {}
        return super().__enter__()

    def _pyro_sample(self, msg: Message) -> None:
        if msg["done"] or msg["is_observed"] or msg["infer"].get("enumerate") != "parallel":
            return
        broadcast_site(msg)  # enumerate over the plates' full batch shape
        fn = msg["fn"]
        if not getattr(fn, "has_enumerate_support", False):
            raise ValueError(
                f"site '{msg['name']}' is marked for enumeration but {type(fn).__name__} has no "
                "finite support to enumerate; remove infer={'enumerate': ...} from it"
            )
        dim = self._next_dim
        self._next_dim -= 1
        support = fn.enumerate_support(expand=False)
        # support is (K,) + (1,) * len(batch_shape) + event_shape; put K at batch dim `dim`.
        value = support.reshape((support.shape[0],) + (1,) * (-dim - 1) + tuple(fn.event_shape))
        msg["value"] = value
        msg["done"] = True
        msg["infer"]["_enumerate_dim"] = dim
        self._dims[msg["name"]] = dim
