"""The common tar headers of a layer read without ``tarfile``: a fast path, or nothing.

``tarfile`` spends about 80 µs on each member of a layer written in pax format (two
headers: the pax record block and the ustar header), which was most of reading the
headers of an uncompressed image. Nearly every layer holds only ustar headers, each
maybe preceded by one pax block of ``mtime``/``path``/``size`` records: this module reads
exactly those, the way ``tarfile`` reads them (the same field decoding, checksum, pax
records and offsets), and gives up — returns ``None`` — at anything else: base-256
numbers, a checksum only the signed sum matches, GNU long names, sparse files, global
or nested pax headers, ``hdrcharset``, undecodable pax records, a member running past the
end, a header cut short. The caller then reads the whole layer with ``tarfile``, which
keeps every rule for odd and hostile archives in one place.
"""

from __future__ import annotations

import math
import os
import re

__all__ = ["Header", "simple_headers", "whole_seconds"]

Header = tuple[str, bytes, int, int, int, int, int, str, int, int, int]
"""``(name, type, mode, uid, gid, size, mtime, linkname, offset_data, major, minor)``;
``offset_data`` is relative to the start of the archive."""

_BLOCK = 512
_MAX_PAX = 64 * 1024  # a bigger pax block is left to tarfile
_TYPES = frozenset(b"0\x001234567")  # regular, links, devices, folder, FIFO, contiguous
_REGULAR = frozenset({b"0", b"\0", b"7"})
_RECORD = re.compile(rb"(\d+) ([^=]+)=")


class _GiveUp(Exception):
    """Not a header this fast path reads: let tarfile read the layer."""


def simple_headers(fd: int, base: int, size: int) -> list[Header] | None:
    """Every member of the tar of ``size`` bytes at ``base`` in ``fd``, or ``None``."""
    try:
        return _read(fd, base, size)
    except (_GiveUp, ValueError, OverflowError, UnicodeDecodeError, OSError):
        return None


def _number(field: bytes) -> int:
    # tarfile.nti, without its base-256 form (left to tarfile).
    if field[0] in (0o200, 0o377):
        raise _GiveUp
    end = field.find(b"\0")
    text = (field if end == -1 else field[:end]).decode("ascii").strip()
    return int(text or "0", 8)


def _text(field: bytes) -> str:
    end = field.find(b"\0")
    return (field if end == -1 else field[:end]).decode("utf-8", "surrogateescape")


def _read(fd: int, base: int, size: int) -> list[Header]:
    headers: list[Header] = []
    offset = 0
    while True:
        if offset == size:
            return headers  # the archive ends without end blocks (tarfile reads it so)
        buf = _block(fd, base, offset, size)
        if not buf.strip(b"\0"):
            if offset == 0:
                raise _GiveUp  # an empty layer: the caller's own rule
            return headers
        pax: dict[str, str] | None = None
        if buf[156] == 0x78:  # "x": a pax block for the next member only
            _, length = _header(buf, None, 0)  # every field read, as tarfile reads them
            if length > _MAX_PAX or offset + _BLOCK + _blocks(length) > size:
                raise _GiveUp
            pax = _pax(os.pread(fd, length, base + offset + _BLOCK))
            offset += _BLOCK + _blocks(length)
            buf = _block(fd, base, offset, size)
            if not buf.strip(b"\0"):
                raise _GiveUp
        if buf[156] not in _TYPES:
            raise _GiveUp
        header, data_size = _header(buf, pax, offset + _BLOCK)
        offset += _BLOCK
        if header[1] in _REGULAR:
            if offset + data_size > size:
                raise _GiveUp  # tarfile's reader names the error
            offset += _blocks(data_size)
        headers.append(header)


def _block(fd: int, base: int, offset: int, size: int) -> bytes:
    """The 512-byte header at ``offset`` (one cut short is left to tarfile)."""
    if offset + _BLOCK > size:
        raise _GiveUp
    buf = os.pread(fd, _BLOCK, base + offset)
    if len(buf) != _BLOCK:
        raise _GiveUp
    return buf


def _blocks(count: int) -> int:
    return (count + _BLOCK - 1) // _BLOCK * _BLOCK


def _checked(buf: bytes) -> int:
    """The size field of a header whose checksum is right (the unsigned sum)."""
    if _number(buf[148:156]) != 256 + sum(buf[:148]) + sum(buf[156:]):
        raise _GiveUp
    return _number(buf[124:136])


def _pax(block: bytes) -> dict[str, str]:
    """The records of a pax block, as tarfile reads them (UTF-8 keys and values)."""
    records: dict[str, str] = {}
    pos = 0
    while (match := _RECORD.match(block, pos)) is not None:
        length = int(match[1])
        if length == 0:
            raise _GiveUp
        key = match[2].decode("utf-8")  # strict: anything else is left to tarfile
        value = block[match.end(2) + 1 : match.start(1) + length - 1].decode("utf-8")
        if key == "hdrcharset" or key.startswith("GNU.sparse"):
            raise _GiveUp
        records[key] = value
        pos += length
    return records


def _header(buf: bytes, pax: dict[str, str] | None, offset_data: int) -> tuple[Header, int]:
    size = _checked(buf)
    kind = buf[156:157]
    name = _text(buf[0:100])
    mode = _number(buf[100:108])
    uid = _number(buf[108:116])
    gid = _number(buf[116:124])
    mtime: float = _number(buf[136:148])
    linkname = _text(buf[157:257])
    major = _number(buf[329:337])
    minor = _number(buf[337:345])
    prefix = _text(buf[345:500])
    if kind == b"\0" and name.endswith("/"):
        kind = b"5"  # an old V7 folder: a regular file named with a slash
    if kind == b"5":
        name = name.rstrip("/")
    if prefix:
        name = prefix + "/" + name
    if kind == b"5":
        name = name.rstrip("/")
    if pax:
        name, linkname, size, uid, gid, mtime = _apply_pax(
            pax, name, linkname, size, uid, gid, mtime
        )
    seconds = whole_seconds(mtime)
    return (name, kind, mode, uid, gid, size, seconds, linkname, offset_data, major, minor), size


def _apply_pax(
    pax: dict[str, str], name: str, linkname: str, size: int, uid: int, gid: int, mtime: float
) -> tuple[str, str, int, int, int, float]:
    """The header's fields with a pax block's records applied (tarfile's _apply_pax_info)."""
    for key, value in pax.items():
        if key == "path":
            name = value.rstrip("/")
        elif key == "linkpath":
            linkname = value
        elif key == "mtime":
            mtime = _pax_number(value, float)
        elif key == "size":
            size = int(_pax_number(value, int))
        elif key == "uid":
            uid = int(_pax_number(value, int))
        elif key == "gid":
            gid = int(_pax_number(value, int))
    return name, linkname, size, uid, gid, mtime


def whole_seconds(mtime: float) -> int:
    """A header's mtime in whole seconds; 0 for a pax ``nan`` or ``inf`` (as for a pax
    number tarfile cannot read), which ``int()`` refuses."""
    return int(mtime) if math.isfinite(mtime) else 0


def _pax_number(value: str, kind: type[int] | type[float]) -> int | float:
    try:
        return kind(value)
    except ValueError:
        return 0  # tarfile's rule for a pax number it cannot read
