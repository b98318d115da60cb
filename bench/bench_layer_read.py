"""Benchmark: reading an image layer's headers and inflating a gzip layer, against the
tools a user would otherwise run on the same bytes.

What `capture --image` spends per layer before it hashes anything:
- headers of an uncompressed layer (3,000 pax members): envpack's fast path
  (`layertar.read_members`) against Python's `tarfile` (`layertar.tarfile_members`, the
  fallback) and GNU `tar -tf`;
- inflating a gzip layer of this machine's /usr/bin (~24 MiB, `gzip -6`): envpack's
  `layertar.read_layer` (ISA-L, writing the tar's files out as capture does) against
  zlib alone (no tar, no writes) and GNU `gzip -dc > /dev/null`.

Run: python3 bench/bench_layer_read.py [--repeat R]   (medians of R runs, CPU seconds)
These were timed tests once; CPU ratios on a shared machine are a measurement, not a gate.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from envpack.oci import layertar
from envpack.oci.reader import BlobRange, LayerBlob


def _cpu(work: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.process_time()
        work()
        times.append(time.process_time() - start)
    return statistics.median(times)


def _child_cpu(command: list[str], repeat: int, stdin: Path | None = None) -> float:
    times = []
    for _ in range(repeat):
        before = os.times()
        with open(stdin or os.devnull, "rb") as source:
            subprocess.run(command, stdin=source, stdout=subprocess.DEVNULL, check=True)
        after = os.times()
        times.append(
            after.children_user + after.children_system
            - before.children_user - before.children_system
        )  # fmt: skip
    return statistics.median(times)


def _pax_layer(folder: Path) -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for number in range(3000):
            info = tarfile.TarInfo(f"usr/share/doc/pkg{number}/copyright")
            info.size, info.mtime = 700, 1_600_000_000.25  # a pax block for each member
            tar.addfile(info, io.BytesIO(bytes(700)))
    path = folder / "layer.tar"
    path.write_bytes(buffer.getvalue())
    return path


def _gzip_layer(folder: Path) -> Path:
    tar_path = folder / "bin.tar"
    with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
        total = 0
        for name in sorted(os.listdir("/usr/bin")):
            path = os.path.join("/usr/bin", name)
            if os.path.isfile(path) and not os.path.islink(path) and os.access(path, os.R_OK):
                tar.add(path, arcname=f"usr/bin/{name}")
                total += os.path.getsize(path)
                if total > 24 << 20:
                    break
    gz = folder / "bin.tar.gz"
    with gz.open("wb") as out:
        subprocess.run(["gzip", "-6", "-n", "-c", str(tar_path)], stdout=out, check=True)
    return gz


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat
    with tempfile.TemporaryDirectory(prefix="bench-layer-read-") as scratch:
        folder = Path(scratch)
        plain = _pax_layer(folder)
        blob = BlobRange(plain, 0, plain.stat().st_size)
        fast = _cpu(lambda: list(layertar.read_members(blob, "layer")), repeat)
        slow = _cpu(lambda: list(layertar.tarfile_members(blob, "layer")), repeat)
        tar = _child_cpu(["tar", "-tf", str(plain)], repeat)
        print("headers of 3,000 pax members (CPU s, medians):")
        print(f"  envpack fast path {fast:.3f}; tarfile {slow:.3f}; tar -tf {tar:.3f}")
        print(f"  ratio: {fast / slow:.2f}x tarfile, {fast / tar:.2f}x tar -tf")

        gz = _gzip_layer(folder)
        data = gz.read_bytes()
        layer = LayerBlob(BlobRange(gz, 0, len(data)), None, None)
        counter = iter(range(10_000))
        ours = _cpu(lambda: layertar.read_layer(layer, folder, next(counter)), repeat)

        def zlib_only() -> None:
            inflate = zlib.decompressobj(31)
            for at in range(0, len(data), 1 << 20):
                inflate.decompress(data[at : at + (1 << 20)])

        plain_zlib = _cpu(zlib_only, repeat)
        gunzip = _child_cpu(["gzip", "-dc"], repeat, stdin=gz)
        print(f"gzip layer of /usr/bin, {len(data) / (1 << 20):.1f} MiB compressed (CPU s):")
        print(f"  envpack read_layer {ours:.3f}; zlib inflate alone {plain_zlib:.3f}; "
              f"gzip -dc {gunzip:.3f}")  # fmt: skip
        print(f"  ratio: {ours / plain_zlib:.2f}x zlib alone, {ours / gunzip:.2f}x gzip -dc")


if __name__ == "__main__":
    main()
