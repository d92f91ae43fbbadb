"""``ParamReadsMessenger``: remember which params a run reads, and their first values.

SVI hands exactly these params to the optimizer; ``ELBOModule`` exposes them as its
``parameters()``; the compilers make them graph inputs.
"""

from typing import Any, Dict, KeysView

from .messenger import Messenger
from .runtime import Message


class ParamReadsMessenger(Messenger):
    """Record ``name -> first value read`` of every ``param`` site while active.

    Recording happens in postprocess, so the value is the final one (after any handler
    that substitutes params). Entering again starts a fresh record.

    >>> import torch, pyrolite
    >>> pyrolite.clear_param_store()
    >>> with ParamReadsMessenger() as reads:
    ...     _ = pyrolite.param("b", torch.zeros(1)) + pyrolite.param("a", torch.ones(1))
    >>> list(reads.names)
    ['b', 'a']
    """

    def __init__(self) -> None:
        self.values: Dict[str, Any] = {}

    def __enter__(self):
        self.values = {}
        return super().__enter__()

    @property
    def names(self) -> KeysView[str]:
        """The names read, in first-read order (a dict's keys view)."""
        return self.values.keys()

    def _pyro_post_param(self, msg: Message) -> None:
        self.values.setdefault(msg["name"], msg["value"])
