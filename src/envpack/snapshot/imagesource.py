"""A container image as a capture source: read offline, like a ``--root`` folder.

:func:`open_image` locates the image (:mod:`envpack.oci.reader`), reads every layer's tar
headers in place (:mod:`envpack.oci.layertar`) and applies the layers with their whiteouts
into an in-memory tree (:mod:`envpack.oci.view`). :class:`ImageSource` then answers every
:class:`~envpack.snapshot.source.Source` call from that tree. A file's bytes are read where
they lie (:meth:`ImageSource.open_bytes`: a stretch of a plain layer tar, or of a gzip
layer's inflated data): hashing, ELF headers and ``read_bytes`` copy nothing. Only a probe
that needs a descriptor of the file itself (:meth:`ImageSource.open_fd`) gets a copy of
just that file's bytes, made on first open in envpack's own temporary folder (one copy
per file, by a number, never by the image's name). So:

- nothing from the image is executed, and no name from the image ever becomes a host path:
  hostile names (``../``, absolute, through a symlink) cannot write outside the folder;
- an uncompressed layer is read where it is, a gzip one is inflated once into the folder;
  only the few files a probe opens as a descriptor are copied out;
- metadata (``lstat``, ``stat``, listings) comes from the tar headers: the image's own
  modes, owners and sizes, whoever runs the capture.

The temporary folder is removed by :meth:`ImageSource.close` (or when the source is
collected). Use it as a context manager::

    with open_image("docker-archive:app.tar") as source:
        manifest = capture(source, options, redactor)
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import shutil
import stat
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

from envpack.errors import CaptureError
from envpack.fsnames import escape, unescape
from envpack.oci.layertar import DEFAULT_INFLATE_LIMIT, read_layer
from envpack.oci.model import InvalidImage
from envpack.oci.reader import Export, ImageBlobs, open_image_blobs
from envpack.oci.view import ImageView, Lookup, Node
from envpack.snapshot.filebytes import FileBytes
from envpack.snapshot.source import (
    NotRegularFile,
    ResolvedPath,
    Source,
    SourceEntry,
    SourceReadError,
)

__all__ = ["ImageError", "ImageSource", "open_image"]

_DEVICE = 0x7E7E  # st_dev of every image file: not a device number this host uses
_KIND_BITS = {
    "file": stat.S_IFREG,
    "dir": stat.S_IFDIR,
    "symlink": stat.S_IFLNK,
    "char-device": stat.S_IFCHR,
    "block-device": stat.S_IFBLK,
    "fifo": stat.S_IFIFO,
}
_COPY_CHUNK = 8 << 20
_PYTHON_NAME = re.compile(r"^(python|pypy)(\d+(\.\d+)?)?$")
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class ImageError(CaptureError):
    """An image cannot be read at all (missing, malformed, a refused layer)."""


def open_image(
    reference: str,
    *,
    workdir: str | os.PathLike[str] | None = None,
    export: Export | None = None,
    progress: Callable[[str], None] | None = None,
    inflate_limit: int = DEFAULT_INFLATE_LIMIT,
) -> ImageSource:
    """Open the image ``reference`` names as a read-only, offline capture source.

    ``reference``: ``oci:DIR[:TAG]``, ``oci-archive:FILE[:TAG]``,
    ``docker-archive:FILE[:NAME:TAG]``, ``docker-daemon:NAME[:TAG]`` or a bare path.
    ``workdir``: where envpack's temporary folder is made (default: ``$TMPDIR``).
    ``export``: how a ``docker-daemon`` image is saved (default: Docker SDK, ``DOCKER_HOST``).
    Raises :class:`ImageError` (one line) when the image cannot be read.
    """
    temp = Path(tempfile.mkdtemp(prefix="envpack-image-", dir=workdir))
    try:
        return _open(reference, temp, export, progress or _silent, inflate_limit)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


def _silent(_: str) -> None:
    return None


def _open(
    reference: str,
    temp: Path,
    export: Export | None,
    progress: Callable[[str], None],
    inflate_limit: int,
) -> ImageSource:
    try:
        progress("locating the image")
        blobs = open_image_blobs(reference, temp, export=export)
        view = ImageView()
        data_files: list[Path] = []
        whole: set[int] = set()
        count = len(blobs.layers)
        # Layers are read two at a time (zlib inflates without the GIL: both cores work)
        # and applied in order as each one is ready.
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = [
                pool.submit(read_layer, layer, temp, number, limit=inflate_limit)
                for number, layer in enumerate(blobs.layers, start=1)
            ]
            try:
                for number, future in enumerate(futures, start=1):
                    progress(f"reading layer {number}/{count}")
                    read = future.result()
                    numbers = [_register(data_files, path) for path in read.files]
                    whole.update(numbers[i] for i in read.whole)
                    view.apply_layer(read.members, numbers, f"layer {number}")
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        view.finish()
    except InvalidImage as err:
        raise ImageError(f"image {reference}: {err}") from err
    return ImageSource(blobs, view, data_files, temp, frozenset(whole))


def _register(files: list[Path], path: Path) -> int:
    """The number of ``path`` in ``files`` (added when new: docker save may share a layer)."""
    try:
        return files.index(path)
    except ValueError:
        files.append(path)
        return len(files) - 1


class ImageSource(Source):
    """A :class:`Source` answered from an image's merged layers (see the module doc).

    Paths are inside the image, in recorded form (:mod:`envpack.fsnames`), as for a rootfs.
    """

    def __init__(
        self,
        blobs: ImageBlobs,
        view: ImageView,
        data_files: list[Path],
        temp: Path,
        whole: frozenset[int] = frozenset(),
    ) -> None:
        super().__init__(
            root=blobs.reference,
            kind="image",
            description=blobs.reference,
            # A container's network is the runtime's, made when it starts: interfaces,
            # routes, listening ports, and even /etc/resolv.conf, hosts and hostname, which
            # Docker and Podman mount over the image's. An image has none of it to record.
            not_applicable=frozenset({"network"}),
        )
        self.blobs = blobs
        self.environ = self.image_env
        self.view = view
        self.temp = temp
        self._data_files = data_files
        self._whole = whole  # data files holding exactly one file's bytes: opened as they are
        self._data_fds: dict[int, int] = {}
        self._copies: dict[tuple[int, int], Path] = {}
        self._lock = threading.Lock()
        self._finalizer = weakref.finalize(self, _cleanup, self._data_fds, temp)

    # -- what the image says about itself --------------------------------------------------

    @property
    def config(self) -> Mapping[str, Any]:
        """The image config (``Env``, ``Entrypoint``, ``User`` … under ``config``)."""
        return self.blobs.config

    @property
    def image_env(self) -> dict[str, str]:
        """The environment a container of this image starts with (config ``Env``)."""
        inner = self.blobs.config.get("config")
        raw = inner.get("Env") if isinstance(inner, dict) else None
        env: dict[str, str] = {}
        for item in raw if isinstance(raw, list) else []:
            if isinstance(item, str) and "=" in item:
                name, _, value = item.partition("=")
                env[name] = value
        return env

    def default_pythons(self) -> tuple[str, ...]:
        """The interpreter a container of this image runs: the entrypoint (or command)
        when it is a Python, else ``$VIRTUAL_ENV/bin/python``, else ``python3`` on the
        image's PATH; empty when none is there (the standard places are looked at)."""
        inner = self.blobs.config.get("config")
        inner = inner if isinstance(inner, dict) else {}
        candidates: list[str] = []
        for key in ("Entrypoint", "Cmd"):
            argv = inner.get(key)
            if isinstance(argv, list) and argv and isinstance(argv[0], str):
                if _PYTHON_NAME.match(posixpath.basename(argv[0])) and argv[0].startswith("/"):
                    candidates.append(argv[0])
                break  # the command is only run when there is no entrypoint
        venv = self.environ.get("VIRTUAL_ENV", "")
        if venv.startswith("/"):
            candidates.append(posixpath.join(venv, "bin", "python"))
        path = self.environ.get("PATH", "").split(":")
        candidates.extend(posixpath.join(f, "python3") for f in path if f.startswith("/"))
        found = [c for c in candidates if self.is_file(c)]  # is_file: never raises
        return (posixpath.normpath(found[0]),) if found else ()

    def load_issues(self) -> list[tuple[str, str]]:
        """``(path, reason)`` for each entry of the image neutralised or refused."""
        return list(self.view.problems)

    # -- lifetime -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the layer files and remove envpack's temporary folder."""
        self._finalizer()

    def __enter__(self) -> ImageSource:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def _dir(self) -> Any:
        # Source's rootfs code paths must never run for an image (they would read the host).
        raise AssertionError("ImageSource has no root folder")

    # -- resolution -----------------------------------------------------------------------

    def _lookup(self, inner: str, *, follow: bool) -> Lookup:
        raw = unescape(inner)
        if not raw.startswith("/"):
            raw = "/" + raw
        try:
            return self.view.lookup(raw, follow_last=follow)
        except OSError as err:
            raise SourceReadError(f"{inner}: too many levels of symbolic links") from err

    def host_path(self, inner: str) -> str:
        return "/" + unescape(inner).lstrip("/")

    def resolve(self, inner: str, *, follow_last: bool = True) -> ResolvedPath:
        found = self._lookup(inner, follow=follow_last)
        return ResolvedPath(escape(found.path), found.path, found.escaped)

    # -- metadata ---------------------------------------------------------------------------

    def lstat(self, inner: str) -> os.stat_result | None:
        node = self._lookup(inner, follow=False).node
        return None if node is None else _stat(node)

    def stat(self, inner: str) -> os.stat_result | None:
        node = self._lookup(inner, follow=True).node
        return None if node is None else _stat(node)

    def listdir(self, inner: str) -> list[str]:
        found = self._lookup(inner, follow=True)
        if found.node is None or found.node.kind != "dir":
            return []
        return sorted(escape(name) for name in self.view.listdir(found.path))

    def scandir(self, inner: str) -> Iterator[SourceEntry]:
        found = self._lookup(inner, follow=True)
        if found.node is None or found.node.kind != "dir":
            return
        folder = "/" + unescape(inner).strip("/") if inner.strip("/") else "/"
        for name in self.view.listdir(found.path):
            node = self.view.nodes.get(_child(found.path, name))
            if node is not None:
                yield _ImageEntry(self, escape(name), _child(escape(folder), escape(name)), node)

    def readlink(self, inner: str) -> str | None:
        node = self._lookup(inner, follow=False).node
        if node is None or node.kind != "symlink":
            return None
        return escape(node.target)

    # -- content ----------------------------------------------------------------------------

    def _regular(self, inner: str) -> tuple[Node, tuple[int, int]]:
        """The node of a regular file with content, and where that content lies."""
        node = self._lookup(inner, follow=True).node
        if node is None:
            raise SourceReadError(f"{inner}: no such file")
        if node.kind != "file":
            raise NotRegularFile(inner, node.kind)
        if node.data is None:
            raise SourceReadError(f"{inner}: a sparse file in the image; not read")
        return node, node.data

    def open_bytes(self, inner: str) -> tuple[FileBytes, os.stat_result]:
        """The file's bytes where they lie: a stretch of its layer (a plain layer tar, or
        a gzip layer's inflated data), nothing copied. Hashing and ELF parsing read so."""
        node, (number, offset) = self._regular(inner)
        try:
            if number in self._whole:  # a file of its own: one descriptor per reader
                fd = os.open(self._data_files[number], os.O_RDONLY | os.O_CLOEXEC)
                return FileBytes(fd, 0, node.size), _stat(node)
            return FileBytes(self._data_fd(number), offset, node.size, owned=False), _stat(node)
        except OSError as err:
            raise SourceReadError(f"{inner}: cannot read in the image: {err.strerror}") from err

    def _data_fd(self, number: int) -> int:
        """The shared read descriptor of data file ``number`` (opened once)."""
        with self._lock:
            fd = self._data_fds.get(number)
            if fd is None:
                fd = os.open(self._data_files[number], os.O_RDONLY | os.O_CLOEXEC)
                self._data_fds[number] = fd
            return fd

    def open_fd(self, inner: str) -> tuple[int, os.stat_result]:
        node, _ = self._regular(inner)
        try:
            copy = self._copy(node)
            fd = os.open(copy, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as err:
            raise SourceReadError(f"{inner}: cannot copy out of the image: {err.strerror}") from err
        return fd, _stat(node)

    def export_file(self, node: Node, target: Path) -> None:
        """Put a regular file's bytes at ``target``, a new path (verify runs the image from
        such a tree): hard-linked when envpack's own data file holds exactly these bytes,
        else copied. The new file is ``0o600``; the caller sets its mode."""
        if node.data is None:
            raise OSError(22, "not a regular file's content")
        number, offset = node.data
        if number in self._whole:
            with contextlib.suppress(OSError):  # another file system: copied below
                os.link(self._data_files[number], target, follow_symlinks=False)
                return
        out = os.open(target, _WRITE_FLAGS, 0o600)
        try:
            _copy_range(self._data_fd(number), out, offset, node.size)
        finally:
            os.close(out)

    def _copy(self, node: Node) -> Path:
        """The path of this file's bytes copied into the temporary folder (once per file)."""
        if node.data is None:
            raise OSError(22, "not a regular file's content")
        with self._lock:
            known = self._copies.get(node.data)
            if known is not None:
                return known
            number, offset = node.data
            if number in self._whole:
                return self._data_files[number]
            source_fd = self._data_fds.get(number)
            if source_fd is None:
                source_fd = os.open(self._data_files[number], os.O_RDONLY | os.O_CLOEXEC)
                self._data_fds[number] = source_fd
            target = self.temp / f"file-{len(self._copies)}"
            out = os.open(target, _WRITE_FLAGS, 0o600)
            try:
                _copy_range(source_fd, out, offset, node.size)
            finally:
                os.close(out)
            self._copies[node.data] = target
            return target

    def hostname(self) -> str:
        words = (self.read_text_or_none("/etc/hostname") or "").split()
        return words[0] if words else ""


def _copy_range(source: int, target: int, offset: int, size: int) -> None:
    """``size`` bytes of ``source`` from ``offset`` on into ``target``, in the kernel."""
    done = 0
    while done < size:
        try:
            count = os.copy_file_range(source, target, min(_COPY_CHUNK, size - done), offset + done)
        except OSError:
            count = 0
        if count <= 0:  # not supported here (or a short file): plain reads
            data = os.pread(source, min(_COPY_CHUNK, size - done), offset + done)
            if not data:
                raise OSError(5, "the layer ends inside this file")
            os.write(target, data)
            count = len(data)
        done += count


def _child(folder: str, name: str) -> str:
    return "/" + name if folder in ("", "/") else f"{folder.rstrip('/')}/{name}"


def _stat(node: Node) -> os.stat_result:
    mode = _KIND_BITS.get(node.kind, 0) | node.mode
    mtime = node.mtime
    rdev = os.makedev(node.major, node.minor) if node.kind.endswith("device") else 0
    return os.stat_result(
        (mode, node.ino, _DEVICE, 1, node.uid, node.gid, node.size, mtime, mtime, mtime,
         float(mtime), float(mtime), float(mtime), mtime * 10**9, mtime * 10**9, mtime * 10**9,
         4096, (node.size + 511) // 512, rdev)
    )  # fmt: skip


class _ImageEntry:
    """A folder entry of an image, with what ``os.DirEntry`` offers probes."""

    __slots__ = ("_node", "_source", "name", "path")

    def __init__(self, source: ImageSource, name: str, path: str, node: Node) -> None:
        self._source = source
        self._node = node
        self.name = name
        self.path = path

    def is_symlink(self) -> bool:
        return self._node.kind == "symlink"

    def _kind(self, follow: bool) -> str | None:
        if follow and self._node.kind == "symlink":
            try:
                found = self._source._lookup(self.path, follow=True)
            except SourceReadError:
                return None
            return None if found.node is None else found.node.kind
        return self._node.kind

    def is_dir(self, *, follow_symlinks: bool = True) -> bool:
        return self._kind(follow_symlinks) == "dir"

    def is_file(self, *, follow_symlinks: bool = True) -> bool:
        return self._kind(follow_symlinks) == "file"

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        if follow_symlinks and self._node.kind == "symlink":
            st = self._source.stat(self.path)
            if st is None:
                raise FileNotFoundError(2, "no such file", self.path)
            return st
        return _stat(self._node)


def _cleanup(fds: dict[int, int], temp: Path) -> None:
    for fd in fds.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    fds.clear()
    shutil.rmtree(temp, ignore_errors=True)
