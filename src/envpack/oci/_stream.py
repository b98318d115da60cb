"""The one structural type the stream writers share: something with ``write(bytes)``."""

from __future__ import annotations

from typing import Protocol

__all__ = ["Writable"]


class Writable(Protocol):
    """A binary sink: a file, a hasher, a compressor stage (``BinaryIO`` fits)."""

    def write(self, data: bytes, /) -> object: ...
