"""Severity that follows impact, on real captures of real ELF files and interpreters.

A rootfs holds the machine's own ``xz`` and ``zstd`` and the libraries they load (copied
as the loader finds them). A library missing from the target is critical only when
something captured *there* needs it; a target without any Python is critical.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from envpack.diff.compare import compare
from envpack.diff.model import ChangeKind, Severity
from envpack.manifest import load_manifest

PROGRAMS = ("/usr/bin/xz", "/usr/bin/zstd")


def _libraries_of(program: str) -> list[str]:
    """The files the machine's loader maps for ``program`` (``ldd``'s answer)."""
    out = subprocess.run(["ldd", program], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        words = line.split()
        path = words[2] if "=>" in words and len(words) > 2 else words[0]
        if path.startswith("/"):
            found.append(path)
    return found


def _tree(root: Path, programs: tuple[str, ...], drop: tuple[str, ...] = ()) -> Path:
    for program in programs:
        for path in (program, *_libraries_of(program)):
            if Path(path).name in drop:
                continue
            target = root / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                shutil.copy2(os.path.realpath(path), target)
    return root


def _capture(tmp_path: Path, name: str, *args: str) -> Path:
    out = tmp_path / f"{name}.json"
    flags = ["-q", "--no-cache", "--label", name, *args]
    subprocess.run(
        [sys.executable, "-m", "envpack", "capture", *flags, "-o", str(out)],
        check=True,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SOURCE_DATE_EPOCH": "1700000000"},
    )
    return out


needs_tools = pytest.mark.skipif(
    not all(Path(p).exists() for p in PROGRAMS) or shutil.which("ldd") is None,
    reason="xz, zstd or ldd is not installed",
)


@needs_tools
def test_library_missing_where_something_needs_it_is_critical(tmp_path: Path) -> None:
    base = _tree(tmp_path / "base", PROGRAMS)
    broken = _tree(tmp_path / "broken", PROGRAMS, drop=("libz.so.1",))
    a = load_manifest(_capture(tmp_path, "base", "--root", str(base)))
    b = load_manifest(_capture(tmp_path, "broken", "--root", str(broken)))
    assert "libz.so.1" in a.section("libraries")
    rows = [c for c in compare(a, b).changes if c.section == "libraries" and c.field is None]
    [libz] = [c for c in rows if c.key == "libz.so.1"]
    assert libz.kind is ChangeKind.REMOVED
    assert libz.severity is Severity.CRITICAL
    assert "/usr/bin/zstd needs it" in libz.reason


@needs_tools
def test_library_nobody_left_needs_is_the_removal_of_an_unused_file(tmp_path: Path) -> None:
    """zstd is gone from the target, and with it the only user of libz and liblz4. The
    baseline's ``needed_by`` still names zstd: it used to make these critical."""
    base = _tree(tmp_path / "base", PROGRAMS)
    slim = _tree(tmp_path / "slim", ("/usr/bin/xz",))
    a = load_manifest(_capture(tmp_path, "base", "--root", str(base)))
    b = load_manifest(_capture(tmp_path, "slim", "--root", str(slim)))
    assert a.section("libraries")["libz.so.1"]["needed_by"] == ["/usr/bin/zstd"]
    changes = compare(a, b).changes
    libraries = {c.key: c for c in changes if c.section == "libraries" and c.field is None}
    assert {"libz.so.1", "liblz4.so.1"} <= set(libraries)
    assert {c.severity for c in libraries.values()} == {Severity.MINOR}
    [zstd] = [c for c in changes if c.section == "binaries" and c.key == "zstd"]
    assert zstd.severity is Severity.MAJOR  # the program itself is what matters


def test_a_target_without_any_python_is_critical(tmp_path: Path) -> None:
    """The live machine's real interpreter against a rootfs with no Python at all."""
    empty = tmp_path / "empty"
    (empty / "etc").mkdir(parents=True)
    live = _capture(tmp_path, "live", "--only", "interpreters", "--python", sys.executable)
    none = _capture(tmp_path, "none", "--root", str(empty), "--only", "interpreters")
    assert json.loads(none.read_text()).get("interpreters", {}) == {}
    rows = [
        c
        for c in compare(load_manifest(live), load_manifest(none)).changes
        if c.section == "interpreters"
    ]
    assert rows
    assert {c.severity for c in rows} == {Severity.CRITICAL}
    assert "no Python interpreter" in rows[0].reason
