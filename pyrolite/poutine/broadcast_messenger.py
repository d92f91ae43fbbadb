"""``broadcast``: expand each sample site's distribution to the batch shape its plates imply.

Plates already do this as part of a sample site's default effect (see
``runtime.broadcast_site``); this handler forces it earlier, for handlers that
need the expanded distribution before the value is drawn.
"""

from .messenger import Messenger
from .runtime import Message, broadcast_site


class BroadcastMessenger(Messenger):
    """Broadcast distributions to their plates' sizes."""

    def _pyro_sample(self, msg: Message) -> None:
        if not msg["done"]:
            broadcast_site(msg)
