"""One layer's tar read in place: each member's header and where its bytes lie.

An uncompressed layer (``docker save``'s ``layer.tar``, an OCI ``tar`` layer) is read where
it is: only the 512-byte headers are read, and a member's content is an offset into the
file. A gzip layer cannot be read at an offset, so it is inflated once, streaming, into one
file in the caller's work folder (its bytes as one tar: no file of the image is ever
created on disk by name) and read in place from there. Memory stays flat: members are
yielded one by one and inflation is bounded per step, so a gzip bomb costs disk up to
``limit`` and then stops with an error, never memory.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from envpack.oci.model import InvalidImage
from envpack.oci.reader import BlobRange, LayerBlob, forget_members, open_regular

__all__ = ["DEFAULT_INFLATE_LIMIT", "Member", "layer_data", "read_members"]

DEFAULT_INFLATE_LIMIT = 64 << 30
"""The most bytes one gzip layer may inflate to before it is refused as a bomb."""
_CHUNK = 1 << 20
_GZIP = b"\x1f\x8b"
_ZSTD = b"\x28\xb5\x2f\xfd"


@dataclass(slots=True)
class Member:
    """One tar header, as read (the name is not yet normalised: see envpack.oci.view)."""

    name: str
    kind: str
    """``file``, ``dir``, ``symlink``, ``hardlink``, ``char-device``, ``block-device``,
    ``fifo`` or ``unknown``."""
    mode: int
    uid: int
    gid: int
    size: int
    mtime: int
    linkname: str
    offset: int
    """Where the content starts in the layer's data file."""
    major: int
    minor: int
    sparse: bool


def layer_data(
    layer: LayerBlob, workdir: Path, number: int, *, limit: int = DEFAULT_INFLATE_LIMIT
) -> BlobRange:
    """The uncompressed tar of ``layer``: the blob itself, or its gzip inflated into
    ``workdir`` (the blob's digest checked on the way when the image names it)."""
    head = layer.blob.head(4)
    if head[:2] == _GZIP:
        return _inflate(layer, workdir / f"layer-{number}.tar", limit)
    if head == _ZSTD:
        raise InvalidImage(
            f"{layer.blob.path}: layer {number} is zstd-compressed; envpack reads tar and "
            "gzip layers only"
        )
    return layer.blob


def _inflate(layer: LayerBlob, target: Path, limit: int) -> BlobRange:
    blob = layer.blob
    hasher = hashlib.sha256() if layer.digest is not None else None
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    written = 0
    where = f"{blob.path} layer {layer.digest or ''}".rstrip()
    # O_EXCL|O_NOFOLLOW: the name is ours alone; nothing there is followed or reused.
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with open_regular(blob.path) as source, os.fdopen(fd, "wb", closefd=False) as out:
            source.seek(blob.offset)
            remaining = blob.size
            while remaining:
                chunk = source.read(min(_CHUNK, remaining))
                if not chunk:
                    raise InvalidImage(f"{where}: truncated blob")
                remaining -= len(chunk)
                if hasher is not None:
                    hasher.update(chunk)
                data = chunk
                while True:
                    if inflate.eof and data:  # another gzip member follows (concatenated)
                        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    # max_length bounds memory per step: a bomb never lands in memory.
                    out_bytes = inflate.decompress(data, _CHUNK)
                    written += len(out_bytes)
                    if written > limit:
                        raise InvalidImage(
                            f"{where}: inflates to more than {limit} bytes; refused as a "
                            "decompression bomb"
                        )
                    out.write(out_bytes)
                    data = inflate.unused_data if inflate.eof else inflate.unconsumed_tail
                    if not data and (inflate.eof or not out_bytes):
                        break
            if not inflate.eof:
                raise InvalidImage(f"{where}: truncated gzip stream")
    except zlib.error as err:
        raise InvalidImage(f"{where}: not a valid gzip stream ({err})") from err
    except OSError as err:
        raise InvalidImage(f"{where}: cannot inflate into {target.parent}: {err.strerror}") from err
    finally:
        os.close(fd)
    if hasher is not None and layer.digest is not None and hasher.hexdigest() != layer.digest.hex:
        raise InvalidImage(f"{where}: the blob does not match its digest")
    return BlobRange(target, 0, written)


class _Window:
    """``size`` bytes of an open file from ``base`` on, as a file tarfile can seek in."""

    def __init__(self, stream: object, base: int, size: int) -> None:
        self._stream = stream
        self._base = base
        self._size = size
        self._pos = 0
        self.name = ""

    def read(self, count: int = -1) -> bytes:
        left = self._size - self._pos
        if count < 0 or count > left:
            count = left
        if count <= 0:
            return b""
        self._stream.seek(self._base + self._pos)  # type: ignore[attr-defined]
        data: bytes = self._stream.read(count)  # type: ignore[attr-defined]
        self._pos += len(data)
        return data

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence == 1:
            pos += self._pos
        elif whence == 2:
            pos += self._size
        self._pos = max(pos, 0)
        return self._pos

    def tell(self) -> int:
        return self._pos


def _kind(info: tarfile.TarInfo) -> str:
    if info.isreg():
        return "file"
    if info.isdir():
        return "dir"
    if info.issym():
        return "symlink"
    if info.islnk():
        return "hardlink"
    if info.ischr():
        return "char-device"
    if info.isblk():
        return "block-device"
    if info.isfifo():
        return "fifo"
    return "unknown"


def read_members(data: BlobRange, where: str) -> Iterator[Member]:
    """The members of the uncompressed tar ``data``, in archive order, headers only.

    A member whose declared size runs past the end of the layer, or a header that is not a
    tar header, stops the read with :class:`InvalidImage`: what follows it cannot be
    trusted, and a capture of half a layer would be a wrong answer.
    """
    with open_regular(data.path) as stream:
        window = _Window(stream, data.offset, data.size)
        try:
            # Closed in the finally below; a with-block cannot hold the except branch.
            tar = tarfile.open(fileobj=window, mode="r:")  # type: ignore[call-overload]  # noqa: SIM115
        except tarfile.ReadError as err:
            if data.size == 0 or window.read(1024).strip(b"\0") == b"":
                return  # an empty layer: zero bytes or only the end-of-archive blocks
            raise InvalidImage(f"{where}: not a tar ({err})") from err
        try:
            while True:
                try:
                    info = tar.next()
                except tarfile.TarError as err:
                    raise InvalidImage(f"{where}: unreadable tar header ({err})") from err
                if info is None:
                    return
                forget_members(tar)
                kind = _kind(info)
                size = info.size if kind == "file" else 0
                if kind == "file" and not info.sparse and info.offset_data + size > data.size:
                    raise InvalidImage(
                        f"{where}: entry {info.name!r} declares {size} bytes, past the end "
                        f"of the layer ({data.size} bytes); layer refused"
                    )
                yield Member(
                    name=info.name,
                    kind=kind,
                    mode=info.mode,
                    uid=info.uid,
                    gid=info.gid,
                    size=size,
                    mtime=int(info.mtime),
                    linkname=info.linkname,
                    offset=data.offset + info.offset_data,
                    major=info.devmajor,
                    minor=info.devminor,
                    sparse=info.sparse is not None,
                )
        finally:
            tar.close()
