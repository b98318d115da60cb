"""ELF facts from this machine's real binaries, checked against binutils' readelf."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import sys
from pathlib import Path

import pytest
from elf_oracle import path_elf_files, readelf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envpack.snapshot.elf import ElfError, ElfInfo, parse_elf, parse_elf_bytes, parse_elf_fd
from envpack.snapshot.filebytes import FileBytes
from envpack.snapshot.source import NotRegularFile, Source

_READELF_MACHINES = {
    "Advanced Micro Devices X86-64": "x86_64",
    "AArch64": "aarch64",
    "Intel 80386": "386",
}


def _real_python() -> str:
    return os.path.realpath(sys.executable)


def _named_binaries() -> list[str]:
    wanted = ["/usr/bin/ls", _real_python(), "/usr/bin/ssh", "/usr/bin/bash", "/usr/bin/curl"]
    return [os.path.realpath(p) for p in wanted if os.path.exists(p)]


def _check_against_readelf(path: str, info: ElfInfo | None) -> None:
    facts = readelf(path)
    assert info is not None, path
    assert info.needed == facts.needed, path
    assert info.interpreter == facts.interpreter, path
    assert info.soname == facts.soname, path
    assert info.runpath == facts.runpath, path
    assert info.rpath == facts.rpath, path
    assert info.build_id == facts.build_id, path
    assert info.elf_class == facts.elf_class, path
    if facts.machine in _READELF_MACHINES:
        assert info.machine == _READELF_MACHINES[facts.machine], path


@pytest.mark.parametrize("path", _named_binaries())
def test_named_binaries_match_readelf(path: str) -> None:
    _check_against_readelf(path, parse_elf(Source.live(), path))


def test_ls_has_the_expected_facts() -> None:
    info = parse_elf(Source.live(), "/usr/bin/ls")
    assert info is not None
    assert info.interpreter is not None and "ld-linux" in info.interpreter
    assert "libc.so.6" in info.needed
    assert info.type in ("ET_DYN", "ET_EXEC")
    assert info.build_id is not None and len(info.build_id) == 40


def test_a_spread_of_path_binaries_matches_readelf() -> None:
    files = path_elf_files(40)
    assert len(files) >= 10, "this machine has fewer ELF files on PATH than expected"
    source = Source.live()
    for path in files:
        _check_against_readelf(path, parse_elf(source, path))


def test_shared_libraries_have_their_soname() -> None:
    libc = os.path.realpath("/lib/x86_64-linux-gnu/libc.so.6")
    if not os.path.exists(libc):
        pytest.skip("not an x86_64 Debian layout")
    info = parse_elf(Source.live(), libc)
    assert info is not None and info.soname == "libc.so.6"
    _check_against_readelf(libc, info)


def test_a_script_is_not_elf(tmp_path: Path) -> None:
    script = tmp_path / "tool"
    script.write_text("#!/bin/sh\necho hi\n")
    assert parse_elf(Source.live(), str(script)) is None


def test_a_truncated_elf_is_an_error_not_a_crash(tmp_path: Path) -> None:
    data = Path("/usr/bin/ls").read_bytes()
    for cut in (16, 63, 200, 2000):
        broken = tmp_path / f"cut{cut}"
        broken.write_bytes(data[:cut])
        try:
            info = parse_elf(Source.live(), str(broken))
        except ElfError as err:
            assert "damaged ELF" in str(err)
        else:  # enough headers survived: facts may be partial, never invented
            assert info is not None and set(info.needed) <= set(readelf("/usr/bin/ls").needed)


def test_a_fifo_is_refused_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(NotRegularFile):
        parse_elf(Source.live(), str(fifo))


def test_rootfs_paths_resolve_inside_the_root(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    shutil.copy2("/usr/bin/ls", tmp_path / "bin" / "ls")
    (tmp_path / "usr" / "bin").mkdir(parents=True)
    # An absolute link: inside the root it means ROOT/bin/ls, never the host's /bin/ls.
    os.symlink("/bin/ls", tmp_path / "usr" / "bin" / "ls2")
    info = parse_elf(Source.rootfs(tmp_path), "/usr/bin/ls2")
    assert info is not None and info.needed == readelf("/usr/bin/ls").needed


_HEADER = Path("/usr/bin/ls").read_bytes()[:4096]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    offset=st.integers(min_value=4, max_value=len(_HEADER) - 1),
    value=st.binary(min_size=1, max_size=16),
)
def test_corrupted_headers_never_crash(offset: int, value: bytes) -> None:
    """Random bytes over real headers give facts or ElfError, nothing else, no hang."""
    data = bytearray(_HEADER)
    data[offset : offset + len(value)] = value
    memfd = os.memfd_create("elf")
    try:
        os.write(memfd, bytes(data))
        assert stat.S_ISREG(os.fstat(memfd).st_mode)
        with contextlib.suppress(ElfError):
            parse_elf_fd(memfd, "corrupt")
    finally:
        os.close(memfd)


@pytest.mark.parametrize("program", ["/usr/bin/cat", _real_python()])
def test_an_elf_file_inside_a_bigger_file_reads_as_the_file_itself(
    tmp_path: Path, program: str
) -> None:
    # How an image's file is read: a stretch of its layer, with bytes before and after.
    data = Path(program).read_bytes()
    layer = tmp_path / "layer"
    layer.write_bytes(b"\xaa" * 1536 + data + b"\x7fELF" * 4096)
    fd = os.open(layer, os.O_RDONLY)
    with FileBytes(fd, 1536, len(data)) as content:
        in_place = parse_elf_bytes(content, program)
    assert in_place is not None
    assert in_place == parse_elf(Source.live(), program)
    _check_against_readelf(program, in_place)
