"""Collect the image's files from a source: paths kept, symlink chains and parents kept.

Adding ``/lib64/ld-linux-x86-64.so.2`` to the set adds what the loader walks to reach it
inside the image: the folder ``/lib64`` (a symlink to ``usr/lib64`` on a usr-merged
system), the folder it points to, the file's own symlink and the real file at the end of
the chain. Every parent folder is an entry with its source mode, so a ``0700 /root`` stays
``0700`` in the image. The first add of a path wins: callers add the most specific
groups first (interpreter, stdlib, site-packages …, system libraries last).

Modes keep their permission bits, owners become root (0:0) and times are clamped to
``SOURCE_DATE_EPOCH``. Files with several links become one file and hardlinks to it,
when they fall in the same group (a layer), else separate copies.
"""

from __future__ import annotations

import io
import os
import posixpath
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import BinaryIO

from envpack.errors import PackError
from envpack.oci.tarlayer import TarEntry
from envpack.pack.exclude import NOT_SHIPPED
from envpack.pack.planmodel import Excluded, PlannedFile
from envpack.snapshot.source import Source, SourceReadError

__all__ = ["FileSet", "normalize_link"]

_MAX_LINKS = 40
Excluder = Callable[[str, int], "str | None"]
"""(image path, size) → the reason it is left out, or ``None``."""


def normalize_link(folder: str, target: str, *, what: str, strict: bool = True) -> str:
    """The absolute path a symlink in ``folder`` points to.

    Inside a rootfs an absolute target restarts at the root (as in a chroot); ``..`` past
    the root is what an escaping link does (``strict``: refused). On a live host the kernel
    stops ``..`` at ``/``, so there it is only an odd spelling.
    """
    parts: list[str] = []
    start = target if target.startswith("/") else posixpath.join(folder, target)
    for part in start.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                if not strict:
                    continue
                raise PackError(f"{what}: symlink to {target!r} escapes the source root; refused")
            parts.pop()
            continue
        parts.append(part)
    return "/" + "/".join(parts)


@dataclass
class _Pending:
    planned: PlannedFile
    inode: tuple[int, int] | None


class FileSet:
    """The files of one image, keyed by their path."""

    def __init__(self, source: Source, epoch: int, excluder: Excluder | None = None) -> None:
        self.source = source
        self.strict = not source.is_live
        self.epoch = epoch
        self.excluder = excluder
        self._files: dict[str, _Pending] = {}
        self._folders: dict[str, str] = {}
        """Folder as asked → its real path, once its chain is in the set."""
        self.excluded: list[Excluded] = []
        self._excluded_paths: set[str] = set()
        self.skipped: list[str] = []
        """Paths that could not be shipped (a FIFO, a socket, unreadable), as messages."""

    # -- queries ----------------------------------------------------------------------------

    def __contains__(self, path: str) -> bool:
        return path in self._files

    def __len__(self) -> int:
        return len(self._files)

    def get(self, path: str) -> PlannedFile | None:
        pending = self._files.get(path)
        return None if pending is None else pending.planned

    def paths(self) -> list[str]:
        return list(self._files)

    def items(self) -> Iterator[PlannedFile]:
        for pending in self._files.values():
            yield pending.planned

    def remove(self, path: str) -> PlannedFile | None:
        pending = self._files.pop(path, None)
        return None if pending is None else pending.planned

    def exclude(self, path: str, size: int, reason: str) -> None:
        if reason == NOT_SHIPPED:
            return
        if path not in self._excluded_paths:
            self._excluded_paths.add(path)
            self.excluded.append(Excluded(path, size, reason))

    # -- adding generated content -----------------------------------------------------------

    def add_generated(
        self,
        path: str,
        data: bytes,
        group: str,
        *,
        mode: int = 0o644,
        origin: str = "generated",
        replace_existing: bool = False,
    ) -> bool:
        """A file whose bytes the planner made; its parents must already exist or be added."""
        if path in self._files and not replace_existing:
            return False
        self.add_parents(path, group, origin)
        entry = TarEntry(
            path=path,
            kind="file",
            mode=mode,
            mtime=self.epoch,
            size=len(data),
            open=_bytes_opener(data),
        )
        self._files[path] = _Pending(PlannedFile(entry, group, origin, None), None)
        return True

    def add_generated_stream(
        self,
        path: str,
        size: int,
        opener: Callable[[], BinaryIO],
        group: str,
        *,
        replace_existing: bool = False,
    ) -> bool:
        """Like :meth:`add_generated`, for bytes kept elsewhere until the layer is written."""
        if path in self._files and not replace_existing:
            return False
        self.add_parents(path, group, "generated")
        entry = TarEntry(
            path=path, kind="file", mode=0o644, mtime=self.epoch, size=size, open=opener
        )
        self._files[path] = _Pending(PlannedFile(entry, group, "generated", None), None)
        return True

    def add_generated_dir(self, path: str, group: str, *, mode: int = 0o755, uid: int = 0) -> None:
        """A folder the planner makes (``/tmp`` 1777); replaces a copied one."""
        self.add_parents(path, group, "generated")
        entry = TarEntry(path=path, kind="dir", mode=mode, uid=uid, gid=uid, mtime=self.epoch)
        self._files[path] = _Pending(PlannedFile(entry, group, "generated", None), None)

    def add_generated_symlink(self, path: str, target: str, group: str) -> None:
        if path in self._files:
            return
        self.add_parents(path, group, "generated")
        entry = TarEntry(path=path, kind="symlink", mode=0o777, mtime=self.epoch, linkname=target)
        self._files[path] = _Pending(PlannedFile(entry, group, "generated", None), None)

    # -- adding from the source -------------------------------------------------------------

    def add_parents(self, path: str, group: str, origin: str, *, create: bool = True) -> str | None:
        """Add every parent folder of ``path`` as the loader would walk it.

        Returns the real folder (symlinks and ``..`` resolved). A parent missing from the
        source is made (0755) when ``create`` (generated content), else ``None``.
        """
        folder = posixpath.dirname(path)
        if folder == "/":
            return "/"
        return self._folder(folder, group, origin, 0, create=create)

    def _folder(
        self, folder: str, group: str, origin: str, depth: int, *, create: bool = False
    ) -> str | None:
        """Add ``folder``'s chain (parents, symlinks) and return its real path.

        ``..`` climbs from the folder reached so far, symlinks resolved, as the kernel does
        (``$ORIGIN/..`` in an RPATH); the image never holds a path with ``.`` or ``..``.
        """
        if depth > _MAX_LINKS:
            raise PackError(f"{folder}: too many levels of symbolic links")
        known = self._folders.get(folder)
        if known is not None:  # thousands of files share a few folders: walk each once
            return known
        real = "/"
        for part in folder.strip("/").split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if real == "/" and self.strict:
                    raise PackError(f"{folder}: climbs above the source root; refused")
                real = posixpath.dirname(real)
                continue
            path = posixpath.join(real, part)
            st = self._lstat(path)
            if st is None:
                if not create:
                    return None
                if path not in self._files:  # generated content under a new folder
                    self._put_dir(path, 0o755, group, origin, None)
                real = path
                continue
            if stat.S_ISLNK(st.st_mode):
                target = self.source.readlink(path) or ""
                self._put_symlink(path, target, st, group, origin)
                where = normalize_link(real, target, what=path, strict=self.strict)
                resolved = self._folder(where, group, origin, depth + 1, create=create)
                if resolved is None:
                    return None
                real = resolved
                continue
            if not stat.S_ISDIR(st.st_mode):
                return None
            self._put_dir(path, stat.S_IMODE(st.st_mode), group, origin, st)
            real = path
        self._folders[folder] = real
        return real

    def add_path(
        self, path: str, group: str, origin: str, *, walk: bool = False, follow: bool = True
    ) -> bool:
        """Add one path of the source with its parents; ``walk`` adds a folder's contents.

        A symlink is added as a symlink and (``follow``) its target too, so a chain
        ``libssl.so.3 → libssl.so.3.0.0`` ends at the real file. Missing paths return
        ``False``.
        """
        return self._add(path, group, origin, walk=walk, follow=follow, depth=0)

    def _add(
        self, path: str, group: str, origin: str, *, walk: bool, follow: bool, depth: int
    ) -> bool:
        if depth > _MAX_LINKS:
            raise PackError(f"{path}: too many levels of symbolic links")
        if path in self._files and not walk:
            return True
        real = self._real_of(path, group, origin, depth)
        st = None if real is None else self._lstat(real)
        if real is None or st is None or real in self._excluded_paths:
            return False
        mode = st.st_mode
        if stat.S_ISLNK(mode):
            return self._add_link(real, st, group, origin, walk=walk, follow=follow, depth=depth)
        if stat.S_ISDIR(mode):
            if real != "/" and self._left_out(real + "/", 0):
                return False
            self._put_dir(real, stat.S_IMODE(mode), group, origin, st)
            if walk:
                self._walk(real, group, origin)
            return True
        if stat.S_ISREG(mode):
            if self._left_out(real, st.st_size):
                return False
            self._put_file(real, st, group, origin)
            return True
        self.skipped.append(f"{real}: not a file, folder or symlink; left out")
        return False

    def _real_of(self, path: str, group: str, origin: str, depth: int) -> str | None:
        """``path`` with its folders resolved (their chain added), the last part kept."""
        if self._lstat(path) is None:
            return None  # before any parent is added: a missing path adds nothing
        name = posixpath.basename(path)
        if path == "/" or name in ("", ".", ".."):
            return "/" if path == "/" else self._folder(path, group, origin, depth)
        folder = self.add_parents(path, group, origin, create=False)
        return None if folder is None else posixpath.join(folder, name)

    def _add_link(
        self,
        path: str,
        st: os.stat_result,
        group: str,
        origin: str,
        *,
        walk: bool,
        follow: bool,
        depth: int,
    ) -> bool:
        target = self.source.readlink(path) or ""
        if self._left_out(path, 0):
            return False
        self._put_symlink(path, target, st, group, origin)
        if follow:
            where = normalize_link(posixpath.dirname(path), target, what=path, strict=self.strict)
            # A symlinked folder is followed as a folder (its contents only on a walk).
            self._add(where, group, origin, walk=walk, follow=True, depth=depth + 1)
        return True

    def _walk(self, folder: str, group: str, origin: str) -> None:
        pending = [folder]
        seen = {folder}
        while pending:
            current = pending.pop()
            try:
                names = sorted(entry.name for entry in self.source.scandir(current))
            except SourceReadError as err:
                self.skipped.append(str(err))
                continue
            for name in names:
                path = posixpath.join(current, name)
                known = self._files.get(path)
                if known is not None:
                    # A folder added as some file's parent: its other contents still count.
                    if known.planned.entry.kind == "dir" and path not in seen:
                        seen.add(path)
                        pending.append(path)
                    continue
                st = self._lstat(path)
                if st is None:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    if self._left_out(path + "/", 0):
                        self._exclude_tree(path)
                        continue
                    self._put_dir(path, stat.S_IMODE(st.st_mode), group, origin, st)
                    seen.add(path)
                    pending.append(path)
                elif stat.S_ISLNK(st.st_mode):
                    # Symlinks inside a walked tree: kept, and a file target shipped too;
                    # a folder target outside the tree is not walked (it could be "/").
                    self._add(path, group, origin, walk=False, follow=True, depth=0)
                else:
                    self._add(path, group, origin, walk=False, follow=False, depth=0)

    def _exclude_tree(self, folder: str) -> None:
        """List every file of a left-out folder with its size (the report sums them)."""
        reason = self._reason(folder + "/", 0) or "excluded"
        if reason == NOT_SHIPPED:
            return
        pending = [folder]
        while pending:
            current = pending.pop()
            try:
                entries = list(self.source.scandir(current))
            except SourceReadError:
                continue
            for entry in entries:
                path = posixpath.join(current, entry.name)
                try:
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(path)
                    elif entry.is_file(follow_symlinks=False):
                        # Through the source (not the entry): the build cache sees it.
                        st = self.source.lstat(path)
                        if st is not None:
                            self.exclude(path, st.st_size, reason)
                except (OSError, SourceReadError):
                    continue

    # -- entries ----------------------------------------------------------------------------

    def _reason(self, path: str, size: int) -> str | None:
        return None if self.excluder is None else self.excluder(path, size)

    def _left_out(self, path: str, size: int) -> bool:
        reason = self._reason(path, size)
        if reason is None:
            return False
        if not path.endswith("/"):
            self.exclude(path, size, reason)
        return True

    def _lstat(self, path: str) -> os.stat_result | None:
        try:
            return self.source.lstat(path)
        except SourceReadError as err:
            self.skipped.append(str(err))
            return None

    def _clamp(self, st: os.stat_result | None) -> int:
        if st is None:
            return self.epoch
        return min(int(st.st_mtime), self.epoch)

    def _put_dir(
        self, path: str, mode: int, group: str, origin: str, st: os.stat_result | None
    ) -> None:
        if path in self._files:
            return
        entry = TarEntry(path=path, kind="dir", mode=mode, mtime=self._clamp(st))
        self._files[path] = _Pending(PlannedFile(entry, group, origin, path), None)

    def _put_symlink(
        self, path: str, target: str, st: os.stat_result, group: str, origin: str
    ) -> None:
        if path in self._files:
            return
        entry = TarEntry(
            path=path, kind="symlink", mode=0o777, mtime=self._clamp(st), linkname=target
        )
        self._files[path] = _Pending(PlannedFile(entry, group, origin, path), None)

    def _put_file(self, path: str, st: os.stat_result, group: str, origin: str) -> None:
        if path in self._files:
            return
        entry = TarEntry(
            path=path,
            kind="file",
            mode=stat.S_IMODE(st.st_mode),
            mtime=self._clamp(st),
            size=st.st_size,
            open=_source_opener(self.source, path),
        )
        inode = (st.st_dev, st.st_ino) if st.st_nlink > 1 else None
        self._files[path] = _Pending(PlannedFile(entry, group, origin, path), inode)

    def put(self, planned: PlannedFile, *, replace_existing: bool = False) -> bool:
        """Add a ready entry (bytecode, a file of the application)."""
        path = planned.entry.path
        if path in self._files and not replace_existing:
            return False
        self._files[path] = _Pending(planned, None)
        return True

    # -- the result -------------------------------------------------------------------------

    def finish(self) -> tuple[PlannedFile, ...]:
        """Every entry sorted by path; linked files of one group as one file + hardlinks."""
        first: dict[tuple[tuple[int, int], str], str] = {}
        out: list[PlannedFile] = []
        for path in sorted(self._files):
            pending = self._files[path]
            planned = pending.planned
            if pending.inode is not None:
                key = (pending.inode, planned.group)
                target = first.setdefault(key, path)
                if target != path:
                    link = replace(planned.entry, kind="hardlink", linkname=target, open=None)
                    planned = replace(planned, entry=replace(link, size=0))
            out.append(planned)
        return tuple(out)


def _source_opener(source: Source, path: str) -> Callable[[], BinaryIO]:
    def opener() -> BinaryIO:
        try:
            fd, _ = source.open_fd(path)
        except SourceReadError as err:
            raise PackError(f"cannot read {path}: {err}") from err
        return os.fdopen(fd, "rb", closefd=True)

    return opener


def _bytes_opener(data: bytes) -> Callable[[], BinaryIO]:
    return lambda: io.BytesIO(data)
