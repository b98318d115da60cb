"""A rootfs folder held open by a descriptor, every path inside it resolved as in a chroot.

Resolving a string (``ROOT + "/usr/lib"``) and then opening it by name is a race: between
the two, a process writing into the tree can swap a folder for a symlink to the host
(``usr -> /``), and the open follows it out. Here nothing under the root is ever opened by
a host path. The root is opened once; every path is walked from that descriptor:

- with ``openat2(2)`` and ``RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`` where the kernel has
  it (Linux 5.6): the kernel itself keeps ``..`` and absolute symlinks inside the root and
  refuses ``/proc`` magic links (``ELOOP``);
- else component by component, each opened ``O_PATH | O_NOFOLLOW`` relative to the
  descriptor of its folder, a symlink read from its own descriptor, an absolute one
  restarting at the root, ``..`` popping a held descriptor (never ``openat(fd, "..")``, which
  would climb out of a folder moved away meanwhile).

A probe then acts on the *last* component only, relative to its folder's descriptor, never
following it again (``fstatat(AT_SYMLINK_NOFOLLOW)``, ``O_NOFOLLOW``): whatever changes in
the tree meanwhile, the worst a race can do is make a read fail.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import stat
import weakref
from dataclasses import dataclass

__all__ = ["Located", "RootDir", "Walked", "openat2_available"]

MAX_SYMLINKS = 40  # the kernel's own limit (ELOOP)

_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_IN_ROOT = 0x10
_RESOLVE = _RESOLVE_NO_MAGICLINKS | _RESOLVE_IN_ROOT
# openat2 has one number on every architecture that took the unified table (5.1 on); on
# others the manual walk below does the same job.
_SYS_OPENAT2 = {"x86_64": 437, "aarch64": 437, "arm64": 437, "riscv64": 437, "s390x": 437,
                "ppc64le": 437, "i686": 437, "i386": 437, "armv7l": 437}  # fmt: skip
_EAGAIN_RETRIES = 8  # RESOLVE_IN_ROOT answers EAGAIN when a rename races a ".." step
_MAX_HELD_FOLDERS = 256  # descriptors kept per root; past that, opened and closed per call
_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def _load_openat2() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    number = _SYS_OPENAT2.get(platform.machine())
    if number is None or not hasattr(os, "O_PATH"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        syscall = libc.syscall
    except (OSError, AttributeError):
        return None
    syscall.restype = ctypes.c_long
    syscall.argtypes = [
        ctypes.c_long, ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(_OpenHow), ctypes.c_size_t
    ]  # fmt: skip
    return syscall


_syscall = _load_openat2()
_openat2_works: dict[str, bool] = {}  # decided once, by the first RootDir


def openat2_available() -> bool:
    """Whether this process resolves rootfs paths with the kernel's ``openat2``."""
    return _openat2_works.get("works", False)


def _openat2(dir_fd: int, path: str, flags: int) -> int:
    """``openat2(dir_fd, path, {flags, 0, RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS})``."""
    if _syscall is None:
        raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS), path)
    how = _OpenHow(flags, 0, _RESOLVE)
    raw = os.fsencode(path)
    for _ in range(_EAGAIN_RETRIES):
        fd = _syscall(437, dir_fd, raw, ctypes.byref(how), ctypes.sizeof(how))
        if fd >= 0:
            return int(fd)
        code = ctypes.get_errno()
        if code not in (errno.EAGAIN, errno.EINTR):
            raise OSError(code, os.strerror(code), path)
    raise OSError(errno.EAGAIN, "the tree kept changing while it was resolved", path)


@dataclass
class Walked:
    """A path walked component by component (the manual resolution)."""

    fds: list[int]
    """Descriptors (``O_PATH``) of every folder below the root down to the last one reached."""
    names: list[str]
    """The real components inside the root, symlinks resolved."""
    escaped: bool
    """A ``..`` tried to climb above the root and was held there."""
    missing: bool
    """A component did not exist (or was not a folder): the rest was taken as written."""

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []

    def up(self) -> None:
        """``..``: back to the held descriptor of the parent, never above the root."""
        if not self.names:
            self.escaped = True
            return
        self.names.pop()
        if len(self.fds) > len(self.names):
            os.close(self.fds.pop())


@dataclass
class Located:
    """The folder holding a path's last component, and that component."""

    dir_fd: int
    """An ``O_PATH`` descriptor of the folder; the caller calls :meth:`close` when done."""
    name: str
    """One component, never containing ``/`` (``"."`` for the folder itself)."""
    st: os.stat_result | None
    """``lstat`` of ``name`` in that folder, ``None`` when it does not exist."""
    owned: bool = True
    """Whether :meth:`close` closes ``dir_fd`` (``False``: the root's folder cache holds it)."""

    def close(self) -> None:
        if self.owned:
            os.close(self.dir_fd)


def _parts(path: str) -> list[str]:
    return [part for part in path.split("/") if part and part != "."]


class RootDir:
    """A folder opened once; paths inside it resolve from its descriptor, never by name."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, _DIR_FLAGS)
        self._folders: dict[str, int] = {}
        """Folder (as asked) → its descriptor: a capture asks for thousands of paths in a
        few hundred folders. A held descriptor stays the folder it was when resolved, so
        a later swap of that name cannot redirect it; it only ever gets more stale."""
        self._finalizer = weakref.finalize(self, _close_all, self.fd, self._folders)
        if "works" not in _openat2_works:
            _openat2_works["works"] = _probe_openat2(self.fd)
        self.kernel = _openat2_works["works"]
        """Whether ``openat2`` resolves (``False``: the manual walk)."""

    def close(self) -> None:
        self._finalizer()

    def locate(self, path: str, *, follow: bool) -> Located:
        """The folder of ``path``'s last component (resolved inside the root) and its lstat.

        With ``follow`` a last component that is a symlink is followed (inside the root,
        at most :data:`MAX_SYMLINKS` times), so ``name`` is not a symlink when this returns.
        Raises ``OSError`` (``ENOENT``, ``ENOTDIR``, ``ELOOP`` …) when a folder on the way
        cannot be reached.
        """
        hops = 0
        while True:
            parts = path.split("/")
            name = parts[-1]
            if name in ("", ".", ".."):  # the path names a folder: locate it as "."
                folder, name = path, "."
            else:
                folder = "/".join(parts[:-1])
            dir_fd, owned = self._folder(folder)
            try:
                st: os.stat_result | None = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except (FileNotFoundError, NotADirectoryError):
                st = None
            except BaseException:
                if owned:
                    os.close(dir_fd)
                raise
            if not (follow and st is not None and stat.S_ISLNK(st.st_mode)):
                return Located(dir_fd, name, st, owned)
            try:
                target = os.readlink(name, dir_fd=dir_fd)
            except OSError:  # swapped back meanwhile: look again
                target = name
            finally:
                if owned:
                    os.close(dir_fd)
            hops += 1
            if hops > MAX_SYMLINKS:
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
            # The target is relative to the link's folder, which the kernel (or the walk)
            # reaches again from the root: ".." in it climbs from the real folder.
            path = target if target.startswith("/") else f"{folder}/{target}"

    def _folder(self, path: str) -> tuple[int, bool]:
        """A descriptor of folder ``path`` and whether the caller must close it."""
        key = "/".join(_parts(path))
        fd = self._folders.get(key)
        if fd is not None:
            return fd, False
        fd = self.open_dir(key)
        if len(self._folders) >= _MAX_HELD_FOLDERS:
            return fd, True
        held = self._folders.setdefault(key, fd)  # atomic: two threads may race here
        return (fd, True) if held != fd else (fd, False)

    def open_dir(self, path: str) -> int:
        """An ``O_PATH`` descriptor of the folder ``path`` (every symlink followed inside)."""
        relative = "/".join(_parts(path)) or "."
        if self.kernel:
            return _openat2(self.fd, relative, _DIR_FLAGS)
        walked = self.walk(relative, follow_last=True)
        try:
            if walked.missing:
                raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), path)
            if not walked.fds:
                return os.open(".", _DIR_FLAGS, dir_fd=self.fd)
            last = walked.fds.pop()
        finally:
            walked.close()
        if not stat.S_ISDIR(os.fstat(last).st_mode):
            os.close(last)
            raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
        return last

    def walk(self, path: str, *, follow_last: bool) -> Walked:
        """Resolve ``path`` one component at a time from the root's descriptor.

        Missing components are allowed and kept as written (``missing`` is set). The
        caller closes the result. Raises ``OSError(ELOOP)`` past :data:`MAX_SYMLINKS`.
        """
        pending = _parts(path)[::-1]
        walked = Walked([], [], escaped=False, missing=False)
        links = 0
        try:
            while pending:
                part = pending.pop()
                if part == ".":
                    continue
                if part == "..":
                    walked.up()
                    continue
                if walked.missing:
                    walked.names.append(part)
                    continue
                current = walked.fds[-1] if walked.fds else self.fd
                try:
                    fd = os.open(part, _PATH_FLAGS, dir_fd=current)
                except (FileNotFoundError, NotADirectoryError):
                    walked.missing = True
                    walked.names.append(part)
                    continue
                mode = os.fstat(fd).st_mode
                if stat.S_ISLNK(mode) and (pending or follow_last):
                    try:
                        target = os.readlink("", dir_fd=fd)  # the link we hold, not a name
                    finally:
                        os.close(fd)
                    links += 1
                    if links > MAX_SYMLINKS:
                        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                    if target.startswith("/"):
                        walked.close()
                        walked.names = []
                    pending.extend(_parts(target)[::-1] if target.strip("/") else [])
                    continue
                walked.fds.append(fd)
                walked.names.append(part)
                if pending and not stat.S_ISDIR(mode):
                    walked.missing = True  # "file/x": nothing below a file
        except BaseException:
            walked.close()
            raise
        return walked


def _close_all(root_fd: int, folders: dict[str, int]) -> None:
    for fd in list(folders.values()):
        os.close(fd)
    folders.clear()
    os.close(root_fd)


def _probe_openat2(root_fd: int) -> bool:
    """Whether ``openat2`` works here: absent before Linux 5.6, or filtered by seccomp."""
    if _syscall is None or os.environ.get("ENVPACK_RESOLVE") == "walk":
        return False  # ENVPACK_RESOLVE=walk: the manual walk (tests run both resolvers)
    try:
        os.close(_openat2(root_fd, ".", _DIR_FLAGS))
    except OSError as err:
        if err.errno in (errno.ENOSYS, errno.EPERM, errno.EINVAL, errno.E2BIG):
            return False
        raise
    return True
