"""The tree bwrap runs an image from: the capture's view written out, and nothing else.

Crafted hostile layers (those of tests/snapshot/test_image_hostile.py: names climbing out,
absolute names, writes through symlinks, devices, FIFOs, hardlinks outside, a sparse file)
plus a setuid file and a whiteout; the written tree is walked and compared with the view.
"""

from __future__ import annotations

import os
import stat
import tarfile
from pathlib import Path

from envpack.snapshot.imagesource import open_image
from envpack.verify.unpack import make_removable, unpack_rootfs
from image_helpers import layer_bytes, member, write_docker_archive, write_oci_layout

DIR, SYM, LNK = tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE
BIG = b"x" * (300 * 1024)  # a member of its own file once inflated: linked, not copied


def _layers(canary: Path) -> list[bytes]:
    first = [
        member("etc", DIR),
        member("etc/os-release", data=b"ID=debian\n"),
        member("etc/gone", data=b"removed by the next layer\n"),
        member("../../../../../../" + str(canary).lstrip("/") + "/climbed.txt", data=b"x"),
        member(str(canary) + "/absolute.txt", data=b"abs"),
        member("evil", SYM, link=str(canary)),
        member("evil/through-link.txt", data=b"through"),
        member("hard-out", LNK, link="../../../../etc/passwd"),
        member("dev", DIR),
        member("dev/sda", tarfile.BLKTYPE),
        member("etc/fifo", tarfile.FIFOTYPE),
        member("usr", DIR),
        member("usr/bin", DIR),
        member("usr/bin/su", data=b"#!/bin/sh\n", mode=0o4755),
        member("usr/big", data=BIG),
        member("usr/big-again", LNK, link="usr/big"),
        member("locked", DIR, mode=0o500),
        member("locked/inside", data=b"kept\n", mode=0o400),
    ]
    second = [member("etc/.wh.gone")]
    return [layer_bytes(first), layer_bytes(second)]


def _tree(root: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder, name)
            mode = path.lstat().st_mode
            kind = (
                "dir" if stat.S_ISDIR(mode)
                else "symlink" if stat.S_ISLNK(mode)
                else "file" if stat.S_ISREG(mode)
                else "other"
            )  # fmt: skip
            out["/" + str(path.relative_to(root))] = kind
    return out


def test_the_written_tree_is_the_view_and_stays_inside(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "keep.txt").write_text("untouched\n")
    work = tmp_path / "work"
    work.mkdir()
    for form in ("oci", "docker-archive"):  # inflated (gzip) and read in place (tar)
        layers = _layers(canary)
        if form == "oci":
            ref = f"oci:{write_oci_layout(tmp_path / 'h.oci', layers)}"
        else:
            ref = str(write_docker_archive(tmp_path / "h.tar", layers))
        with open_image(ref, workdir=work) as image:
            rootfs = image.temp / "rootfs"
            notes = unpack_rootfs(image, rootfs)
            tree = _tree(rootfs)
            inside = str(canary).lstrip("/")
            assert tree == {
                "/etc": "dir", "/etc/os-release": "file", "/dev": "dir",
                "/evil": "symlink",
                # Absolute names and a write through a symlink land inside the tree.
                f"/{inside.split('/')[0]}": "dir",
                **{f"/{'/'.join(inside.split('/')[:n])}": "dir"
                   for n in range(2, inside.count('/') + 2)},
                f"/{inside}/absolute.txt": "file", f"/{inside}/through-link.txt": "file",
                "/usr": "dir", "/usr/bin": "dir", "/usr/bin/su": "file", "/usr/big": "file",
                "/usr/big-again": "file", "/locked": "dir", "/locked/inside": "file",
                "/proc": "dir",
            }, form  # fmt: skip
            assert os.readlink(rootfs / "evil") == str(canary)  # the image's text, not followed
            assert (rootfs / "etc/os-release").read_bytes() == b"ID=debian\n"
            assert (rootfs / "usr/big").read_bytes() == BIG
            assert (rootfs / "usr/big").stat().st_ino == (rootfs / "usr/big-again").stat().st_ino
            assert stat.S_IMODE((rootfs / "usr/bin/su").stat().st_mode) == 0o755  # no setuid
            assert stat.S_IMODE((rootfs / "locked").stat().st_mode) == 0o500
            assert (rootfs / "locked/inside").read_bytes() == b"kept\n"
            assert notes == [
                "interpreters: not created in the tree bwrap runs: 1 FIFOs, 1 device nodes "
                "of the image"
            ]
            # Removable by a user without root: the read-only folder is writable again.
            make_removable(rootfs)
            assert stat.S_IMODE((rootfs / "locked").stat().st_mode) == 0o700
        assert sorted(p.name for p in canary.iterdir()) == ["keep.txt"]
        assert list(work.iterdir()) == []  # removed with the image's temporary folder
