"""The image's package database keeps the source's paragraphs verbatim, only the owners."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from envpack.pack.dpkgdb import filter_apk_installed, filter_dpkg_status

_STATUS = Path("/var/lib/dpkg/status")


def test_filtered_status_is_read_by_dpkg_query(tmp_path: Path) -> None:
    if not _STATUS.exists() or shutil.which("dpkg-query") is None:
        pytest.skip("no dpkg database on this host")
    text = filter_dpkg_status(_STATUS.read_text(), {"libc6", "libssl3"})
    (tmp_path / "status").write_text(text)
    out = subprocess.run(
        ["dpkg-query", f"--admindir={tmp_path}", "-W", "-f", "${Package} ${Version}\\n"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    names = sorted(line.split()[0] for line in out if line)
    assert names == ["libc6", "libssl3"]
    original = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package} ${Version}\\n", "libc6", "libssl3"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    assert sorted(line for line in out if line) == sorted(line for line in original if line)
    assert text.split("\n\n")[0] in _STATUS.read_text()  # verbatim


def test_not_installed_paragraphs_are_dropped() -> None:
    text = (
        "Package: a\nStatus: install ok installed\nVersion: 1\n\n"
        "Package: b\nStatus: deinstall ok config-files\nVersion: 2\n\n"
        "Package: c\nStatus: install ok triggers-pending\nVersion: 3\n"
    )
    # c's files are on disk (the capture records it with its state): the image lists it.
    assert filter_dpkg_status(text, {"a", "b", "c"}) == (
        "Package: a\nStatus: install ok installed\nVersion: 1\n\n"
        "Package: c\nStatus: install ok triggers-pending\nVersion: 3\n\n"
    )


def test_apk_records() -> None:
    text = "P:musl\nV:1.2.4-r2\nF:lib\nR:libc.musl-x86_64.so.1\n\nP:busybox\nV:1.36\n"
    assert filter_apk_installed(text, {"musl"}) == (
        "P:musl\nV:1.2.4-r2\nF:lib\nR:libc.musl-x86_64.so.1\n\n"
    )
