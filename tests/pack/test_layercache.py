"""The layer cache on real trees, real blobs, real processes.

Groups of files are planned by the real FileSet from a real folder, hashed through the
real hash cache, tarred and compressed by the real layer writer; the cache is a folder.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import multiprocessing
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from envpack.oci.layer import Layer, build_layer
from envpack.oci.tarlayer import TarEntry
from envpack.pack import layercache
from envpack.pack.fileset import FileSet
from envpack.pack.layercache import LayerCache, build_cached_layers, layer_cache_dir
from envpack.pack.planmodel import PlannedFile
from envpack.snapshot.hashcache import HashCache
from envpack.snapshot.source import Source

EPOCH = 1_600_000_000


def _tree(root: Path) -> None:
    (root / "opt/lib").mkdir(parents=True)
    (root / "opt/lib/big.bin").write_bytes(os.urandom(300_000))
    (root / "opt/lib/small.txt").write_text("small\n")
    (root / "srv/app").mkdir(parents=True)
    (root / "srv/app/app.py").write_text("print('hello')\n")


def _groups(root: Path, epoch: int = EPOCH) -> list[tuple[PlannedFile, ...]]:
    files = FileSet(Source.rootfs(root), epoch)
    files.add_path("/opt", "lib", "test", walk=True)
    files.add_path("/srv", "app", "test", walk=True)
    planned = files.finish()
    lib = tuple(p for p in planned if p.entry.path.startswith("/opt"))
    app = tuple(p for p in planned if p.entry.path.startswith("/srv"))
    generated = PlannedFile(
        TarEntry("/etc/generated", "file", 0o644, mtime=epoch, size=3,
                 open=lambda: io.BytesIO(b"gen")),
        "base", "generated",
    )  # fmt: skip
    return [(generated,), lib, app]


@dataclasses.dataclass
class _Run:
    layers: list[Layer]
    cached: list[bool]
    opened: list[str]


def _build(
    root: Path,
    cache: LayerCache | None,
    blobs: Path,
    hashes: Path,
    *,
    groups: list[tuple[PlannedFile, ...]] | None = None,
    level: int = 3,
) -> _Run:
    """Build the layers of ``root``, noting every file the tar writer opened."""
    opened: list[str] = []

    def counting(planned: PlannedFile) -> PlannedFile:
        entry = planned.entry
        inner = entry.open
        if inner is None:
            return planned

        def opener() -> BinaryIO:
            opened.append(entry.path)
            return inner()

        return dataclasses.replace(planned, entry=dataclasses.replace(entry, open=opener))

    wanted = [tuple(counting(p) for p in g) for g in (groups or _groups(root))]
    blobs.mkdir(parents=True, exist_ok=True)
    cache_of_hashes = HashCache(hashes)
    try:
        layers, cached = build_cached_layers(
            wanted,
            blobs,
            source=Source.rootfs(root),
            cache=cache,
            hash_cache=cache_of_hashes,
            level=level,
        )
    finally:
        cache_of_hashes.close()
    return _Run(layers, cached, opened)


def _members(layer: Layer) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer.path.read_bytes()))) as tar:
        return {
            m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


@pytest.fixture
def where(tmp_path: Path) -> Iterator[tuple[Path, LayerCache, Path]]:
    root = tmp_path / "root"
    root.mkdir()
    _tree(root)
    yield root, LayerCache(tmp_path / "cache" / "layers"), tmp_path / "hashes"


def test_unchanged_rebuild_tars_nothing_and_gives_the_same_layers(
    where: tuple[Path, LayerCache, Path], tmp_path: Path
) -> None:
    root, cache, hashes = where
    cold = _build(root, cache, tmp_path / "b1", hashes)
    assert cold.cached == [False, False, False]
    # The generated file is read twice: hashed for its key, then tarred.
    assert sorted(cold.opened) == [
        "/etc/generated", "/etc/generated", "/opt/lib/big.bin", "/opt/lib/small.txt",
        "/srv/app/app.py",
    ]  # fmt: skip
    warm = _build(root, cache, tmp_path / "b2", hashes)
    assert warm.cached == [True, True, True]
    # Nothing tarred: the tar writer opened no file (the generated one is hashed, not tarred).
    assert warm.opened == ["/etc/generated"]
    assert [layer.digest for layer in warm.layers] == [layer.digest for layer in cold.layers]
    assert [layer.diff_id for layer in warm.layers] == [layer.diff_id for layer in cold.layers]
    for layer in warm.layers:
        assert layer.path.parent == tmp_path / "b2"
        assert hashlib.sha256(layer.path.read_bytes()).hexdigest() == layer.digest.hex
    # And the same as a build without any cache.
    bare = _build(root, None, tmp_path / "b3", hashes)
    assert bare.cached == [False, False, False]
    assert [layer.digest for layer in bare.layers] == [layer.digest for layer in cold.layers]


def test_changed_file_rebuilds_only_its_layer_even_with_the_same_size_and_mtime(
    where: tuple[Path, LayerCache, Path], tmp_path: Path
) -> None:
    root, cache, hashes = where
    cold = _build(root, cache, tmp_path / "b1", hashes)
    app = root / "srv/app/app.py"
    before = app.stat()
    app.write_text("print('HELLO')\n")  # same size
    os.utime(app, ns=(before.st_atime_ns, before.st_mtime_ns))  # same mtime: ctime moves
    warm = _build(root, cache, tmp_path / "b2", hashes)
    assert warm.cached == [True, True, False]
    assert warm.opened == ["/etc/generated", "/srv/app/app.py"]
    assert warm.layers[2].digest != cold.layers[2].digest
    assert _members(warm.layers[2])["srv/app/app.py"] == b"print('HELLO')\n"


def test_epoch_level_and_metadata_are_in_the_key(
    where: tuple[Path, LayerCache, Path], tmp_path: Path
) -> None:
    root, cache, hashes = where
    _build(root, cache, tmp_path / "b1", hashes)
    other_epoch = _build(root, cache, tmp_path / "b2", hashes, groups=_groups(root, EPOCH + 1))
    assert other_epoch.cached == [False, False, False]
    other_level = _build(root, cache, tmp_path / "b3", hashes, level=1)
    assert other_level.cached == [False, False, False]
    os.chmod(root / "opt/lib/small.txt", 0o600)
    other_mode = _build(root, cache, tmp_path / "b4", hashes)
    assert other_mode.cached == [True, False, True]


def test_a_damaged_blob_is_dropped_and_rebuilt(
    where: tuple[Path, LayerCache, Path], tmp_path: Path
) -> None:
    root, cache, hashes = where
    cold = _build(root, cache, tmp_path / "b1", hashes)
    damaged = cache.blobs / cold.layers[1].digest.hex
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    rejected = layercache.stats.rejected
    warm = _build(root, cache, tmp_path / "b2", hashes)
    assert layercache.stats.rejected == rejected + 1
    assert warm.cached == [True, False, True]
    assert warm.layers[1].digest == cold.layers[1].digest
    assert hashlib.sha256(warm.layers[1].path.read_bytes()).hexdigest() == cold.layers[1].digest.hex
    # Stored again, whole: the next build takes it from the cache.
    assert _build(root, cache, tmp_path / "b3", hashes).cached == [True, True, True]


def test_a_file_changed_while_packed_is_not_stored(
    where: tuple[Path, LayerCache, Path], tmp_path: Path
) -> None:
    root, cache, hashes = where
    groups = _groups(root)
    app = root / "srv/app/app.py"

    def rewrite_after_read(planned: PlannedFile) -> PlannedFile:
        entry = planned.entry
        inner = entry.open
        if entry.path != "/srv/app/app.py" or inner is None:
            return planned

        def opener() -> BinaryIO:
            stream = inner()
            app.write_text("print('later')\n")  # hashed as 'hello', packed, then changed
            return stream

        return dataclasses.replace(planned, entry=dataclasses.replace(entry, open=opener))

    changing = [tuple(rewrite_after_read(p) for p in g) for g in groups]
    unstable = layercache.stats.unstable
    first = _build(root, cache, tmp_path / "b1", hashes, groups=changing)
    assert layercache.stats.unstable == unstable + 1
    assert first.cached == [False, False, False]
    second = _build(root, cache, tmp_path / "b2", hashes)
    assert second.cached == [True, True, False]
    assert _members(second.layers[2])["srv/app/app.py"] == b"print('later')\n"


def test_cache_folder_follows_envpack_cache_dir(tmp_path: Path) -> None:
    assert layer_cache_dir({"ENVPACK_CACHE_DIR": str(tmp_path)}) == tmp_path / "layers"
    assert layer_cache_dir({}).name == "layers"


# -- concurrency: real processes ---------------------------------------------------------------


def _hammer(cache_root: str, source_blob: str, key: str, rounds: int, seen: str) -> None:
    """Store and fetch the same layer over and over; record what every fetch saw, and how
    many cached blobs this process found damaged (its own ``layercache.stats``)."""
    cache = LayerCache(Path(cache_root))
    blob = Path(source_blob)
    digest = hashlib.sha256(blob.read_bytes()).hexdigest()
    from envpack.oci.digest import Digest

    layer = Layer(
        digest=Digest("sha256", digest), diff_id=Digest("sha256", digest), size=blob.stat().st_size,
        uncompressed_size=1, media_type="application/vnd.oci.image.layer.v1.tar+gzip",
        path=blob, compressor="test",
    )  # fmt: skip
    out = Path(seen)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for n in range(rounds):
        cache.store(key, layer)
        target = out / f"{os.getpid()}-{n}"
        target.mkdir()
        got = cache.fetch(key, target)
        results.append("none" if got is None else got.path.read_bytes() == blob.read_bytes())
        if n % 7 == 3:
            cache.prune()
    # A fetch that finds a partial blob drops it and returns None, just like a fetch after
    # a prune: only the rejection count tells the two apart.
    rejected = layercache.stats.rejected
    (out / f"result-{os.getpid()}").write_text(f"{rejected}\n" + " ".join(map(str, results)))


@pytest.mark.slow
def test_concurrent_processes_never_see_a_partial_blob(tmp_path: Path) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(os.urandom(4 * 1024 * 1024))
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(
            target=_hammer,
            args=(str(tmp_path / "cache"), str(blob), "k" * 64, 25, str(tmp_path / "seen")),
        )
        for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=240)
        assert worker.exitcode == 0
    reports = [p.read_text().split("\n", 1) for p in (tmp_path / "seen").glob("result-*")]
    assert len(reports) == 4
    results = " ".join(seen for _, seen in reports).split()
    assert len(results) == 100
    # A fetch finds the whole blob or nothing (a prune in between): never a part of it.
    assert set(results) <= {"True", "none"}
    # ...and "nothing" was always a prune: no fetch ever met a partial blob and dropped it.
    assert sum(int(rejected) for rejected, _ in reports) == 0
    assert "True" in results
    leftovers = [p.name for p in (tmp_path / "cache").rglob(".tmp-*")]
    assert leftovers == []


def test_store_and_fetch_round_trip_through_a_real_layer(tmp_path: Path) -> None:
    cache = LayerCache(tmp_path / "cache")
    (tmp_path / "one").mkdir()
    entry = TarEntry("/x", "file", 0o644, mtime=5, size=2, open=lambda: io.BytesIO(b"xy"))
    layer = build_layer([entry], tmp_path / "one")
    cache.store("a" * 64, layer)
    (tmp_path / "two").mkdir()
    got = cache.fetch("a" * 64, tmp_path / "two")
    assert got is not None
    assert dataclasses.replace(got, path=layer.path) == layer
    assert got.path.read_bytes() == layer.path.read_bytes()
    summary = cache.summary()
    assert (summary.layers, summary.blobs) == (1, 1)
    assert summary.bytes > layer.size
    pruned = cache.prune()
    assert (pruned.layers, pruned.blobs, pruned.bytes) == (1, 1, summary.bytes)
    assert cache.fetch("a" * 64, tmp_path / "two") is None
    assert cache.summary().bytes == 0


def test_temporaries_of_dead_builds_are_removed(tmp_path: Path) -> None:
    cache = LayerCache(tmp_path / "cache")
    cache.blobs.mkdir(parents=True)
    cache.keys.mkdir(parents=True)
    # A real process that has ended: its pid names a temporary file nobody will rename.
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    stale = cache.blobs / f".tmp-{dead.stdout.strip()}-abc"
    stale.write_bytes(b"half a blob")
    mine = cache.keys / f".tmp-{os.getpid()}-def"  # a live writer's: kept
    mine.write_bytes(b"{")
    other = cache.blobs / ("a" * 64)  # a blob, not a temporary: kept
    other.write_bytes(b"x")
    assert cache.remove_stale_temporaries() == 1
    assert not stale.exists()
    assert mine.exists() and other.exists()


def test_two_layers_of_the_same_bytes_share_one_blob(
    where: tuple[Path, LayerCache, Path], tmp_path: Path
) -> None:
    root, cache, hashes = where
    generated, lib, _ = _groups(root)
    twice = [lib, generated, lib]
    _build(root, cache, tmp_path / "b1", hashes, groups=twice)
    rejected = layercache.stats.rejected
    warm = _build(root, cache, tmp_path / "b2", hashes, groups=twice)
    assert warm.cached == [True, True, True]
    assert layercache.stats.rejected == rejected
    assert warm.layers[0].digest == warm.layers[2].digest
    assert warm.layers[0].path == warm.layers[2].path
    assert hashlib.sha256(warm.layers[2].path.read_bytes()).hexdigest() == warm.layers[2].digest.hex
