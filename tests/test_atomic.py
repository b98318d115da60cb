"""Atomic writes: old content or new, never half, and a clear error on a full disk."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from envpack._atomic import write_atomic
from envpack.errors import EnvpackError


def test_replaces_content_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_text("old")
    write_atomic(target, b"new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_device_target_is_written_in_place_not_replaced() -> None:
    # Renaming over /dev/null would turn the device into a regular file for everyone.
    write_atomic(Path("/dev/null"), b"discarded")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EnvpackError, match=r"cannot write .*: No such file or directory"):
        write_atomic(tmp_path / "nope" / "out.json", b"x")


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KiB tmpfs, so a write runs out of space for real."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    mountpoint = tmp_path / "tiny"
    mountpoint.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"this machine does not allow mounting a tmpfs: {result.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=False)


def test_full_disk_keeps_the_old_file(tiny_disk: Path) -> None:
    target = tiny_disk / "manifest.json"
    target.write_text("previous manifest")
    with pytest.raises(EnvpackError, match="No space left on device"):
        write_atomic(target, b"x" * (1024 * 1024))
    assert target.read_text() == "previous manifest"
    assert [p.name for p in tiny_disk.iterdir()] == ["manifest.json"]


def test_replaced_file_keeps_its_mode(tmp_path: Path) -> None:
    for mode in (0o600, 0o640, 0o755):
        target = tmp_path / f"m{mode:o}.json"
        target.write_text("old")
        target.chmod(mode)
        write_atomic(target, b"new")
        assert target.read_text() == "new"
        assert stat.S_IMODE(target.stat().st_mode) == mode


def test_new_file_honours_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        write_atomic(tmp_path / "new.json", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.json").stat().st_mode) == 0o640


def test_an_explicit_mode_wins(tmp_path: Path) -> None:
    target = tmp_path / "key"
    target.write_text("old")
    target.chmod(0o644)
    write_atomic(target, b"secret", mode=0o600)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_root_gives_a_replaced_file_back_to_its_owner(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root can create a file owned by another user")
    target = tmp_path / "theirs.json"
    target.write_text("old")
    os.chown(target, 4321, 4322)
    target.chmod(0o600)
    write_atomic(target, b"new")
    info = target.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (4321, 4322, 0o600)
