"""Layer blobs: gzip bytes without time or name, digests that match what tools compute."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import struct
import subprocess
import tracemalloc
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import isal
import pytest
from oci_helpers import tree_entries

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer as Buffer

from envpack.errors import PackError
from envpack.oci import media
from envpack.oci.layer import Compressor, build_layer, build_layers
from envpack.oci.tarlayer import TarEntry, write_tar

PYTHON_LIB = Path(os.__file__).parent  # a real tree: the running interpreter's stdlib


def _stdlib_groups() -> list[list[TarEntry]]:
    """Three real groups of files of different sizes from the running Python's stdlib."""
    return [
        tree_entries(PYTHON_LIB / "json", "/usr/lib/python/json"),
        tree_entries(PYTHON_LIB / "email", "/usr/lib/python/email"),
        tree_entries(PYTHON_LIB / "asyncio", "/usr/lib/python/asyncio"),
    ]


@pytest.mark.parametrize(
    ("compressor", "level", "name"),
    [
        ("zlib", 6, f"zlib {zlib.ZLIB_RUNTIME_VERSION} level 6"),
        ("isal", 3, f"isal {isal.__version__} level 3"),
    ],
)
def test_blob_is_a_gzip_without_time_or_name_that_gzip_accepts(
    tmp_path: Path, compressor: Compressor, level: int, name: str
) -> None:
    entries = tree_entries(PYTHON_LIB / "json", "/usr/lib/python/json")
    layer = build_layer(entries, tmp_path, level=level, compressor=compressor)
    blob = layer.path.read_bytes()
    magic, method, flags, mtime, _xfl, _os = struct.unpack("<HBBIBB", blob[:10])
    assert (magic, method) == (0x8B1F, 8)
    assert flags == 0  # no FNAME, no FCOMMENT, no FEXTRA
    assert mtime == 0
    subprocess.run(["gzip", "-t", str(layer.path)], check=True)
    tar = subprocess.run(["gzip", "-dc", str(layer.path)], check=True, capture_output=True).stdout
    expected = io.BytesIO()
    write_tar(entries, expected)
    assert tar == expected.getvalue()
    assert layer.diff_id.hex == hashlib.sha256(tar).hexdigest()
    assert layer.uncompressed_size == len(tar)
    assert layer.digest.hex == hashlib.sha256(blob).hexdigest()
    assert layer.size == len(blob)
    assert layer.path == tmp_path / layer.digest.hex
    assert layer.media_type == media.OCI_LAYER_TAR_GZIP
    assert layer.compressor == name
    assert gzip.decompress(blob) == tar
    assert sorted(os.listdir(tmp_path)) == [layer.digest.hex]  # no temporary file left


@pytest.mark.parametrize(
    ("compressor", "fast_level", "small_level"), [("zlib", 1, 6), ("isal", 0, 3)]
)
def test_levels_change_the_blob_not_the_diff_id(
    tmp_path: Path, compressor: Compressor, fast_level: int, small_level: int
) -> None:
    entries = tree_entries(PYTHON_LIB / "email", "/e")
    fast = build_layer(entries, tmp_path, level=fast_level, compressor=compressor)
    small = build_layer(entries, tmp_path, level=small_level, compressor=compressor)
    assert fast.diff_id == small.diff_id
    assert fast.digest != small.digest
    assert small.size < fast.size
    assert build_layer(entries, tmp_path, level=fast_level, compressor=compressor) == fast


def test_compressors_differ_in_blob_bytes_not_in_diff_id(tmp_path: Path) -> None:
    entries = tree_entries(PYTHON_LIB / "email", "/e")
    by_zlib = build_layer(entries, tmp_path, level=3, compressor="zlib")
    by_isal = build_layer(entries, tmp_path, level=3, compressor="isal")
    assert by_zlib.diff_id == by_isal.diff_id
    assert by_zlib.digest != by_isal.digest
    assert gzip.decompress(by_isal.path.read_bytes()) == gzip.decompress(by_zlib.path.read_bytes())


@pytest.mark.parametrize(("compressor", "level"), [("isal", 4), ("zlib", 10), ("zlib", -1)])
def test_a_level_the_compressor_lacks_is_one_line(
    tmp_path: Path, compressor: Compressor, level: int
) -> None:
    with pytest.raises(PackError, match=f"{compressor} level {level} is not between") as info:
        build_layers([[TarEntry("/a", "dir", 0o755)]], tmp_path, level=level, compressor=compressor)
    assert "\n" not in str(info.value)
    assert os.listdir(tmp_path) == []


def test_parallel_layers_equal_sequential_ones_in_group_order(tmp_path: Path) -> None:
    groups = _stdlib_groups()
    seen: list[int] = []
    (tmp_path / "p").mkdir()
    (tmp_path / "s").mkdir()
    parallel = build_layers(groups, tmp_path / "p", workers=2, progress=seen.append)
    sequential = [build_layer(group, tmp_path / "s") for group in groups]
    assert [(x.digest, x.diff_id, x.size) for x in parallel] == [
        (x.digest, x.diff_id, x.size) for x in sequential
    ]
    assert len({x.digest for x in parallel}) == len(groups)
    assert sum(seen) == sum(layer.uncompressed_size for layer in parallel)


def test_a_failing_group_leaves_no_temporary_file(tmp_path: Path) -> None:
    groups = _stdlib_groups()
    groups[1] = [
        *groups[1],
        TarEntry("/grew", "file", 0o644, size=1, open=lambda: io.BytesIO(b"12")),
    ]
    with pytest.raises(PackError, match="/grew: 1 bytes expected"):
        build_layers(groups, tmp_path, workers=2)
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


def test_an_unwritable_blob_dir_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(PackError, match="cannot write a layer in") as info:
        build_layer([TarEntry("/a", "dir", 0o755)], tmp_path / "missing")
    assert "\n" not in str(info.value)


class _Endless(io.RawIOBase):
    """``size`` bytes of a repeating pseudo-random pattern, produced as they are read."""

    def __init__(self, size: int) -> None:
        self._left = size
        self._block = hashlib.sha512(b"envpack").digest() * 16384  # 1 MiB, fixed

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Buffer) -> int:
        view = memoryview(buffer)
        n = min(len(view), self._left)
        view[:n] = (self._block * (n // len(self._block) + 1))[:n]
        self._left -= n
        return n


def test_memory_stays_flat_for_a_large_layer(tmp_path: Path) -> None:
    size = 96 << 20
    entry = TarEntry(
        "/big", "file", 0o644, size=size, open=lambda: io.BufferedReader(_Endless(size))
    )
    tracemalloc.start()
    try:
        layer = build_layer([entry], tmp_path, level=1)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert layer.uncompressed_size > size
    assert peak < 12 << 20, f"peak {peak / (1 << 20):.1f} MiB for a {size >> 20} MiB layer"
