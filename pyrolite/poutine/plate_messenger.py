"""``plate``: conditional independence, batch dims, subsampling and log-prob scaling.

A vectorized plate owns one tensor dim (given or allocated right to left), expands
every sample site inside to its size at that dim, records itself on each site's
``cond_indep_stack`` (so estimators can Rao-Blackwellize), and, when it
subsamples, draws the indices as a sample site (so the guide's subsample is
replayed into the model) and scales log-probs by ``size / subsample_size``.
Used as an iterator, it is a sequential plate: one independent context per index.
"""

import operator
from collections import OrderedDict
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, NamedTuple, Optional, Union

import torch

from .enum_messenger import EnumMessenger
from .messenger import Messenger
from .runtime import _STACK, Message, apply_stack, new_message
from .shard_messenger import PlateShard, active_shard, take_part


def _plate_int(name: str, what: str, value) -> int:
    """``value`` as an int (ints, integral floats, integer 0-dim tensors), else a ValueError."""
    try:
        return operator.index(value)
    except TypeError:
        pass
    try:
        as_float = float(value)
    except (TypeError, ValueError, RuntimeError):
        as_float = None
    if as_float is None or not as_float.is_integer():
        raise ValueError(
            f"plate('{name}'): {what} must be an integer, got {value!r}. Pass a whole "
            f"number, e.g. {what}=len(data)."
        )
    return int(as_float)


class CondIndepStackFrame(NamedTuple):
    name: str
    dim: Optional[int]
    size: int
    counter: int
    full_size: Optional[int] = None

    @property
    def vectorized(self) -> bool:
        return self.dim is not None


class _DimAllocator:
    """Which plate holds which batch dim right now; freed when the plate exits."""

    def __init__(self):
        self._owners: Dict[int, str] = {}

    def allocate(self, name: str, dim: Optional[int]) -> int:
        if name in self._owners.values():
            raise ValueError(
                f"duplicate plate '{name}': a plate named '{name}' is already active around "
                "this one. Nested plates need distinct names (e.g. 'rows' and 'cols'); "
                "to reuse a name, close the first plate before opening the second."
            )
        if dim is None:
            dim = -1
            while dim in self._owners:
                dim -= 1
        elif dim >= 0:
            raise ValueError(
                f"plate('{name}'): dim must be negative (counted from the right), got {dim}"
            )
        elif dim in self._owners:
            raise ValueError(
                f"plate('{name}') asks for dim {dim}, which plate('{self._owners[dim]}') already "
                f"uses. Give nested plates different dims (e.g. dim={dim - 1}), or leave dim=None "
                "to allocate one automatically."
            )
        self._owners[dim] = name
        return dim

    def free(self, dim: int) -> None:
        self._owners.pop(dim, None)


_DIM_ALLOCATOR = _DimAllocator()


_FULL_INDICES: "OrderedDict[tuple, torch.Tensor]" = OrderedDict()


def _full_indices(size: int, device) -> torch.Tensor:
    """``arange(size)``, shared between steps (a million-row plate would otherwise
    allocate 8 MB every time it is entered). Read-only by convention."""
    key = (size, str(device))
    indices = _FULL_INDICES.get(key)
    if indices is None:
        indices = torch.arange(size, device=device)
        _FULL_INDICES[key] = indices
        while len(_FULL_INDICES) > 16:
            _FULL_INDICES.popitem(last=False)
    return indices


class _Subsample:
    """The 'distribution' of a plate's subsample indices: a uniform subset, log-prob 0."""

    has_rsample = False
    batch_shape = torch.Size()
    event_shape = torch.Size([1])

    def __init__(self, size: int, subsample_size: int, device=None, shard=None):
        self.size, self.subsample_size, self.device = size, subsample_size, device
        self.shard: Optional[PlateShard] = shard  # this process's part of the draw, if any

    def __call__(self) -> torch.Tensor:
        if self.subsample_size >= self.size:
            indices = torch.arange(self.size, device=self.device)
        else:
            indices = torch.randperm(self.size, device=self.device)[: self.subsample_size]
        return indices if self.shard is None else take_part(indices, self.shard)

    sample = __call__

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return torch.zeros((), device=value.device)


class PlateMessenger(Messenger):
    """``with plate(name, size, subsample_size=None, subsample=None, dim=None) as idx:``.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> with pyrolite.plate("data", 100, subsample_size=10) as idx:
    ...     x = pyrolite.sample("x", dist.Normal(0.0, 1.0))
    >>> x.shape, idx.shape
    (torch.Size([10]), torch.Size([10]))
    """

    def __init__(
        self,
        name: str,
        size: Optional[int] = None,
        subsample_size: Optional[int] = None,
        subsample: Optional[torch.Tensor] = None,
        dim: Optional[int] = None,
        use_cuda: Optional[bool] = None,
        device: Union[str, torch.device, None] = None,
    ):
        if not isinstance(name, str):
            raise TypeError(f"plate name must be a str, got {type(name).__name__}")
        if size is None:
            # As in Pyro, a plate without a size only declares a dim (size -1, any size).
            size = -1 if subsample is None else int(subsample.shape[0])
        size = _plate_int(name, "size", size)
        if size <= 0 and size != -1:
            raise ValueError(f"plate('{name}') size must be positive, got {size}")
        if subsample is not None:
            if subsample_size is not None and int(subsample_size) != int(subsample.shape[0]):
                raise ValueError(
                    f"plate('{name}'): subsample_size={subsample_size} does not match "
                    f"len(subsample)={int(subsample.shape[0])}. Pass one of the two (the "
                    "model and guide must use the same subsample)."
                )
            subsample_size = int(subsample.shape[0])
        elif subsample_size is None or (size == -1 and subsample_size == -1):
            subsample_size = size
        elif size == -1:
            raise ValueError(
                f"plate('{name}') has subsample_size={subsample_size} but no size to draw the "
                "subsample from. Pass size=<number of items>."
            )
        else:
            subsample_size = _plate_int(name, "subsample_size", subsample_size)
            if not 0 < subsample_size <= size:
                raise ValueError(
                    f"plate('{name}', size={size}): subsample_size must be in 1..{size}, got "
                    f"{subsample_size}. Pass subsample_size between 1 and size, or None "
                    "for the full plate."
                )
        if use_cuda and device is None:
            device = "cuda"
        self.name, self.size, self.subsample_size = name, size, int(subsample_size)
        self.dim_request = dim
        self.dim: Optional[int] = None
        self.device = device
        self._user_subsample = subsample
        self._indices: Optional[torch.Tensor] = None
        self._counter = 0
        self._scale = size / self.subsample_size if self.subsample_size else 1.0
        # As asked for; a data-parallel shard (shard_messenger) narrows the two above.
        self._batch, self._batch_scale = self.subsample_size, self._scale
        self._frame: Optional[CondIndepStackFrame] = None

    # --- indices -----------------------------------------------------------------

    @property
    def user_subsample(self) -> Optional[torch.Tensor]:
        """The indices passed as ``subsample=`` (None when the plate draws its own)."""
        return self._user_subsample

    def _draw_indices(self) -> torch.Tensor:
        self.subsample_size, self._scale = self._batch, self._batch_scale
        sharder = active_shard() if _STACK else None
        shard = None
        if sharder is not None:
            draws = self._user_subsample is None and self._batch < self.size
            shard = sharder.plate_shard(self.name, self.size, self._batch, draws, self.size == -1)
        if shard is None:
            return self._draw_batch(None)
        if shard.take is None:  # each process holds its own part of the data
            self._scale = self._batch_scale * shard.scale
            return self._draw_batch(None)
        indices = self._draw_batch(shard)
        self.subsample_size, self._scale = int(indices.shape[0]), shard.scale
        return indices

    def _draw_batch(self, shard: Optional[PlateShard]) -> torch.Tensor:
        """The step's indices (this process's part of them, given a ``shard``)."""
        if self._user_subsample is not None:
            return self._user_subsample if shard is None else take_part(self._user_subsample, shard)
        if self.size == -1:
            return None
        if self._batch == self.size:
            # A full plate has no randomness: no subsample site is recorded.
            indices = _full_indices(self.size, self.device)
            return indices if shard is None else take_part(indices, shard)
        fn = _Subsample(self.size, self._batch, self.device, shard)
        if not _STACK:
            return fn()
        msg = new_message("sample", self.name, fn, infer={"_subsample": True})
        indices = apply_stack(msg)["value"]
        if shard is None and indices is not None and indices.shape[0] != self._batch:
            # A replayed guide subsample of another size would silently misalign the data.
            raise ValueError(
                f"plate('{self.name}'): subsample_size does not match len(subsample), "
                f"{self._batch} vs {indices.shape[0]}. Did you accidentally use different "
                "subsample_size in the model and guide? Give both plates the same "
                "subsample_size."
            )
        return indices

    @property
    def indices(self) -> torch.Tensor:
        if self._indices is None:
            self._indices = self._draw_indices()
        return self._indices

    # --- vectorized use ------------------------------------------------------------

    def __enter__(self) -> torch.Tensor:
        self._indices = self._draw_indices()
        self.dim = _DIM_ALLOCATOR.allocate(self.name, self.dim_request)
        self._frame = CondIndepStackFrame(self.name, self.dim, self.subsample_size, 0, self.size)
        super().__enter__()
        return self._indices

    def __exit__(self, *exc):
        _DIM_ALLOCATOR.free(self.dim)
        return super().__exit__(*exc)

    def _pyro_sample(self, msg: Message) -> None:
        msg["cond_indep_stack"] = (self._frame,) + msg["cond_indep_stack"]
        if self._scale != 1.0:
            msg["scale"] = self._scale * msg["scale"]
        if "_enum_dims" not in msg:
            _record_enum_dims(msg)
        # Broadcasting to this plate's size happens in the default effect, once.

    def _pyro_param(self, msg: Message) -> None:
        msg["cond_indep_stack"] = (self._frame,) + msg["cond_indep_stack"]

    def _pyro_get_plates(self, msg: Message) -> None:
        msg["value"] = (self._frame,) + (msg["value"] or ())

    def _pyro_post_param(self, msg: Message) -> None:
        # A local param declared with event_dim (full plate size at this plate's dim)
        # is read at this step's subsample, as Pyro does.
        event_dim = msg["args"][3] if len(msg["args"]) > 3 else None
        if event_dim is not None and self.dim is not None:
            msg["value"] = self._subsample_data(msg["value"], event_dim)

    def _pyro_subsample(self, msg: Message) -> None:
        args, kwargs = msg["args"], msg["kwargs"]
        event_dim = args[1] if len(args) > 1 else kwargs.get("event_dim", 0)
        msg["value"] = self._subsample_data(args[0], event_dim)
        msg["done"] = True

    def _subsample_data(self, data: torch.Tensor, event_dim: int) -> torch.Tensor:
        if self.subsample_size == self.size:
            return data
        dim = self.dim - event_dim
        if data.dim() < -dim or data.shape[dim] != self.size:
            return data
        return data.index_select(dim, self.indices.to(data.device))

    # --- sequential use ------------------------------------------------------------

    def __iter__(self) -> Iterator[int]:
        indices = self.indices
        for i in indices.tolist():
            with _SequentialPlateContext(self, i):
                yield i

    def __len__(self) -> int:
        return self.subsample_size


def _record_enum_dims(msg: Message) -> None:
    """Note on a site the enumeration allocator in scope (if any), so the shape check can
    tell a dim left of the plates that enumeration holds from a stray data dim: a site's
    log-prob may carry the dims of every enumerated site it depends on, not only its own."""
    for frame in reversed(_STACK):
        if isinstance(frame, EnumMessenger):
            if frame.dims is not None:
                msg["_enum_dims"] = frame.dims
            return


class _SequentialPlateContext(Messenger):
    """One iteration of a sequential ``for i in plate(...)``: independent, no dim."""

    def __init__(self, plate: PlateMessenger, index: int):
        self._frame = CondIndepStackFrame(plate.name, None, 1, index, plate.size)
        self._scale = plate._scale

    def _pyro_sample(self, msg: Message) -> None:
        msg["cond_indep_stack"] = (self._frame,) + msg["cond_indep_stack"]
        if self._scale != 1.0:
            msg["scale"] = self._scale * msg["scale"]

    def _pyro_get_plates(self, msg: Message) -> None:
        msg["value"] = (self._frame,) + (msg["value"] or ())


def vectorize(fn: Callable, name: str, size: int, dim: int) -> Callable:
    """``fn`` run inside one more plate ``name`` of ``size`` at ``dim``: all particles or
    samples drawn at once (no Python loop).

    >>> import pyrolite, pyrolite.distributions as dist
    >>> draw = vectorize(lambda: pyrolite.sample("x", dist.Normal(0.0, 1.0)), "particles", 5, -1)
    >>> draw().shape
    torch.Size([5])
    """

    def vectorized(*args, **kwargs):
        with PlateMessenger(name, size, dim=dim):
            return fn(*args, **kwargs)

    return vectorized


@contextmanager
def block_plate(
    name: Optional[str] = None, dim: Optional[int] = None, *, strict: bool = True
) -> Iterator[None]:
    """Hide one enclosing plate (chosen by ``name`` or ``dim``) from the sites inside,
    e.g. to sample a global variable lazily inside a plated context. The plate keeps its
    dim, so the sites inside get size 1 there. With ``strict``, a ValueError unless
    exactly one plate matches.

    >>> import pyrolite, pyrolite.distributions as dist
    >>> with pyrolite.plate("data", 3):
    ...     with block_plate("data"):
    ...         pyrolite.sample("loc", dist.Normal(0.0, 1.0)).shape
    torch.Size([])
    """
    if (name is None) == (dim is None):
        raise ValueError(
            "Exactly one of name,dim must be specified: block_plate(name='data') or "
            "block_plate(dim=-1)"
        )
    matches = [
        i
        for i, frame in enumerate(_STACK)
        if isinstance(frame, PlateMessenger)
        and frame._frame is not None
        and (frame.name == name if name is not None else frame.dim == dim)
    ]
    if strict and len(matches) != 1:
        raise ValueError(
            f"block_plate matched {len(matches)} messengers. Try either removing the "
            "block_plate or setting strict=False."
        )
    blocked = [(i, _STACK[i]) for i in matches]
    for i, _ in reversed(blocked):
        del _STACK[i]
    try:
        yield
    finally:
        for i, frame in blocked:
            _STACK.insert(i, frame)
