"""Atomic file writes (checkpoints, run configs, reports, classifier files): the bytes go to a temporary file
in the same folder, are fsynced, then renamed over the target, and the folder is fsynced, so a crash or a full
disk at any moment leaves the previous file intact. Knows nothing of methods or training.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

# The process's umask, read once at import (reading it means setting it, which is not thread-safe later on).
_UMASK = os.umask(0)
os.umask(_UMASK)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # some file systems do not support directory fsync
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _os_error(err: BaseException) -> OSError | None:
    """The OSError behind ``err``: itself, or one it was raised from or while handling. torch's zip writer turns
    a failed write (a full disk) into ``RuntimeError: [enforce fail ...] unexpected pos``, raised while the
    OSError of that write is being handled."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def atomic_write(path: Path, write: Any) -> None:
    """Call ``write(file_object)`` on a temp file next to ``path``, then atomically rename it to ``path``.

    On any failure the temp file is removed and ``path`` is left as it was. A failure of the file system (a full
    disk, a read-only folder) raises OSError with its errno and ``path``, also where ``write`` wrapped it in
    another exception (torch.save does)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        if hasattr(os, "fchmod"):  # POSIX (Windows has no group bits to fix)
            os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp's 0600 would hide results from the group: open()'s mode
    except OSError as err:
        raise OSError(err.errno, err.strerror, str(path)) from err
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        cause = _os_error(err) if isinstance(err, Exception) else None  # not a KeyboardInterrupt
        if cause is None:
            raise
        raise OSError(cause.errno, cause.strerror, str(path)) from err
    _fsync_dir(path.parent)


def atomic_json(path: Path, payload: Any, indent: int | None = 2) -> None:
    """Write ``payload`` as JSON (``json.dumps(payload, indent=indent)``, no trailing newline) with ``atomic_write``."""
    text = json.dumps(payload, indent=indent).encode()
    atomic_write(path, lambda handle: handle.write(text))
