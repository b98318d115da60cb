"""A file's bytes as a stretch of a host descriptor, read with ``pread`` only.

A live or ``--root`` file is a descriptor of its own (the whole file, to its end). An image
file is a stretch of a layer's data file: ``size`` bytes from ``base`` on, in a descriptor
the image source shares between readers. Readers that only need some bytes (ELF headers)
or read every byte once (hashing) take this instead of :meth:`Source.open_fd`, so an image
file is read where it lies instead of being copied out first.
"""

from __future__ import annotations

import os
from types import TracebackType

__all__ = ["FileBytes"]


class FileBytes:
    """``size`` bytes of descriptor ``fd`` from ``base`` on (``size=None``: to its end).

    ``owned``: :meth:`close` closes ``fd`` (it is this file's own); a shared descriptor
    (an image layer's) is left open for the next reader.
    """

    __slots__ = ("base", "fd", "owned", "size")

    def __init__(self, fd: int, base: int = 0, size: int | None = None, *, owned: bool = True):
        self.fd = fd
        self.base = base
        self.size = size
        self.owned = owned

    def length(self) -> int:
        """How many bytes there are (for a file of its own: as it is now)."""
        return self.size if self.size is not None else os.fstat(self.fd).st_size

    def pread(self, count: int, offset: int) -> bytes:
        """Up to ``count`` bytes from ``offset`` (fewer at the end, none past it)."""
        if self.size is not None:
            count = max(0, min(count, self.size - offset))
            if count == 0:
                return b""
        return os.pread(self.fd, count, self.base + offset)

    def readinto(self, buffer: memoryview, offset: int) -> int:
        """Fill ``buffer`` from ``offset`` (at most up to the end); how many bytes came."""
        if self.size is not None:
            left = self.size - offset
            if left <= 0:
                return 0
            if len(buffer) > left:
                buffer = buffer[:left]
        return os.preadv(self.fd, [buffer], self.base + offset)

    def fstat(self) -> os.stat_result | None:
        """The descriptor's ``fstat`` when it is this file's own; ``None`` for a stretch."""
        return os.fstat(self.fd) if self.size is None else None

    def close(self) -> None:
        if self.owned and self.fd >= 0:
            os.close(self.fd)
        self.fd = -1

    def __enter__(self) -> FileBytes:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
