"""``shard``: data-parallel plates, each process taking its part of the data.

Under ``ShardMessenger(rank, world_size)`` (what ``DistributedSVI`` wraps model and guide
in), a plate is one of three kinds:

* **split** (every plate that draws its own subsample, or those named in ``split``): the
  plate's global batch, drawn exactly as one process would draw it (the same
  ``randperm``, from RNG streams every process keeps in lockstep; all of ``range(size)``
  for a full plate; the given ``subsample=``), is cut into ``world_size`` equal
  contiguous parts and this process takes part ``rank``. Its log-probs weigh
  ``size / (batch / world_size)``: the average of the processes' estimates is then the
  one-process estimate over the whole batch.
* **local** (named in ``local``): each process holds its own part of the data already
  (a plate over ``len(local_data)``); its log-probs weigh ``world_size`` times more, so
  the average over processes is the estimate over all the data.
* **untouched** (every other plate): every process computes the same thing.

A split batch that does not divide evenly raises (uneven parts would draw different
numbers of local latents, and the processes' RNG streams would drift apart).
"""

from typing import Iterable, NamedTuple, Optional

import torch

from .messenger import Messenger
from .runtime import _STACK


class PlateShard(NamedTuple):
    """What a sharded plate does: ``take`` its part of the global batch (``None``: keep
    the plate's indices), and weigh log-probs by ``scale``."""

    take: Optional[slice]
    scale: float


class ShardMessenger(Messenger):
    """Make plates data-parallel over ``world_size`` processes; see the module docstring.

    :param rank: this process's index, ``0 <= rank < world_size``.
    :param world_size: how many processes share the data.
    :param split: names of the plates to split; None: every plate that draws a subsample.
    :param local: names of the plates whose data each process holds its own part of.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> with ShardMessenger(rank=1, world_size=2, split=["data"]):
    ...     with pyrolite.plate("data", 6) as idx:
    ...         pass
    >>> idx
    tensor([3, 4, 5])
    """

    def __init__(
        self,
        rank: int,
        world_size: int,
        split: Optional[Iterable[str]] = None,
        local: Iterable[str] = (),
    ):
        if not (isinstance(world_size, int) and world_size >= 1):
            raise ValueError(f"shard: world_size must be an int >= 1, got {world_size!r}")
        if not (isinstance(rank, int) and 0 <= rank < world_size):
            raise ValueError(f"shard: rank must be an int in 0..{world_size - 1}, got {rank!r}")
        self.rank, self.world_size = rank, world_size
        self.split = None if split is None else frozenset(_names("split", split))
        self.local = frozenset(_names("local", local))
        #: Plates this handler split or made local (as it met them).
        self.sharded: set = set()
        both = sorted((self.split or frozenset()) & self.local)
        if both:
            raise ValueError(
                f"shard: plate(s) {both} are named both to split and as local; a plate's "
                "data is either on every process (split) or in parts (local)"
            )

    def plate_shard(
        self, name: str, size: int, batch: int, draws: bool, dim_free: bool
    ) -> Optional[PlateShard]:
        """How plate ``name`` (``size`` items, a global ``batch`` of them per step;
        ``draws``: it draws its subsample itself) is sharded here; None: untouched.
        ``dim_free``: the plate has no size (``size=-1``, a dim only)."""
        if name in self.local:
            self.sharded.add(name)
            return PlateShard(None, float(self.world_size))
        split = draws if self.split is None else name in self.split
        if not split or self.world_size == 1:
            return None
        self.sharded.add(name)
        if dim_free:
            raise ValueError(
                f"plate('{name}') has no size, so it cannot be split across processes. "
                "Give it size=<number of items>, or name it in local_plates if every process "
                "holds its own part of the data."
            )
        if batch % self.world_size:
            raise ValueError(
                f"plate('{name}', size={size}): its batch of {batch} does not split evenly "
                f"over {self.world_size} processes. Use a subsample_size divisible by "
                f"{self.world_size} (e.g. {batch - batch % self.world_size or self.world_size}),"
                " or give each process its own part of the data and name the plate in "
                "local_plates."
            )
        part = batch // self.world_size
        start = self.rank * part
        return PlateShard(slice(start, start + part), size / part)


class FingerprintMessenger(Messenger):
    """Record the sum of each observed site's data outside the plates ``shard`` split or
    made local, by site name (``DistributedSVI`` compares them across processes once, at
    a first step: data that differ there mean a forgotten ``local_plates``)."""

    def __init__(self, shard: ShardMessenger):
        self.shard = shard
        self.seen: dict = {}

    def _pyro_post_sample(self, msg) -> None:
        value = msg["value"]
        if not msg["is_observed"] or not isinstance(value, torch.Tensor):
            return
        plates = [f.name for f in msg["cond_indep_stack"]]
        if any(p in self.shard.sharded for p in plates):
            return  # each process's part differs by design
        self.seen[msg["name"]] = (value.detach().sum(dtype=torch.float64), plates)


def _names(what: str, names: Iterable[str]) -> list:
    if isinstance(names, str):
        names = [names]
    names = list(names)
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        raise TypeError(f"shard: {what} must be plate names (str), got {bad!r}")
    return names


def active_shard() -> Optional[ShardMessenger]:
    """The innermost ``ShardMessenger`` in effect, if any."""
    for frame in reversed(_STACK):
        if isinstance(frame, ShardMessenger):
            return frame
    return None


def take_part(indices: torch.Tensor, shard: PlateShard) -> torch.Tensor:
    """This process's part of a plate's global batch of indices."""
    return indices if shard.take is None else indices[shard.take]
