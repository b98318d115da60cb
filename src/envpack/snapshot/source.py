"""Where a capture reads files from: the live host or a rootfs folder.

Every path a probe asks for is an absolute path *inside* the source (``/etc/os-release``).
For a rootfs, it is resolved the way the kernel would inside a chroot: an absolute symlink
restarts at the root, ``..`` never climbs above it. So a hostile tree (``etc/x -> /etc/shadow``
or ``../../../etc/shadow``) can only ever point back into itself.

Files are opened with ``O_NONBLOCK | O_NOFOLLOW`` and checked with ``fstat`` before a byte
is read: a FIFO, socket or device node where a file was expected raises
:class:`NotRegularFile` instead of hanging.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import socket
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from envpack.errors import CaptureError, UsageError

__all__ = [
    "DEFAULT_PATH",
    "FileKind",
    "NotRegularFile",
    "ResolvedPath",
    "Source",
    "SourceReadError",
    "expand_glob",
    "file_kind",
]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""The PATH searched in a rootfs (and on a live host without PATH): Debian's default."""

_MAX_SYMLINKS = 40  # the kernel's own limit (ELOOP)
_DEFAULT_READ_LIMIT = 64 * 1024 * 1024


class SourceReadError(CaptureError):
    """One file could not be read; probes record it as an issue and carry on."""


class NotRegularFile(SourceReadError):
    """A FIFO, socket, device node or folder where a regular file was expected."""

    def __init__(self, path: str, kind: str) -> None:
        super().__init__(f"{path}: is a {kind}, not a regular file; not opened")
        self.kind = kind


FileKind = str


def file_kind(mode: int) -> FileKind:
    """A word for the file type in ``mode``: ``file``, ``dir``, ``symlink``, ``fifo`` …"""
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode):
        return "char-device"
    if stat.S_ISBLK(mode):
        return "block-device"
    return "unknown"


@dataclass(frozen=True)
class ResolvedPath:
    """A path inside the source after following symlinks."""

    inner: str
    """The absolute path inside the source (``/usr/lib/x86_64-linux-gnu/libc.so.6``)."""
    host: str
    """Where that is on this machine (``ROOT/usr/lib/...``)."""
    escaped: bool = False
    """A symlink tried to climb above the root with ``..`` and was held at the root."""


@dataclass
class Source:
    """A filesystem to capture: the live host (``root == "/"``) or a rootfs folder."""

    root: str = "/"
    kind: str = "live"
    description: str = ""
    environ: Mapping[str, str] = field(default_factory=dict)
    """The environment variables of the captured process (live only; empty for a rootfs)."""
    _real_folders: dict[str, str] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @classmethod
    def live(cls, environ: Mapping[str, str] | None = None) -> Source:
        env = dict(os.environ if environ is None else environ)
        return cls(root="/", kind="live", description=socket.gethostname(), environ=env)

    @classmethod
    def rootfs(cls, folder: str | os.PathLike[str]) -> Source:
        path = Path(folder)
        if not path.exists():
            raise UsageError(f"--root {folder}: no such folder")
        if not path.is_dir():
            raise UsageError(f"--root {folder}: not a folder")
        return cls(root=str(path.resolve()), kind="root", description=str(path.resolve()))

    @property
    def is_live(self) -> bool:
        return self.kind == "live"

    # -- resolution -------------------------------------------------------------------------

    def host_path(self, inner: str) -> str:
        """The host path for an inner path, without following symlinks."""
        inner = "/" + inner.lstrip("/")
        return inner if self.root == "/" else self.root + inner

    def resolve(self, inner: str, *, follow_last: bool = True) -> ResolvedPath:
        """Follow symlinks inside the source. Missing components are allowed (kept as-is)."""
        if self.root == "/":
            real = self._live_realpath(inner, follow_last=follow_last)
            return ResolvedPath(real, real)
        pending = [part for part in inner.split("/") if part][::-1]
        done: list[str] = []
        links = 0
        escaped = False
        while pending:
            part = pending.pop()
            if part == ".":
                continue
            if part == "..":
                if done:
                    done.pop()
                else:
                    escaped = True
                continue
            host = self.root + "/" + "/".join([*done, part])
            if (pending or follow_last) and os.path.islink(host):
                links += 1
                if links > _MAX_SYMLINKS:
                    raise SourceReadError(f"{inner}: too many levels of symbolic links")
                target = os.readlink(host)
                if target.startswith("/"):
                    done = []
                pending.extend([p for p in target.split("/") if p][::-1])
                continue
            done.append(part)
        inner_real = "/" + "/".join(done)
        return ResolvedPath(inner_real, self.host_path(inner_real), escaped)

    def _live_realpath(self, path: str, *, follow_last: bool, links: int = 0) -> str:
        """``os.path.realpath`` with the folder part remembered for the whole capture.

        A capture resolves thousands of paths in a few folders (every file on PATH, every
        library): realpath re-walks each folder's components every time, which was a
        quarter of a warm capture. Here a folder is resolved once; per call only the last
        component is read, and a symlink's target is resolved the same way.
        """
        head, tail = os.path.split(path)
        real_head = self._real_folders.get(head)
        if real_head is None:
            real_head = os.path.realpath(head or ".")
            self._real_folders[head] = real_head
        if not tail:
            return real_head
        candidate = os.path.join(real_head, tail)
        if tail in (".", ".."):
            return os.path.realpath(candidate)
        if not follow_last:
            return candidate
        try:
            target = os.readlink(candidate)  # one syscall: fails unless it is a symlink
        except OSError:
            return candidate
        if links >= _MAX_SYMLINKS:  # a loop: let realpath give its usual answer
            return os.path.realpath(candidate)
        return self._live_realpath(
            os.path.join(real_head, target), follow_last=True, links=links + 1
        )

    # -- metadata ---------------------------------------------------------------------------

    def lstat(self, inner: str) -> os.stat_result | None:
        """``lstat`` of the path itself (parents resolved); ``None`` when it is missing."""
        try:
            return os.lstat(self.resolve(inner, follow_last=False).host)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as err:
            raise SourceReadError(f"{inner}: {err.strerror}") from err

    def stat(self, inner: str) -> os.stat_result | None:
        """``stat`` after resolving symlinks inside the source; ``None`` when missing."""
        try:
            return os.stat(self.resolve(inner).host)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as err:
            raise SourceReadError(f"{inner}: {err.strerror}") from err

    def exists(self, inner: str) -> bool:
        try:
            return self.stat(inner) is not None
        except SourceReadError:
            return False

    def is_file(self, inner: str) -> bool:
        st = self._stat_quiet(inner)
        return st is not None and stat.S_ISREG(st.st_mode)

    def is_dir(self, inner: str) -> bool:
        st = self._stat_quiet(inner)
        return st is not None and stat.S_ISDIR(st.st_mode)

    def _stat_quiet(self, inner: str) -> os.stat_result | None:
        try:
            return self.stat(inner)
        except SourceReadError:
            return None

    def listdir(self, inner: str) -> list[str]:
        """Sorted names in a folder; ``[]`` when it is missing or not a folder."""
        try:
            return sorted(os.listdir(self.resolve(inner).host))
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as err:
            raise SourceReadError(f"{inner}: {err.strerror}") from err

    def scandir(self, inner: str) -> Iterator[os.DirEntry[str]]:
        """Entries of a folder (unsorted, like ``os.scandir``); nothing when missing."""
        try:
            with os.scandir(self.resolve(inner).host) as entries:
                yield from entries
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as err:
            raise SourceReadError(f"{inner}: {err.strerror}") from err

    def readlink(self, inner: str) -> str | None:
        try:
            return os.readlink(self.resolve(inner, follow_last=False).host)
        except OSError:
            return None

    # -- content ----------------------------------------------------------------------------

    def open_fd(self, inner: str) -> tuple[int, os.stat_result]:
        """Open a regular file for reading; the caller closes the descriptor.

        Raises :class:`NotRegularFile` for FIFOs, sockets and devices (never blocking on
        them) and :class:`SourceReadError` for a missing or unreadable file.
        """
        resolved = self.resolve(inner)
        try:
            pre = os.lstat(resolved.host)
        except FileNotFoundError as err:
            raise SourceReadError(f"{inner}: no such file") from err
        except OSError as err:
            raise SourceReadError(f"{inner}: {err.strerror}") from err
        if not stat.S_ISREG(pre.st_mode):
            raise NotRegularFile(inner, file_kind(pre.st_mode))
        try:
            fd = os.open(resolved.host, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
        except OSError as err:
            reason = "a symlink changed while reading" if err.errno == errno.ELOOP else None
            raise SourceReadError(f"{inner}: {reason or err.strerror}") from err
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # swapped between lstat and open
            os.close(fd)
            raise NotRegularFile(inner, file_kind(st.st_mode))
        return fd, st

    def read_bytes(self, inner: str, *, limit: int = _DEFAULT_READ_LIMIT) -> bytes:
        """The content of a regular file, at most ``limit`` bytes."""
        fd, _ = self.open_fd(inner)
        try:
            with os.fdopen(fd, "rb", closefd=True) as stream:
                return stream.read(limit)
        except OSError as err:
            raise SourceReadError(f"{inner}: {err.strerror}") from err

    def read_text(self, inner: str, *, limit: int = _DEFAULT_READ_LIMIT) -> str:
        """The content of a text file, decoded as UTF-8 (undecodable bytes replaced)."""
        return self.read_bytes(inner, limit=limit).decode("utf-8", "replace")

    def hostname(self) -> str:
        """The host's name: the live kernel's, else the first word of ``/etc/hostname``.

        Raises :class:`SourceReadError` when a rootfs's ``/etc/hostname`` is unreadable.
        """
        if self.is_live:
            return socket.gethostname()
        words = (self.read_text_or_none("/etc/hostname") or "").split()
        return words[0] if words else ""

    def read_text_or_none(self, inner: str) -> str | None:
        """The text of a file, or ``None`` when it does not exist (other errors raise)."""
        try:
            return self.read_text(inner)
        except NotRegularFile:
            raise
        except SourceReadError:
            if self.lstat(inner) is None:
                return None
            raise


def _has_magic(part: str) -> bool:
    return any(char in part for char in "*?[")


def expand_glob(source: Source, pattern: str, *, limit: int = 5000) -> list[str]:
    """Paths inside ``source`` matching an absolute glob, sorted.

    Shell rules: ``*`` and ``?`` stay within one path part and skip dot-files unless the
    part starts with a dot; ``**`` spans folders but never follows a symlinked folder (no
    loops). Folders are listed through the source, so symlinks never leave a root.
    The walk stops once more than ``limit`` paths matched.
    """
    parts = [part for part in pattern.split("/") if part]
    results: list[str] = []

    def walk(prefix: str, index: int) -> None:
        if len(results) > limit:
            return
        if index == len(parts):
            results.append(prefix or "/")
            return
        part = parts[index]
        last = index == len(parts) - 1
        if part == "**":
            walk(prefix, index + 1)
            for name in source.listdir(prefix or "/"):
                child = f"{prefix}/{name}"
                st = source.lstat(child)
                if not name.startswith(".") and st is not None and stat.S_ISDIR(st.st_mode):
                    walk(child, index)
            return
        if not _has_magic(part):
            child = f"{prefix}/{part}"
            if not last:
                walk(child, index + 1)
            elif source.lstat(child) is not None:
                results.append(child)
            return
        for name in source.listdir(prefix or "/"):
            if name.startswith(".") and not part.startswith("."):
                continue
            if fnmatch.fnmatchcase(name, part):
                walk(f"{prefix}/{name}", index + 1)

    walk("", 0)
    return sorted(set(results))
