"""The persistent hash cache: correct hashes, warm runs that read nothing, two writers."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from envpack.redact import Redactor
from envpack.snapshot import hashcache
from envpack.snapshot.capture import capture
from envpack.snapshot.context import CaptureOptions
from envpack.snapshot.hashcache import HashCache
from envpack.snapshot.source import NotRegularFile, Source, SourceReadError
from realenv import run_envpack


def _files(folder: Path, count: int, size: int = 3000) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / f"f{index:03d}"
        path.write_bytes(os.urandom(size) + str(index).encode())
        paths.append(str(path))
    return paths


def _sha(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_hashes_are_sha256_of_the_bytes(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(os.urandom(3 * (1 << 20) + 17))  # spans several 1 MiB reads
    paths = [*_files(tmp_path / "small", 5), str(big), "/usr/bin/ls"]
    cache = HashCache(tmp_path / "cache")
    got = cache.sha256_many(Source.live(), paths)
    assert got == {p: _sha(p) for p in paths}


def test_warm_run_rehashes_nothing_and_a_change_is_rehashed(tmp_path: Path) -> None:
    paths = _files(tmp_path / "data", 30)
    source = Source.live()
    before = hashcache.stats.hashed
    HashCache(tmp_path / "cache").sha256_many(source, paths)
    assert hashcache.stats.hashed - before == 30
    # A new cache object (a new capture) over the same folder: everything is a hit.
    before, hits = hashcache.stats.hashed, hashcache.stats.hits
    warm = HashCache(tmp_path / "cache").sha256_many(source, paths)
    assert hashcache.stats.hashed == before
    assert hashcache.stats.hits - hits == 30
    assert warm == {p: _sha(p) for p in paths}
    # Same size, new bytes (mtime/ctime move): rehashed. A new size: rehashed.
    Path(paths[0]).write_bytes(b"x" * Path(paths[0]).stat().st_size)
    with open(paths[1], "ab") as stream:
        stream.write(b"more")
    before = hashcache.stats.hashed
    again = HashCache(tmp_path / "cache").sha256_many(source, paths)
    assert hashcache.stats.hashed - before == 2
    assert again[paths[0]] == _sha(paths[0]) and again[paths[1]] == _sha(paths[1])


def test_no_cache_always_hashes_and_writes_nothing(tmp_path: Path) -> None:
    paths = _files(tmp_path / "data", 4)
    for _ in range(2):
        before = hashcache.stats.hashed
        HashCache(tmp_path / "cache", enabled=False).sha256_many(Source.live(), paths)
        assert hashcache.stats.hashed - before == 4
    assert not (tmp_path / "cache").exists()


def test_a_fifo_is_an_error_and_never_hangs(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = HashCache(tmp_path / "cache").sha256_many(Source.live(), [str(fifo)])
    assert isinstance(got[str(fifo)], NotRegularFile)


def test_rootfs_hashes_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "data").write_bytes(b"inside")
    # An absolute link inside the root points at ROOT/etc/data, not at the host.
    os.symlink("/etc/data", root / "etc" / "link")
    got = HashCache(tmp_path / "cache").sha256(Source.rootfs(root), "/etc/link")
    assert got == hashlib.sha256(b"inside").hexdigest()


def test_a_corrupt_database_turns_the_cache_off(tmp_path: Path) -> None:
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "hashes.sqlite3").write_bytes(b"this is not sqlite" * 100)
    cache = HashCache(tmp_path / "cache")
    paths = _files(tmp_path / "data", 2)
    assert cache.sha256_many(Source.live(), paths) == {p: _sha(p) for p in paths}
    assert not cache.enabled


_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from envpack.snapshot import hashcache
    from envpack.snapshot.source import Source
    cache_dir, folder = Path(sys.argv[1]), Path(sys.argv[2])
    paths = sorted(str(p) for p in folder.iterdir())
    for _ in range(5):  # many short transactions, interleaved with the other writer's
        for start in range(0, len(paths), 20):
            cache = hashcache.HashCache(cache_dir)
            cache.sha256_many(Source.live(), paths[start : start + 20])
            cache.close()
    print(hashcache.stats.hashed, hashcache.stats.hits)
    """
)


def _open_together(cache_dir: Path, count: int) -> list[bool]:
    """Whether the cache stayed on, for ``count`` threads opening it at the same moment."""
    start = threading.Barrier(count)
    kept: list[bool] = []

    def open_cache() -> None:
        start.wait()
        cache = HashCache(cache_dir)
        kept.append(cache.enabled)
        cache.close()

    openers = [threading.Thread(target=open_cache) for _ in range(count)]
    for opener in openers:
        opener.start()
    for opener in openers:
        opener.join()
    return kept


def test_captures_opening_a_new_cache_together_all_keep_it(tmp_path: Path) -> None:
    # Only the first capture ever switches a new cache to WAL mode. Several first
    # captures at once race for that, and SQLite may answer the losers "database is
    # locked" without waiting: their cache was turned off (CI met it in the two-writer
    # test below). Threads race far more reliably than processes; SQLite locks the same.
    outcomes = [_open_together(tmp_path / f"cache{trial}", 6) for trial in range(50)]
    assert all(kept == [True] * 6 for kept in outcomes), outcomes


@pytest.mark.slow
def test_two_processes_write_the_cache_at_once(tmp_path: Path) -> None:
    one = _files(tmp_path / "one", 200, size=500)
    two = _files(tmp_path / "two", 200, size=500)
    cache_dir = tmp_path / "cache"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(cache_dir), str(folder)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for folder in (tmp_path / "one", tmp_path / "two")
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        hashed, hits = map(int, out.split())
        assert hashed == 200  # each file hashed once, in the first round
        assert hits == 800  # and found in the cache in the four others
    db = sqlite3.connect(cache_dir / "hashes.sqlite3")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT count(*) FROM hashes").fetchone() == (400,)
        stored = {row[0] for row in db.execute("SELECT sha256 FROM hashes")}
    finally:
        db.close()
    assert stored == {_sha(p) for p in one + two}


def test_a_warm_capture_rehashes_nothing(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("ls", "cat", "true"):
        target = bin_dir / name
        target.write_bytes(Path(f"/usr/bin/{name}").read_bytes())
        target.chmod(0o755)
    source = Source.live(environ={"PATH": str(bin_dir)})
    options = CaptureOptions(
        only=frozenset({"binaries", "libraries"}), cache_dir=tmp_path / "cache"
    )
    redactor = Redactor(b"k" * 32)
    before = hashcache.stats.hashed
    cold = capture(source, options, redactor)
    cold_count = hashcache.stats.hashed - before
    assert cold_count >= 4  # three binaries and at least libc
    before = hashcache.stats.hashed
    warm = capture(source, options, redactor)
    assert hashcache.stats.hashed == before
    assert warm.sections == cold.sections
    # A replaced binary: its hash and its ELF facts are read again, not taken from the cache.
    (bin_dir / "ls").write_bytes(Path("/usr/bin/true").read_bytes())
    before = hashcache.stats.hashed
    changed = capture(source, options, redactor)
    assert hashcache.stats.hashed - before == 1
    fresh = capture(source, CaptureOptions(only=options.only, use_cache=False), redactor)
    assert changed.sections["binaries"]["ls"] == fresh.sections["binaries"]["ls"]
    assert changed.sections["binaries"]["ls"]["sha256"] == _sha(str(bin_dir / "ls"))
    (bin_dir / "ls").write_bytes(Path("/usr/bin/ls").read_bytes())
    no_cache = CaptureOptions(only=options.only, cache_dir=tmp_path / "cache", use_cache=False)
    before = hashcache.stats.hashed
    capture(source, no_cache, redactor)
    assert hashcache.stats.hashed - before == cold_count


def test_a_cache_closed_from_its_own_hashing_thread_does_not_join_itself(
    tmp_path: Path,
) -> None:
    # A capture context left to the garbage collector is closed wherever the collector
    # runs, a hashing thread included; joining that thread from itself would raise.
    cache = HashCache(tmp_path / "cache")
    paths = _files(tmp_path / "data", 3)
    batch = cache.batch(Source.live())
    for path in paths:
        batch.add(path)
    assert batch.results() == {p: _sha(p) for p in paths}
    pool = cache._pool
    assert pool is not None
    pool.submit(cache.close).result(timeout=60)  # raised "cannot join current thread"
    assert cache._pool is None and not cache.enabled


def test_a_100_gb_sparse_file_on_path_is_recorded_unhashed(tmp_path: Path) -> None:
    """Through the real CLI, live: the file is a binary with an issue, not minutes of zeros."""
    folder = tmp_path / "bin"
    folder.mkdir()
    huge = folder / "huge-tool"
    with huge.open("wb") as stream:
        stream.truncate(100 * 1024**3)
    huge.chmod(0o755)
    out = tmp_path / "m.json"
    env = {**os.environ, "PATH": str(folder)}
    started = time.monotonic()
    result = run_envpack(
        "capture", "--only", "binaries", "--no-cache", "-q", "-o", str(out), env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 30
    manifest = json.loads(out.read_text())
    component = manifest["binaries"]["huge-tool"]
    assert (component["size"], component["sha256"]) == (100 * 1024**3, None)
    assert {
        "probe": "binaries",
        "path": str(huge),
        "reason": hashcache.too_big_to_hash(str(huge), 100 * 1024**3),
    } in manifest["issues"]


def test_hash_limit_refuses_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big"
    with big.open("wb") as stream:
        stream.truncate(hashcache.HASH_LIMIT + 1)
    with pytest.raises(SourceReadError, match="hashing limit: not hashed"):
        HashCache(tmp_path / "cache").sha256(Source.live(), str(big))
