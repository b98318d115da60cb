"""Where envpack pushed each blob before: the source repository of a cross-repository mount.

After a push, every blob digest is recorded under the registry host with the repository
that now holds it (``<cache>/envpack/registry/<host hash>.json``, newest 20,000 digests).
Pushing the same layers to another repository of that host then asks the registry to
mount them (``POST …/uploads/?mount=<digest>&from=<repo>``) instead of sending them. A
record that is wrong (the repository was deleted) only costs the upload it would have
saved: the registry answers 202 and the blob is uploaded.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["BlobSources", "default_folder"]

_KEEP = 20_000


def default_folder() -> Path:
    """``$XDG_CACHE_HOME/envpack/registry`` (platformdirs' user cache folder)."""
    from envpack.snapshot.hashcache import default_cache_dir

    return Path(default_cache_dir()) / "registry"


class BlobSources:
    """The blob → repository record of one registry host."""

    def __init__(self, host: str, folder: Path | None) -> None:
        self._file = (
            None
            if folder is None
            else folder / (hashlib.sha256(host.encode()).hexdigest()[:24] + ".json")
        )

    def load(self) -> dict[str, str]:
        if self._file is None:
            return {}
        try:
            with self._file.open("rb") as stream:
                data = json.loads(stream.read(64 << 20))
        except (OSError, ValueError):
            return {}  # absent or damaged: a cache, never an error
        if not isinstance(data, dict):
            return {}
        return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}

    def record(self, digests: Iterable[str], repository: str) -> None:
        """Remember that ``repository`` holds ``digests`` (best effort, atomic replace)."""
        if self._file is None:
            return
        from filelock import FileLock, Timeout

        try:
            self._file.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(str(self._file) + ".lock", timeout=10):
                known = self.load()
                for digest in digests:
                    known.pop(digest, None)
                    known[digest] = repository  # newest last
                kept: Mapping[str, str] = dict(list(known.items())[-_KEEP:])
                temp = self._file.with_name(f".{self._file.name}.{os.getpid()}.tmp")
                temp.write_text(json.dumps(kept), encoding="utf-8")
                os.replace(temp, self._file)
        except (OSError, Timeout):
            return
