"""``seed``: run under a fixed RNG seed and restore the caller's RNG state afterwards."""

from ..process_state import get_rng_state, set_rng_seed, set_rng_state
from .messenger import Messenger


class SeedMessenger(Messenger):
    """Make the wrapped code's draws reproducible without disturbing the outer RNG stream.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> model = lambda: pyrolite.sample("x", dist.Normal(0.0, 1.0))
    >>> bool(poutine.seed(model, rng_seed=3)() == poutine.seed(model, rng_seed=3)())
    True
    """

    def __init__(self, rng_seed: int):
        if not isinstance(rng_seed, int):
            raise TypeError(f"poutine.seed expects an int rng_seed, got {type(rng_seed).__name__}")
        self.rng_seed = rng_seed

    def __enter__(self):
        self._saved = get_rng_state()
        set_rng_seed(self.rng_seed)
        return super().__enter__()

    def __exit__(self, *exc):
        set_rng_state(self._saved)
        return super().__exit__(*exc)
