"""Write an ``/etc/ld.so.cache`` for the image's own libraries.

``ctypes.util.find_library`` runs ``/sbin/ldconfig -p``, which prints this cache; the
loader reads it too. The cache is written here rather than with the host's
``ldconfig -r TREE``: that needs a copy of every library in a scratch tree and root
privileges (it chroots), and its output depends on the host's glibc, not the image's.
The format is glibc's ``glibc-ld.so.cache1.1`` (``elf/cache.c``, ``sysdeps/generic/
dl-cache.h``), which every glibc since 2.32 reads and older ones read after the old
format's absence (they fall back to the new format when the file starts with its magic):

    header (48 bytes): magic "glibc-ld.so.cache" "1.1", nlibs u32, len_strings u32,
                       flags u8 (2: little endian), 3 padding bytes, extension_offset u32
                       (0: none), 3 unused u32
    nlibs entries (24 bytes): flags i32, key u32, value u32, osversion u32, hwcap u64
    strings: NUL-terminated, offsets counted from the start of the file

The loader finds a name by binary search in ``_dl_cache_libcmp`` order (numbers compared
as numbers), and ``ldconfig`` sorts the entries in *descending* order of it; so does this.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterable

__all__ = ["CacheEntry", "libcmp", "write_ld_so_cache"]

_MAGIC = b"glibc-ld.so.cache1.1"
_HEADER = struct.Struct("<20sIIB3sI12s")
_ENTRY = struct.Struct("<iIIIQ")
_ENDIAN_LITTLE = 2
_FLAG_ELF_LIBC6 = 0x0003
# The "required" flag bits of _dl_cache_check_flags, by (machine, class) as elf.py names them.
_ARCH_FLAGS = {
    ("x86_64", "ELF64"): 0x0300,  # FLAG_X8664_LIB64
    ("x86_64", "ELF32"): 0x0800,  # FLAG_X8664_LIBX32
    ("aarch64", "ELF64"): 0x0A00,  # FLAG_AARCH64_LIB64
    ("ppc64", "ELF64"): 0x0500,  # FLAG_POWERPC_LIB64
    ("s390", "ELF64"): 0x0400,  # FLAG_S390_LIB64
    ("riscv", "ELF64"): 0x1000,  # FLAG_RISCV_FLOAT_ABI_DOUBLE (lp64d, Debian's ABI)
}

CacheEntry = tuple[str, str, int]
"""(soname, path in the image, flags)."""


def entry_flags(machine: str, elf_class: str) -> int:
    """The cache flags of a glibc library of that machine and class."""
    return _FLAG_ELF_LIBC6 | _ARCH_FLAGS.get((machine, elf_class), 0)


def libcmp(left: str, right: str) -> int:
    """``_dl_cache_libcmp``: digits compare as numbers and sort after other characters."""
    i = j = 0
    while i < len(left):
        a = left[i]
        b = right[j] if j < len(right) else ""
        if a.isdigit() and a.isascii():
            if not (b.isdigit() and b.isascii()):
                return 1
            start = i
            while i < len(left) and left[i].isdigit() and left[i].isascii():
                i += 1
            other = j
            while j < len(right) and right[j].isdigit() and right[j].isascii():
                j += 1
            va, vb = int(left[start:i]), int(right[other:j])
            if va != vb:
                return va - vb
            continue
        if b.isdigit() and b.isascii():
            return -1
        if a != b:
            return (ord(a) if a else 0) - (ord(b) if b else 0)
        i += 1
        j += 1
    return 0 if j >= len(right) else -ord(right[j])


def write_ld_so_cache(entries: Iterable[CacheEntry]) -> bytes:
    """The bytes of a cache listing ``entries`` (duplicates dropped)."""
    unique = list(dict.fromkeys(entries))

    def order(a: CacheEntry, b: CacheEntry) -> int:
        # Descending by name, as ldconfig's compare() swaps its arguments.
        return libcmp(b[0], a[0])

    unique.sort(key=functools.cmp_to_key(order))
    strings = bytearray()
    offsets: dict[str, int] = {}
    base = _HEADER.size + _ENTRY.size * len(unique)

    def offset(text: str) -> int:
        if text not in offsets:
            offsets[text] = base + len(strings)
            strings.extend(text.encode("utf-8") + b"\0")
        return offsets[text]

    body = bytearray()
    for name, path, flags in unique:
        body += _ENTRY.pack(flags, offset(name), offset(path), 0, 0)
    header = _HEADER.pack(
        _MAGIC, len(unique), len(strings), _ENDIAN_LITTLE, b"\0" * 3, 0, b"\0" * 12
    )
    return bytes(header + body + strings)
