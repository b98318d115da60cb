"""Content digests (``sha256:<hex>``) as a validated value type, and streaming hashers."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from envpack.oci._stream import Writable

__all__ = ["Digest", "DigestingWriter", "InvalidDigest", "digest_file"]

_HEX64 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20


class InvalidDigest(ValueError):
    """Text that is not a ``sha256:`` followed by 64 lowercase hex digits."""


@dataclass(frozen=True, order=True)
class Digest:
    """A sha256 content digest; the only algorithm an image written by envpack uses."""

    algorithm: str
    hex: str

    def __post_init__(self) -> None:
        if self.algorithm != "sha256":
            raise InvalidDigest(f"unsupported digest algorithm {self.algorithm!r}")
        if not _HEX64.fullmatch(self.hex):
            raise InvalidDigest(f"not a sha256 hex digest: {self.hex!r}")

    @classmethod
    def parse(cls, text: str) -> Digest:
        """``Digest.parse("sha256:<64 hex>")``; anything else raises :class:`InvalidDigest`."""
        algorithm, sep, hex_part = text.partition(":")
        if not sep:
            raise InvalidDigest(f"not a digest (no algorithm): {text!r}")
        return cls(algorithm, hex_part)

    @classmethod
    def of_bytes(cls, data: bytes) -> Digest:
        return cls("sha256", hashlib.sha256(data).hexdigest())

    @classmethod
    def from_hash(cls, hasher: hashlib._Hash) -> Digest:
        """The digest of a finished ``hashlib.sha256()`` object."""
        return cls("sha256", hasher.hexdigest())

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


class DigestingWriter:
    """A write-only sink that hashes and counts what passes through to ``target``."""

    def __init__(self, target: Writable | None = None) -> None:
        self._target = target
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes, /) -> int:
        self._hash.update(data)
        self.size += len(data)
        if self._target is not None:
            self._target.write(data)
        return len(data)

    @property
    def digest(self) -> Digest:
        return Digest.from_hash(self._hash)


def digest_file(path: Path) -> tuple[Digest, int]:
    """The digest and size of a file, read in 1 MiB chunks (memory stays flat)."""
    hasher = hashlib.sha256()
    size = 0
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            hasher.update(chunk)
            size += len(chunk)
    return Digest.from_hash(hasher), size
