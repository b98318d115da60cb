"""ELF files of any length or shape: facts or :class:`ElfError`, in bounded time and memory.

The corpus (``fixtures/hostile/elf``, made by :mod:`elf_builder`) holds the shapes a
fuzzer finds first and a few it would take long to find: a header claiming 65,535
program headers of 65,535 bytes, offsets past the end of the file or at 2**64-1, a
thousand note segments of a terabyte each, 4,000 ``DT_NEEDED`` names that never end.
"""

from __future__ import annotations

import json
import os
import resource
import stat
import time
from pathlib import Path

import pytest
from elf_builder import (
    CORPUS,
    DT_NEEDED,
    DT_RUNPATH,
    DT_SONAME,
    DT_STRSZ,
    PT_DYNAMIC,
    PT_INTERP,
    PT_LOAD,
    PT_NOTE,
    Elf,
    Phdr,
    corpus,
    dynamic,
    with_dynamic,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envpack.snapshot.elf import ElfError, ElfInfo, parse_elf_fd
from envpack.snapshot.source import SourceReadError
from realenv import run_envpack

_BUDGET_S = 2.0  # per file; each takes milliseconds


def _parse(data: bytes) -> ElfInfo | None:
    fd = os.memfd_create("hostile-elf")
    try:
        os.write(fd, data)
        assert stat.S_ISREG(os.fstat(fd).st_mode)
        return parse_elf_fd(fd, "hostile")
    finally:
        os.close(fd)


def _bounded(info: ElfInfo | None) -> None:
    """What a parse may return: small, whatever the file claimed."""
    if info is None:
        return
    strings = [*info.needed, info.soname or "", info.runpath or "", info.rpath or ""]
    assert sum(map(len, strings)) <= 256 * 1024
    assert len(info.interpreter or "") <= 4096
    assert len(info.build_id or "") <= 2 * 1024 * 1024


def test_corpus_on_disk_is_what_the_builder_makes() -> None:
    made = corpus()
    kept = {p.name: p.read_bytes() for p in CORPUS.iterdir()}
    assert kept == made


@pytest.mark.parametrize("name", sorted(corpus()))
def test_each_hostile_file_is_facts_or_an_elf_error(name: str) -> None:
    data = (CORPUS / name).read_bytes()
    started = time.process_time()  # CPU time: load on the machine does not count
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        info = _parse(data)
    except ElfError as err:
        assert str(err).startswith("hostile: damaged ELF file (")
        assert "\n" not in str(err)
    else:
        _bounded(info)
    assert time.process_time() - started < _BUDGET_S
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    assert grown_kib < 64 * 1024, f"{name}: peak memory grew by {grown_kib} KiB"


def test_the_named_bounds_are_what_refuses() -> None:
    cases = {
        "huge-phnum": "65535 program headers, more than 1024",
        "huge-phentsize": "bad program header size",
        "string-index-out-of-range": "string index past DT_STRSZ",
        "unterminated-strings": "dynamic strings longer than 262144 bytes",
        "strtab-outside-loads": "DT_STRTAB outside every PT_LOAD segment",
        "magic-only": "truncated identification bytes",
        "one-byte": None,  # not even the magic: not ELF at all
    }
    for name, reason in cases.items():
        data = (CORPUS / name).read_bytes()
        if reason is None:
            assert _parse(data) is None
            continue
        with pytest.raises(ElfError, match=reason):
            _parse(data)


def test_a_well_formed_built_file_still_reads() -> None:
    strings = b"\0libc.so.6\0libx.so.1\0$ORIGIN/lib\0"
    info = _parse(
        with_dynamic(
            [(DT_STRSZ, len(strings)), (DT_NEEDED, 1), (DT_SONAME, 11), (DT_RUNPATH, 21)], strings
        )
    )
    assert info is not None
    assert (info.needed, info.soname, info.runpath) == (("libc.so.6",), "libx.so.1", "$ORIGIN/lib")


def test_capture_of_a_root_full_of_hostile_elf_files(tmp_path: Path) -> None:
    """Through the real CLI: every file recorded as a binary, damage as issues, exit 0."""
    bin_dir = tmp_path / "root" / "usr" / "bin"
    bin_dir.mkdir(parents=True)
    for path in CORPUS.iterdir():
        target = bin_dir / path.name
        target.write_bytes(path.read_bytes())
        target.chmod(0o755)
    sparse = bin_dir / "sparse-elf"
    with sparse.open("wb") as stream:  # an ELF header, then 100 GB of holes
        stream.write(Elf(phdrs=[Phdr(PT_NOTE, 0, 0, 1 << 40, 4)]).build())
        stream.truncate(100 * 1024**3)
    sparse.chmod(0o755)
    out = tmp_path / "m.json"
    result = run_envpack(
        "capture", "--root", str(tmp_path / "root"), "--only", "binaries", "--no-cache",
        "-q", "-o", str(out), timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    manifest = json.loads(out.read_text())
    binaries = manifest["binaries"]
    assert set(binaries) == {p.name for p in CORPUS.iterdir()} | {"sparse-elf"}
    reasons = {i["path"]: i["reason"] for i in manifest["issues"]}
    assert "damaged ELF file" in reasons["/usr/bin/huge-phnum"]
    assert binaries["huge-phnum"]["elf"] is None
    assert "larger than" in reasons["/usr/bin/sparse-elf"]  # not hashed: see hashcache


# -- fuzzing ---------------------------------------------------------------------------------

_OFFSETS = st.one_of(
    st.integers(0, 4096), st.sampled_from([(1 << 63) - 1, (1 << 64) - 1, 1 << 40, 1 << 31])
)
_PHDRS = st.builds(
    Phdr,
    type=st.one_of(
        st.sampled_from([PT_LOAD, PT_DYNAMIC, PT_INTERP, PT_NOTE]), st.integers(0, 2**32 - 1)
    ),
    offset=_OFFSETS,
    vaddr=_OFFSETS,
    filesz=_OFFSETS,
    align=st.sampled_from([0, 1, 4, 8, 2**63]),
)
_DYN = st.lists(
    st.tuples(st.sampled_from([DT_NEEDED, DT_SONAME, DT_RUNPATH, DT_STRSZ, 5, 15]), _OFFSETS),
    max_size=40,
)


@pytest.mark.fuzz
@pytest.mark.timeout(60)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    phdrs=st.lists(_PHDRS, max_size=12),
    entries=_DYN,
    tail=st.binary(max_size=512),
    phnum=st.one_of(st.none(), st.integers(0, 65535)),
    phentsize=st.sampled_from([0, 32, 56, 57, 1024, 65535]),
    shnum=st.integers(0, 65535),
    shoff=_OFFSETS,
    cut=st.one_of(st.none(), st.integers(0, 400)),
)
def test_fuzz_elf_reader(
    phdrs: list[Phdr],
    entries: list[tuple[int, int]],
    tail: bytes,
    phnum: int | None,
    phentsize: int,
    shnum: int,
    shoff: int,
    cut: int | None,
) -> None:
    """Headers that lie in every field: facts within bounds, or an ElfError."""
    elf = Elf(phdrs=phdrs, phnum=phnum, phentsize=phentsize, shnum=shnum, shoff=shoff)
    elf.tail = dynamic(entries) + tail
    data = elf.build()
    if cut is not None:
        data = data[:cut]
    try:
        _bounded(_parse(data))
    except SourceReadError as err:
        assert isinstance(err, ElfError), err
        assert "\n" not in str(err)
