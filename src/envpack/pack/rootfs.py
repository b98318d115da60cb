"""Write an image's entries as a plain folder tree, runnable with chroot, bwrap or podman.

The tree is written from the same tar entries the layers hold, in layer order, so it is
the file system a container of the image sees. Nothing is ever written through a
symbolic link: every folder an entry lands in was made here, so an entry such as
``/lib -> /usr/lib`` (absolute) can never make a later one land on the host.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

from envpack.errors import PackError
from envpack.oci.tarlayer import TarEntry, ordered_entries
from envpack.pack.layering import tar_order

__all__ = ["write_tree"]

_CHUNK = 1024 * 1024
_MOUNT_POINTS = (("dev", 0o755), ("proc", 0o555), ("sys", 0o555))


def _parts(path: str) -> tuple[str, ...]:
    parts = tar_order(path)
    if any(p in (".", "..") for p in parts) or not parts:
        raise PackError(f"refusing image path {path!r}: it must be absolute and plain")
    return parts


def write_tree(
    layers: Iterable[Iterable[TarEntry]],
    dest: Path,
    *,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Create ``dest`` (it must not exist) holding every entry of ``layers``.

    Owners are set when running as root (a rootless build keeps the caller's); modes,
    setuid bits and integer mtimes always. Folder modes and mtimes are set last, once
    nothing more is written into them.
    """
    os.mkdir(dest, 0o755)
    as_root = os.geteuid() == 0
    folders: dict[tuple[str, ...], TarEntry | None] = {(): None}
    for layer in layers:
        # The order, implied parents and hardlink roles exactly as the layer's tar has them.
        for entry in ordered_entries(layer):
            _write_entry(entry, dest, folders, as_root)
            if progress is not None and entry.kind == "file":
                progress(entry.size)
    # A container runtime makes these itself; bwrap, chroot or podman --rootfs on a
    # read-only tree need the folders to mount /proc, /sys and /dev on.
    for name, mode in _MOUNT_POINTS:
        if (name,) not in folders and not os.path.lexists(os.path.join(dest, name)):
            _write_entry(TarEntry(path="/" + name, kind="dir", mode=mode), dest, folders, as_root)
    # Deepest first: taking a parent's write bit first would stop its children's chmod.
    for parts in sorted(folders, key=len, reverse=True):
        dir_entry = folders[parts]
        path = os.path.join(dest, *parts) if parts else str(dest)
        if dir_entry is None:
            os.chmod(path, 0o755)  # noqa: S103  # an implied parent, as tar layers make it
            continue
        if as_root:
            os.lchown(path, dir_entry.uid, dir_entry.gid)
        os.chmod(path, dir_entry.mode)
        os.utime(path, (dir_entry.mtime, dir_entry.mtime))


def _write_entry(
    entry: TarEntry,
    dest: Path,
    folders: dict[tuple[str, ...], TarEntry | None],
    as_root: bool,
) -> None:
    parts = _parts(entry.path)
    _make_parents(dest, parts[:-1], folders, entry.mtime)
    target = os.path.join(dest, *parts)
    if entry.kind == "dir":
        # A folder in several layers: the upper layer's entry wins, as in a container.
        if parts not in folders:
            if os.path.lexists(target):
                raise PackError(f"{entry.path} is a folder in one layer, not in another")
            os.mkdir(target, 0o700)
        folders[parts] = entry
        return
    if parts in folders or os.path.lexists(target):
        raise PackError(f"{entry.path} is in the image twice")
    if entry.kind == "hardlink":
        source = os.path.join(dest, *_parts(entry.linkname))
        if tar_order(entry.linkname)[:-1] not in folders or not os.path.isfile(source):
            raise PackError(f"{entry.path} links to {entry.linkname}, not written first")
        os.link(source, target, follow_symlinks=False)
        return
    if entry.kind == "file":
        _write_file(entry, target, as_root)
    elif entry.kind == "symlink":
        os.symlink(entry.linkname, target)
        if as_root:
            os.lchown(target, entry.uid, entry.gid)
    else:
        raise PackError(f"{entry.path}: unknown entry kind {entry.kind!r}")
    os.utime(target, (entry.mtime, entry.mtime), follow_symlinks=False)


def _make_parents(
    dest: Path,
    parents: tuple[str, ...],
    folders: dict[tuple[str, ...], TarEntry | None],
    mtime: int,
) -> None:
    for depth in range(1, len(parents) + 1):
        key = parents[:depth]
        if key in folders:
            continue
        path = os.path.join(dest, *key)
        if os.path.lexists(path):
            # A symlink or file here was written by an earlier entry: going through it
            # could leave the tree.
            raise PackError(f"/{'/'.join(parents)} goes through /{'/'.join(key)}, not a folder")
        os.mkdir(path, 0o700)
        # A parent the entries do not name is a root-owned 0755 folder, as in a layer.
        folders[key] = TarEntry(path="/" + "/".join(key), kind="dir", mode=0o755, mtime=mtime)


def _write_file(entry: TarEntry, target: str, as_root: bool) -> None:
    if entry.open is None:
        raise PackError(f"{entry.path}: no content to write")
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out, entry.open() as source:
        shutil.copyfileobj(source, out, _CHUNK)
        written = out.tell()
        if written != entry.size:
            raise PackError(f"{entry.path}: {written} bytes read, {entry.size} expected")
        if as_root:
            os.fchown(out.fileno(), entry.uid, entry.gid)
        os.fchmod(out.fileno(), entry.mode)
