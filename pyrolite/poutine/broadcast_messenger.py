"""``broadcast``: expand each sample site's distribution to the batch shape its plates imply."""

from .messenger import Messenger
from .runtime import Message


def broadcast_site(msg: Message) -> None:
    """Expand ``msg["fn"]`` so that every vectorized plate's dim has the plate's size.

    A batch size that is neither 1 nor the plate's size is an error that names
    the site, the plate, the dim and both sizes.
    """
    if msg["infer"].get("_subsample"):
        # A nested plate's subsample indices are not batched by the outer plates.
        return
    fn = msg["fn"]
    batch_shape = getattr(fn, "batch_shape", None)
    if batch_shape is None:
        return
    target = list(batch_shape)
    for frame in msg["cond_indep_stack"]:
        if frame.dim is None or frame.size == -1:
            continue
        if -frame.dim > len(target):
            target = [1] * (-frame.dim - len(target)) + target
        actual = target[frame.dim]
        if actual != 1 and actual != frame.size:
            raise ValueError(
                f"Shape mismatch inside plate('{frame.name}') at site '{msg['name']}': "
                f"the plate has size {frame.size} at dim {frame.dim}, but the distribution's "
                f"batch_shape is {tuple(batch_shape)} (size {actual} at that dim). Fix: make "
                f"the parameters' size at dim {frame.dim} equal {frame.size} or 1, move the "
                "data dim with .permute()/.unsqueeze(), or declare event dims with .to_event()."
            )
        target[frame.dim] = frame.size
    if tuple(target) != tuple(batch_shape):
        expanded = fn.expand(target)
        if getattr(fn, "has_rsample", None) != getattr(expanded, "has_rsample", None):
            expanded.has_rsample = fn.has_rsample
        msg["fn"] = expanded


class BroadcastMessenger(Messenger):
    """Broadcast distributions to their plates' sizes (plates already do this themselves)."""

    def _pyro_sample(self, msg: Message) -> None:
        if not msg["done"]:
            broadcast_site(msg)
