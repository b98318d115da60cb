"""What a capture cannot read is an issue in the manifest, never silently dropped.

Real files through the real CLI: a package database past the read limit (a sparse file),
a FIFO, a device node and a dangling symlink on PATH, an unreadable site-packages folder
and an unreadable folder under a ``--config`` glob. We run as root, which reads a mode-000
folder anyway (CAP_DAC_OVERRIDE): the unreadable cases drop CAP_DAC_OVERRIDE and
CAP_DAC_READ_SEARCH from the capture process's bounding set before it starts.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from envpack.snapshot.source import _DEFAULT_READ_LIMIT
from realenv import FIXTURES

PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2


def _drop_dac() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _capture(root: Path, *args: str, drop_dac: bool = False) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "envpack", "capture", "-q", "--root", str(root), *args],
        capture_output=True, text=True, timeout=120, check=False,
        preexec_fn=_drop_dac if drop_dac else None,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert isinstance(document, dict)
    return document


def _reasons(document: dict[str, Any], probe: str, path: str) -> list[str]:
    return [i["reason"] for i in document["issues"] if (i["probe"], i["path"]) == (probe, path)]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    base = tmp_path / "root"
    shutil.copytree(FIXTURES / "rootfs/debian-py39-dpkg", base, symlinks=True)
    return base


def _sparse(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as stream:
        stream.write(b"Package: first\nStatus: install ok installed\nVersion: 1\n\n")
        stream.truncate(size)


@pytest.mark.slow
@pytest.mark.parametrize("database", ["/var/lib/dpkg/status", "/lib/apk/db/installed"])
def test_a_database_past_the_read_limit_is_an_issue(root: Path, database: str) -> None:
    _sparse(root / database.lstrip("/"), _DEFAULT_READ_LIMIT + 1)
    document = _capture(root, "--only", "system_packages")
    reasons = _reasons(document, "system_packages", database)
    assert reasons == [
        f"{database}: larger than {_DEFAULT_READ_LIMIT} bytes; not read (the limit is there "
        "so that a hostile tree cannot exhaust memory)"
    ]
    assert "first" not in document["system_packages"]  # not half a database either


@pytest.mark.slow
def test_special_files_on_path_are_issues(root: Path) -> None:
    bindir = root / "usr/local/bin"
    bindir.mkdir(parents=True)
    os.mkfifo(bindir / "fifo")
    os.mknod(bindir / "tty", 0o755 | stat.S_IFCHR, os.makedev(5, 0))
    (bindir / "dangling").symlink_to("/usr/bin/nowhere")
    (bindir / "folder").mkdir()
    (bindir / "notes.txt").write_text("not a command\n")
    document = _capture(root, "--only", "binaries")
    expected = {
        "fifo": "is a fifo, not a regular file; not a command (never opened)",
        "tty": "is a char-device, not a regular file; not a command (never opened)",
        "dangling": "a symlink to nothing in the source; not a command",
    }
    for name, reason in expected.items():
        path = f"/usr/local/bin/{name}"
        assert _reasons(document, "binaries", path) == [f"{path}: {reason}"]
    # A folder or a non-executable file is not a command for the shell either: no issue.
    assert not [i for i in document["issues"] if i["path"].endswith(("folder", "notes.txt"))]
    assert not {"fifo", "tty", "dangling"} & set(document["binaries"])


@pytest.mark.slow
def test_an_unreadable_site_packages_folder_is_an_issue(root: Path) -> None:
    site = root / "usr/lib/python3/dist-packages"
    (site / "ok-1.0.dist-info").mkdir(parents=True)
    (site / "ok-1.0.dist-info/METADATA").write_text("Name: ok\nVersion: 1.0\n")
    site.chmod(0o000)
    try:
        document = _capture(root, "--only", "python_packages", drop_dac=True)
    finally:
        site.chmod(0o755)
    assert _reasons(document, "python_packages", "/usr/lib/python3/dist-packages") == [
        "/usr/lib/python3/dist-packages: Permission denied"
    ]


@pytest.mark.slow
def test_an_unreadable_folder_in_a_config_glob_is_an_issue_and_the_rest_is_read(
    root: Path,
) -> None:
    app = root / "etc/app"
    (app / "open").mkdir(parents=True)
    (app / "open/a.ini").write_text("[a]\nk = 1\n")
    (app / "locked").mkdir()
    (app / "locked/b.ini").write_text("[b]\nk = 2\n")
    (app / "locked").chmod(0o000)
    try:
        document = _capture(
            root, "--only", "config_files", "--config", "/etc/app/**/*.ini", drop_dac=True
        )
    finally:
        (app / "locked").chmod(0o755)
    assert _reasons(document, "config_files", "/etc/app/**/*.ini") == [
        "/etc/app/locked: Permission denied"
    ]
    assert document["config_files"]["/etc/app/open/a.ini"]["keys"] == {"a.k": "1"}
