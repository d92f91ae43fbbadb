"""Checkpoint files: atomic writes and loads that never execute code from the file.

Shared by the param store and by whole-SVI checkpoints, so every pyrolite file on disk is
written the same way (temp file, fsync, rename) and read with ``weights_only=True``.
"""

import errno
import os
import tempfile
from typing import Any, Sequence, Union

import torch

PathLike = Union[str, "os.PathLike[str]"]


def save_atomic(obj: Any, filename: PathLike) -> None:
    """``torch.save(obj)`` to ``filename`` so that readers see the old file or the new one.

    The data goes to a temp file in the same directory, is fsynced, then renamed over
    ``filename``; on any error the temp file is removed and an existing file is untouched.

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "ckpt.pt")
    >>> save_atomic({"x": torch.ones(2)}, path)
    >>> load_weights_only(path)["x"]
    tensor([1., 1.])
    """
    filename = os.fspath(filename)
    directory = os.path.dirname(os.path.abspath(filename))
    fd, tmp = tempfile.mkstemp(
        dir=directory, prefix=f".{os.path.basename(filename)}.", suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _new_file_mode(filename))
        os.replace(tmp, filename)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)


def _new_file_mode(filename: str) -> int:
    # mkstemp creates 0o600 files; give the result the mode a plain open() would.
    try:
        return os.stat(filename).st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_directory(directory: str) -> None:
    # Makes the rename itself durable; not every platform can open a directory.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_weights_only(
    filename: PathLike,
    map_location: Any = None,
    expected: str = "a pyrolite checkpoint",
    allowed_classes: Sequence[type] = (),
) -> Any:
    """``torch.load(filename, weights_only=True)`` with errors that name the file.

    A missing file raises ``FileNotFoundError``; a truncated, corrupt or foreign file, or one
    holding objects that weights-only loading refuses to build (e.g. a pickle with code
    in ``__reduce__``), raises ``ValueError`` saying what was expected.
    ``allowed_classes`` are plain-data classes the file may hold besides tensors; they
    are rebuilt from their attributes only (``torch.serialization.safe_globals``).
    """
    filename = os.fspath(filename)
    if not os.path.isfile(filename):
        raise FileNotFoundError(
            errno.ENOENT, f"cannot load {expected}: no such file {filename!r}", filename
        )
    if _asks_for_cuda(map_location) and not torch.cuda.is_available():
        raise ValueError(
            f"cannot load {filename!r} with map_location={map_location!r}: no CUDA device is "
            "available here. Pass map_location='cpu' (or leave it None)."
        )
    try:
        with torch.serialization.safe_globals(list(allowed_classes)):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except RuntimeError as e:
        if "torch.cuda.is_available() is False" in str(e):
            raise ValueError(
                f"cannot load {filename!r}: it holds CUDA tensors, but no CUDA device is "
                "available here. Pass map_location='cpu' to load them on the CPU."
            ) from e
        raise _unreadable(filename, expected, e) from e
    except Exception as e:
        raise _unreadable(filename, expected, e) from e


def _unreadable(filename: str, expected: str, e: Exception) -> ValueError:
    detail = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return ValueError(
        f"cannot load {filename!r}: expected {expected} (a file written by pyrolite's "
        "save), but the file is truncated, corrupt, or holds objects that weights-only "
        f"loading refuses to build [{type(e).__name__}: {detail[:300]}]"
    )


def _asks_for_cuda(map_location) -> bool:
    """Whether ``map_location`` (a device, a string, or a dict of them) names a CUDA one."""
    if isinstance(map_location, dict):
        return any(_asks_for_cuda(v) for v in map_location.values())
    if isinstance(map_location, (str, torch.device)):
        return torch.device(map_location).type == "cuda"
    return False
