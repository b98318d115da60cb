"""Build small ELF64 files whose headers say whatever a test wants, true or not.

The hostile-input tests and the fuzz targets use it to make files a linker never would:
65,535 program headers in a 64-byte file, offsets past the end, string tables that never
end. ``write_corpus`` writes the named cases to ``fixtures/hostile/elf`` (kept in git so
other tools can be pointed at them; a test checks they are still what this module makes).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

PT_LOAD, PT_DYNAMIC, PT_INTERP, PT_NOTE = 1, 2, 3, 4
DT_NULL, DT_NEEDED, DT_STRTAB, DT_STRSZ, DT_SONAME, DT_RUNPATH = 0, 1, 5, 10, 14, 29
EHDR_SIZE, PHDR_SIZE, SHDR_SIZE = 64, 56, 64
CORPUS = Path(__file__).resolve().parents[2] / "fixtures" / "hostile" / "elf"


@dataclass
class Phdr:
    type: int
    offset: int
    vaddr: int
    filesz: int
    align: int = 8

    def pack(self) -> bytes:
        return struct.pack(
            "<IIQQQQQQ",
            self.type,
            4,
            self.offset,
            self.vaddr,
            self.vaddr,
            self.filesz,
            self.filesz,
            self.align,
        )


@dataclass
class Elf:
    """An ELF64 little-endian x86-64 file: header, program headers at 64, then ``tail``."""

    phdrs: list[Phdr] = field(default_factory=list)
    tail: bytes = b""
    phnum: int | None = None
    phentsize: int = PHDR_SIZE
    phoff: int = EHDR_SIZE
    shoff: int = 0
    shnum: int = 0
    shentsize: int = SHDR_SIZE

    @property
    def data_at(self) -> int:
        """Where ``tail`` starts in the file."""
        return EHDR_SIZE + PHDR_SIZE * len(self.phdrs)

    def build(self) -> bytes:
        ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
        phnum = len(self.phdrs) if self.phnum is None else self.phnum
        header = struct.pack(
            "<HHIQQQIHHHHHH",
            3,  # ET_DYN
            62,  # EM_X86_64
            1,
            0,
            self.phoff,
            self.shoff,
            0,
            EHDR_SIZE,
            self.phentsize,
            phnum,
            self.shentsize,
            self.shnum,
            0,
        )
        return ident + header + b"".join(p.pack() for p in self.phdrs) + self.tail


def dynamic(entries: Sequence[tuple[int, int]]) -> bytes:
    """A ``PT_DYNAMIC`` array, ended by ``DT_NULL``."""
    return b"".join(struct.pack("<qQ", t, v) for t, v in [*entries, (DT_NULL, 0)])


def with_dynamic(entries: Sequence[tuple[int, int]], strings: bytes) -> bytes:
    """One ``PT_LOAD`` mapping the whole file at vaddr 0, a ``PT_DYNAMIC`` and its strings.

    ``DT_STRTAB`` is set to where ``strings`` start (added first to ``entries``).
    """
    elf = Elf(phdrs=[Phdr(PT_LOAD, 0, 0, 0), Phdr(PT_DYNAMIC, 0, 0, 0)])
    table = dynamic([(DT_STRTAB, 0), *entries])
    strtab_at = elf.data_at + len(table)
    table = dynamic([(DT_STRTAB, strtab_at), *entries])
    elf.tail = table + strings
    size = elf.data_at + len(elf.tail)
    elf.phdrs = [Phdr(PT_LOAD, 0, 0, size), Phdr(PT_DYNAMIC, elf.data_at, elf.data_at, len(table))]
    return elf.build()


def corpus() -> dict[str, bytes]:
    """Named hostile ELF files, each a few bytes to a few hundred KB."""
    unterminated = b"A" * 70_000  # longer than one string may be, with no NUL at all
    notes = [Phdr(PT_NOTE, 0, 0, 1 << 40, 4) for _ in range(1000)]
    return {
        "one-byte": b"\x7f",
        "magic-only": b"\x7fELF",
        "ident-only": b"\x7fELF\x02\x01\x01" + bytes(9),
        "bad-class": b"\x7fELF\x07\x01\x01" + bytes(57),
        "huge-phnum": Elf(phnum=65535).build(),
        "huge-phentsize": Elf(phnum=3, phentsize=65535).build(),
        "phoff-past-eof": Elf(phnum=4, phoff=1 << 40).build(),
        "phoff-max": Elf(phnum=1, phoff=(1 << 64) - 1).build(),
        "huge-shnum": Elf(shnum=65535, shentsize=65535, shoff=64).build(),
        "shoff-past-eof": Elf(shnum=40, shoff=1 << 50).build(),
        "thousand-giant-notes": Elf(phdrs=notes, tail=bytes(4096)).build(),
        "dynamic-past-eof": Elf(phdrs=[Phdr(PT_DYNAMIC, 1 << 62, 0, 1 << 62)]).build(),
        "dynamic-is-the-header": Elf(
            phdrs=[Phdr(PT_LOAD, 0, 0, 4096), Phdr(PT_DYNAMIC, 0, 0, 4096)]
        ).build(),
        "strtab-outside-loads": Elf(
            phdrs=[Phdr(PT_DYNAMIC, 120, 0, 48)], tail=dynamic([(DT_STRTAB, 1 << 30)])
        ).build(),
        "string-index-out-of-range": with_dynamic([(DT_STRSZ, 4), (DT_NEEDED, 1000)], b"abc\0"),
        "string-offset-past-eof": with_dynamic([(DT_NEEDED, 1 << 40)], b"abc\0"),
        "unterminated-strings": with_dynamic([(DT_NEEDED, 0)] * 4000, unterminated),
        "interp-giant": Elf(phdrs=[Phdr(PT_INTERP, 0, 0, 1 << 62)], tail=b"/lib/ld\0").build(),
    }


def write_corpus(folder: Path = CORPUS) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in corpus().items():
        (folder / name).write_bytes(data)


if __name__ == "__main__":
    write_corpus()
