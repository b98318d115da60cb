"""Where a capture reads files from: the live host or a rootfs folder.

Every path a probe asks for is an absolute path *inside* the source (``/etc/os-release``).
For a rootfs, it is resolved the way the kernel would inside a chroot: an absolute symlink
restarts at the root, ``..`` never climbs above it. So a hostile tree (``etc/x -> /etc/shadow``
or ``../../../etc/shadow``) can only ever point back into itself. The root is held by a
descriptor and every path is resolved from it (:mod:`envpack.snapshot.rootdir`), never
opened by a host path: a tree changed *during* the capture (a folder swapped for a symlink
to the host) cannot make a read leave it.

Files are opened with ``O_NONBLOCK | O_NOFOLLOW`` after an ``lstat`` of the very name that
is opened, and checked with ``fstat`` before a byte is read: a FIFO, socket or device node
where a file was expected raises :class:`NotRegularFile` instead of hanging, and is never
opened (opening a device can have effects).

Names cross this interface in recorded form (:mod:`envpack.fsnames`): a file name that is
not UTF-8 comes out of :meth:`Source.listdir` percent-encoded, and goes back in the same way.
"""

from __future__ import annotations

import errno
import fnmatch
import functools
import os
import socket
import stat
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from envpack.errors import CaptureError, UsageError
from envpack.fsnames import escape, has_surrogates, unescape
from envpack.snapshot.filebytes import FileBytes
from envpack.snapshot.rootdir import MAX_SYMLINKS, Located, RootDir

__all__ = [
    "DEFAULT_PATH",
    "FileKind",
    "FileTooLarge",
    "NotRegularFile",
    "ResolvedPath",
    "Source",
    "SourceEntry",
    "SourceObserver",
    "SourceReadError",
    "expand_glob",
    "file_kind",
]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""The PATH searched in a rootfs (and on a live host without PATH): Debian's default."""

_MAX_SYMLINKS = MAX_SYMLINKS
_DEFAULT_READ_LIMIT = 64 * 1024 * 1024
_READ_STEP = 1 << 20  # pread allocates what it is asked for: never the whole limit at once
# O_NOCTTY: a terminal swapped in between the lstat and the open never becomes ours.
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC


class SourceReadError(CaptureError):
    """One file could not be read; probes record it as an issue and carry on."""


class NotRegularFile(SourceReadError):
    """A FIFO, socket, device node or folder where a regular file was expected."""

    def __init__(self, path: str, kind: str) -> None:
        super().__init__(f"{path}: is a {kind}, not a regular file; not opened")
        self.kind = kind


class FileTooLarge(SourceReadError):
    """A file that must be read whole (a package database) is past the read limit."""

    def __init__(self, path: str, limit: int) -> None:
        super().__init__(
            f"{path}: larger than {limit} bytes; not read (the limit is there "
            "so that a hostile tree cannot exhaust memory)"
        )
        self.limit = limit


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
    """The absolute path inside the source (``/usr/lib/x86_64-linux-gnu/libc.so.6``), in
    recorded form (:mod:`envpack.fsnames`)."""
    host: str
    """Where that is on this machine (``ROOT/usr/lib/...``): for messages and benchmarks
    only. Under a root, opening it by name would race a tree that changes meanwhile;
    envpack never does (every read goes through :meth:`Source.open_fd` and friends)."""
    escaped: bool = False
    """A symlink tried to climb above the root with ``..`` and was held at the root."""


class SourceEntry(Protocol):
    """What :meth:`Source.scandir` yields: the part of ``os.DirEntry`` probes use."""

    @property
    def name(self) -> str: ...

    @property
    def path(self) -> str: ...

    def is_symlink(self) -> bool: ...

    def is_dir(self, *, follow_symlinks: bool = True) -> bool: ...

    def is_file(self, *, follow_symlinks: bool = True) -> bool: ...

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result: ...


class _HeldFd:
    """A folder descriptor kept open as long as an entry listed from it may ``fstatat``."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __del__(self) -> None:
        os.close(self.fd)


class _Entry:
    """A folder entry whose name is in recorded form and whose symlinks resolve inside.

    ``os.DirEntry.is_dir()`` and ``stat()`` follow a symlink by name, from the folder's
    descriptor: an absolute link would lead out of a root. Here following goes through
    the source's own resolution; what needs no following is the ``DirEntry``'s (``d_type``
    or one ``fstatat`` on the held folder descriptor).
    """

    __slots__ = ("_entry", "_held", "_source", "name", "path")

    def __init__(
        self, entry: os.DirEntry[str], folder: str, source: Source, held: _HeldFd | None
    ) -> None:
        self._entry = entry
        self._held = held
        self._source = source
        self.name = escape(entry.name)
        self.path = f"{folder.rstrip('/')}/{self.name}"

    def is_symlink(self) -> bool:
        return self._entry.is_symlink()

    def _followed(self) -> os.stat_result | None:
        try:
            return self._source.stat(self.path)
        except SourceReadError:
            return None

    def is_dir(self, *, follow_symlinks: bool = True) -> bool:
        if follow_symlinks and self._source._dir is not None and self._entry.is_symlink():
            st = self._followed()
            return st is not None and stat.S_ISDIR(st.st_mode)
        return self._entry.is_dir(follow_symlinks=follow_symlinks)

    def is_file(self, *, follow_symlinks: bool = True) -> bool:
        if follow_symlinks and self._source._dir is not None and self._entry.is_symlink():
            st = self._followed()
            return st is not None and stat.S_ISREG(st.st_mode)
        return self._entry.is_file(follow_symlinks=follow_symlinks)

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        if follow_symlinks and self._source._dir is not None and self._entry.is_symlink():
            st = self._followed()
            if st is None:
                raise FileNotFoundError(errno.ENOENT, "no such file", self.path)
            return st
        return self._entry.stat(follow_symlinks=follow_symlinks)


class SourceObserver(Protocol):
    """Told the outcome of every query a :class:`Source` answers (the build cache records
    them to replay later, :mod:`envpack.pack.buildcache`).

    ``op`` is ``lstat``, ``stat``, ``open`` (the ``fstat`` of the opened file), ``list``
    (the ``stat`` of a folder, taken *before* it is listed: an entry added after that
    changes the folder's times), ``readlink``, ``resolve`` or ``resolve-link``
    (``follow_last=False``); ``result`` is JSON-ready (:func:`observed_stat` for stats, the
    string ``"error"`` for a :class:`SourceReadError`).
    """

    def note(self, source: Source, op: str, inner: str, result: object) -> None: ...


def observed_stat(st: os.stat_result | None) -> list[int] | None:
    """What a query's stat result is compared by: any write, chmod, replacement or
    rename changes one of these (ctime catches a write that restored mtime and size)."""
    if st is None:
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode]


_Method = TypeVar("_Method", bound=Callable[..., Any])
_inside = threading.local()
"""Set while an observed query runs in this thread: the queries it makes itself (a
``resolve`` inside ``lstat``) are implied by its own result and not reported."""


def _observed(op: str, result_of: Callable[[Any], object]) -> Callable[[_Method], _Method]:
    def decorate(method: _Method) -> _Method:
        @functools.wraps(method)
        def wrapper(self: Source, inner: str, *args: Any, **kwargs: Any) -> Any:
            observer = self.observer
            if observer is None or getattr(_inside, "active", False):
                return method(self, inner, *args, **kwargs)
            name = f"{op}-link" if kwargs.get("follow_last") is False else op
            _inside.active = True
            try:
                before: object = None
                if op == "list":
                    try:
                        before = observed_stat(self.stat(inner))
                    except SourceReadError:
                        before = "error"
                try:
                    value = method(self, inner, *args, **kwargs)
                except SourceReadError:
                    observer.note(self, name, inner, "error")
                    raise
            finally:
                _inside.active = False
            observer.note(self, name, inner, before if op == "list" else result_of(value))
            return value

        return wrapper  # type: ignore[return-value]  # same signature as ``method``

    return decorate


def _resolved(value: ResolvedPath) -> list[object]:
    return [value.inner, value.host, value.escaped]


def _opened(value: tuple[int, os.stat_result]) -> list[int] | None:
    return observed_stat(value[1])


def _same(value: object) -> object:
    return value


def _ignored(value: object) -> None:
    return None


def _clean(name: str) -> bool:
    """Whether a name from the file system is already in recorded form (the usual case)."""
    return "%" not in name and (name.isascii() or not has_surrogates(name))


def _read_error(inner: str, err: OSError) -> SourceReadError:
    if err.errno == errno.ELOOP:
        return SourceReadError(f"{inner}: too many levels of symbolic links")
    if err.errno in (errno.ENOENT, errno.ENOTDIR):
        return SourceReadError(f"{inner}: no such file")
    return SourceReadError(f"{inner}: {err.strerror}")


@dataclass
class Source:
    """A filesystem to capture: the live host or a rootfs folder.

    Paths given to and returned by every method are inside the source, in recorded form
    (:mod:`envpack.fsnames`: a name that is not UTF-8 is percent-encoded).
    """

    root: str = "/"
    kind: str = "live"
    description: str = ""
    environ: Mapping[str, str] = field(default_factory=dict)
    """The environment variables of the captured process (live), of a container of the
    image (its config's ``Env``), empty for a rootfs."""
    not_applicable: frozenset[str] = frozenset()
    """Sections that cannot apply to this source; its probes do not run and the manifest
    records them as ``not_applicable`` in ``meta.coverage``."""
    _real_folders: dict[str, str] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _root_dir: RootDir | None = field(default=None, init=False, repr=False, compare=False)
    observer: SourceObserver | None = field(default=None, init=False, repr=False, compare=False)
    """Told every query's outcome (:class:`SourceObserver`); ``None``: nobody listens."""

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
        source = cls(root=str(path.resolve()), kind="root", description=str(path.resolve()))
        try:  # the folder as given: /proc/PID/root is a container's root, not "/"
            source._root_dir = RootDir(str(path.absolute()))
        except OSError as err:
            raise UsageError(f"--root {folder}: {err.strerror}") from err
        return source

    @property
    def is_live(self) -> bool:
        return self.kind == "live"

    @property
    def _dir(self) -> RootDir | None:
        """The held root folder; ``None`` for the live host (plain paths, no race to fear)."""
        if self._root_dir is None and not self.is_live:
            self._root_dir = RootDir(self.root)
        return self._root_dir

    def default_pythons(self) -> tuple[str, ...]:
        """The interpreter an offline capture describes when no ``--python`` is given;
        empty: the standard places (``/usr/local/bin/python3``, ``/usr/bin/python3``)."""
        return ()

    def load_issues(self) -> list[tuple[str, str]]:
        """``(path, reason)`` for what the source itself refused or changed while being
        opened (an image's hostile entries); capture records them as issues."""
        return []

    def close(self) -> None:
        """Close the root folder's descriptor (also done when the source is collected)."""
        if self._root_dir is not None:
            self._root_dir.close()

    # -- resolution -------------------------------------------------------------------------

    def host_path(self, inner: str) -> str:
        """The host path for an inner path, without following symlinks.

        For messages only: under a root, a name opened by host path could lead anywhere
        once the tree changes; envpack reads through :meth:`open_fd` and friends instead.
        """
        inner = "/" + unescape(inner).lstrip("/")
        return inner if self.root == "/" else self.root + inner

    @_observed("resolve", _resolved)
    def resolve(self, inner: str, *, follow_last: bool = True) -> ResolvedPath:
        """Follow symlinks inside the source. Missing components are allowed (kept as-is).

        Raises :class:`SourceReadError` on a symlink loop.
        """
        root_dir = self._dir
        raw = unescape(inner)
        if root_dir is None:
            real = self._live_realpath(raw, follow_last=follow_last)
            return ResolvedPath(escape(real), real)
        try:
            walked = root_dir.walk(raw, follow_last=follow_last)
        except OSError as err:
            raise _read_error(inner, err) from err
        walked.close()
        real = "/" + "/".join(walked.names)
        host = real if self.root == "/" else self.root + real
        return ResolvedPath(escape(real), host, walked.escaped)

    def _live_host(self, inner: str, *, follow_last: bool = True) -> str:
        """``resolve(inner).host`` on the live host, as the queries use it internally (not
        reported to an observer: their own answers imply it)."""
        return self._live_realpath(unescape(inner), follow_last=follow_last)

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

    def _locate(self, root_dir: RootDir, inner: str, *, follow: bool) -> Located:
        try:
            return root_dir.locate(unescape(inner), follow=follow)
        except OSError as err:
            raise _read_error(inner, err) from err

    # -- metadata ---------------------------------------------------------------------------

    @_observed("lstat", observed_stat)
    def lstat(self, inner: str) -> os.stat_result | None:
        """``lstat`` of the path itself (parents resolved); ``None`` when it is missing."""
        root_dir = self._dir
        if root_dir is not None:
            return self._located_stat(root_dir, inner, follow=False)
        try:
            return os.lstat(self._live_host(inner, follow_last=False))
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as err:
            raise SourceReadError(f"{inner}: {err.strerror}") from err

    @_observed("stat", observed_stat)
    def stat(self, inner: str) -> os.stat_result | None:
        """``stat`` after resolving symlinks inside the source; ``None`` when missing."""
        root_dir = self._dir
        if root_dir is not None:
            return self._located_stat(root_dir, inner, follow=True)
        try:
            return os.stat(unescape(inner))
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise _read_error(inner, err) from err
            raise SourceReadError(f"{inner}: {err.strerror}") from err

    @staticmethod
    def _located_stat(root_dir: RootDir, inner: str, *, follow: bool) -> os.stat_result | None:
        try:
            located = root_dir.locate(unescape(inner), follow=follow)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as err:
            raise _read_error(inner, err) from err
        located.close()
        return located.st

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

    @staticmethod
    def _open_folder(root_dir: RootDir, inner: str) -> int | None:
        """A readable descriptor of a folder under the root; ``None``: missing or not one."""
        try:
            located = root_dir.locate(unescape(inner), follow=True)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as err:
            raise _read_error(inner, err) from err
        try:
            if located.st is None or not stat.S_ISDIR(located.st.st_mode):
                return None
            # O_DIRECTORY: a device or FIFO swapped in meanwhile is refused, never opened.
            flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
            return os.open(located.name, flags, dir_fd=located.dir_fd)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as err:
            raise _read_error(inner, err) from err
        finally:
            located.close()

    @_observed("list", _ignored)
    def listdir(self, inner: str) -> list[str]:
        """Sorted names in a folder; ``[]`` when it is missing or not a folder."""
        root_dir = self._dir
        if root_dir is not None:
            fd = self._open_folder(root_dir, inner)
            if fd is None:
                return []
            try:
                names = os.listdir(fd)
            except OSError as err:
                raise SourceReadError(f"{inner}: {err.strerror}") from err
            finally:
                os.close(fd)
        else:
            try:
                names = os.listdir(self._live_host(inner))
            except (FileNotFoundError, NotADirectoryError):
                return []
            except OSError as err:
                raise SourceReadError(f"{inner}: {err.strerror}") from err
        return sorted(name if _clean(name) else escape(name) for name in names)

    @_observed("list", _ignored)
    def scandir(self, inner: str) -> Iterator[SourceEntry]:
        """Entries of a folder (unsorted, like ``os.scandir``); nothing when missing.

        Under a root, following an entry's symlink (``is_dir()``, ``stat()``) resolves
        inside the root; ``entry.path`` is the path inside the source.
        """
        root_dir = self._dir
        if root_dir is None:
            yield from self._scandir_live(inner)
            return
        fd = self._open_folder(root_dir, inner)
        if fd is None:
            return
        held = _HeldFd(fd)
        try:
            with os.scandir(fd) as entries:
                for entry in entries:
                    yield _Entry(entry, inner, self, held)
        except OSError as err:
            raise SourceReadError(f"{inner}: {err.strerror}") from err

    def _scandir_live(self, inner: str) -> Iterator[SourceEntry]:
        try:
            with os.scandir(self._live_host(inner)) as entries:
                for entry in entries:
                    yield entry if _clean(entry.name) else _Entry(entry, inner, self, None)
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as err:
            raise SourceReadError(f"{inner}: {err.strerror}") from err

    @_observed("readlink", _same)
    def readlink(self, inner: str) -> str | None:
        """A symlink's target (recorded form); ``None`` when it is not a symlink."""
        root_dir = self._dir
        try:
            if root_dir is None:
                target = os.readlink(self._live_host(inner, follow_last=False))
            else:
                located = root_dir.locate(unescape(inner), follow=False)
                try:
                    target = os.readlink(located.name, dir_fd=located.dir_fd)
                finally:
                    located.close()
        except OSError:
            return None
        return escape(target)

    # -- content ----------------------------------------------------------------------------

    @_observed("open", _opened)
    def open_fd(self, inner: str) -> tuple[int, os.stat_result]:
        """Open a regular file for reading; the caller closes the descriptor.

        Raises :class:`NotRegularFile` for FIFOs, sockets and devices (never opening
        them) and :class:`SourceReadError` for a missing or unreadable file.
        """
        root_dir = self._dir
        if root_dir is None:
            return self._open_live(inner)
        located = self._locate(root_dir, inner, follow=True)
        try:
            pre = located.st
            if pre is None:
                raise SourceReadError(f"{inner}: no such file")
            if not stat.S_ISREG(pre.st_mode):
                raise NotRegularFile(inner, file_kind(pre.st_mode))
            try:
                fd = os.open(located.name, _READ_FLAGS, dir_fd=located.dir_fd)
            except OSError as err:
                raise self._open_error(inner, err) from err
        finally:
            located.close()
        return self._checked(fd, inner, pre)

    def open_bytes(self, inner: str) -> tuple[FileBytes, os.stat_result]:
        """A regular file's bytes to read with ``pread`` (see :mod:`envpack.snapshot.filebytes`);
        the caller closes them. Refuses what :meth:`open_fd` refuses.

        The same as :meth:`open_fd` here; an image source reads its files where they lie.
        """
        fd, st = self.open_fd(inner)
        return FileBytes(fd), st

    def _open_live(self, inner: str) -> tuple[int, os.stat_result]:
        host = self._live_host(inner)
        try:
            pre = os.lstat(host)
        except FileNotFoundError as err:
            raise SourceReadError(f"{inner}: no such file") from err
        except OSError as err:
            raise SourceReadError(f"{inner}: {err.strerror}") from err
        if not stat.S_ISREG(pre.st_mode):
            raise NotRegularFile(inner, file_kind(pre.st_mode))
        try:
            fd = os.open(host, _READ_FLAGS)
        except OSError as err:
            raise self._open_error(inner, err) from err
        return self._checked(fd, inner, pre)

    @staticmethod
    def _open_error(inner: str, err: OSError) -> SourceReadError:
        reason = "a symlink changed while reading" if err.errno == errno.ELOOP else None
        return SourceReadError(f"{inner}: {reason or err.strerror}")

    @staticmethod
    def _checked(fd: int, inner: str, pre: os.stat_result) -> tuple[int, os.stat_result]:
        """The open file if it is still the regular file looked at before opening it."""
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # swapped between lstat and open
            os.close(fd)
            raise NotRegularFile(inner, file_kind(st.st_mode))
        if (st.st_dev, st.st_ino) != (pre.st_dev, pre.st_ino):
            os.close(fd)
            raise SourceReadError(f"{inner}: the file was replaced while it was opened")
        return fd, st

    def read_bytes(
        self, inner: str, *, limit: int = _DEFAULT_READ_LIMIT, whole: bool = False
    ) -> bytes:
        """The content of a regular file, at most ``limit`` bytes.

        With ``whole``, a file longer than ``limit`` raises :class:`FileTooLarge` instead
        of being cut short: for a database, a silently truncated read is a wrong answer.
        """
        content, _ = self.open_bytes(inner)
        want = limit + 1 if whole else limit
        parts: list[bytes] = []
        got = 0
        try:
            size = content.length()
            while got < want:
                # What the file holds (and a little more: a live file may grow), by steps.
                step = min(want - got, _READ_STEP, max(size - got, 0) + 4096)
                part = content.pread(step, got)
                if not part:
                    break
                parts.append(part)
                got += len(part)
        except OSError as err:
            raise SourceReadError(f"{inner}: {err.strerror}") from err
        finally:
            content.close()
        data = b"".join(parts)
        if whole and len(data) > limit:
            raise FileTooLarge(inner, limit)
        return data

    def read_text(
        self, inner: str, *, limit: int = _DEFAULT_READ_LIMIT, whole: bool = False
    ) -> str:
        """The content of a text file, decoded as UTF-8 (undecodable bytes replaced)."""
        return self.read_bytes(inner, limit=limit, whole=whole).decode("utf-8", "replace")

    def hostname(self) -> str:
        """The host's name: the live kernel's, else the first word of ``/etc/hostname``.

        Raises :class:`SourceReadError` when a rootfs's ``/etc/hostname`` is unreadable.
        """
        if self.is_live:
            return socket.gethostname()
        words = (self.read_text_or_none("/etc/hostname") or "").split()
        return words[0] if words else ""

    def read_text_or_none(self, inner: str, *, whole: bool = False) -> str | None:
        """The text of a file, or ``None`` when it does not exist (other errors raise)."""
        try:
            return self.read_text(inner, whole=whole)
        except (NotRegularFile, FileTooLarge):
            raise
        except SourceReadError:
            if self.lstat(inner) is None:
                return None
            raise


def _has_magic(part: str) -> bool:
    return any(char in part for char in "*?[")


def expand_glob(
    source: Source,
    pattern: str,
    *,
    limit: int = 5000,
    problems: list[SourceReadError] | None = None,
) -> list[str]:
    """Paths inside ``source`` matching an absolute glob, sorted.

    Shell rules: ``*`` and ``?`` stay within one path part and skip dot-files unless the
    part starts with a dot; ``**`` spans folders but never follows a symlinked folder (no
    loops). Folders are listed through the source, so symlinks never leave a root.
    The walk stops once more than ``limit`` paths matched.

    A folder that cannot be listed raises :class:`SourceReadError`; with ``problems``, it
    is added there instead and the walk goes on with the other folders.
    """
    parts = [part for part in pattern.split("/") if part]
    results: list[str] = []

    def listing(folder: str) -> list[str]:
        try:
            return source.listdir(folder or "/")
        except SourceReadError as err:
            if problems is None:
                raise
            problems.append(err)
            return []

    def is_folder(path: str) -> bool:
        try:
            st = source.lstat(path)
        except SourceReadError as err:
            if problems is None:
                raise
            problems.append(err)
            return False
        return st is not None and stat.S_ISDIR(st.st_mode)

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
            for name in listing(prefix):
                child = f"{prefix}/{name}"
                if not name.startswith(".") and is_folder(child):
                    walk(child, index)
            return
        if not _has_magic(part):
            child = f"{prefix}/{part}"
            if not last:
                walk(child, index + 1)
            elif source.lstat(child) is not None:
                results.append(child)
            return
        for name in listing(prefix):
            if name.startswith(".") and not part.startswith("."):
                continue
            if fnmatch.fnmatchcase(name, part):
                walk(f"{prefix}/{name}", index + 1)

    walk("", 0)
    return sorted(set(results))
