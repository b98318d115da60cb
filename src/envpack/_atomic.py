"""Write a file or a folder so that readers see the old content or the new, never half."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from envpack.errors import EnvpackError

__all__ = ["write_atomic"]


def write_atomic(target: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``target`` through a temporary file beside it and a rename.

    On any failure (a full disk, a missing folder) the temporary file is removed, the old
    ``target`` is untouched, and an :class:`EnvpackError` says what happened.

    A target that exists and is not a regular file (``/dev/null``, a FIFO, ``/dev/stdout``)
    is written in place: renaming over it would replace a device node with a file.
    """
    try:
        existing = os.stat(target)
    except OSError:
        existing = None
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        _write_in_place(target, data)
        return
    folder = target.parent if str(target.parent) else Path()
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as err:
        raise EnvpackError(f"cannot write {target}: {err.strerror or err}") from err
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, target)
    except OSError as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise EnvpackError(f"cannot write {target}: {err.strerror or err}") from err


def _write_in_place(target: Path, data: bytes) -> None:
    try:
        with target.open("wb") as stream:
            stream.write(data)
    except OSError as err:
        raise EnvpackError(f"cannot write {target}: {err.strerror or err}") from err
