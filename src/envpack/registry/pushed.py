"""Where envpack pushed each blob before: the source repository of a cross-repository mount.

After a push, every blob digest is recorded under the registry host with the repository
that now holds it (``<cache>/envpack/registry/<host hash>.json``, newest 20,000 digests).
Pushing the same layers to another repository of that host then asks the registry to
mount them (``POST …/uploads/?mount=<digest>&from=<repo>``) instead of sending them. A
record that is wrong (the repository was deleted) only costs the upload it would have
saved: the registry answers 202 and the blob is uploaded.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

__all__ = ["BlobSources", "default_folder"]

_KEEP = 20_000


def default_folder() -> Path:
    """``<cache>/registry``: ``$ENVPACK_CACHE_DIR``, else platformdirs' user cache folder."""
    from envpack.cachedir import default_cache_dir

    return default_cache_dir() / "registry"


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

    def record(
        self, digests: Iterable[str], repository: str, known: Mapping[str, str] | None = None
    ) -> None:
        """Remember that ``repository`` holds ``digests`` (best effort, atomic replace).

        ``known``: the record as :meth:`load` read it before the push; when it already says
        so for every digest (a second push), the file is left alone, lock and all.
        """
        if self._file is None:
            return
        wanted = list(digests)
        if known is not None and all(known.get(d) == repository for d in wanted):
            return
        try:
            self._file.parent.mkdir(parents=True, exist_ok=True)
            with _locked(Path(str(self._file) + ".lock")):
                current = self.load()
                for digest in wanted:
                    current.pop(digest, None)
                    current[digest] = repository  # newest last
                kept: Mapping[str, str] = dict(list(current.items())[-_KEEP:])
                temp = self._file.with_name(f".{self._file.name}.{os.getpid()}.tmp")
                temp.write_text(json.dumps(kept), encoding="utf-8")
                os.replace(temp, self._file)
        except (OSError, TimeoutError):
            return


@contextlib.contextmanager
def _locked(path: Path, timeout: float = 10.0) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (two pushes at once merge their records).

    ``fcntl`` rather than the ``filelock`` package: this is all it would do here on Linux,
    and importing it costs ~0.1 s of CPU in every ``envpack push``.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(path) from None
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)  # releases the lock
