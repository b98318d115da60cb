"""Read a file the user named (a manifest, a policy, requirements) within bounds.

A path on the command line can be anything: ``/dev/zero`` (endless), a FIFO (an open
for reading blocks until a writer comes), a 100 GB file. Each is refused with one line
before it is read: the file is opened with ``O_NONBLOCK`` (a FIFO opens at once), its
type and size are checked with ``fstat`` on that descriptor (not on the path, which could
be swapped in between), and at most ``limit + 1`` bytes are ever read.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from envpack.errors import EnvpackError

__all__ = [
    "MANIFEST_LIMIT",
    "TEXT_LIMIT",
    "describe_mode",
    "open_checked",
    "read_bounded",
    "read_stdin",
    "too_big",
]

MANIFEST_LIMIT = 1024 * 1024 * 1024
"""Largest manifest or accepted-drift file read (1 GiB; a 100,000-package one is ~60 MB)."""
TEXT_LIMIT = 16 * 1024 * 1024
"""Largest requirements, policy (envpack.toml, pyproject.toml) file read (16 MiB)."""
_CHUNK = 1024 * 1024


def describe_mode(mode: int) -> str:
    """What a non-regular file is, in words."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "an unknown kind of file"


def _size_words(limit: int) -> str:
    mib = 1024 * 1024
    return f"{limit // mib} MiB" if limit % mib == 0 else f"{limit} bytes"


def open_checked(
    path: str | Path,
    *,
    limit: int,
    what: str,
    error: type[EnvpackError],
    missing: str | None = None,
) -> int:
    """A descriptor on the regular file ``path`` of at most ``limit`` bytes (the caller
    closes it). Raises ``error`` (one line naming ``path`` and what was expected) when the
    path is missing (``missing`` words it; default "no such <what>"), unreadable, not a
    regular file, or bigger than ``limit``."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except FileNotFoundError as err:
        raise error(f"{path}: {missing or f'no such {what}'}") from err
    except OSError as err:
        raise error(f"{path}: cannot read ({err.strerror})") from err
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{path}: is {describe_mode(st.st_mode)}, not a {what}")
        if st.st_size > limit:
            raise error(too_big(path, limit, what))
        os.set_blocking(fd, True)  # a regular file: O_NONBLOCK only guarded the open
    except OSError as err:
        os.close(fd)
        raise error(f"{path}: cannot read ({err.strerror})") from err
    except BaseException:
        os.close(fd)
        raise
    return fd


def too_big(path: str | Path, limit: int, what: str) -> str:
    """The one-line refusal of a file past its limit."""
    return f"{path}: larger than {_size_words(limit)}, not read as a {what}"


def read_bounded(
    path: str | Path,
    *,
    limit: int,
    what: str,
    error: type[EnvpackError],
    missing: str | None = None,
) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them; refusals as
    :func:`open_checked` words them."""
    fd = open_checked(path, limit=limit, what=what, error=error, missing=missing)
    try:
        data = _read_at_most(fd, limit + 1, expected=os.fstat(fd).st_size)
    except OSError as err:
        raise error(f"{path}: cannot read ({err.strerror})") from err
    finally:
        os.close(fd)
    if len(data) > limit:  # it grew after the fstat
        raise error(too_big(path, limit, what))
    return data


def read_stdin(*, limit: int, what: str, error: type[EnvpackError]) -> bytes:
    """Standard input (a pipe or a redirected file), at most ``limit`` bytes.

    A terminal or a device (``< /dev/zero``) is refused: a pipe or a file is what a
    manifest arrives through, and a device never ends.
    """
    stream = sys.stdin.buffer
    try:
        mode: int | None = os.fstat(stream.fileno()).st_mode
    except (OSError, ValueError):  # an in-memory stream (no descriptor): no device either
        mode = None
    if mode is not None and not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        raise error(f"<stdin>: is {describe_mode(mode)}; pipe a {what} into it or name a file")
    try:
        data = stream.read(limit + 1)
    except OSError as err:
        raise error(f"<stdin>: cannot read ({err.strerror})") from err
    if len(data) > limit:
        raise error(f"<stdin>: larger than {_size_words(limit)}, not read as a {what}")
    return data


def _read_at_most(fd: int, count: int, *, expected: int) -> bytes:
    """Up to ``count`` bytes; the first read asks for the whole ``expected`` size at once,
    so a big manifest is one buffer, not chunks joined into a second copy."""
    parts: list[bytes] = []
    left = count
    ask = min(expected + 1, count)
    while left > 0:
        chunk = os.read(fd, ask)
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
        ask = min(left, _CHUNK)
    return parts[0] if len(parts) == 1 else b"".join(parts)
