"""Layer blobs: a tar stream hashed (diff_id), gzip-compressed, hashed again (digest), stored.

One pass, memory flat: the tar writer feeds the uncompressed hash and a raw deflate stream
wrapped in a gzip header written by hand (mtime 0, no file name, OS "unknown"), whose
output goes through the compressed hash into a temporary file beside the blobs, renamed to
``<hex>`` once the digest is known. Groups compress in parallel threads, the largest
first: ISA-L, zlib and hashlib release the GIL on large buffers, so each core gets a layer.

Compressed bytes depend on the compressor (ISA-L by default, zlib where isal is not
installed; zlib-ng would differ again): diff_ids and the config digest are the same
everywhere, blob digests only with the same compressor, which is why
:attr:`Layer.compressor` names it and the image records it in an annotation. ISA-L picks
a deflate kernel for the CPU at run time (SSE, AVX2, AVX-512); two builds on one machine
give the same bytes (tested), but only one kind of CPU was at hand to compare.
"""

from __future__ import annotations

import contextlib
import os
import struct
import tempfile
import threading
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from envpack.errors import PackError
from envpack.oci import media
from envpack.oci.digest import Digest, DigestingWriter
from envpack.oci.tarlayer import TarEntry, write_tar

__all__ = [
    "DEFAULT_COMPRESSOR",
    "DEFAULT_LEVEL",
    "Compressor",
    "Layer",
    "build_layer",
    "build_layers",
    "compressor_name",
]

Compressor = Literal["isal", "zlib"]

_isal_zlib: ModuleType | None
try:  # ISA-L (python-isal): deflate several times faster than zlib at a like size
    from isal import isal_zlib as _isal_module

    _isal_zlib = _isal_module
except ImportError:  # pragma: no cover - a platform without isal wheels
    _isal_zlib = None

# Chosen on measurements (bench/bench_layers.py and bench/bench_build.py: CPU seconds, which
# a loaded machine distorts least) of the Flask image's 215 MB of tar in one stream, against
# `tar -czf` (gzip -6, 71.3 MB, 12 s of CPU):
#   zlib 1.2.13  level 1: 4.1 s, 1.11x    level 3: 5.2 s, 1.07x    level 6: 12.0 s, 1.00x
#   ISA-L 2.31   level 1: 0.9 s, 1.15x    level 2: 0.8 s, 1.13x    level 3: 1.8 s, 1.10x
# ISA-L level 3 keeps the size well inside issue 8's 1.15x budget for a third of zlib
# level 3's CPU; zlib level 3 stays the choice where isal is not installed.
DEFAULT_COMPRESSOR: Compressor = "isal" if _isal_zlib is not None else "zlib"
DEFAULT_LEVEL = 3
_LEVELS: dict[str, range] = {"isal": range(4), "zlib": range(10)}
_GZIP_OS_UNKNOWN = 255


@dataclass(frozen=True)
class Layer:
    """A stored layer blob and what an image needs to know about it."""

    digest: Digest
    """Of the compressed blob."""
    diff_id: Digest
    """Of the uncompressed tar."""
    size: int
    """Compressed size in bytes."""
    uncompressed_size: int
    media_type: str
    path: Path
    """The blob file on disk (``blob_dir/<hex>``)."""
    compressor: str = ""
    """``zlib 1.2.13 level 1``: blob bytes are reproducible with this compressor."""


def compressor_name(level: int, compressor: Compressor = DEFAULT_COMPRESSOR) -> str:
    """What blob bytes depend on: ``zlib 1.2.13 level 3``, ``isal 1.9.1 level 3``."""
    if compressor == "isal":
        from isal import __version__ as isal_version

        return f"isal {isal_version} level {level}"
    return f"zlib {zlib.ZLIB_RUNTIME_VERSION} level {level}"


def _check_compression(compressor: Compressor, level: int) -> None:
    if compressor not in _LEVELS:
        raise PackError(f"unknown compressor {compressor!r}")
    if compressor == "isal" and _isal_zlib is None:
        raise PackError("the isal compressor is not installed (pip install isal)")
    if level not in _LEVELS[compressor]:
        top = _LEVELS[compressor][-1]
        raise PackError(f"{compressor} level {level} is not between 0 and {top}")


def build_layer(
    entries: Sequence[TarEntry],
    blob_dir: Path,
    *,
    level: int = DEFAULT_LEVEL,
    compressor: Compressor = DEFAULT_COMPRESSOR,
    progress: Callable[[int], None] | None = None,
    _stop: threading.Event | None = None,
) -> Layer:
    """Write one layer blob into ``blob_dir`` (which must exist) and describe it.

    ``progress`` is called with the number of uncompressed tar bytes just written.
    Raises PackError (one line) when an entry is refused or the blob cannot be written;
    no temporary file is left behind.
    """
    _check_compression(compressor, level)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=".layer-", suffix=".tmp", dir=blob_dir)
    except OSError as err:
        raise PackError(f"cannot write a layer in {blob_dir}: {err.strerror or err}") from err
    try:
        with os.fdopen(fd, "wb") as blob:
            stored = DigestingWriter(blob)
            sink = _GzipSink(stored, compressor, level, progress, _stop)
            write_tar(entries, sink)
            sink.close()
            blob.flush()
        os.chmod(tmp_name, 0o644)
        target = blob_dir / stored.digest.hex
        os.replace(tmp_name, target)
    except OSError as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise PackError(f"cannot write a layer in {blob_dir}: {err.strerror or err}") from err
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    return Layer(
        digest=stored.digest,
        diff_id=sink.diff_id,
        size=stored.size,
        uncompressed_size=sink.size,
        media_type=media.OCI_LAYER_TAR_GZIP,
        path=target,
        compressor=compressor_name(level, compressor),
    )


def build_layers(
    groups: Sequence[Sequence[TarEntry]],
    blob_dir: Path,
    *,
    level: int = DEFAULT_LEVEL,
    compressor: Compressor = DEFAULT_COMPRESSOR,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[Layer]:
    """Build one layer per group, in parallel threads; the result keeps the groups' order.

    ``workers`` defaults to the number of CPUs. The largest groups start first so the
    last thread to finish is not left with the biggest one. ``progress`` calls are
    serialised (never two at once). On the first failure the other layers stop at their
    next write, their temporary files are removed, and that error is raised.
    """
    _check_compression(compressor, level)
    count = workers if workers is not None else (os.cpu_count() or 1)
    count = max(1, min(count, len(groups)))
    lock = threading.Lock()
    stop = threading.Event()

    def report(done: int) -> None:
        if progress is not None:
            with lock:
                progress(done)

    if count == 1:
        return [
            build_layer(group, blob_dir, level=level, compressor=compressor, progress=report)
            for group in groups
        ]
    order = sorted(range(len(groups)), key=lambda i: -sum(entry.size for entry in groups[i]))
    with ThreadPoolExecutor(max_workers=count, thread_name_prefix="envpack-layer") as pool:
        futures = {
            index: pool.submit(
                build_layer,
                groups[index],
                blob_dir,
                level=level,
                compressor=compressor,
                progress=report,
                _stop=stop,
            )
            for index in order
        }
        try:
            for future in as_completed(futures.values()):
                if future.exception() is not None:
                    break
        finally:  # a failure or Ctrl-C: the others stop at their next write
            if not all(f.done() for f in futures.values()):
                stop.set()
                pool.shutdown(wait=True, cancel_futures=True)
    for index in range(len(groups)):
        future = futures[index]
        if not future.cancelled():
            error = future.exception()
            if error is not None and not isinstance(error, _Stopped):
                raise error
    return [futures[index].result() for index in range(len(groups))]


class _Stopped(PackError):
    """Another layer failed: this one gave up."""


class _GzipSink:
    """tar bytes in; their sha256 and size kept; a gzip member out to ``target``."""

    def __init__(
        self,
        target: DigestingWriter,
        compressor: Compressor,
        level: int,
        progress: Callable[[int], None] | None,
        stop: threading.Event | None,
    ) -> None:
        self._target = target
        self._diff = DigestingWriter()
        self._crc = 0
        # A raw deflate stream (negative wbits): the gzip header and trailer are ours.
        module: Any = _isal_zlib if compressor == "isal" else zlib
        self._deflate = module.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
        self._progress = progress
        self._stop = stop
        xfl = 0 if compressor != "zlib" else 2 if level == 9 else 4 if level == 1 else 0
        # magic, deflate, no flags (no name, no comment), mtime 0, extra flags, OS
        target.write(struct.pack("<BBBBIBB", 0x1F, 0x8B, 8, 0, 0, xfl, _GZIP_OS_UNKNOWN))

    def write(self, data: bytes, /) -> int:
        if self._stop is not None and self._stop.is_set():
            raise _Stopped("stopped: another layer failed")
        self._diff.write(data)
        self._crc = zlib.crc32(data, self._crc)
        out = self._deflate.compress(data)
        if out:
            self._target.write(out)
        if self._progress is not None:
            self._progress(len(data))
        return len(data)

    def close(self) -> None:
        self._target.write(self._deflate.flush())
        self._target.write(struct.pack("<II", self._crc, self._diff.size & 0xFFFFFFFF))

    @property
    def diff_id(self) -> Digest:
        return self._diff.digest

    @property
    def size(self) -> int:
        return self._diff.size
