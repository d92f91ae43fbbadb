"""``escape``: leave the program at the first site for which ``escape_fn`` is true."""

from typing import Callable

from .messenger import Messenger
from .runtime import Message, NonlocalExit


class EscapeMessenger(Messenger):
    """Raise ``NonlocalExit(site)`` at a selected sample site (used by ``queue``)."""

    def __init__(self, escape_fn: Callable[[Message], bool]):
        self.escape_fn = escape_fn

    def _pyro_sample(self, msg: Message) -> None:
        if self.escape_fn(msg):
            msg["done"] = True
            msg["_escape_frame"] = self
            raise NonlocalExit(msg)
