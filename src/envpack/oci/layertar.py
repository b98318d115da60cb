"""One layer's tar read in place: each member's header and where its bytes lie.

An uncompressed layer (``docker save``'s ``layer.tar``, an OCI ``tar`` layer) is read where
it is: only the 512-byte headers are read, and a member's content is an offset into the
layer file. A gzip or zstd layer cannot be read at an offset, so it is inflated once, streaming,
into envpack's work folder, and never under a name from the image: a member of
:data:`OWN_FILE` bytes or more gets a file of its own (``layer-3-17``: a probe opening it
reads that file, with no further copy), smaller ones are appended to one data file per
layer. Memory stays flat: inflation is bounded per step, so a gzip bomb costs disk up to
``limit`` and then stops with an error, never memory. gzip is inflated by ISA-L (in
about half of zlib's CPU; :func:`_gunzip`), zstd by the reference library
(:mod:`envpack.oci.unzstd`); :func:`read_layer` picks one by the blob's magic bytes.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any, BinaryIO, Protocol

from envpack.oci.model import InvalidImage
from envpack.oci.reader import BlobRange, LayerBlob, forget_members, open_regular
from envpack.oci.tarheaders import Header, simple_headers, whole_seconds

__all__ = ["DEFAULT_INFLATE_LIMIT", "OWN_FILE", "LayerRead", "Member", "read_layer", "read_members"]

DEFAULT_INFLATE_LIMIT = 64 << 30
"""The most bytes one gzip layer may inflate to before it is refused as a bomb."""
OWN_FILE = 256 * 1024
"""A gzip layer's member at least this big is inflated into a file of its own."""
_CHUNK = 1 << 20
_GZIP = b"\x1f\x8b"
# tarfile's header errors that typeshed leaves out: a zero block or nothing ends an archive.
_END_OF_ARCHIVE: tuple[type[Exception], ...] = (
    vars(tarfile)["EOFHeaderError"],
    vars(tarfile)["EmptyHeaderError"],
)
_TRUNCATED: type[Exception] = vars(tarfile)["TruncatedHeaderError"]
_ZSTD = b"\x28\xb5\x2f\xfd"

_gzip_module: ModuleType
try:  # ISA-L (python-isal): gzip inflated in about half of zlib's CPU (bench_image_capture)
    from isal import isal_zlib as _isal_module

    _gzip_module = _isal_module
except ImportError:  # pragma: no cover - a platform without isal wheels
    _gzip_module = zlib  # the same decompressobj interface
_GZIP_ERRORS: tuple[type[Exception], ...] = (zlib.error, _gzip_module.error)


def _gunzip() -> Any:
    """A gzip decompressor with zlib's interface (``decompress(data, max_length)``,
    ``unconsumed_tail``, ``unused_data``, ``eof``), which ISA-L's follows."""
    return _gzip_module.decompressobj(16 + zlib.MAX_WBITS)


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
    """Where the content starts in its data file."""
    major: int
    minor: int
    sparse: bool
    source: int = 0
    """Which of the layer's data files holds the content (:attr:`LayerRead.files`)."""


@dataclass(frozen=True)
class LayerRead:
    """A layer's members, in archive order, and the files their contents lie in."""

    members: list[Member]
    files: list[Path]
    whole: frozenset[int]
    """Indexes of :attr:`files` that each hold exactly one member's content."""


def read_layer(
    layer: LayerBlob, workdir: Path, number: int, *, limit: int = DEFAULT_INFLATE_LIMIT
) -> LayerRead:
    """Read one layer's members: in place when it is a tar, inflated into ``workdir`` when
    it is gzip or zstd (the blob's digest checked on the way when the image names it)."""
    where = f"layer {number} ({layer.digest or layer.blob.path})"
    head = layer.blob.head(4)
    if head[:2] == _GZIP:
        return _inflate(layer, workdir, number, limit, where, _Inflating)
    if head == _ZSTD:
        return _inflate(layer, workdir, number, limit, where, _unzstd(layer))
    return LayerRead(list(read_members(layer.blob, where)), [layer.blob.path], frozenset())


class _Inflating:
    """The gunzipped bytes of a blob range as a file to read from, ``limit`` at most.

    ``max_length`` bounds each step, so no single read can blow up in memory;
    concatenated gzip members are read one after the other (as gzip(1) does).
    """

    def __init__(self, stream: BinaryIO, size: int, limit: int, where: str, hasher: Any) -> None:
        self._stream = stream
        self._left = size
        self._limit = limit
        self._where = where
        self._hasher = hasher
        self._inflate = _gunzip()
        self._pending = b""
        self.total = 0

    def _more(self) -> bool:
        if not self._left:
            return False
        chunk = self._stream.read(min(_CHUNK, self._left))
        if not chunk:
            raise InvalidImage(f"{self._where}: truncated blob")
        self._left -= len(chunk)
        if self._hasher is not None:
            self._hasher.update(chunk)
        self._pending += chunk
        return True

    def read(self, count: int = -1) -> bytes:
        want = _CHUNK if count is None or count < 0 else count
        while True:
            if self._inflate.eof:
                rest = self._inflate.unused_data + self._pending
                while not rest.strip(b"\0"):  # nothing, or zero padding (tolerated)
                    if not self._left:
                        return b""  # the end
                    self._pending = b""
                    self._more()
                    rest = self._pending
                self._inflate = _gunzip()  # the next gzip member
                self._pending = rest
                continue
            if self._pending or self._more():
                out = self._decompress(self._pending, want)
                self._pending = self._inflate.unconsumed_tail
            else:
                # No input left. ISA-L may still hold bytes it inflated from what it took
                # in: a call with no input gives them; nothing means the stream was cut short.
                out = self._decompress(b"", want)
                if not out and not self._inflate.eof:
                    raise InvalidImage(f"{self._where}: truncated gzip stream")
            if out:
                self.total += len(out)
                if self.total > self._limit:
                    raise InvalidImage(
                        f"{self._where}: inflates to more than {self._limit} bytes; refused "
                        "as a decompression bomb"
                    )
                return out

    def _decompress(self, data: bytes, want: int) -> bytes:
        try:
            out: bytes = self._inflate.decompress(data, want)
        except _GZIP_ERRORS as err:
            raise InvalidImage(f"{self._where}: not a valid gzip stream ({err})") from err
        return out

    def drain(self) -> None:
        """Read what is left (the gzip trailer, padding) so the whole blob is hashed."""
        while self.read(_CHUNK):
            pass


class _Stream(Protocol):
    """Decompressed bytes, ``count`` at most per read; :meth:`drain` reads to the end."""

    def read(self, count: int = -1) -> bytes: ...

    def drain(self) -> None: ...


_Decompress = Callable[[BinaryIO, int, int, str, Any], _Stream]
"""Makes the decompressed stream of a blob: ``(raw, size, limit, where, blob hasher)``."""


class _Blocks:
    """The inflated tar as a forward-only file with ``tell()``: headers are read through
    it by tarfile's own header parser, contents are copied straight through."""

    def __init__(self, source: _Stream) -> None:
        self._source = source
        self._buffer = bytearray()
        self._at = 0  # read position inside _buffer
        self._tell = 0

    def read(self, count: int) -> bytes:
        while len(self._buffer) - self._at < count:
            more = self._source.read(_CHUNK)
            if not more:
                break
            del self._buffer[: self._at]
            self._at = 0
            self._buffer += more
        out = bytes(self._buffer[self._at : self._at + count])
        self._at += len(out)
        self._tell += len(out)
        return out

    def tell(self) -> int:
        return self._tell

    def copy(self, target: BinaryIO | None, count: int) -> int:
        """Copy (or with no target, skip) ``count`` bytes; how many there were."""
        done = 0
        while done < count:
            if self._at < len(self._buffer):
                piece = memoryview(self._buffer)[self._at : self._at + count - done]
                self._at += len(piece)
            else:
                piece = memoryview(self._source.read(min(_CHUNK, count - done)))
                if not piece:
                    break
            if target is not None:
                target.write(piece)
            done += len(piece)
            self._tell += len(piece)
            piece.release()
        return done


def _unzstd(layer: LayerBlob) -> _Decompress:
    from envpack.oci.unzstd import Unzstd  # the zstandard library: loaded for zstd layers only

    # No blob digest to catch a cut stream (see envpack.oci.unzstd): check the diff ID.
    diff_id = layer.diff_id if layer.digest is None else None
    return lambda raw, size, limit, where, hasher: Unzstd(
        raw, size, limit, where, hasher, diff_id=diff_id
    )


def _inflate(
    layer: LayerBlob, workdir: Path, number: int, limit: int, where: str, decompress: _Decompress
) -> LayerRead:
    hasher = hashlib.sha256() if layer.digest is not None else None
    data = workdir / f"layer-{number}.data"
    files = [data]
    whole: set[int] = set()
    members: list[Member] = []
    try:
        with open_regular(layer.blob.path) as raw, _create(data) as spool:
            raw.seek(layer.blob.offset)
            inflating = decompress(raw, layer.blob.size, limit, where, hasher)
            blocks = _Blocks(inflating)
            # What tarfile's header parser needs of a TarFile (pax, GNU long names, sparse).
            state = SimpleNamespace(
                fileobj=blocks, encoding="utf-8", errors="surrogateescape",
                pax_headers={}, offset=0,
            )  # fmt: skip
            while (info := _next_header(state, where)) is not None:
                member = _member(info, 0)
                target: BinaryIO | None = None
                if member.kind == "file" and not member.sparse and member.size:
                    if member.size >= OWN_FILE:
                        member.source = len(files)
                        whole.add(len(files))
                        files.append(workdir / f"layer-{number}-{len(files)}")
                        target = _create(files[-1])
                    else:
                        member.offset = spool.tell()
                        target = spool
                    try:
                        got = blocks.copy(target, member.size)
                    finally:
                        if target is not spool and target is not None:
                            target.close()
                    if got != member.size:
                        raise InvalidImage(
                            f"{where}: entry {info.name!r} declares {member.size} bytes, past "
                            "the end of the layer; layer refused"
                        )
                blocks.copy(None, state.offset - blocks.tell())  # padding, or skipped data
                members.append(member)
            inflating.drain()
    except OSError as err:
        raise InvalidImage(f"{where}: cannot inflate into {workdir}: {err.strerror}") from err
    if hasher is not None and layer.digest is not None and hasher.hexdigest() != layer.digest.hex:
        raise InvalidImage(f"{where}: the blob does not match its digest")
    return LayerRead(members, files, frozenset(whole))


def _next_header(state: SimpleNamespace, where: str) -> tarfile.TarInfo | None:
    """The next member's header (pax and GNU extensions applied); ``None`` at the end."""
    try:
        return tarfile.TarInfo.fromtarfile(state)  # type: ignore[arg-type]
    except _END_OF_ARCHIVE:
        return None
    except _TRUNCATED as err:
        raise InvalidImage(f"{where}: the tar ends inside a header ({err})") from err
    except tarfile.HeaderError as err:
        raise InvalidImage(f"{where}: unreadable tar header ({err})") from err


def _create(path: Path) -> BinaryIO:
    """A new file of envpack's own (O_EXCL|O_NOFOLLOW: nothing there is reused or followed)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.fdopen(os.open(path, flags, 0o600), "wb")


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


def _member(info: tarfile.TarInfo, base: int) -> Member:
    kind = _kind(info)
    return Member(
        name=info.name,
        kind=kind,
        mode=info.mode,
        uid=info.uid,
        gid=info.gid,
        size=info.size if kind == "file" else 0,
        mtime=whole_seconds(info.mtime),
        linkname=info.linkname,
        offset=base + info.offset_data,
        major=info.devmajor,
        minor=info.devminor,
        sparse=info.sparse is not None,
    )


_SIMPLE_KINDS = {
    b"0": "file", b"\0": "file", b"7": "file", b"1": "hardlink", b"2": "symlink",
    b"3": "char-device", b"4": "block-device", b"5": "dir", b"6": "fifo",
}  # fmt: skip


def _simple_member(header: Header, base: int) -> Member:
    """A member from :mod:`envpack.oci.tarheaders`' fast path (the same as :func:`_member`)."""
    name, kind_byte, mode, uid, gid, size, mtime, linkname, offset, major, minor = header
    kind = _SIMPLE_KINDS[kind_byte]
    return Member(
        name, kind, mode, uid, gid, size if kind == "file" else 0, mtime, linkname,
        base + offset, major, minor, False,
    )  # fmt: skip


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
        simple = simple_headers(stream.fileno(), data.offset, data.size)
    if simple is not None:  # the common headers, without tarfile (bench_layer_read)
        yield from (_simple_member(header, data.offset) for header in simple)
        return
    yield from tarfile_members(data, where)


def tarfile_members(data: BlobRange, where: str) -> Iterator[Member]:
    """:func:`read_members` through tarfile, which reads every kind of header."""
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
                member = _member(info, data.offset)
                if (
                    member.kind == "file"
                    and not member.sparse
                    and info.offset_data + member.size > data.size
                ):
                    raise InvalidImage(
                        f"{where}: entry {info.name!r} declares {member.size} bytes, past the "
                        f"end of the layer ({data.size} bytes); layer refused"
                    )
                yield member
        finally:
            tar.close()
