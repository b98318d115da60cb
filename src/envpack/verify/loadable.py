"""An image a Docker Engine does not hold, as an archive it can load: for running the probe.

Docker 20.10 loads only ``docker save`` archives (``manifest.json``, a config, layer tars),
not OCI layouts. Any image envpack can read (:mod:`envpack.oci.reader`) is written so:
the config, and each layer blob as it lies (gzip or plain tar: the engine reads both),
copied from where the reader found it — a layout's blob file or a range of an archive.
No tag: loading moves no name the user has, and the image is removed after the probe.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from envpack.oci.tarlayer import TarEntry, write_tar

__all__ = ["LoadArchive", "Range", "write_load_archive"]


@dataclass(frozen=True)
class Range:
    """``size`` bytes of the file ``path`` from ``offset`` on (one layer blob)."""

    path: Path
    offset: int
    size: int


@dataclass(frozen=True)
class LoadArchive:
    """An archive for ``docker load`` and the ID the engine gives the image it holds."""

    path: Path
    image_id: str


class _RangeReader(io.RawIOBase):
    """Reads exactly one :class:`Range`, never past it."""

    def __init__(self, blob: Range) -> None:
        self._file = blob.path.open("rb")
        self._file.seek(blob.offset)
        self._left = blob.size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)[: self._left]
        if not len(view):
            return 0
        count = self._file.readinto(view)
        self._left -= count or 0
        return count or 0

    def close(self) -> None:
        self._file.close()
        super().close()


def _opener(blob: Range) -> Callable[[], BinaryIO]:
    return lambda: io.BufferedReader(_RangeReader(blob))


def _bytes(data: bytes) -> Callable[[], BinaryIO]:
    return lambda: io.BytesIO(data)


def write_load_archive(config: Mapping[str, Any], layers: list[Range], out: Path) -> LoadArchive:
    """Write the archive at ``out`` (a new file); the image ID it loads as.

    The config is written again from its parsed form, so the ID is that of these bytes
    (the layers' diff IDs, which the engine checks, are unchanged).
    """
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    names = [f"layers/{number}.tar" for number in range(1, len(layers) + 1)]
    manifest = json.dumps([{"Config": "config.json", "RepoTags": [], "Layers": names}]).encode()
    entries = [
        TarEntry("/config.json", "file", 0o644, size=len(config_bytes), open=_bytes(config_bytes)),
        TarEntry("/manifest.json", "file", 0o644, size=len(manifest), open=_bytes(manifest)),
        TarEntry("/layers", "dir", 0o755),
    ]
    entries.extend(
        TarEntry(f"/{name}", "file", 0o644, size=blob.size, open=_opener(blob))
        for name, blob in zip(names, layers)
    )
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    with os.fdopen(os.open(out, flags, 0o600), "wb") as stream:
        write_tar(entries, stream)
    return LoadArchive(out, f"sha256:{hashlib.sha256(config_bytes).hexdigest()}")
