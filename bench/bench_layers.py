"""Benchmark: `envpack.oci.build_layers` per compressor and level against `tar -czf`, same files.

Goal (issue 8): pick the layer compressor and level on purpose (envpack uses ISA-L level
3): throughput and compressed size of ISA-L levels 1-3 and zlib levels 1-6 against
`tar -czf` (GNU tar piping to gzip -6) of the same files.

Run: python3 bench/bench_layers.py [--prefix DIR] [--groups N] [--repeat R]

The input is a CPython 3.11 prefix (pyenv's by default: interpreter, standard library and
whatever its site-packages hold). Its files are split into N groups of about equal size
(N layers, compressed in parallel threads; default 6). Each variant runs in a child
process, interleaved with the others, R times (default 3); printed are the medians of
wall and CPU seconds, the throughput over the uncompressed tar bytes, the compressed size
against `tar -czf`'s, and each child's peak RSS.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import stat
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from benchlib import find_python311

from envpack.oci.layer import build_layers
from envpack.oci.tarlayer import TarEntry

MIB = 1 << 20


def _opener(path: str) -> Callable[[], BinaryIO]:
    return lambda: open(path, "rb")  # the tar writer closes it


def prefix_entries(prefix: Path) -> list[TarEntry]:
    """Every file, folder and symlink under ``prefix`` at its own absolute path."""
    entries: list[TarEntry] = []
    first_of_inode: dict[tuple[int, int], str] = {}
    for folder, dirs, files in os.walk(prefix):
        for name in dirs + files:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            mode, mtime = stat.S_IMODE(st.st_mode), int(st.st_mtime)
            if stat.S_ISDIR(st.st_mode):
                entries.append(TarEntry(path, "dir", mode, mtime=mtime))
            elif stat.S_ISLNK(st.st_mode):
                entries.append(
                    TarEntry(path, "symlink", 0o777, mtime=mtime, linkname=os.readlink(path))
                )
            elif stat.S_ISREG(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in first_of_inode:
                    entries.append(
                        TarEntry(path, "hardlink", mode, mtime=mtime, linkname=first_of_inode[key])
                    )
                    continue
                first_of_inode[key] = path
                entries.append(
                    TarEntry(path, "file", mode, mtime=mtime, size=st.st_size, open=_opener(path))
                )
    return entries


def split_groups(entries: list[TarEntry], count: int) -> list[list[TarEntry]]:
    """``count`` groups of about equal bytes; the folders go with the first group and each
    hardlink with the file it links to (hardlinks stay inside one layer)."""
    groups: list[list[TarEntry]] = [[] for _ in range(count)]
    sizes = [0] * count
    home: dict[str, int] = {}
    for entry in sorted(entries, key=lambda e: -e.size):
        if entry.kind == "dir":
            index = 0
        elif entry.kind == "hardlink":
            continue
        else:
            index = sizes.index(min(sizes))
        groups[index].append(entry)
        sizes[index] += entry.size
        home[entry.path] = index
    for entry in entries:
        if entry.kind == "hardlink":
            groups[home[entry.linkname]].append(entry)
    return groups


def child(prefix: Path, compressor: str, level: int, groups: int, workers: int) -> None:
    """One timed build_layers run; prints its figures as JSON."""
    entries = prefix_entries(prefix)
    parts = split_groups(entries, groups)
    with tempfile.TemporaryDirectory(prefix="bench-layers-") as blobs:
        before = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        layers = build_layers(
            parts,
            Path(blobs),
            level=level,
            compressor="isal" if compressor == "isal" else "zlib",
            workers=workers,
        )
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "wall": wall,
                "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
                "size": sum(layer.size for layer in layers),
                "uncompressed": sum(layer.uncompressed_size for layer in layers),
                "maxrss_mib": after.ru_maxrss / 1024,
            }
        )
    )


def run_child(
    prefix: Path, compressor: str, level: int, groups: int, workers: int
) -> dict[str, Any]:
    args = [str(prefix), compressor, str(level), str(groups), str(workers)]
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args], check=True, capture_output=True, text=True
    ).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def run_tar(prefix: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-layers-tar-") as work:
        out = Path(work) / "prefix.tar.gz"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(
            ["tar", "-czf", str(out), "-C", "/", str(prefix).lstrip("/")],
            check=True,
        )
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        size = out.stat().st_size
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "size": size, "maxrss_mib": after.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", type=Path, help="a Python prefix (default: pyenv's 3.11)")
    parser.add_argument("--groups", type=int, default=6, help="layers to split it in")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each variant")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        prefix, compressor, level, groups, workers = args.child
        child(Path(prefix), compressor, int(level), int(groups), int(workers))
        return
    prefix = args.prefix or Path(find_python311()).resolve().parent.parent
    cpus = os.cpu_count() or 1
    variants: dict[str, Callable[[], dict[str, Any]]] = {}
    for compressor, levels in (("isal", (1, 2, 3)), ("zlib", (1, 2, 3, 4, 5, 6))):
        for level in levels:
            name = f"{compressor} level {level}, {cpus} threads"
            variants[name] = functools.partial(
                run_child, prefix, compressor, level, args.groups, cpus
            )
    variants["isal level 3, 1 thread"] = functools.partial(
        run_child, prefix, "isal", 3, args.groups, 1
    )
    variants["tar -czf (gzip -6)"] = functools.partial(run_tar, prefix)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    for _ in range(max(1, args.repeat)):
        for name, run in variants.items():
            runs[name].append(run())
    uncompressed = runs[next(iter(variants))][0]["uncompressed"]
    tar_size = runs["tar -czf (gzip -6)"][0]["size"]
    tar_wall = statistics.median(r["wall"] for r in runs["tar -czf (gzip -6)"])
    print(f"input: {prefix} as {args.groups} layers, {uncompressed / MIB:.0f} MiB of tar")
    print(f"medians of {max(1, args.repeat)} runs, {cpus} CPUs, zlib {zlib.ZLIB_RUNTIME_VERSION}")
    print(
        f"{'variant':34} {'wall s':>7} {'cpu s':>7} {'MiB/s':>7} {'size MiB':>9}"
        f" {'x tar size':>10} {'x tar wall':>10} {'rss MiB':>8}"
    )
    for name, results in runs.items():
        wall = statistics.median(r["wall"] for r in results)
        cpu = statistics.median(r["cpu"] for r in results)
        size = results[0]["size"]
        rss = max(r["maxrss_mib"] for r in results)
        print(
            f"{name:34} {wall:7.1f} {cpu:7.1f} {uncompressed / MIB / wall:7.1f}"
            f" {size / MIB:9.1f} {size / tar_size:10.3f} {wall / tar_wall:10.2f} {rss:8.0f}"
        )


if __name__ == "__main__":
    main()
