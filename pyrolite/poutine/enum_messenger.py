"""``enum``: replace discrete sites marked for enumeration by all their values at once.

Each site with ``infer={"enumerate": "parallel"}`` gets its support as the value, laid
out along a fresh tensor dim left of the plate dims (``first_available_dim`` and
further left), so later computations broadcast over every value of it. The dims come
from an :class:`EnumDims` allocator; an estimator hands one allocator to the guide's
and the model's ``enum`` so a step's enumerated sites never share a dim. Inside
``markov`` a dim is recycled once its site falls out of the Markov window, so a chain
of any length uses a bounded number of dims.

``infer`` options read here: ``"enumerate": "parallel"``; ``"expand"`` (the values
expanded to the site's full batch shape, default False); ``"num_samples": k`` (k draws
from the site's distribution along the dim instead of its support: sampled
enumeration). The site's dim is recorded as ``infer["_enumerate_dim"]``.
"""

from typing import Dict, Optional, Tuple

import torch

from ..distributions.util import at_enum_dim
from .messenger import Messenger
from .runtime import Message, broadcast_site

# PyTorch tensors have at most 64 dims; leave room for event dims.
MAX_TENSOR_DIMS = 60


class EnumDims:
    """Which enumerated site holds which dim; shared by the guide and model of one step.

    ``allocate`` gives the rightmost dim at or left of ``first_available_dim`` that no
    live site holds. A site's dim stays held for the rest of the step unless it was
    allocated inside a ``markov`` context: then the dim is free again for a later site of
    the same (still active) context whose Markov window no longer holds the site.
    """

    def __init__(self, first_available_dim: int):
        if first_available_dim >= 0:
            raise ValueError(f"first_available_dim must be negative, got {first_available_dim}")
        self.first_available_dim = first_available_dim
        self._owners: Dict[int, Tuple[str, Optional[object]]] = {}  # dim -> (site, markov)
        self.dims: Dict[str, int] = {}  # every site allocated, with its dim

    def allocate(self, msg: Message) -> int:
        scope = msg["infer"].get("_markov_scope")
        dim = self.first_available_dim
        while dim in self._owners and not self._reusable(self._owners[dim], scope):
            dim -= 1
        if -dim > MAX_TENSOR_DIMS:
            raise ValueError(
                f"enumerating site '{msg['name']}' needs tensor dim {dim}: out of dims "
                f"({len(self._owners)} enumerated sites are live). Wrap chains in "
                "pyrolite.markov(...) so their dims are recycled, enumerate fewer sites, or "
                "use infer={'enumerate': 'sequential'} for some."
            )
        self._owners[dim] = (msg["name"], msg["infer"].get("_markov_context"))
        self.dims[msg["name"]] = dim
        return dim

    @staticmethod
    def _reusable(owner: Tuple[str, Optional[object]], scope) -> bool:
        name, context = owner
        return (
            context is not None
            and scope is not None
            and getattr(context, "active", False)
            and name not in scope
        )

    def holds(self, dim: int) -> bool:
        """Whether an enumerated site holds ``dim``."""
        return dim in self._owners

    @property
    def num_dims(self) -> int:
        """How many distinct dims the step's enumerated sites use."""
        return len(self._owners)


class EnumMessenger(Messenger):
    """Parallel enumeration; ``first_available_dim`` is ``-1 - max_plate_nesting``.

    :param first_available_dim: the rightmost dim enumeration may use.
    :param dims: an :class:`EnumDims` to allocate from (shared with another ``enum``);
        a fresh one on each entry when not given.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> def model():
    ...     return pyrolite.sample("b", dist.Bernoulli(0.3), infer={"enumerate": "parallel"})
    >>> poutine.enum(model, first_available_dim=-1)().shape
    torch.Size([2])
    """

    def __init__(self, first_available_dim: Optional[int] = None, dims: Optional[EnumDims] = None):
        if first_available_dim is None:
            first_available_dim = dims.first_available_dim if dims is not None else -1
        if first_available_dim >= 0:
            raise ValueError(f"first_available_dim must be negative, got {first_available_dim}")
        self.first_available_dim = first_available_dim
        self._shared = dims
        self.dims = dims

    def __enter__(self):
        if self._shared is None:
            self.dims = EnumDims(self.first_available_dim)
        return super().__enter__()

    def _pyro_sample(self, msg: Message) -> None:
        if msg["infer"].get("_subsample"):
            return
        self._check_plates(msg)
        if msg["done"] or msg["is_observed"] or msg["infer"].get("enumerate") != "parallel":
            return
        broadcast_site(msg)  # enumerate over the plates' full batch shape
        fn = msg["fn"]
        num_samples = msg["infer"].get("num_samples")
        if num_samples is None and not getattr(fn, "has_enumerate_support", False):
            raise ValueError(
                f"site '{msg['name']}' is marked for enumeration but {type(fn).__name__} has no "
                "finite support to enumerate (a continuous site?); remove "
                "infer={'enumerate': ...} from it, or use config_enumerate, which marks "
                "discrete sites only"
            )
        batch_shape = tuple(fn.batch_shape)
        self._check_batch(msg, batch_shape)
        dim = self.dims.allocate(msg)
        event_shape = tuple(fn.event_shape)
        if num_samples is not None:
            value = at_enum_dim(fn.sample((int(num_samples),)), dim, batch_shape, event_shape)
            msg["infer"]["_enum_num_samples"] = int(num_samples)
        else:
            value = at_enum_dim(fn.enumerate_support(expand=False), dim, None, event_shape)
            msg["infer"]["_enumerate_support"] = True  # the value is the site's support
            if msg["infer"].get("expand", False):
                batch = value.shape[: value.dim() - len(event_shape)]
                value = value.expand(torch.broadcast_shapes(batch, batch_shape) + event_shape)
        msg["value"] = value
        msg["done"] = True
        msg["infer"]["_enumerate_dim"] = dim

    def _check_batch(self, msg: Message, batch_shape: tuple) -> None:
        """A batch dim left of the plate dims must be an enumeration dim already held."""
        window = -1 - self.first_available_dim
        for dim in range(-len(batch_shape), -window):
            if batch_shape[dim] != 1 and not self.dims.holds(dim):
                plates = [f.name for f in msg["cond_indep_stack"] if f.dim is not None]
                raise ValueError(
                    f"enumerated site '{msg['name']}' has batch shape {batch_shape} (plates "
                    f"{plates}): its dim {dim} lies left of the max_plate_nesting={window} "
                    "plate dims, where enumeration puts its dims. Pass "
                    f"max_plate_nesting={-dim} (or more) to the ELBO, or put the batch dims "
                    "in plates."
                )

    def _check_plates(self, msg: Message) -> None:
        for frame in msg["cond_indep_stack"]:
            if frame.dim is not None and frame.dim <= self.first_available_dim:
                window = -1 - self.first_available_dim
                frames = [f for f in msg["cond_indep_stack"] if f.dim is not None]
                needed = max(-f.dim for f in frames)
                raise ValueError(
                    f"plate('{frame.name}') at site '{msg['name']}' uses dim {frame.dim}, but "
                    f"with max_plate_nesting={window} dims {self.first_available_dim} and "
                    f"left are enumeration dims (site '{msg['name']}' is in plates "
                    f"{[f.name for f in frames]}, dims {[f.dim for f in frames]}). Pass "
                    f"max_plate_nesting={needed} (or more) to the ELBO, or give the plate a "
                    "dim to the right."
                )
