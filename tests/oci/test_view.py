"""Layers applied in order: whiteouts, opaque folders, replacements, links, resolution.

Each image is a real ``docker save``-format tar or OCI layout written from layer tars
made with Python's tarfile, read through :func:`open_image` as a capture would.
"""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import pytest

from envpack.oci.view import normalise
from envpack.snapshot.imagesource import ImageError, ImageSource, open_image
from envpack.snapshot.source import NotRegularFile, SourceReadError
from image_helpers import layer_bytes, member, write_docker_archive, write_oci_layout

DIR, FILE, SYM, LNK = tarfile.DIRTYPE, tarfile.REGTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE

LOWER = [
    member("a", DIR),
    member("a/x", data=b"x1"),
    member("a/y", data=b"y1"),
    member("b", DIR),
    member("b/old", data=b"old"),
    member("b/sub", DIR),
    member("b/sub/deep", data=b"deep"),
    member("c", DIR),
    member("c/inner", data=b"inner"),
]


def _open(tmp_path: Path, *layers: list[tuple[tarfile.TarInfo, bytes]]) -> ImageSource:
    archive = write_docker_archive(tmp_path / "image.tar", [layer_bytes(layer) for layer in layers])
    return open_image(f"docker-archive:{archive}", workdir=tmp_path)


def test_whiteouts_and_opaque_folders_hide_the_lower_layers(tmp_path: Path) -> None:
    upper = [
        member("a/.wh.x"),
        member("b/new", data=b"new"),  # before the opaque marker: still kept (same layer)
        member("b/.wh..wh..opq"),
        member("c", FILE, b"c is a file now"),
    ]
    with _open(tmp_path, LOWER, upper) as source:
        assert source.listdir("/a") == ["y"]
        assert source.listdir("/b") == ["new"]
        assert source.lstat("/b/sub/deep") is None
        assert source.read_bytes("/b/new") == b"new"
        assert source.read_bytes("/c") == b"c is a file now"
        assert source.lstat("/c/inner") is None
        assert source.read_bytes("/a/y") == b"y1"
        assert source.listdir("/") == ["a", "b", "c"]


def test_a_later_layer_replaces_a_file_and_a_folder_keeps_its_children(tmp_path: Path) -> None:
    upper = [member("a", DIR, mode=0o700), member("a/y", data=b"y2", mode=0o600)]
    with _open(tmp_path, LOWER, upper) as source:
        st = source.lstat("/a")
        assert st is not None
        assert st.st_mode & 0o7777 == 0o700
        assert source.listdir("/a") == ["x", "y"]
        assert source.read_bytes("/a/y") == b"y2"
        y = source.stat("/a/y")
        assert y is not None
        assert (y.st_mode & 0o7777, y.st_size, y.st_mtime) == (0o600, 2, 1_600_000_000)


def test_symlinks_resolve_inside_the_image(tmp_path: Path) -> None:
    layer = [
        *LOWER,
        member("etc", DIR),
        member("etc/abs", SYM, link="/a/x"),
        member("etc/rel", SYM, link="../a/y"),
        member("etc/climb", SYM, link="../../../../a/x"),
        member("etc/dir", SYM, link="/b"),
        member("loop1", SYM, link="loop2"),
        member("loop2", SYM, link="loop1"),
    ]
    with _open(tmp_path, layer) as source:
        assert source.read_bytes("/etc/abs") == b"x1"
        assert source.read_bytes("/etc/rel") == b"y1"
        assert source.read_bytes("/etc/climb") == b"x1"
        assert source.resolve("/etc/climb").escaped
        assert source.read_bytes("/etc/dir/old") == b"old"
        assert source.readlink("/etc/abs") == "/a/x"
        assert source.is_dir("/etc/dir")
        entries = {entry.name: entry for entry in source.scandir("/etc")}
        assert entries["dir"].is_symlink() and entries["dir"].is_dir()
        assert not entries["dir"].is_dir(follow_symlinks=False)
        assert entries["abs"].is_file()
        with pytest.raises(SourceReadError, match="too many levels"):
            source.read_bytes("/loop1")
        assert source.exists("/loop1") is False


def test_hardlinks_share_the_content_of_their_target(tmp_path: Path) -> None:
    layer = [*LOWER, member("a/hard", LNK, link="a/x")]
    upper = [member("b/hard2", LNK, link="/a/y")]
    with _open(tmp_path, layer, upper) as source:
        assert source.read_bytes("/a/hard") == b"x1"
        assert source.read_bytes("/b/hard2") == b"y1"
        assert source.stat("/a/hard").st_ino == source.stat("/a/x").st_ino  # type: ignore[union-attr]


def test_a_file_is_read_in_place_and_copied_out_only_for_a_descriptor(tmp_path: Path) -> None:
    with _open(tmp_path, LOWER) as source:
        temp = source.temp
        before = {p.name for p in temp.iterdir()}
        assert source.read_bytes("/a/x") == b"x1"  # read where it lies in the layer
        content, st = source.open_bytes("/a/y")
        with content:
            assert content.pread(10, 0) == b"y1" and content.length() == st.st_size == 2
            assert content.pread(10, 1) == b"1" and content.pread(10, 2) == b""
        assert {p.name for p in temp.iterdir()} == before  # nothing copied out
        for _ in range(2):
            fd, _ = source.open_fd("/a/x")
            try:
                assert os.read(fd, 10) == b"x1"
            finally:
                os.close(fd)
        made = {p.name for p in temp.iterdir()} - before
        assert len(made) == 1  # one copy, of the one file opened as a descriptor
    assert not temp.exists()  # closing removed envpack's temporary folder


def test_an_oci_layout_with_gzip_layers_reads_the_same(tmp_path: Path) -> None:
    upper = [member("a/.wh.x"), member("b/.wh..wh..opq"), member("b/n", data=b"n")]
    layout = write_oci_layout(tmp_path / "layout", [layer_bytes(LOWER), layer_bytes(upper)])
    with open_image(f"oci:{layout}:latest", workdir=tmp_path) as source:
        assert source.listdir("/a") == ["y"]
        assert source.listdir("/b") == ["n"]
        assert source.read_bytes("/c/inner") == b"inner"
    with open_image(str(layout), workdir=tmp_path) as source:  # a bare path: detected
        assert source.read_bytes("/b/n") == b"n"
    with pytest.raises(ImageError, match="no image tagged 'nope'"):
        open_image(f"oci:{layout}:nope", workdir=tmp_path)


def test_a_gzip_layer_that_does_not_match_its_digest_is_refused(tmp_path: Path) -> None:
    layout = write_oci_layout(tmp_path / "layout", [layer_bytes(LOWER)])
    blobs = sorted((layout / "blobs/sha256").iterdir(), key=lambda p: p.stat().st_size)
    layer_blob = next(p for p in blobs if p.read_bytes()[:2] == b"\x1f\x8b")
    tampered = bytearray(layer_blob.read_bytes())
    tampered[4] ^= 0xFF  # the gzip header's mtime: still a valid gzip of the same size
    layer_blob.write_bytes(bytes(tampered))
    with pytest.raises(ImageError, match="does not match its digest"):
        open_image(f"oci:{layout}", workdir=tmp_path)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("envpack-image-")] == []


def test_devices_and_fifos_are_never_opened(tmp_path: Path) -> None:
    layer = [
        member("dev", DIR),
        member("dev/null", tarfile.CHRTYPE),
        member("dev/sda", tarfile.BLKTYPE),
        member("fifo", tarfile.FIFOTYPE),
    ]
    with _open(tmp_path, layer) as source:
        for path, kind in (("/dev/null", "char-device"), ("/dev/sda", "block-device")):
            with pytest.raises(NotRegularFile, match=kind):
                source.open_fd(path)
        with pytest.raises(NotRegularFile, match="fifo"):
            source.read_bytes("/fifo")
        reasons = [reason for _, reason in source.load_issues()]
        assert sum("never created or opened" in r for r in reasons) == 3


def test_normalise() -> None:
    assert normalise("./a//b/./c") == ("/a/b/c", False)
    assert normalise("/etc/passwd") == ("/etc/passwd", True)
    assert normalise("a/../b") == ("/b", False)
    assert normalise("../x")[0] is None
    assert normalise("a/../../x")[0] is None


def test_a_big_file_of_a_gzip_layer_is_read_from_its_own_file_without_a_copy(
    tmp_path: Path,
) -> None:
    big = bytes(range(256)) * 2048  # 512 KiB: past OWN_FILE
    layer = [*LOWER, member("big.bin", data=big), member("small", data=b"s")]
    upper = [member("a/.wh.y")]
    layout = write_oci_layout(tmp_path / "layout", [layer_bytes(layer), layer_bytes(upper)])
    with open_image(f"oci:{layout}", workdir=tmp_path) as source:
        made = {p.name for p in source.temp.iterdir()}
        assert source.read_bytes("/big.bin") == big
        assert source.read_bytes("/small") == b"s"
        assert source.listdir("/a") == ["x"]
        for path in ("/big.bin", "/small"):
            fd, _ = source.open_fd(path)
            os.close(fd)
        copies = {p.name for p in source.temp.iterdir()} - made
        assert len(copies) == 1  # the small file only: the big one is opened where it is
        fd, st = source.open_fd("/big.bin")
        try:
            assert os.fstat(fd).st_size == st.st_size == len(big)
        finally:
            os.close(fd)


def test_a_lying_size_in_a_gzip_layer_refuses_the_image(tmp_path: Path) -> None:
    layer = layer_bytes([member("liar", data=b"short", size=10 * 1024 * 1024)])
    layout = write_oci_layout(tmp_path / "layout", [layer])
    with pytest.raises(ImageError, match="past the end of the layer"):
        open_image(f"oci:{layout}", workdir=tmp_path)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("envpack-image-")]


def test_a_truncated_gzip_layer_refuses_the_image(tmp_path: Path) -> None:
    layout = write_oci_layout(tmp_path / "layout", [layer_bytes(LOWER)])
    index = json.loads((layout / "index.json").read_text())
    manifest_blob = layout / "blobs/sha256" / index["manifests"][0]["digest"][7:]
    manifest = json.loads(manifest_blob.read_text())
    layer = manifest["layers"][0]
    blob = layout / "blobs/sha256" / layer["digest"][7:]
    cut = blob.read_bytes()[: layer["size"] // 2]
    blob.unlink()
    blob.write_bytes(cut)
    with pytest.raises(ImageError, match=r"is not \d+ bytes"):
        open_image(f"oci:{layout}", workdir=tmp_path)
