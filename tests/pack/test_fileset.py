"""FileSet on real trees: symlink chains and parents kept, ``..`` resolved, escapes refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from envpack.errors import PackError
from envpack.pack.fileset import FileSet
from envpack.snapshot.source import Source


def _tree(root: Path) -> None:
    (root / "usr/lib/x86_64-linux-gnu").mkdir(parents=True)
    (root / "usr/lib/x86_64-linux-gnu/libz.so.1.2.13").write_bytes(b"zlib")
    os.symlink("libz.so.1.2.13", root / "usr/lib/x86_64-linux-gnu/libz.so.1")
    os.symlink("usr/lib", root / "lib")
    (root / "opt/app/pkg/_core").mkdir(parents=True)
    (root / "opt/app/pkg/libs").mkdir()
    (root / "opt/app/pkg/libs/libx.so").write_bytes(b"x")
    (root / "secret").mkdir(mode=0o700)
    (root / "secret/python").write_bytes(b"#!")
    os.chmod(root / "secret", 0o700)


def test_symlink_chain_and_usr_merge_parents(tmp_path: Path) -> None:
    _tree(tmp_path)
    files = FileSet(Source.rootfs(tmp_path), epoch=1_000)
    assert files.add_path("/lib/x86_64-linux-gnu/libz.so.1", "syslib:zlib1g", "library:libz")
    entries = {p.entry.path: p.entry for p in files.finish()}
    assert entries["/lib"].kind == "symlink" and entries["/lib"].linkname == "usr/lib"
    link = entries["/usr/lib/x86_64-linux-gnu/libz.so.1"]
    assert link.kind == "symlink" and link.linkname == "libz.so.1.2.13"
    real = entries["/usr/lib/x86_64-linux-gnu/libz.so.1.2.13"]
    assert real.kind == "file" and real.size == 4 and real.mtime <= 1_000
    assert entries["/usr"].kind == "dir"
    assert not any("/lib/x86_64-linux-gnu/" in p and not p.startswith("/usr/") for p in entries)


def test_dotdot_is_resolved_not_kept(tmp_path: Path) -> None:
    _tree(tmp_path)
    files = FileSet(Source.rootfs(tmp_path), epoch=1_000)
    assert files.add_path("/opt/app/pkg/_core/../libs/libx.so", "site-packages", "library:x")
    paths = {p.entry.path for p in files.finish()}
    assert "/opt/app/pkg/libs/libx.so" in paths
    assert not any("/." in p for p in paths)


def test_parent_modes_are_kept(tmp_path: Path) -> None:
    _tree(tmp_path)
    files = FileSet(Source.rootfs(tmp_path), epoch=1_000)
    files.add_path("/secret/python", "interpreter", "interpreter")
    entries = {p.entry.path: p.entry for p in files.finish()}
    assert entries["/secret"].mode == 0o700


def test_missing_path_adds_nothing(tmp_path: Path) -> None:
    _tree(tmp_path)
    files = FileSet(Source.rootfs(tmp_path), epoch=1_000)
    assert not files.add_path("/usr/share/zoneinfo/Nowhere", "base", "generated")
    assert files.finish() == ()


def test_symlink_escaping_the_root_is_refused(tmp_path: Path) -> None:
    _tree(tmp_path)
    os.symlink("../../../../../etc/passwd", tmp_path / "usr/lib/escape")
    files = FileSet(Source.rootfs(tmp_path), epoch=1_000)
    with pytest.raises(PackError, match="escapes the source root"):
        files.add_path("/usr/lib/escape", "base", "include")


def test_hardlinks_within_a_group(tmp_path: Path) -> None:
    _tree(tmp_path)
    os.link(tmp_path / "opt/app/pkg/libs/libx.so", tmp_path / "opt/app/pkg/libs/liby.so")
    files = FileSet(Source.rootfs(tmp_path), epoch=1_000)
    files.add_path("/opt/app", "app", "app", walk=True)
    entries = {p.entry.path: p.entry for p in files.finish()}
    assert entries["/opt/app/pkg/libs/libx.so"].kind == "file"
    link = entries["/opt/app/pkg/libs/liby.so"]
    assert link.kind == "hardlink" and link.linkname == "/opt/app/pkg/libs/libx.so"
