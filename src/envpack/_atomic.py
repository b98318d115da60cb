"""Write a file so that readers see the old content or the new, never half."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from envpack.errors import EnvpackError

__all__ = ["write_atomic"]

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def write_atomic(target: Path, data: bytes, *, mode: int | None = None) -> None:
    """Write ``data`` to ``target`` through a temporary file beside it and a rename.

    The new file keeps the permission bits (and, where allowed, the owner) of the file it
    replaces, so a 0600 manifest stays 0600; a new file gets ``0666`` less the umask, like
    any file a program creates. ``mode``, when given, is set instead of either.

    On any failure (a full disk, a missing folder) *and* on an interruption (Ctrl-C, or
    SIGTERM once the CLI turns it into an exception) the temporary file is removed and
    the old ``target`` is untouched; a failure is an :class:`EnvpackError` saying what
    happened.

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
    tmp: Path | None = None
    try:
        while True:
            candidate = folder / f".{target.name}.{secrets.token_hex(6)}.tmp"
            # Named before it exists: an interruption at any point after this line still
            # finds the name to remove.
            tmp = candidate
            try:
                fd = os.open(candidate, _FLAGS, 0o666)
            except FileExistsError:
                tmp = None  # someone else's file: never ours to remove
                continue
            break
        with os.fdopen(fd, "wb") as stream:
            _set_mode(stream.fileno(), existing, mode)
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(candidate, target)
        tmp = None
    except BaseException as err:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(err, OSError):
            raise EnvpackError(f"cannot write {target}: {err.strerror or err}") from err
        raise


def _set_mode(fd: int, existing: os.stat_result | None, mode: int | None) -> None:
    if mode is not None:
        os.fchmod(fd, mode)
        return
    if existing is None:
        return  # created 0666 less the umask
    if (existing.st_uid, existing.st_gid) != (os.geteuid(), os.getegid()):
        # Root replacing another user's file gives it back to them; others cannot.
        with contextlib.suppress(OSError):
            os.fchown(fd, existing.st_uid, existing.st_gid)
    os.fchmod(fd, stat.S_IMODE(existing.st_mode))


def _write_in_place(target: Path, data: bytes) -> None:
    try:
        with target.open("wb") as stream:
            stream.write(data)
    except OSError as err:
        raise EnvpackError(f"cannot write {target}: {err.strerror or err}") from err
