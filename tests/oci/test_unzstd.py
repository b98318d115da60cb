"""zstd layers (``…layer.v1.tar+zstd``): read like gzip ones, hostile streams refused.

Crafted images (zstd frames made with the zstandard library, which ``zstd(1)`` shares its
C code with); the real-tool images (skopeo's zstd conversion) are read in
tests/snapshot/test_image_capture.py and tests/verify/test_verify_fallbacks.py.
"""

from __future__ import annotations

import struct
import tarfile
from pathlib import Path

import pytest

from envpack.oci.layertar import OWN_FILE, read_layer
from envpack.oci.reader import open_image_blobs
from envpack.snapshot.imagesource import ImageError, open_image
from image_helpers import layer_bytes, member, write_docker_archive, write_oci_layout

BIG = bytes(range(256)) * (OWN_FILE // 256 + 7)


def _layer() -> bytes:
    return layer_bytes(
        [
            member("etc", tarfile.DIRTYPE),
            member("etc/os-release", data=b'ID=debian\nVERSION_ID="12"\n'),
            member("big.bin", data=BIG),
            member("link", tarfile.SYMTYPE, link="/etc/os-release"),
        ]
    )


@pytest.mark.parametrize("form", ["oci", "docker-archive"])
def test_a_zstd_layer_reads_like_its_tar(tmp_path: Path, form: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    if form == "oci":
        ref = f"oci:{write_oci_layout(tmp_path / 'z.oci', [_layer()], zstd=True)}"
    else:
        ref = str(write_docker_archive(tmp_path / "z.tar", [_layer()], zstd=True))
    with open_image(ref, workdir=work) as source:
        assert source.read_bytes("/etc/os-release", whole=True) == b'ID=debian\nVERSION_ID="12"\n'
        assert source.read_bytes("/big.bin", whole=True) == BIG
        assert source.readlink("/link") == "/etc/os-release"
        assert source.load_issues() == []
    assert list(work.iterdir()) == []


def test_concatenated_frames_are_one_stream(tmp_path: Path) -> None:
    import zstandard

    data = _layer()
    half = len(data) // 2
    compress = zstandard.ZstdCompressor().compress
    layout = write_oci_layout(tmp_path / "z.oci", [data], zstd=True)
    blobs = open_image_blobs(f"oci:{layout}", tmp_path)
    # The same tar as two frames, in a blob of its own (digest unknown: diff ID checked).
    two = tmp_path / "two.zst"
    two.write_bytes(compress(data[:half]) + compress(data[half:]))
    from dataclasses import replace

    from envpack.oci.reader import BlobRange

    layer = replace(blobs.layers[0], blob=BlobRange(two, 0, two.stat().st_size), digest=None)
    read = read_layer(layer, tmp_path, 1)
    assert [m.name for m in read.members] == ["etc", "etc/os-release", "big.bin", "link"]


def test_a_zstd_bomb_stops_at_the_limit(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    zeros = layer_bytes([member("zeros", data=bytes(64 * 1024 * 1024))])
    layout = write_oci_layout(tmp_path / "bomb", [zeros], zstd=True)
    assert sum(f.stat().st_size for f in (layout / "blobs/sha256").iterdir()) < 1024 * 1024
    with pytest.raises(ImageError, match="refused as a decompression bomb"):
        open_image(f"oci:{layout}", workdir=work, inflate_limit=8 * 1024 * 1024)
    assert list(work.iterdir()) == []


def test_a_cut_stream_without_a_blob_digest_fails_its_diff_id(tmp_path: Path) -> None:
    archive = write_docker_archive(tmp_path / "z.tar", [_layer()], zstd=True)
    # Cut the layer file inside the archive: a docker save tar names no blob digest.
    cut = tmp_path / "cut.tar"
    with tarfile.open(archive) as src, tarfile.open(cut, "w") as out:
        for info in src.getmembers():
            data = src.extractfile(info).read() if info.isreg() else b""  # type: ignore[union-attr]
            if info.name.endswith("layer.tar"):
                data = data[: len(data) // 2]
            info.size = len(data)
            import io

            out.addfile(info, io.BytesIO(data))
    with pytest.raises(ImageError, match="does not match its diff ID"):
        open_image(str(cut), workdir=tmp_path)


def test_a_frame_asking_for_a_huge_window_is_refused(tmp_path: Path) -> None:
    payload = _layer()[:1024]
    # A frame header by hand (RFC 8878 3.1.1): no content size, window 2^31; one raw block.
    frame = struct.pack("<I", 0xFD2FB528) + bytes([0x00, (31 - 10) << 3])
    frame += (1 | (len(payload) << 3)).to_bytes(3, "little") + payload
    archive = write_docker_archive(tmp_path / "w.tar", [b""], zstd=True)
    with tarfile.open(archive) as src, tarfile.open(tmp_path / "window.tar", "w") as out:
        import io

        for info in src.getmembers():
            data = src.extractfile(info).read() if info.isreg() else b""  # type: ignore[union-attr]
            if info.name.endswith("layer.tar"):
                data = frame
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    with pytest.raises(ImageError, match="not a valid zstd stream"):
        open_image(str(tmp_path / "window.tar"), workdir=tmp_path)


def test_capture_of_a_zstd_image_via_the_cli(tmp_path: Path) -> None:
    import subprocess
    import sys

    layout = write_oci_layout(tmp_path / "z.oci", [_layer()], zstd=True)
    done = subprocess.run(
        [sys.executable, "-m", "envpack", "capture", "-q", "--image", f"oci:{layout}",
         "--only", "os", "-o", str(tmp_path / "m.json")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert '"debian"' in (tmp_path / "m.json").read_text()
