"""RECORD files of installed distributions: parse them, sum them up, check files against them.

A RECORD (PEP 376 / PEP 627) is a CSV file with one row per installed file:
``path,algorithm=urlsafe-b64-digest,size``. Hash and size may be empty (RECORD itself,
``.pyc`` files written after install). Paths are relative to the folder that holds the
``.dist-info`` folder, may climb out of it with ``../`` (scripts in ``bin/``) or, rarely,
be absolute.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import os
import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from envpack.snapshot.hashcache import HASH_LIMIT
from envpack.snapshot.source import Source, SourceReadError

__all__ = [
    "RecordEntry",
    "VerifyResult",
    "entries_from_rows",
    "file_digest",
    "parse_record",
    "record_rows",
    "record_size",
    "resolve_record_path",
    "rows_size",
    "top_level_from_paths",
    "verify_record",
]

_CHUNK = 1024 * 1024
_SIZE_DIGITS = 20  # 2**64 has 20 digits
# Parts of a compiled extension's file name after the module name: "_speedups.cpython-311-…".
_MODULE_SUFFIXES = (".py", ".so", ".pyd", ".pyc")


class RecordEntry(NamedTuple):
    """One row of a RECORD file (a tuple: numpy's RECORD alone has 1,000+ rows)."""

    path: str
    algorithm: str | None = None
    """``sha256`` …, or ``None`` when the row carries no hash."""
    digest: str | None = None
    """The urlsafe-base64 digest without padding, as written in RECORD."""
    size: int | None = None


@dataclass
class VerifyResult:
    """What ``--verify`` found for one distribution."""

    checked: int = 0
    modified: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "checked": self.checked,
            "modified": sorted(self.modified),
            "missing": sorted(self.missing),
        }


def record_rows(text: str) -> list[list[str]]:
    """The CSV rows of a RECORD file that name a path (blank rows dropped).

    A row the csv module refuses (a field past its 128 KiB limit: no installer writes
    one) is dropped and the next row read, rather than losing the whole file.
    """
    rows: list[list[str]] = []
    reader = csv.reader(text.splitlines())
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return rows
        except csv.Error:
            continue
        if row and row[0]:
            rows.append(row)


def _size(field: str) -> int | None:
    """A RECORD size: ASCII digits ("²".isdigit() is true but int() refuses it), and few
    enough of them for int() (Python refuses more than 4,300); negatives are not sizes."""
    text = field.strip()
    if text.isascii() and text.isdigit() and len(text) <= _SIZE_DIGITS:
        return int(text)
    return None


def rows_size(rows: list[list[str]]) -> int:
    """The sum of the sizes RECORD states (rows without a valid size count as 0).

    Kept apart from :func:`parse_record` so that a capture without ``--verify`` never
    builds one object per installed file.
    """
    total = 0
    for row in rows:
        if len(row) > 2:
            total += _size(row[2]) or 0
    return total


def entries_from_rows(rows: list[list[str]]) -> list[RecordEntry]:
    """RECORD rows as entries; a malformed hash or size is dropped, the path kept."""
    entries: list[RecordEntry] = []
    for row in rows:
        width = len(row)
        algorithm = digest = None
        if width > 1:
            name, sep, value = row[1].partition("=")
            name = name.strip()
            value = value.strip()
            if sep and name and value:
                algorithm, digest = name.lower(), value
        size = _size(row[2]) if width > 2 else None
        entries.append(RecordEntry(row[0], algorithm, digest, size))
    return entries


def parse_record(text: str) -> list[RecordEntry]:
    """The rows of a RECORD file. Blank rows are skipped; a bad size or hash is dropped.

    >>> parse_record("a/__init__.py,sha256=AAAA,12\\na-1.dist-info/RECORD,,\\n")[0].size
    12
    """
    return entries_from_rows(record_rows(text))


def record_size(entries: list[RecordEntry]) -> int:
    """The sum of the sizes RECORD states (rows without a size count as 0)."""
    return sum(entry.size for entry in entries if entry.size is not None)


def resolve_record_path(location: str, path: str) -> str:
    """The absolute path inside the source of a RECORD (or installed-files.txt) path.

    Relative paths are joined to ``location`` and normalised; ``..`` can climb out of the
    location (``../../../bin/flask``) but never above the source root, which
    :class:`~envpack.snapshot.source.Source` enforces when the path is opened.
    """
    if path.startswith("/"):
        return posixpath.normpath(path)
    joined = posixpath.normpath(posixpath.join(location, path))
    # normpath keeps a leading "//" (POSIX allows it a meaning); inside a source it has none.
    return "/" + joined.lstrip("/")


def top_level_from_paths(paths: list[str]) -> list[str]:
    """Importable top-level names among installed paths relative to the location.

    ``requests/api.py`` gives ``requests``, ``six.py`` gives ``six``, ``_cffi.cpython-311-
    x86_64-linux-gnu.so`` gives ``_cffi``; metadata folders, ``__pycache__``, ``.pth`` and
    data files, and paths outside the location (``../bin``) give nothing.
    """
    names: set[str] = set()
    for path in paths:
        if path.startswith(("/", "../")):
            continue
        head, sep, _ = path.partition("/")
        if sep:
            # A folder: a package, unless it is metadata ("x.dist-info", "x.data") or a cache.
            if "." not in head and head != "__pycache__" and head.isidentifier():
                names.add(head)
            continue
        if head.endswith(_MODULE_SUFFIXES):
            module = head.split(".", 1)[0]
            if module.isidentifier():
                names.add(module)
    return sorted(names)


def file_digest(fd: int, algorithm: str) -> tuple[str, int]:
    """The urlsafe-base64 digest (no padding) and size of an open file, read to the end."""
    hasher = hashlib.new(algorithm)
    size = 0
    while True:
        chunk = os.read(fd, _CHUNK)
        if not chunk:
            break
        size += len(chunk)
        hasher.update(chunk)
    return _urlsafe(hasher.digest()), size


Sha256Many = Callable[[list[str]], Mapping[str, "str | SourceReadError"]]
"""Hex sha256 of many files inside a source (the capture's hash cache)."""


def verify_record(
    source: Source,
    location: str,
    entries: list[RecordEntry],
    sha256_many: Sha256Many | None = None,
) -> VerifyResult:
    """Hash every file RECORD lists with a hash; list the modified and missing ones.

    Rows without a hash (RECORD itself, ``.pyc`` files) or with an algorithm this Python
    does not know are skipped: they are not counted in ``checked``. Paths are listed as
    written in RECORD. ``sha256_many`` (the hash cache) answers the sha256 rows, nearly all
    of them, so a second ``--verify`` rehashes only what changed; other algorithms, and
    files it cannot read, are read here.
    """
    result = VerifyResult()
    checked = [
        (entry, resolve_record_path(location, entry.path), entry.algorithm, entry.digest)
        for entry in entries
        if entry.algorithm is not None
        and entry.digest is not None
        and entry.algorithm in hashlib.algorithms_available
    ]
    result.checked = len(checked)
    known: Mapping[str, str | SourceReadError] = {}
    if sha256_many is not None:
        known = sha256_many([inner for _, inner, algorithm, _ in checked if algorithm == "sha256"])
    for entry, inner, algorithm, expected in checked:
        hexdigest = known.get(inner) if algorithm == "sha256" else None
        if isinstance(hexdigest, str):
            digest = _urlsafe(bytes.fromhex(hexdigest))
            state = "ok" if digest == expected.rstrip("=") else "modified"
        else:
            state = _check_file(source, inner, algorithm, expected, entry.size)
        if state == "missing":
            result.missing.append(entry.path)
        elif state == "modified":
            result.modified.append(entry.path)
    return result


def _check_file(source: Source, inner: str, algorithm: str, digest: str, size: int | None) -> str:
    """``ok``, ``modified`` or ``missing``, reading the file here."""
    try:
        fd, st = source.open_fd(inner)
    except SourceReadError:
        # A folder, FIFO or unreadable file where a file was installed counts as
        # modified; a path that is not there at all is missing.
        try:
            gone = source.lstat(inner) is None
        except SourceReadError:
            gone = False
        return "missing" if gone else "modified"
    try:
        if size is not None and st.st_size != size:
            return "modified"
        if st.st_size > HASH_LIMIT:  # no wheel installs such a file; hashing it would take minutes
            return "modified"
        found, _ = file_digest(fd, algorithm)
    except OSError:
        return "modified"
    finally:
        os.close(fd)
    return "ok" if found == digest.rstrip("=") else "modified"


def _urlsafe(raw: bytes) -> str:
    """RECORD's digest spelling: urlsafe base64 without padding."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
