"""Refuse to pack a file that changed since the capture.

Every packed file the manifest records a size or a sha256 for — libraries, binaries,
config files — is checked against the source, and every file of a packed Python
distribution is checked against its RECORD (the manifest keeps per-distribution totals,
RECORD the per-file hashes the capture relied on). Hashes come from the hash cache, so an
unchanged file is not read again.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from envpack.manifest import Manifest
from envpack.pack.planmodel import Drifted
from envpack.snapshot.hashcache import HashCache
from envpack.snapshot.record import (
    entries_from_rows,
    record_rows,
    resolve_record_path,
    verify_record,
)
from envpack.snapshot.source import Source, SourceReadError

__all__ = ["check_drift", "drift_message"]

_SHOWN = 10


Recorded = tuple[int | None, str | None]
"""(size, sha256) as the manifest recorded them."""


def _expected(manifest: Manifest, shipped: Collection[str]) -> dict[str, Recorded]:
    """Shipped path → (size, sha256) as the manifest recorded them."""
    expected: dict[str, Recorded] = {}

    def note(component: Mapping[str, Any], *keys: str) -> None:
        size = component.get("size")
        digest = component.get("sha256")
        if not isinstance(size, int):
            size = None
        if not isinstance(digest, str):
            digest = None
        if size is None and digest is None:
            return
        for key in keys:
            path = component.get(key)
            if isinstance(path, str) and path in shipped:
                expected.setdefault(path, (size, digest))
                return

    for component in manifest.section("libraries").values():
        note(component, "real_path", "path")
    for component in manifest.section("binaries").values():
        note(component, "real_path", "path")
    for component in manifest.section("config_files").values():
        if component.get("type") == "file":
            note(component, "path")
    return expected


def check_drift(
    manifest: Manifest,
    source: Source,
    shipped: Collection[str],
    cache: HashCache,
    distributions: Iterable[tuple[str, str]] = (),
) -> list[Drifted]:
    """What changed: size or hash differs, or the file is gone.

    ``shipped``: the source paths packed (real paths). ``distributions``: (location,
    RECORD path) of each packed distribution.
    """
    drifted: list[Drifted] = []
    expected = _expected(manifest, shipped)
    hashes = cache.sha256_many(source, [p for p, (_, digest) in expected.items() if digest])
    for path in sorted(expected):
        size, digest = expected[path]
        try:
            st = source.stat(path)
        except SourceReadError:
            st = None
        if st is None:
            drifted.append(Drifted(path, "missing"))
            continue
        if size is not None and st.st_size != size:
            drifted.append(Drifted(path, f"size {size} -> {st.st_size}"))
            continue
        if digest is not None:
            found = hashes.get(path)
            if isinstance(found, SourceReadError):
                drifted.append(Drifted(path, f"unreadable ({found})"))
            elif found != digest:
                drifted.append(Drifted(path, "sha256 changed"))
    for location, record in distributions:
        try:
            text = source.read_text(record)
        except SourceReadError:
            drifted.append(Drifted(record, "missing"))
            continue
        entries = [
            entry
            for entry in entries_from_rows(record_rows(text))
            if _packed_or_gone(source, resolve_record_path(location, entry.path), shipped)
        ]
        result = verify_record(
            source, location, entries, lambda paths: cache.sha256_many(source, paths)
        )
        drifted.extend(
            Drifted(resolve_record_path(location, path), "sha256 differs from RECORD")
            for path in result.modified
        )
        drifted.extend(
            Drifted(resolve_record_path(location, path), "missing") for path in result.missing
        )
    drifted.sort(key=lambda d: d.path)
    return drifted


def _packed_or_gone(source: Source, path: str, shipped: Collection[str]) -> bool:
    """Whether a RECORD row is checked: a packed file, or one that is gone.

    ``.pyc`` rows are not: the image gets its own bytecode (and pip for Python 2 records
    hashes of pycs that the interpreter later rewrites). Files left out of the image
    (excluded headers, tests) are not packed, so their changes do not matter.
    """
    if path.endswith(".pyc"):
        return False
    if path in shipped:
        return True
    try:
        return source.lstat(path) is None
    except SourceReadError:
        return False


def drift_message(drifted: list[Drifted]) -> str:
    """One line: the first paths and how many there are."""
    shown = ", ".join(f"{d.path} ({d.reason})" for d in drifted[:_SHOWN])
    more = f" and {len(drifted) - _SHOWN} more" if len(drifted) > _SHOWN else ""
    return (
        f"{len(drifted)} packed files changed since the capture: {shown}{more}; "
        "capture again, or build with --allow-drift"
    )
