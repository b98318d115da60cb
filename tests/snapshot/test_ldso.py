"""The loader's search, checked against glibc's own ``ldd`` and ``ldconfig``.

Real objects throughout: this machine's binaries and libraries, and small libraries built
with gcc to exercise RPATH, RUNPATH, $ORIGIN and LD_LIBRARY_PATH one at a time.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from elf_oracle import Built, ldd_map, require

from envpack.snapshot.elf import parse_elf
from envpack.snapshot.ldso import LoadedObject, Resolver, parse_ld_so_cache, read_ld_so_conf
from envpack.snapshot.libraries import resolve_closure
from envpack.snapshot.source import Source


def _live() -> Source:
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    return Source.live(environ=env)


def _root_object(source: Source, path: str) -> LoadedObject:
    real = source.resolve(path).inner
    info = parse_elf(source, real)
    assert info is not None, path
    return LoadedObject(real, info)


def _closure(source: Source, path: str) -> dict[str, str | None]:
    """needed name → resolved path (``None``: not found), for one program."""
    resolver = Resolver(source)
    root = _root_object(source, path)
    missing: dict[str, str | None] = {}

    def not_found(_obj: LoadedObject, name: str) -> None:
        missing[name] = None

    found = resolve_closure(resolver, [root], on_missing=not_found)
    result: dict[str, str | None] = {lib.name: lib.path for lib in found.values()}
    result.update(missing)
    if root.elf.interpreter:  # ldd prints the interpreter on a line of its own
        result.pop(os.path.basename(root.elf.interpreter), None)
    return result


# -- ld.so.cache ----------------------------------------------------------------------------


def test_ld_so_cache_matches_ldconfig() -> None:
    if not os.path.exists("/etc/ld.so.cache"):
        pytest.skip("this machine has no /etc/ld.so.cache")
    out = subprocess.run(
        [require("ldconfig"), "-p"], capture_output=True, text=True, check=True
    ).stdout
    expected = set(re.findall(r"^\s+(\S+) \(.*\) => (\S+)$", out, re.MULTILINE))
    entries = parse_ld_so_cache(Path("/etc/ld.so.cache").read_bytes())
    got = {(name, path) for name, paths in entries.items() for path in paths}
    assert expected
    assert got == expected


def test_a_damaged_cache_gives_nothing_not_a_crash() -> None:
    data = Path("/etc/ld.so.cache").read_bytes() if os.path.exists("/etc/ld.so.cache") else b""
    for blob in (b"", b"glibc-ld.so.cache1.1", data[:60], b"ld.so-1.7.0\0" + b"\xff" * 8):
        assert isinstance(parse_ld_so_cache(blob), dict)


# -- against ldd ----------------------------------------------------------------------------


def _ldd_targets() -> list[str]:
    wanted = [
        os.path.realpath(sys.executable),
        "/usr/bin/ls",
        "/usr/bin/bash",
        "/usr/bin/curl",
        "/usr/bin/openssl",
        "/usr/bin/ssh",
    ]
    return [p for p in wanted if os.path.exists(p)]


@pytest.mark.parametrize("program", _ldd_targets())
def test_closure_matches_ldd(program: str) -> None:
    expected = ldd_map(program)
    got = _closure(_live(), program)
    assert set(got) == set(expected), program
    for name, path in expected.items():
        resolved = got[name]
        if path is None:  # "libfoo.so => not found"
            assert resolved is None, name
        else:
            assert resolved is not None and os.path.realpath(resolved) == os.path.realpath(path)


# -- RPATH, RUNPATH, $ORIGIN, LD_LIBRARY_PATH with real objects built by gcc ---------------


@pytest.fixture
def built(tmp_path: Path) -> Built:
    made = Built(tmp_path)
    made.lib("B", "libb.so", marker=1)
    made.lib("B2", "libb.so", marker=2)
    made.lib("A", "liba.so", needs="libb.so")
    return made


def _compare(
    program: Path, source: Source, env: dict[str, str] | None = None
) -> dict[str, str | None]:
    got = _closure(source, str(program))
    expected = ldd_map(str(program), env)
    assert set(got) == set(expected)
    for name, path in expected.items():
        assert got[name] == path, name
    return got


def test_rpath_with_origin_is_inherited(built: Built) -> None:
    exe = built.exe(
        "rp", "liba.so", ["-Wl,--disable-new-dtags", "-Wl,-rpath,$ORIGIN/../A:$ORIGIN/../B"]
    )
    got = _compare(exe, _live())
    # Found via the program's RPATH, spelled as the loader spells it.
    assert got["libb.so"] == str(built.top / "bin" / ".." / "B" / "libb.so")


def test_runpath_is_not_inherited(built: Built) -> None:
    exe = built.exe(
        "rn", "liba.so", ["-Wl,--enable-new-dtags", "-Wl,-rpath,$ORIGIN/../A:$ORIGIN/../B"]
    )
    got = _compare(exe, _live())
    assert got["liba.so"] == str(built.top / "bin" / ".." / "A" / "liba.so")
    assert got["libb.so"] is None  # liba has no RUNPATH of its own: the loader fails too


def test_rpath_beats_ld_library_path_which_beats_runpath(built: Built) -> None:
    env = {**os.environ, "LD_LIBRARY_PATH": str(built.top / "B2")}
    with_rpath = built.exe(
        "r1", "libb.so", ["-Wl,--disable-new-dtags", f"-Wl,-rpath,{built.top / 'B'}"]
    )
    with_runpath = built.exe(
        "r2", "libb.so", ["-Wl,--enable-new-dtags", f"-Wl,-rpath,{built.top / 'B'}"]
    )
    live = Source.live(environ=env)
    assert _compare(with_rpath, live, env)["libb.so"] == str(built.top / "B" / "libb.so")
    assert _compare(with_runpath, live, env)["libb.so"] == str(built.top / "B2" / "libb.so")


def test_ld_library_path_is_live_only(built: Built) -> None:
    exe = built.exe("plain", "libb.so", [])
    env = {**os.environ, "LD_LIBRARY_PATH": str(built.top / "B")}
    assert _compare(exe, Source.live(environ=env), env)["libb.so"] == str(
        built.top / "B" / "libb.so"
    )
    # The same tree as a rootfs: no process environment, so LD_LIBRARY_PATH plays no part.
    root = Source.rootfs(built.top)
    resolver = Resolver(dataclasses.replace(root, environ=env))
    info = parse_elf(root, "/bin/plain")
    assert info is not None
    assert resolver.resolve("libb.so", LoadedObject("/bin/plain", info)) is None


# -- offline roots --------------------------------------------------------------------------


def _copy_program(program: str, root: Path, libdir: str) -> dict[str, str | None]:
    """Copy ``program`` and every library ldd names into ``root`` (libraries in libdir)."""
    deps = ldd_map(program)
    (root / "usr" / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(program, root / "usr" / "bin" / os.path.basename(program))
    (root / libdir.strip("/")).mkdir(parents=True, exist_ok=True)
    for name, path in deps.items():
        assert path is not None, f"{program} needs {name}, which ldd cannot find"
        shutil.copy2(path, root / libdir.strip("/") / name)
    return deps


def _write_conf(root: Path, *dirs: str) -> None:
    (root / "etc" / "ld.so.conf.d").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "ld.so.conf").write_text("# a comment\ninclude /etc/ld.so.conf.d/*.conf\n\n")
    for index, folder in enumerate(dirs):
        (root / "etc" / "ld.so.conf.d" / f"{index:02d}.conf").write_text(f"{folder}  # why\n")


def test_root_resolves_inside_the_root_only(tmp_path: Path) -> None:
    deps = _copy_program("/usr/bin/ls", tmp_path, "/opt/lib")
    _write_conf(tmp_path, "/opt/lib")
    source = Source.rootfs(tmp_path)
    got = _closure(source, "/usr/bin/ls")
    assert set(got) == set(deps)
    for name, path in got.items():
        assert path == f"/opt/lib/{name}"
        assert source.resolve(path).host.startswith(str(tmp_path) + "/")
    # A program whose libraries stay on the host: none of them may be found in the root.
    host_only = _program_needing_more_than(set(deps))
    if host_only is None:
        pytest.skip("no program on PATH needs a library ls does not")
    program, extra = host_only
    shutil.copy2(program, tmp_path / "usr" / "bin" / "other")
    got = _closure(source, "/usr/bin/other")
    assert got[extra] is None, f"{extra} was found although only the host has it"
    on_host = ldd_map(program)[extra]
    assert on_host is not None and os.path.exists(on_host)  # the host really does have it


def _program_needing_more_than(known: set[str]) -> tuple[str, str] | None:
    for program in (
        "/usr/bin/curl",
        "/usr/bin/ssh",
        "/usr/bin/openssl",
        os.path.realpath(sys.executable),
    ):
        if not os.path.exists(program):
            continue
        info = parse_elf(Source.live(), program)
        extra = [n for n in (info.needed if info else ()) if n not in known]
        if extra:
            return program, extra[0]
    return None


def test_root_with_a_real_ld_so_cache(tmp_path: Path) -> None:
    deps = _copy_program("/usr/bin/ls", tmp_path, "/opt/lib")
    _write_conf(tmp_path, "/opt/lib")
    done = subprocess.run(
        [require("ldconfig"), "-r", str(tmp_path)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0 or not (tmp_path / "etc" / "ld.so.cache").exists():
        pytest.skip(f"ldconfig -r cannot build a cache here: {done.stderr.strip()}")
    # Move the libraries' folder out of ld.so.conf: only the cache can find them now.
    (tmp_path / "etc" / "ld.so.conf.d" / "00.conf").write_text("")
    resolver = Resolver(Source.rootfs(tmp_path))
    assert resolver.ld_so_cache.entries is not None
    got = _closure(Source.rootfs(tmp_path), "/usr/bin/ls")
    assert got == {name: f"/opt/lib/{name}" for name in deps}


def _elf32_stub(path: Path) -> None:
    """A minimal, valid 32-bit x86 ELF header: a library of the wrong class."""
    ident = b"\x7fELF" + bytes([1, 1, 1, 0]) + bytes(8)
    header = ident + struct.pack("<HHIIIIIHHHHHH", 3, 3, 1, 0, 0, 0, 0, 52, 32, 0, 40, 0, 0)
    path.write_bytes(header)


def test_a_library_of_the_wrong_class_is_skipped(tmp_path: Path) -> None:
    deps = _copy_program("/usr/bin/ls", tmp_path, "/opt/lib")
    (tmp_path / "opt" / "lib32").mkdir()
    for name in deps:
        _elf32_stub(tmp_path / "opt" / "lib32" / name)
    _write_conf(tmp_path, "/opt/lib32", "/opt/lib")
    source = Source.rootfs(tmp_path)
    stub = parse_elf(source, "/opt/lib32/libc.so.6")
    assert stub is not None and stub.elf_class == "ELF32" and stub.machine == "386"
    got = _closure(source, "/usr/bin/ls")
    assert got == {name: f"/opt/lib/{name}" for name in deps}


def test_ld_so_conf_includes_and_comments(tmp_path: Path) -> None:
    (tmp_path / "etc" / "ld.so.conf.d").mkdir(parents=True)
    (tmp_path / "etc" / "ld.so.conf").write_text(
        "/first\ninclude ld.so.conf.d/*.conf\n# /commented\nhwcap 0 nosegneg\n/last/\n"
    )
    (tmp_path / "etc" / "ld.so.conf.d" / "b.conf").write_text("/b1:/b2\n")
    (tmp_path / "etc" / "ld.so.conf.d" / "a.conf").write_text("/a # trailing\n")
    (tmp_path / "etc" / "ld.so.conf.d" / "skip.txt").write_text("/never\n")
    assert read_ld_so_conf(Source.rootfs(tmp_path)) == ["/first", "/a", "/b1", "/b2", "/last"]


def test_musl_search_path(tmp_path: Path) -> None:
    deps = _copy_program("/usr/bin/ls", tmp_path, "/opt/musl")
    source = Source.rootfs(tmp_path)
    real = parse_elf(source, "/usr/bin/ls")
    assert real is not None
    # The requester's facts say musl (its PT_INTERP); the libraries are real ELF files.
    musl = dataclasses.replace(real, interpreter="/lib/ld-musl-x86_64.so.1")
    program = LoadedObject("/usr/bin/ls", musl)
    name = next(iter(deps))
    assert Resolver(source).resolve(name, program) is None  # default /lib:/usr/local/lib:/usr/lib
    (tmp_path / "etc").mkdir(exist_ok=True)
    (tmp_path / "etc" / "ld-musl-x86_64.path").write_text("/opt/musl\n/usr/lib\n")
    assert Resolver(source).resolve(name, program) == f"/opt/musl/{name}"
    # glibc's multiarch folders mean nothing to musl.
    (tmp_path / "etc" / "ld-musl-x86_64.path").unlink()
    (tmp_path / "lib" / "x86_64-linux-gnu").mkdir(parents=True)
    shutil.copy2(tmp_path / "opt" / "musl" / name, tmp_path / "lib" / "x86_64-linux-gnu" / name)
    assert Resolver(source).resolve(name, program) is None
    shutil.copy2(tmp_path / "opt" / "musl" / name, tmp_path / "lib" / name)
    assert Resolver(source).resolve(name, program) == f"/lib/{name}"
