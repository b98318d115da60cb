"""The binaries probe over real executables, on the live host and under --root."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from elf_oracle import readelf, require

from envpack.manifest import schema_text
from envpack.redact import Redactor
from envpack.snapshot import binaries
from envpack.snapshot.context import CaptureContext, CaptureOptions
from envpack.snapshot.source import Source


def _run(source: Source, tmp_path: Path, **options: object) -> CaptureContext:
    ctx = CaptureContext(
        source=source,
        options=CaptureOptions(cache_dir=tmp_path / "cache", **options),  # type: ignore[arg-type]
        redactor=Redactor(b"k" * 32),
    )
    binaries.probe(ctx)
    ctx.finish()  # the hashes are collected once every probe has run
    return ctx


def _validate(section: dict[str, Any]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    defs = json.loads(schema_text())["$defs"]
    for component in section.values():
        jsonschema.validate(component, {"$defs": defs, "$ref": "#/$defs/binaries_component"})


def _install(folder: Path, name: str, data: bytes, mode: int = 0o755) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    path.chmod(mode)
    return path


@pytest.fixture
def two_dirs(tmp_path: Path) -> tuple[Path, Path]:
    first, second = tmp_path / "first", tmp_path / "second"
    ls = Path("/usr/bin/ls").read_bytes()
    _install(first, "tool", ls)
    _install(second, "tool", b"#!/bin/sh\necho shadowed\n")  # shadowed: first hit wins
    _install(second, "hello", b"#!/usr/bin/env python3 -u\nprint('hi')\n")
    _install(second, "notexec", b"#!/bin/sh\n", mode=0o644)
    os.symlink("/usr/bin/true", second / "truelink")
    os.mkfifo(second / "fifo")
    (second / "fifo").chmod(0o755)
    (second / "subdir").mkdir()
    return first, second


def test_path_order_first_hit_wins(tmp_path: Path, two_dirs: tuple[Path, Path]) -> None:
    first, second = two_dirs
    ctx = _run(Source.live(environ={"PATH": f"{first}:{second}"}), tmp_path)
    section = ctx.sections["binaries"]
    assert sorted(section) == ["hello", "tool", "truelink"]  # no FIFO, folder, non-executable
    tool = section["tool"]
    assert tool["path"] == str(first / "tool")
    assert tool["mode"] == "0755"
    assert tool["size"] == os.path.getsize("/usr/bin/ls")
    assert tool["sha256"] == hashlib.sha256(Path("/usr/bin/ls").read_bytes()).hexdigest()
    assert tool["shebang"] is None
    assert tool["owner"] is None  # a copy nobody installed
    facts = readelf("/usr/bin/ls")
    assert tool["elf"]["needed"] == list(facts.needed)
    assert tool["elf"]["interpreter"] == facts.interpreter
    assert tool["elf"]["build_id"] == facts.build_id
    hello = section["hello"]
    assert hello["elf"] is None
    assert hello["shebang"] == "#!/usr/bin/env python3 -u"
    link = section["truelink"]
    assert link["path"] == str(second / "truelink")
    assert link["real_path"] == os.path.realpath("/usr/bin/true")
    assert "version" not in tool
    # The FIFO is a silent gap no more; the folder and the non-executable file are.
    fifo = f"{second}/fifo"
    assert [(i.path, i.reason) for i in ctx.issues] == [
        (fifo, f"{fifo}: is a fifo, not a regular file; not a command (never opened)")
    ]
    _validate(section)


def test_owner_of_a_system_binary_matches_dpkg(tmp_path: Path) -> None:
    dpkg = require("dpkg")
    ctx = _run(Source.live(environ={"PATH": "/nonexistent"}), tmp_path, binaries=("/usr/bin/ls",))
    component = ctx.sections["binaries"]["/usr/bin/ls"]
    # /usr-merge: dpkg lists /bin/ls on Debian 12 although the file is reached as /usr/bin/ls.
    outs = [
        subprocess.run([dpkg, "-S", path], capture_output=True, text=True, check=False)
        for path in ("/usr/bin/ls", "/bin/ls")
    ]
    out = next(o for o in outs if o.returncode == 0)
    package = out.stdout.split(":", 1)[0]
    version = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=True
    ).stdout
    assert component["owner"] == {"kind": "dpkg", "name": package, "version": version}


def test_a_damaged_elf_is_recorded_with_an_issue(tmp_path: Path) -> None:
    folder = tmp_path / "bin"
    head = Path("/usr/bin/ls").read_bytes()[:100]
    _install(folder, "broken", head)
    for _ in range(2):  # the second run is warm: the issue is reported again
        ctx = _run(Source.live(environ={"PATH": str(folder)}), tmp_path)
        component = ctx.sections["binaries"]["broken"]
        assert component["elf"] is None and component["size"] == 100
        assert (
            component["sha256"]
            == hashlib.sha256(Path("/usr/bin/ls").read_bytes()[:100]).hexdigest()
        )
        assert [i.path for i in ctx.issues] == [str(folder / "broken")]
        assert "damaged ELF" in ctx.issues[0].reason


def test_a_missing_bin_extra_is_an_issue(tmp_path: Path) -> None:
    ctx = _run(Source.live(environ={"PATH": ""}), tmp_path, binaries=("/no/such/tool",))
    assert ctx.sections["binaries"] == {}
    assert [i.path for i in ctx.issues] == ["/no/such/tool"]


def test_probe_versions_runs_only_on_the_live_host(
    tmp_path: Path, two_dirs: tuple[Path, Path]
) -> None:
    first, _ = two_dirs
    live = _run(Source.live(environ={"PATH": f"{first}"}), tmp_path, probe_versions=True)
    expected = subprocess.run(
        [str(first / "tool"), "--version"], capture_output=True, text=True, check=True
    ).stdout.splitlines()[0]
    assert live.sections["binaries"]["tool"]["version"] == expected
    _validate(live.sections["binaries"])
    root = tmp_path / "root"
    _install(root / "usr" / "bin", "tool", Path("/usr/bin/ls").read_bytes())
    offline = _run(Source.rootfs(root), tmp_path, probe_versions=True)
    assert "version" not in offline.sections["binaries"]["tool"]


@pytest.mark.slow
def test_a_hanging_version_is_cut_off(tmp_path: Path) -> None:
    folder = tmp_path / "bin"
    _install(folder, "sleeper", b"#!/bin/sh\nexec sleep 30\n")
    # A child in the background keeps the output pipe open after its parent is killed.
    _install(folder, "forker", b"#!/bin/sh\nsetsid sleep 6 &\nsleep 30\n")
    started = time.monotonic()
    ctx = _run(Source.live(environ={"PATH": str(folder)}), tmp_path, probe_versions=True)
    assert time.monotonic() - started < 10
    assert ctx.sections["binaries"]["sleeper"]["version"] is None
    assert ctx.sections["binaries"]["forker"]["version"] is None


def test_rootfs_path_and_symlinks_stay_inside(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _install(root / "bin", "tool", Path("/usr/bin/ls").read_bytes())
    (root / "usr" / "bin").mkdir(parents=True)
    os.symlink("/bin/tool", root / "usr" / "bin" / "abs")  # ROOT/bin/tool, not the host's
    os.symlink("../../../../../../bin/tool", root / "usr" / "bin" / "climb")
    os.symlink("/usr/bin/ssh-nowhere", root / "usr" / "bin" / "dangling")
    ctx = _run(Source.rootfs(root), tmp_path)
    section = ctx.sections["binaries"]
    assert sorted(section) == ["abs", "climb", "tool"]
    for key in ("abs", "climb"):
        assert section[key]["real_path"] == "/bin/tool"
        assert section[key]["sha256"] == section["tool"]["sha256"]
    # /usr/bin comes before /bin on the default PATH: the links keep their own names.
    assert section["abs"]["path"] == "/usr/bin/abs"


@pytest.mark.slow
def test_the_real_path_of_this_machine(tmp_path: Path) -> None:
    ctx = _run(Source.live(), tmp_path)
    section = ctx.sections["binaries"]
    ls_path = shutil.which("ls")
    assert ls_path is not None
    ls = section["ls"]
    assert ls["path"] == ls_path
    assert ls["owner"] is not None and ls["owner"]["kind"] == "dpkg"
    assert ls["elf"]["needed"] == list(readelf(os.path.realpath(ls_path)).needed)
    assert all(c["sha256"] for c in section.values())
