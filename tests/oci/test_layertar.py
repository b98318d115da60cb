"""Reading one layer's tar: gzip streams decompressed by ISA-L, in bounded steps.

The layers are real gzip streams (Python's gzip, GNU gzip) of tars written by tarfile,
read through :func:`envpack.oci.layertar.read_layer` as :func:`open_image` reads them.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from envpack.oci import layertar
from envpack.oci.digest import Digest
from envpack.oci.model import InvalidImage
from envpack.oci.reader import BlobRange, LayerBlob
from envpack.oci.tarheaders import simple_headers
from envpack.snapshot.imagesource import open_image
from image_helpers import layer_bytes, member, write_docker_archive


def _blob(path: Path, data: bytes, *, named: bool = True) -> LayerBlob:
    path.write_bytes(data)
    digest = Digest("sha256", hashlib.sha256(data).hexdigest()) if named else None
    return LayerBlob(BlobRange(path, 0, len(data)), digest, None)


def _contents(read: layertar.LayerRead) -> dict[str, bytes]:
    out = {}
    for entry in read.members:
        if entry.kind == "file":
            with open(read.files[entry.source], "rb") as stream:
                stream.seek(entry.offset if entry.source not in read.whole else 0)
                out[entry.name] = stream.read(entry.size)
    return out


def test_gzip_layers_are_decompressed_by_isal() -> None:
    from isal import isal_zlib

    decompressor = layertar._gunzip()
    assert type(decompressor) is type(isal_zlib.decompressobj(31))


@pytest.mark.parametrize("cut", [1024, 10240, 20480])
def test_a_gzip_member_ending_on_a_read_boundary_is_followed_by_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cut: int
) -> None:
    # A tar gzipped as two members (as `cat a.gz b.gz` makes) whose first one ends exactly
    # where a read step ends: the reader used to drop the step that followed.
    payload = {f"f{i}": os.urandom(300) * 3 for i in range(40)}
    tar = layer_bytes([member(name, data=data) for name, data in payload.items()])
    first = gzip.compress(tar[:cut], mtime=0)
    monkeypatch.setattr(layertar, "_CHUNK", len(first))
    blob = _blob(tmp_path / "blob", first + gzip.compress(tar[cut:], mtime=0))
    read = layertar.read_layer(blob, tmp_path, 1)
    assert _contents(read) == payload


def test_gnu_gzip_output_with_trailing_zeros_reads_whole(tmp_path: Path) -> None:
    tar = layer_bytes([member("a", data=b"a" * 5000), member("b", data=os.urandom(70_000))])
    gz = subprocess.run(["gzip", "-6", "-n", "-c"], input=tar, capture_output=True, check=True)
    read = layertar.read_layer(_blob(tmp_path / "blob", gz.stdout + bytes(1024)), tmp_path, 1)
    contents = _contents(read)
    assert contents["a"] == b"a" * 5000 and len(contents["b"]) == 70_000


def test_a_cut_gzip_stream_is_refused(tmp_path: Path) -> None:
    tar = layer_bytes([member("b", data=os.urandom(200_000))])
    gz = gzip.compress(tar, mtime=0)
    with pytest.raises(InvalidImage, match="truncated gzip stream"):
        layertar.read_layer(_blob(tmp_path / "blob", gz[: len(gz) // 2], named=False), tmp_path, 1)


# -- the headers of an uncompressed layer: the fast path reads them as tarfile does -------


def _tree(root: Path) -> Path:
    """Long names, non-ASCII names, links, a FIFO, an empty folder, a sub-second mtime."""
    deep = root / "a" / ("d" * 120) / "x"
    deep.mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "ünï cödé").mkdir()
    (root / "ünï cödé" / ("n" * 150)).write_text("x\n")
    (root / "a" / "f").write_text("hi\n")
    (root / "link").symlink_to("../a/f")
    os.link(root / "a" / "f", root / "hard")
    os.mkfifo(root / "fifo")
    (root / "big").write_bytes(os.urandom(100_000))
    os.utime(root / "big", ns=(978_307_200_123_456_789, 978_307_200_123_456_789))
    return root


def _gnu_tars(tmp_path: Path) -> list[Path]:
    tree = _tree(tmp_path / "tree")
    tars = []
    for fmt in ("gnu", "oldgnu", "pax", "posix", "ustar", "v7"):
        target = tmp_path / f"{fmt}.tar"
        # ustar and v7 cannot hold the long names: tar skips them (exit 2), the rest is kept.
        subprocess.run(["tar", f"--format={fmt}", "-cf", str(target), "-C", str(tree), "."],
                       capture_output=True, check=False)  # fmt: skip
        tars.append(target)
    return tars


def _crafted() -> dict[str, bytes]:
    dir_, sym, lnk = tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE
    return {
        "hostile": layer_bytes([
            member("a", dir_), member("a/x", data=b"x1"), member("a/.wh.y"),
            member("b/.wh..wh..opq"), member("/abs", data=b"q"), member("../up", data=b"z"),
            member("l", sym, link="/etc"), member("l/x", data=b"t"),
            member("h", lnk, link="a/x"), member("dev", tarfile.CHRTYPE),
            member("fifo", tarfile.FIFOTYPE), member("dup", data=b"1"),
            member("dup", data=b"2"), member("d/", dir_), member("v7dir/", tarfile.AREGTYPE),
        ]),
        "liar": layer_bytes([member("big", data=b"tiny", size=50 * 1024**3), member("after")]),
        "overlap": layer_bytes([member("big", data=b"short", size=1000), member("after")]),
        "sparse": layer_bytes([member("s", tarfile.GNUTYPE_SPARSE)]),
        "empty": b"",
        "zeros": bytes(1024),
        "not a tar": b"hello" * 300,
        "cut": layer_bytes([member("a", data=b"a" * 600), member("b")])[:1100],
    }  # fmt: skip


def _outcome(read: object) -> object:
    try:
        return list(read)  # type: ignore[call-overload]
    except InvalidImage as err:
        return str(err)


def test_fast_headers_read_every_layer_as_tarfile_does(tmp_path: Path) -> None:
    layers = {path.name: path.read_bytes() for path in _gnu_tars(tmp_path)}
    layers.update(_crafted())
    for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=fmt) as tar:
            for name in ("x" * 99, "y/" * 60 + "z", "ü" * 10):
                info = tarfile.TarInfo(name)
                info.size, info.mtime = 400, 1.5
                with contextlib.suppress(ValueError):  # ustar: a name too long
                    tar.addfile(info, io.BytesIO(b"data" * 100))
        layers[f"python-{fmt}"] = buffer.getvalue()
    fast = 0
    for name, data in layers.items():
        # In place in a bigger file, as a layer lies in a docker save tar.
        path = tmp_path / f"{name}.layer"
        path.write_bytes(b"\xee" * 1536 + data + b"\xff" * 999)
        blob = BlobRange(path, 1536, len(data))
        with open(path, "rb") as stream:
            fast += simple_headers(stream.fileno(), 1536, len(data)) is not None
        ours = _outcome(layertar.read_members(blob, name))
        assert ours == _outcome(layertar.tarfile_members(blob, name)), name
    assert fast >= 8  # pax, posix, ustar, v7, python's pax and ustar, hostile, overlap


def test_a_plain_pax_layer_is_read_without_tarfile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Common pax headers take the fast path (what it saves is measured by
    bench/bench_layer_read.py, not here): tarfile is never asked."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for number in range(300):
            info = tarfile.TarInfo(f"usr/share/doc/pkg{number}/copyright")
            info.size, info.mtime = 700, 1_600_000_000.25  # a pax block for each member
            tar.addfile(info, io.BytesIO(bytes(700)))
    path = tmp_path / "layer.tar"
    path.write_bytes(buffer.getvalue())
    blob = BlobRange(path, 0, path.stat().st_size)

    def refuse(*args: object) -> Any:
        raise AssertionError("the fast path fell back to tarfile")

    monkeypatch.setattr(layertar, "tarfile_members", refuse)
    names = [m.name for m in layertar.read_members(blob, "layer")]
    assert names == [f"usr/share/doc/pkg{n}/copyright" for n in range(300)]


@pytest.mark.parametrize("value", ["nan", "inf", "1e400", "12.75"])
def test_a_pax_mtime_that_is_no_number_reads_as_zero(tmp_path: Path, value: str) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("f")
        info.size, info.pax_headers = 1, {"mtime": value}
        tar.addfile(info, io.BytesIO(b"x"))
    archive = write_docker_archive(tmp_path / "image.tar", [buffer.getvalue()])
    with open_image(f"docker-archive:{archive}", workdir=tmp_path) as source:
        st = source.lstat("/f")
        assert st is not None and st.st_mtime == (12 if value == "12.75" else 0)
