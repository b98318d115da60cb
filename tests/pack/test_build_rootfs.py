"""The rootfs writer on real files: modes, links, mtimes, and no way out of the tree."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest

from envpack.errors import PackError
from envpack.oci.tarlayer import TarEntry
from envpack.pack.rootfs import write_tree


def _file(path: str, data: bytes, mode: int = 0o644, mtime: int = 1000) -> TarEntry:
    return TarEntry(path=path, kind="file", mode=mode, size=len(data), mtime=mtime,
                    open=lambda: io.BytesIO(data))  # fmt: skip


def test_tree_holds_every_entry_with_its_mode_and_mtime(tmp_path: Path) -> None:
    dest = tmp_path / "root"
    layers = [
        [
            TarEntry(path="/tmp", kind="dir", mode=0o1777, mtime=5),
            TarEntry(path="/usr", kind="dir", mode=0o755, mtime=6),
            _file("/usr/bin/python3", b"ELF...", 0o755),
            TarEntry(
                path="/usr/bin/python3.11", kind="hardlink", mode=0o755, linkname="/usr/bin/python3"
            ),
            TarEntry(path="/lib", kind="symlink", mode=0o777, linkname="usr/lib", mtime=7),
        ],
        [
            _file("/usr/lib/libz.so.1", b"z" * 5000, mtime=9),
            _file("/usr/bin/sudo", b"s", 0o4755),
            _file("/srv/app/app.py", b"print(1)\n", mtime=1_700_000_000),
        ],
    ]
    written: list[int] = []
    write_tree(layers, dest, progress=written.append)
    assert sum(written) == 6 + 5000 + 1 + 9
    assert stat.S_IMODE(os.lstat(dest / "tmp").st_mode) == 0o1777
    assert stat.S_IMODE(os.lstat(dest / "usr/bin/sudo").st_mode) == 0o4755
    assert stat.S_IMODE(os.lstat(dest / "usr/bin/python3.11").st_mode) == 0o755
    assert os.lstat(dest / "usr/bin/python3").st_ino == os.lstat(dest / "usr/bin/python3.11").st_ino
    assert os.readlink(dest / "lib") == "usr/lib"
    assert (dest / "usr/lib/libz.so.1").read_bytes() == b"z" * 5000
    assert os.lstat(dest / "srv/app/app.py").st_mtime == 1_700_000_000
    assert os.lstat(dest / "tmp").st_mtime == 5
    # /usr is also an implied parent in the second layer, whose entry wins (as in overlayfs).
    assert os.lstat(dest / "usr").st_mtime == 1000
    assert os.lstat(dest / "lib").st_mtime == 7
    # Mount points for bwrap or chroot on a read-only tree.
    assert stat.S_IMODE(os.lstat(dest / "proc").st_mode) == 0o555
    assert os.listdir(dest / "dev") == []
    # A parent no entry names is a 0755 folder, as a tar layer makes it.
    assert stat.S_IMODE(os.lstat(dest / "srv").st_mode) == 0o755
    if os.geteuid() == 0:
        assert os.lstat(dest / "usr/bin/sudo").st_uid == 0


def test_a_path_through_a_symlink_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    link = TarEntry(path="/lib", kind="symlink", mode=0o777, linkname=str(outside))
    with pytest.raises(PackError, match="parent /lib is a symlink"):
        write_tree([[link, _file("/lib/evil.so", b"x")]], tmp_path / "one")
    # In another layer the writer itself notices: it only writes into folders it made.
    with pytest.raises(PackError, match="/lib is a folder in one layer, not in another"):
        write_tree([[link], [_file("/lib/evil.so", b"x")]], tmp_path / "two")
    assert os.listdir(outside) == []


@pytest.mark.parametrize("path", ["/../etc/passwd", "/a/./b", "relative"])
def test_a_path_that_is_not_plain_is_refused(tmp_path: Path, path: str) -> None:
    with pytest.raises(PackError, match="not a normalised absolute image path"):
        write_tree([[_file(path, b"x")]], tmp_path / "root")


def test_a_path_twice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PackError, match="twice"):
        write_tree([[_file("/a", b"1")], [_file("/a", b"2")]], tmp_path / "root")


def test_a_short_read_is_refused(tmp_path: Path) -> None:
    entry = TarEntry(path="/a", kind="file", mode=0o644, size=10, open=lambda: io.BytesIO(b"x"))
    with pytest.raises(PackError, match="1 bytes read, 10 expected"):
        write_tree([[entry]], tmp_path / "root")
