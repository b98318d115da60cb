"""Byte-reproducible tar streams for image layers, every header built by hand.

Nothing here looks at the host: no ``gettarinfo``, no user database, no umask, no clock.
The same entries give the same bytes: PAX (POSIX.1-2001) headers, numeric ids with empty
user and group names, integer mtimes, entries sorted by path component with parents first
(missing parents added), no duplicates, hardlinks kept inside the layer. Device nodes,
FIFOs and sockets have no :class:`TarEntry` kind: an image built from a capture never
needs them, and a container runtime creates ``/dev`` itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import BinaryIO, Literal

from envpack.errors import PackError
from envpack.oci._stream import Writable

__all__ = ["BLOCK", "EntryKind", "InvalidEntry", "TarEntry", "ordered_entries", "write_tar"]

EntryKind = Literal["file", "dir", "symlink", "hardlink"]
_KINDS = frozenset(("file", "dir", "symlink", "hardlink"))
_TYPEFLAG = {"file": b"0", "hardlink": b"1", "symlink": b"2", "dir": b"5"}

BLOCK = 512
# GNU tar and CPython pad an archive to 20 blocks; some old readers expect it.
_RECORD = 20 * BLOCK
_CHUNK = 1 << 20
_FLUSH_AT = 1 << 16
# Largest values the octal ustar fields hold; beyond them the value goes in a PAX record.
_MAX_ID = 0o7777777
_MAX_NUMBER = 0o77777777777
_PAX_NAME = b"././@PaxHeader"


class InvalidEntry(PackError):
    """An entry that cannot be written: bad path, duplicate, unsupported kind, wrong size."""


@dataclass(frozen=True)
class TarEntry:
    """One path of a layer, described in image terms (not read from the host by the writer)."""

    path: str
    """Absolute path inside the image, e.g. ``/usr/bin/python3.11``."""
    kind: EntryKind
    mode: int
    """Permission bits only, setuid/setgid/sticky included (``0o4755``, ``0o1777``)."""
    uid: int = 0
    gid: int = 0
    mtime: int = 0
    """Integer seconds, already clamped by the caller."""
    size: int = 0
    """For ``file``: the number of bytes ``open()`` yields."""
    linkname: str = ""
    """Symlink target as stored, or the absolute image path a hardlink points to."""
    open: Callable[[], BinaryIO] | None = None
    """For ``file``: returns the content stream; called once, closed by the writer."""


def write_tar(entries: Iterable[TarEntry], out: Writable) -> None:
    """Write ``entries`` as one reproducible tar stream to ``out``.

    Sorted by path, parents first (missing parents added as 0755 root-owned directories with
    the mtime of the first entry below them), duplicates refused, PAX format, numeric ids,
    empty uname/gname, integer mtimes. A file whose opener yields a different number of
    bytes than its ``size`` raises :class:`InvalidEntry` (a subclass of PackError); what was
    already written to ``out`` must then be discarded by the caller.
    """
    sink = _Batcher(out)
    for entry in ordered_entries(entries):
        _write_entry(entry, sink)
    sink.write(bytes(2 * BLOCK))
    tail = sink.written % _RECORD
    if tail:
        sink.write(bytes(_RECORD - tail))
    sink.flush()


def ordered_entries(entries: Iterable[TarEntry]) -> list[TarEntry]:
    """The entries as :func:`write_tar` writes them: validated, sorted, parents added,
    each hardlink pointing at the first path (in order) of its inode, which holds the data.
    """
    by_path: dict[str, TarEntry] = {}
    for entry in entries:
        _check(entry)
        if entry.path == "/":
            continue  # the root is the container's, never a layer entry
        if entry.path in by_path:
            raise InvalidEntry(f"{entry.path}: more than one entry for this path")
        by_path[entry.path] = entry
    for path in sorted(by_path, key=_sort_key):
        entry = by_path[path]
        parent = _parent(path)
        while parent != "/":
            existing = by_path.get(parent)
            if existing is None:
                by_path[parent] = TarEntry(parent, "dir", 0o755, mtime=entry.mtime)
            elif existing.kind != "dir":
                raise InvalidEntry(f"{path}: its parent {parent} is a {existing.kind} in the layer")
            else:
                break  # this parent was seen, so were its own parents
            parent = _parent(parent)
    _settle_hardlinks(by_path)
    return [by_path[path] for path in sorted(by_path, key=_sort_key)]


def _check(entry: TarEntry) -> None:
    path = entry.path
    if entry.kind not in _KINDS:
        raise InvalidEntry(f"{path}: entries of kind {entry.kind!r} are not supported")
    if (
        not path.startswith("/")
        or "\0" in path
        or (path != "/" and (path.endswith("/") or "//" in path))
        or any(part in (".", "..") for part in path.split("/"))
    ):
        raise InvalidEntry(f"{path!r}: not a normalised absolute image path")
    for name in ("mode", "uid", "gid", "mtime", "size"):
        value = getattr(entry, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidEntry(f"{path}: {name} must be a non-negative integer, not {value!r}")
    if entry.mode > 0o7777:
        raise InvalidEntry(f"{path}: mode {entry.mode:o} has bits beyond the permission bits")
    if entry.kind == "file" and entry.open is None:
        raise InvalidEntry(f"{path}: a file entry needs an opener")
    if entry.kind != "file" and entry.size:
        raise InvalidEntry(f"{path}: only a file entry has a size")
    if entry.kind in ("symlink", "hardlink") and not entry.linkname:
        raise InvalidEntry(f"{path}: a {entry.kind} needs a linkname")
    if "\0" in entry.linkname:
        raise InvalidEntry(f"{path}: the link target holds a NUL byte")
    if entry.kind == "hardlink" and not entry.linkname.startswith("/"):
        raise InvalidEntry(f"{path}: a hardlink target must be an absolute image path")


def _settle_hardlinks(by_path: dict[str, TarEntry]) -> None:
    """Give each inode's data to its first path in order; every other path links to it."""
    members: dict[str, list[str]] = {}
    for path, entry in by_path.items():
        if entry.kind == "hardlink":
            members.setdefault(_inode_root(path, by_path), []).append(path)
    for root, links in members.items():
        data = by_path[root]
        first = min([root, *links], key=_sort_key)
        by_path[first] = dataclasses.replace(data, path=first)
        for path in [root, *links]:
            if path != first:
                by_path[path] = dataclasses.replace(
                    data, path=path, kind="hardlink", linkname=first, size=0, open=None
                )


def _inode_root(path: str, by_path: dict[str, TarEntry]) -> str:
    seen = {path}
    target = by_path[path].linkname
    while True:
        entry = by_path.get(target)
        if entry is None:
            raise InvalidEntry(f"{path}: hardlink target {target} is not in this layer")
        if entry.kind != "hardlink":
            if entry.kind == "dir":
                raise InvalidEntry(f"{path}: hardlink to the directory {target}")
            return target
        if target in seen:
            raise InvalidEntry(f"{path}: hardlinks form a cycle")
        seen.add(target)
        target = entry.linkname


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"


def _sort_key(path: str) -> list[bytes]:
    # Component-wise byte order: a folder's contents follow it directly ("/a", "/a/b",
    # "/a-b"), and the order does not depend on the locale.
    return _encode(path)[0].split(b"/")


def _encode(text: str) -> tuple[bytes, bool]:
    """UTF-8 bytes of a path, and whether it held undecodable bytes (surrogate escapes)."""
    try:
        return text.encode("utf-8"), False
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape"), True


def _write_entry(entry: TarEntry, sink: _Batcher) -> None:
    name = entry.path[1:] + ("/" if entry.kind == "dir" else "")
    if entry.kind == "hardlink":
        link = entry.linkname[1:]
    elif entry.kind == "symlink":
        link = entry.linkname
    else:
        link = ""
    sink.write(_headers(name, link, entry))
    if entry.kind == "file":
        _copy_content(entry, sink)


def _headers(name: str, link: str, entry: TarEntry) -> bytes:
    name_b, name_raw = _encode(name)
    link_b, link_raw = _encode(link)
    pax: dict[bytes, bytes] = {}
    if len(name_b) > 100 or not name_b.isascii():
        pax[b"path"] = name_b
    if len(link_b) > 100 or not link_b.isascii():
        pax[b"linkpath"] = link_b
    if (name_raw and b"path" in pax) or (link_raw and b"linkpath" in pax):
        pax[b"hdrcharset"] = b"BINARY"  # not UTF-8: the raw bytes of the source name
    for key, value, limit in (
        (b"uid", entry.uid, _MAX_ID),
        (b"gid", entry.gid, _MAX_ID),
        (b"size", entry.size, _MAX_NUMBER),
        (b"mtime", entry.mtime, _MAX_NUMBER),
    ):
        if value > limit:
            pax[key] = str(value).encode("ascii")
    out = b""
    if pax:
        records = b"".join(_pax_record(key, pax[key]) for key in sorted(pax))
        out = _ustar(_PAX_NAME, b"x", 0o644, 0, 0, len(records), 0, b"")
        out += records + bytes(-len(records) % BLOCK)
    out += _ustar(
        name_b[:100],
        _TYPEFLAG[entry.kind],
        entry.mode,
        min(entry.uid, _MAX_ID),
        min(entry.gid, _MAX_ID),
        entry.size if entry.size <= _MAX_NUMBER else 0,
        min(entry.mtime, _MAX_NUMBER),
        link_b[:100],
    )
    return out


def _ustar(
    name: bytes, typeflag: bytes, mode: int, uid: int, gid: int, size: int, mtime: int, link: bytes
) -> bytes:
    header = b"".join(
        (
            name.ljust(100, b"\0"),
            b"%07o\0" % mode,
            b"%07o\0" % uid,
            b"%07o\0" % gid,
            b"%011o\0" % size,
            b"%011o\0" % mtime,
            b" " * 8,  # the checksum is computed with its own field as spaces
            typeflag,
            link.ljust(100, b"\0"),
            b"ustar\x0000",
            bytes(32),  # uname: empty, ids are numeric
            bytes(32),  # gname
            b"0000000\0",  # devmajor
            b"0000000\0",  # devminor
            bytes(155),  # prefix: long names go in PAX records instead
        )
    ).ljust(BLOCK, b"\0")
    checksum = b"%06o\0 " % sum(header)
    return header[:148] + checksum + header[156:]


def _pax_record(key: bytes, value: bytes) -> bytes:
    body = b" " + key + b"=" + value + b"\n"
    # The length prefix counts its own digits.
    digits = len(str(len(body)))
    while len(str(len(body) + digits)) != digits:
        digits += 1
    return str(len(body) + digits).encode("ascii") + body


def _copy_content(entry: TarEntry, sink: _Batcher) -> None:
    opener = entry.open
    if opener is None:  # refused by _check already; kept for the type checker
        raise InvalidEntry(f"{entry.path}: a file entry needs an opener")
    remaining = entry.size
    try:
        stream = opener()
    except OSError as err:
        raise InvalidEntry(f"{entry.path}: cannot read: {err.strerror or err}") from err
    try:
        while remaining:
            chunk = stream.read(min(_CHUNK, remaining))
            if not chunk:
                break
            sink.write(chunk)
            remaining -= len(chunk)
        extra = stream.read(1) if not remaining else b""
    except OSError as err:
        raise InvalidEntry(f"{entry.path}: cannot read: {err.strerror or err}") from err
    finally:
        stream.close()
    if remaining or extra:
        given = "fewer" if remaining else "more"
        raise InvalidEntry(
            f"{entry.path}: {entry.size} bytes expected, the source gave {given}"
            " (did it change while packing?)"
        )
    sink.write(bytes(-entry.size % BLOCK))


class _Batcher:
    """Groups the many small header writes into 64 KiB ones; large chunks pass through."""

    def __init__(self, out: Writable) -> None:
        self._out = out
        self._buffer = bytearray()
        self.written = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)
        if len(data) >= _FLUSH_AT:
            self.flush()
            self._out.write(data)
            return
        self._buffer += data
        if len(self._buffer) >= _FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            self._out.write(bytes(self._buffer))
            self._buffer.clear()
