"""Read an rpm database as files: the sqlite rpmdb and the RPM header blobs inside it.

rpm ≥ 4.16 keeps its database in ``rpmdb.sqlite``: a ``Packages`` table whose ``blob``
column holds one RPM header per installed package. A header blob is::

    int32 il            number of index entries          (all integers big-endian)
    int32 dl            length of the data store
    il * 16 bytes       index entries: int32 tag, type, offset (into the store), count
    dl bytes            the data store

envpack parses that itself: running ``rpm`` is not allowed on an offline rootfs, and the
tool may not even exist on the capturing host. The database is opened through a
``file:…?mode=ro&immutable=1`` URI so that neither a rootfs nor the live database is ever
written (no journal, no lock, no ``-shm`` file), even by sqlite's own housekeeping.

Older formats (BerkeleyDB ``Packages``, rpm's own ndb ``Packages.db``) are recognised and
reported as unreadable by :class:`UnsupportedRpmdb`, never parsed.

This module is shared: the system-packages probe reads name/version/arch from it, and the
library-ownership work reads the file lists.
"""

from __future__ import annotations

import os
import sqlite3
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

from envpack.snapshot.source import NotRegularFile, Source, SourceReadError

__all__ = [
    "RPMDB_DIRS",
    "RpmDatabase",
    "RpmHeaderError",
    "RpmPackage",
    "RpmdbContents",
    "RpmdbError",
    "UnsupportedRpmdb",
    "locate_rpmdb",
    "parse_header",
    "read_rpmdb",
    "source_package_name",
]

RPMDB_DIRS = ("/var/lib/rpm", "/usr/lib/sysimage/rpm")
"""Where distributions keep the rpmdb (Fedora ≥ 36 and openSUSE use /usr/lib/sysimage)."""

# Header tags (rpmtag.h).
TAG_NAME = 1000
TAG_VERSION = 1001
TAG_RELEASE = 1002
TAG_EPOCH = 1003
TAG_ARCH = 1022
TAG_OLDFILENAMES = 1027
TAG_SOURCERPM = 1044
TAG_DIRINDEXES = 1116
TAG_BASENAMES = 1117
TAG_DIRNAMES = 1118

# Tag data types (rpmtag.h, rpmTagType).
TYPE_INT32 = 4
TYPE_STRING = 6
TYPE_STRING_ARRAY = 8
TYPE_I18NSTRING = 9

_WANTED = frozenset(
    {
        TAG_NAME,
        TAG_VERSION,
        TAG_RELEASE,
        TAG_EPOCH,
        TAG_ARCH,
        TAG_OLDFILENAMES,
        TAG_SOURCERPM,
        TAG_DIRINDEXES,
        TAG_BASENAMES,
        TAG_DIRNAMES,
    }
)
# rpm's own sanity limits for a header (header_internal.h: HEADER_TAGS_MAX, HEADER_DATA_MAX).
_MAX_INDEX_ENTRIES = 0x0000FFFF
_MAX_DATA_LENGTH = 0x0FFFFFFF
_MAX_FILE_LIST_CHARS = 64 * 1024 * 1024
_ENTRY = struct.Struct(">iiii")
_PREAMBLE = struct.Struct(">ii")


class RpmdbError(SourceReadError):
    """The rpm database exists but cannot be read (corrupt, locked away, not sqlite)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        """The database's path inside the source."""
        self.reason = reason


class UnsupportedRpmdb(RpmdbError):
    """An rpm database in a format envpack does not read (BerkeleyDB, ndb)."""


class RpmHeaderError(ValueError):
    """One header blob is malformed; its package is skipped and reported."""


@dataclass(frozen=True)
class RpmPackage:
    """One installed rpm, as its header records it."""

    name: str
    version: str
    release: str
    epoch: int | None
    arch: str | None
    """``None`` for pseudo-packages such as ``gpg-pubkey``."""
    sourcerpm: str | None
    """The source rpm file name (``bash-5.2.26-3.fc40.src.rpm``); ``None`` for a source-less
    pseudo-package."""
    files: tuple[str, ...]
    """Absolute paths of the files, folders and symlinks the package owns, sorted."""

    @property
    def evr(self) -> str:
        """``[epoch:]version-release``, the way rpm compares versions."""
        head = f"{self.epoch}:" if self.epoch is not None else ""
        return f"{head}{self.version}-{self.release}"

    @property
    def source_name(self) -> str | None:
        """The source package's name (``bash`` for ``bash-5.2.26-3.fc40.src.rpm``)."""
        return source_package_name(self.sourcerpm) if self.sourcerpm else None


@dataclass(frozen=True)
class RpmDatabase:
    """Where an rpm database lives inside a source, and its format."""

    path: str
    """The path inside the source (``/var/lib/rpm/rpmdb.sqlite``)."""
    format: str
    """``sqlite``, ``bdb`` (BerkeleyDB) or ``ndb``."""


@dataclass(frozen=True)
class RpmdbContents:
    """What :func:`read_rpmdb` found: the packages, and headers it had to skip."""

    database: RpmDatabase
    packages: tuple[RpmPackage, ...]
    problems: tuple[str, ...]
    """One line per skipped header (``header 12: …``), for the manifest's issues."""


def source_package_name(sourcerpm: str) -> str:
    """``name`` of ``name-version-release.src.rpm`` (also ``.nosrc.rpm``)."""
    stem = sourcerpm
    for suffix in (".src.rpm", ".nosrc.rpm"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    # The version and release never contain a dash; the name may.
    parts = stem.rsplit("-", 2)
    return parts[0] if len(parts) == 3 else stem


def locate_rpmdb(source: Source) -> RpmDatabase | None:
    """The rpm database of ``source``, or ``None`` when it has none.

    The sqlite database wins over a leftover BerkeleyDB file from before a migration.
    """
    legacy: RpmDatabase | None = None
    for folder in RPMDB_DIRS:
        sqlite_path = f"{folder}/rpmdb.sqlite"
        if source.lstat(sqlite_path) is not None:
            return RpmDatabase(sqlite_path, "sqlite")
        for name, kind in (("Packages", "bdb"), ("Packages.db", "ndb")):
            if legacy is None and source.lstat(f"{folder}/{name}") is not None:
                legacy = RpmDatabase(f"{folder}/{name}", kind)
    return legacy


_FORMAT_WORDS = {"bdb": "BerkeleyDB", "ndb": "ndb"}


def read_rpmdb(source: Source, database: RpmDatabase | None = None) -> RpmdbContents | None:
    """Every package in the rpm database of ``source``; ``None`` when there is none.

    Raises :class:`UnsupportedRpmdb` for a BerkeleyDB or ndb database and
    :class:`RpmdbError` (a :class:`SourceReadError`) when the sqlite file cannot be read.
    A malformed header skips that one package and is listed in ``problems``.
    """
    db = database or locate_rpmdb(source)
    if db is None:
        return None
    if db.format != "sqlite":
        word = _FORMAT_WORDS.get(db.format, db.format)
        raise UnsupportedRpmdb(
            db.path,
            f"rpm database in {word} format, which envpack cannot read; "
            "`rpmdb --rebuilddb` with rpm >= 4.16 converts it to sqlite",
        )
    packages: list[RpmPackage] = []
    problems: list[str] = []
    for hnum, blob in _sqlite_blobs(source, db.path):
        package = _parse_or_report(hnum, blob, problems)
        if package is not None:
            packages.append(package)
    packages.sort(key=lambda p: (p.name, p.arch or "", p.evr))
    return RpmdbContents(db, tuple(packages), tuple(problems))


def _parse_or_report(hnum: int, blob: bytes, problems: list[str]) -> RpmPackage | None:
    try:
        return parse_header(blob)
    except RpmHeaderError as err:
        problems.append(f"header {hnum}: {err}")
        return None


def _sqlite_blobs(source: Source, inner: str) -> Iterator[tuple[int, bytes]]:
    """``(hnum, blob)`` rows, streamed: a distribution's rpmdb can hold 100 MB of headers.

    The file is opened through the source (resolved inside a root, never followed out of
    it) and sqlite reads that very descriptor through ``/proc/self/fd``: a name resolved
    once and opened again by sqlite could meanwhile point anywhere.
    """
    try:
        fd, _ = source.open_fd(inner)
    except NotRegularFile as err:
        raise RpmdbError(inner, f"is a {err.kind}, not a regular file; not opened") from err
    except SourceReadError as err:
        reason = str(err).removeprefix(f"{inner}: ")
        raise RpmdbError(inner, reason) from err
    try:
        yield from _rows(inner, f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def _rows(inner: str, path: str) -> Iterator[tuple[int, bytes]]:
    if not os.path.exists(path):
        raise RpmdbError(inner, "cannot open the rpm database: /proc is not mounted")
    # immutable=1: no locks, no journal or WAL replay, nothing written next to the file.
    uri = f"file:{quote(path)}?mode=ro&immutable=1"
    try:
        connection = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as err:
        raise RpmdbError(inner, f"cannot open the rpm database: {err}") from err
    try:
        for hnum, blob in connection.execute("SELECT hnum, blob FROM Packages ORDER BY hnum"):
            # A row that holds no blob fails header parsing and is reported with the rest.
            yield int(hnum), blob if isinstance(blob, bytes) else b""
    except sqlite3.Error as err:
        raise RpmdbError(inner, f"not a readable rpm sqlite database: {err}") from err
    finally:
        connection.close()


def parse_header(blob: bytes) -> RpmPackage:
    """Parse one header blob (as stored in the rpmdb, without the 8-byte magic)."""
    if len(blob) < _PREAMBLE.size:
        raise RpmHeaderError(f"{len(blob)} bytes is too short for a header")
    index_count, data_length = _PREAMBLE.unpack_from(blob, 0)
    if not 0 < index_count <= _MAX_INDEX_ENTRIES or not 0 <= data_length <= _MAX_DATA_LENGTH:
        raise RpmHeaderError(f"implausible header sizes (il={index_count}, dl={data_length})")
    store_start = _PREAMBLE.size + index_count * _ENTRY.size
    if store_start + data_length > len(blob):
        raise RpmHeaderError(f"truncated: needs {store_start + data_length} bytes, has {len(blob)}")
    entries: dict[int, tuple[int, int, int]] = {}
    index = memoryview(blob)[_PREAMBLE.size : store_start]
    for tag, kind, offset, count in _ENTRY.iter_unpack(index):
        if tag in _WANTED:
            if not 0 <= offset < data_length or count < 0:
                raise RpmHeaderError(f"tag {tag}: offset {offset} outside the data store")
            entries[tag] = (kind, offset, count)
    reader = _Store(blob, store_start, data_length, entries)
    name = reader.string(TAG_NAME)
    version = reader.string(TAG_VERSION)
    release = reader.string(TAG_RELEASE)
    if name is None or version is None or release is None:
        raise RpmHeaderError("no name, version or release")
    epochs = reader.int32s(TAG_EPOCH)
    return RpmPackage(
        name=name,
        version=version,
        release=release,
        epoch=epochs[0] if epochs else None,
        arch=reader.string(TAG_ARCH),
        sourcerpm=reader.string(TAG_SOURCERPM),
        files=_file_list(reader),
    )


def _file_list(reader: _Store) -> tuple[str, ...]:
    basenames = reader.strings(TAG_BASENAMES)
    if basenames is None:
        # Headers from before rpm 4.0's compressed file lists.
        return tuple(sorted(reader.strings(TAG_OLDFILENAMES) or ()))
    dirnames = reader.strings(TAG_DIRNAMES) or []
    dirindexes = reader.int32s(TAG_DIRINDEXES) or []
    if len(dirindexes) != len(basenames):
        raise RpmHeaderError(f"{len(basenames)} file names but {len(dirindexes)} folder indexes")
    paths: list[str] = []
    # Each name is joined to a folder name that many names may share: a small hostile
    # header can ask for terabytes of paths. Real packages list a few MB (texlive: ~8).
    left = _MAX_FILE_LIST_CHARS
    for base, where in zip(basenames, dirindexes):
        if not 0 <= where < len(dirnames):
            raise RpmHeaderError(f"folder index {where} out of range")
        left -= len(dirnames[where]) + len(base)
        if left < 0:
            raise RpmHeaderError(f"file list longer than {_MAX_FILE_LIST_CHARS >> 20} MiB")
        paths.append(dirnames[where] + base)
    return tuple(sorted(paths))


class _Store:
    """Typed reads from a header's data store, every one bounds-checked."""

    def __init__(
        self, blob: bytes, start: int, length: int, entries: dict[int, tuple[int, int, int]]
    ) -> None:
        self._blob = blob
        self._start = start
        self._end = start + length
        self._entries = entries

    def _cstrings(self, offset: int, count: int) -> list[str]:
        blob, end = self._blob, self._end
        out: list[str] = []
        pos = self._start + offset
        for _ in range(count):
            stop = blob.find(b"\0", pos, end)
            if stop < 0:
                raise RpmHeaderError("a string runs past the end of the data store")
            out.append(blob[pos:stop].decode("utf-8", "surrogateescape"))
            pos = stop + 1
        return out

    def string(self, tag: int) -> str | None:
        entry = self._entries.get(tag)
        if entry is None:
            return None
        kind, offset, count = entry
        if kind not in (TYPE_STRING, TYPE_I18NSTRING, TYPE_STRING_ARRAY) or count < 1:
            raise RpmHeaderError(f"tag {tag}: type {kind} is not a string")
        return self._cstrings(offset, 1)[0]

    def strings(self, tag: int) -> list[str] | None:
        entry = self._entries.get(tag)
        if entry is None:
            return None
        kind, offset, count = entry
        if kind not in (TYPE_STRING_ARRAY, TYPE_I18NSTRING):
            raise RpmHeaderError(f"tag {tag}: type {kind} is not a string array")
        return self._cstrings(offset, count)

    def int32s(self, tag: int) -> list[int] | None:
        entry = self._entries.get(tag)
        if entry is None:
            return None
        kind, offset, count = entry
        if kind != TYPE_INT32:
            raise RpmHeaderError(f"tag {tag}: type {kind} is not int32")
        start = self._start + offset
        if start + 4 * count > self._end:
            raise RpmHeaderError(f"tag {tag}: {count} integers run past the data store")
        return list(struct.unpack_from(f">{count}i", self._blob, start))
