"""The decompressed bytes of a zstd layer blob (``…layer.v1.tar+zstd``), read as a stream.

The same contract as the gzip reader of :mod:`envpack.oci.layertar`: ``read(count)``
returns at most ``count`` bytes (so no single step can blow up in memory), the compressed
bytes are hashed on the way for the blob's digest, and past ``limit`` decompressed bytes
the layer is refused as a bomb. Frames follow one another (``zstd`` concatenates them; the
skippable frames of ``zstd:chunked`` carry metadata and are passed over by the library).

A frame's window is memory the decoder must hold: it is capped at 128 MiB, the
``zstd`` tool's own default limit (``--long`` is needed to write past it), so every layer
``zstd -d`` decodes without flags is read, and a frame declaring a larger window is
refused instead of allocating it.

The library does not say when the input stops inside a frame; a cut blob is caught by its
digest, and where the image names none (a ``docker save`` tar) the decompressed tar is
checked against the config's diff ID instead.
"""

from __future__ import annotations

import hashlib
from typing import Any, BinaryIO

import zstandard

from envpack.oci.digest import Digest
from envpack.oci.model import InvalidImage

__all__ = ["MAX_WINDOW", "Unzstd"]

MAX_WINDOW = 1 << 27
_CHUNK = 1 << 20


class _Counted:
    """``size`` bytes of ``stream`` (from where it stands), hashed as they are read."""

    def __init__(self, stream: BinaryIO, size: int, hasher: Any, where: str) -> None:
        self._stream = stream
        self._left = size
        self._hasher = hasher
        self._where = where

    def read(self, count: int = -1) -> bytes:
        want = self._left if count is None or count < 0 else min(count, self._left)
        if want <= 0:
            return b""
        chunk = self._stream.read(want)
        if not chunk:
            raise InvalidImage(f"{self._where}: truncated blob")
        self._left -= len(chunk)
        if self._hasher is not None:
            self._hasher.update(chunk)
        return chunk

    def rest(self) -> None:
        while self.read(_CHUNK):
            pass


class Unzstd:
    """The decompressed bytes of ``size`` bytes of ``stream``, ``limit`` at most."""

    def __init__(
        self,
        stream: BinaryIO,
        size: int,
        limit: int,
        where: str,
        hasher: Any,
        *,
        diff_id: Digest | None = None,
    ) -> None:
        """``hasher`` hashes the compressed bytes (``None``: no blob digest known);
        ``diff_id``, checked at :meth:`drain`, is that of the decompressed bytes."""
        self._raw = _Counted(stream, size, hasher, where)
        self._diff_id = diff_id
        self._tar_hasher = hashlib.sha256() if diff_id is not None else None
        self._limit = limit
        self._where = where
        decompressor = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW)
        self._reader = decompressor.stream_reader(
            self._raw,  # type: ignore[arg-type]  # any object with read() (the library's docs)
            read_size=_CHUNK,
            read_across_frames=True,
        )
        self.total = 0

    def read(self, count: int = -1) -> bytes:
        want = _CHUNK if count is None or count < 0 else count
        try:
            out = self._reader.read(want)
        except zstandard.ZstdError as err:
            raise InvalidImage(f"{self._where}: not a valid zstd stream ({err})") from err
        self.total += len(out)
        if self._tar_hasher is not None:
            self._tar_hasher.update(out)
        if self.total > self._limit:
            raise InvalidImage(
                f"{self._where}: decompresses to more than {self._limit} bytes; refused as a "
                "decompression bomb"
            )
        return out

    def drain(self) -> None:
        """Read what is left (later frames, padding) so the whole blob is hashed."""
        while self.read(_CHUNK):
            pass
        self._raw.rest()
        tar, expected = self._tar_hasher, self._diff_id
        if tar is not None and expected is not None and tar.hexdigest() != expected.hex:
            raise InvalidImage(f"{self._where}: the layer does not match its diff ID")
