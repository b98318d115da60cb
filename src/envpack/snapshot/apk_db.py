"""Parse Alpine's database of installed packages (``/lib/apk/db/installed``) as text.

The file is a sequence of blank-line separated records of ``X:value`` lines, one letter
per field: ``P`` package name, ``V`` version, ``A`` architecture, ``o`` origin (the source
package), and many more (``F``/``R`` file lists, ``Z`` checksums) that this parser skips.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["ApkPackage", "installed_packages", "parse_records"]

_FIELDS = frozenset("PVAo")


@dataclass(frozen=True)
class ApkPackage:
    """One installed apk package."""

    name: str
    version: str
    architecture: str
    origin: str
    """The source package (``openssl`` for ``libssl3``); the name itself when absent."""


def parse_records(text: str) -> Iterator[dict[str, str]]:
    """The wanted one-letter fields of each record."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                yield fields
                fields = {}
            continue
        if len(line) >= 2 and line[1] == ":" and line[0] in _FIELDS:
            # The first occurrence wins: a record holds each of these fields once.
            fields.setdefault(line[0], line[2:].strip())
    if fields:
        yield fields


def installed_files(text: str) -> Iterator[tuple[str, str, str]]:
    """``(package, version, absolute path)`` of every file the database lists.

    Each record names its folders (``F:``) and, after each one, that folder's files
    (``R:``); ``P:`` and ``V:`` come before the file lists in every record apk writes.
    """
    name = version = folder = ""
    for line in text.splitlines():
        if not line.strip():
            name = version = folder = ""
        elif line.startswith("P:"):
            name = line[2:].strip()
        elif line.startswith("V:"):
            version = line[2:].strip()
        elif line.startswith("F:"):
            folder = line[2:].strip()
        elif line.startswith("R:") and name:
            yield name, version, "/" + posixpath.join(folder, line[2:].strip()).lstrip("/")


def installed_packages(text: str) -> list[ApkPackage]:
    """Every record with a package name, sorted by name and architecture."""
    packages = [
        ApkPackage(
            name=fields["P"],
            version=fields.get("V", ""),
            architecture=fields.get("A", ""),
            origin=fields.get("o") or fields["P"],
        )
        for fields in parse_records(text)
        if fields.get("P")
    ]
    packages.sort(key=lambda p: (p.name, p.architecture))
    return packages
