"""sha256 of files, remembered across captures.

A file's hash is cached under ``(st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns)``: any
write changes mtime and ctime, and a replaced file gets a new inode, so an unchanged key
means unchanged bytes. A warm capture therefore hashes nothing it hashed before.

Storage: one SQLite database in WAL mode (``<cache dir>/hashes.sqlite3``). SQLite rather
than a JSON/shelve file behind a ``filelock``: two captures running at once each insert
their new rows in short transactions, without rewriting (or losing) the other's rows, and
WAL lets readers go on while a writer commits; ``busy_timeout`` makes a writer wait for
the other instead of failing. Lookups read one row by primary key: no need to load a
whole file into memory. The cache is only an optimisation, so a locked, corrupt or
unwritable database turns the cache off for the capture instead of failing it.

Two more tables live beside the hashes. ``facts`` keeps what was parsed from a file's
first bytes (ELF headers, a ``#!`` line) under the same key, so a warm capture does not
even open an unchanged binary. ``memo`` keeps answers that depend on a set of files (which
package owns a path) under a scope naming those files' keys: a changed package database
means a new scope, and the old scope's rows are dropped.

Files are opened through :meth:`Source.open_bytes` (a FIFO or device is refused, never
read; an image's file is read where it lies in its layer) and read in 1 MiB blocks.
Misses are hashed in a few threads: ``hashlib`` releases the GIL while it digests large
blocks, so hashing overlaps with the probes' own work.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from envpack.cachedir import default_cache_dir
from envpack.snapshot.context import CaptureContext
from envpack.snapshot.filebytes import FileBytes
from envpack.snapshot.source import Source, SourceReadError

__all__ = [
    "HASH_LIMIT",
    "HashBatch",
    "HashCache",
    "HashStats",
    "cache_for",
    "default_cache_dir",
    "recording",
    "stat_key",
    "stats",
    "too_big_to_hash",
]

_BLOCK = 1 << 20
HASH_LIMIT = 4 * 1024**3
"""Largest file hashed (4 GiB, ~3 s): past it the file is recorded unhashed, with an
issue, so a 100 GB sparse file on PATH cannot hold a capture for minutes."""
_DB_NAME = "hashes.sqlite3"
_BUSY_TIMEOUT_MS = 15_000
_WORKERS = max(1, min(4, os.cpu_count() or 1))

Key = tuple[int, int, int, int, int]


@dataclass
class HashStats:
    """Counters for this process (tests and benchmarks read them; nothing else does)."""

    hashed: int = 0
    """Files whose bytes were actually read and digested."""
    hits: int = 0
    """Files whose hash came from the cache."""
    bytes_hashed: int = 0
    recorded: list[str] | None = field(default=None)
    """Host paths of hashed files, while :func:`recording` is active."""


stats = HashStats()
_stats_lock = threading.Lock()


@contextmanager
def recording() -> Iterator[list[str]]:
    """Collect the host paths of every file hashed inside the ``with`` block."""
    stats.recorded = []
    try:
        yield stats.recorded
    finally:
        stats.recorded = None


def stat_key(st: os.stat_result) -> Key:
    """What identifies one version of a file's bytes: device, inode, size, mtime, ctime."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


_key = stat_key


def _digest(content: FileBytes) -> tuple[str, int]:
    digest = hashlib.sha256()
    buffer = bytearray(_BLOCK)
    view = memoryview(buffer)
    total = 0
    while True:
        count = content.readinto(view, total)
        if not count:
            break
        digest.update(view[:count])  # 1 MiB at a time: hashlib lets go of the GIL
        total += count
    return digest.hexdigest(), total


def hash_file(
    source: Source, inner: str, opened: tuple[FileBytes, os.stat_result] | None = None
) -> tuple[str, Key]:
    """Digest one file (no cache); returns the hash and the key it is valid for.

    ``opened``: the bytes the caller got from :meth:`Source.open_bytes` and hands over, so
    the file is not opened twice; they are closed here. An image's file is read where it
    lies in its layer (nothing copied out first).
    """
    content, before = opened if opened is not None else source.open_bytes(inner)
    if before.st_size > HASH_LIMIT:
        content.close()
        raise SourceReadError(too_big_to_hash(inner, before.st_size))
    try:
        hexdigest, size = _digest(content)
        after = content.fstat() or before  # a stretch of a layer cannot change
    except OSError as err:
        raise SourceReadError(f"{inner}: {err.strerror}") from err
    finally:
        content.close()
    with _stats_lock:
        stats.hashed += 1
        stats.bytes_hashed += size
        if stats.recorded is not None:
            stats.recorded.append(source.resolve(inner).host)
    key = _key(after)
    # Changed while we read it: the hash is of no known version, so do not cache it.
    return hexdigest, key if key == _key(before) else (-1, -1, -1, -1, -1)


def too_big_to_hash(inner: str, size: int) -> str:
    """The issue of a file past :data:`HASH_LIMIT`."""
    return (
        f"{inner}: {size} bytes, larger than the {HASH_LIMIT >> 30} GiB hashing limit: not hashed"
    )


_HASH_THREADS: set[int] = set()
"""Idents of the hashing threads. An ident freed by an ended thread may come back for
another one; closing a cache from that thread then merely does not wait for its pool."""


def _register_hash_thread() -> None:
    _HASH_THREADS.add(threading.get_ident())


def _use_wal(db: sqlite3.Connection) -> None:
    """Put the database in WAL mode, waiting for a capture that is doing the same.

    The mode is stored in the file, so only the first capture ever switches it. But two
    first captures at once race: SQLite may answer "database is locked" to the loser at
    once, without calling the busy handler, so this asks again until the busy timeout
    has passed (a test runs two writers on a new cache and met that race).
    """
    deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
    pause = 0.01
    while not _try_wal(db):
        if time.monotonic() >= deadline:
            raise sqlite3.OperationalError("database is locked")  # turns the cache off
        time.sleep(pause)
        pause = min(pause * 2, 0.5)


def _try_wal(db: sqlite3.Connection) -> bool:
    """Whether the database is now in WAL mode; ``False`` when another one holds it."""
    try:
        if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            db.execute("PRAGMA journal_mode=WAL")
    except sqlite3.OperationalError as err:
        if "locked" in str(err) or "busy" in str(err):
            return False
        raise
    return True


class HashCache:
    """sha256 by file, backed by a SQLite cache (or by nothing with ``enabled=False``)."""

    def __init__(self, cache_dir: Path | None = None, *, enabled: bool = True) -> None:
        self._db: sqlite3.Connection | None = None
        self._pending_facts: list[tuple[int, int, int, int, int, str, str]] = []
        self._pending_memo: list[tuple[str, str, str, str]] = []
        self.path: Path | None = None
        self._pool: ThreadPoolExecutor | None = None
        """The hashing threads, one set for every batch of the capture (see :meth:`close`)."""
        self._empty = False
        """A new cache: every lookup would miss, so none is made (a cold capture's speed)."""
        if enabled:
            self.path = (cache_dir or default_cache_dir()) / _DB_NAME
            self._db = self._open(self.path)
            if self._db is not None:
                try:
                    row = self._db.execute(
                        "SELECT EXISTS (SELECT 1 FROM hashes) OR EXISTS (SELECT 1 FROM facts)"
                        " OR EXISTS (SELECT 1 FROM memo)"
                    ).fetchone()
                    self._empty = not row[0]
                except sqlite3.Error:
                    self.close()

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection | None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # One thread uses it at a time, but the capture may end (and close it) on another.
            db = sqlite3.connect(
                str(path), timeout=_BUSY_TIMEOUT_MS / 1000, check_same_thread=False
            )
            db.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            _use_wal(db)
            db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable enough for a cache
            db.execute(
                "CREATE TABLE IF NOT EXISTS hashes ("
                " dev INTEGER, ino INTEGER, size INTEGER, mtime_ns INTEGER, ctime_ns INTEGER,"
                " sha256 TEXT NOT NULL, PRIMARY KEY (dev, ino, size, mtime_ns, ctime_ns))"
                " WITHOUT ROWID"
            )
            # Facts parsed from a file's bytes (ELF headers …), valid exactly as long as its
            # hash: same key. ``kind`` names the format, so a new format never reads old rows.
            db.execute(
                "CREATE TABLE IF NOT EXISTS facts ("
                " dev INTEGER, ino INTEGER, size INTEGER, mtime_ns INTEGER, ctime_ns INTEGER,"
                " kind TEXT NOT NULL, data TEXT NOT NULL,"
                " PRIMARY KEY (dev, ino, size, mtime_ns, ctime_ns, kind)) WITHOUT ROWID"
            )
            # Answers derived from several files at once (who owns a path, given the
            # package database as it is): valid while ``scope`` (which names the state of
            # those files) is unchanged; a new scope of the same family replaces the old.
            db.execute(
                "CREATE TABLE IF NOT EXISTS memo ("
                " family TEXT NOT NULL, scope TEXT NOT NULL, name TEXT NOT NULL,"
                " data TEXT NOT NULL, PRIMARY KEY (scope, name)) WITHOUT ROWID"
            )
            db.commit()
        except (sqlite3.Error, OSError):
            return None
        return db

    @property
    def enabled(self) -> bool:
        return self._db is not None

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            # Not cancelled: a queued job owns an open descriptor it closes when it runs.
            # Not waited for from a hashing thread (a capture context left to the garbage
            # collector can be closed there): a thread cannot join itself.
            pool.shutdown(wait=threading.get_ident() not in _HASH_THREADS)
        self.flush()
        if self._db is not None:
            self._db.close()
            self._db = None

    def _lookup(self, key: Key) -> str | None:
        if self._db is None or self._empty:
            return None
        try:
            row = self._db.execute(
                "SELECT sha256 FROM hashes WHERE dev=? AND ino=? AND size=? AND mtime_ns=?"
                " AND ctime_ns=?",
                key,
            ).fetchone()
        except sqlite3.Error:
            self.close()
            return None
        return None if row is None else str(row[0])

    def facts(self, st: os.stat_result, kind: str) -> str | None:
        """Facts of kind ``kind`` remembered for the file whose ``stat`` is ``st``."""
        if self._db is None or self._empty:
            return None
        try:
            row = self._db.execute(
                "SELECT data FROM facts WHERE dev=? AND ino=? AND size=? AND mtime_ns=?"
                " AND ctime_ns=? AND kind=?",
                (*_key(st), kind),
            ).fetchone()
        except sqlite3.Error:
            self.close()
            return None
        return None if row is None else str(row[0])

    def remember_facts(self, st: os.stat_result, kind: str, data: str) -> None:
        """Keep facts read from a file; written with the next :meth:`flush`."""
        if self._db is not None:
            self._pending_facts.append((*_key(st), kind, data))

    def memo(self, scope: str) -> dict[str, str]:
        """Every answer remembered under ``scope`` (name → data)."""
        if self._db is None or self._empty:
            return {}
        try:
            rows = self._db.execute("SELECT name, data FROM memo WHERE scope=?", (scope,))
            return {str(name): str(data) for name, data in rows}
        except sqlite3.Error:
            self.close()
            return {}

    def remember_memo(self, family: str, scope: str, name: str, data: str) -> None:
        """Keep one answer; written with the next :meth:`flush`."""
        if self._db is not None:
            self._pending_memo.append((family, scope, name, data))

    def flush(self) -> None:
        """Write the remembered facts and answers (one transaction)."""
        rows, self._pending_facts = self._pending_facts, []
        memo, self._pending_memo = self._pending_memo, []
        if self._db is None or not (rows or memo):
            return
        try:
            with self._db:
                self._db.executemany("INSERT OR REPLACE INTO facts VALUES (?,?,?,?,?,?,?)", rows)
                for family, scope in {(f, s) for f, s, _, _ in memo}:
                    self._db.execute(
                        "DELETE FROM memo WHERE family=? AND scope<>?", (family, scope)
                    )
                self._db.executemany("INSERT OR REPLACE INTO memo VALUES (?,?,?,?)", memo)
        except sqlite3.Error:
            self.close()

    def _store(self, rows: list[tuple[Key, str]]) -> None:
        if self._db is None or not rows:
            return
        try:
            with self._db:
                self._db.executemany(
                    "INSERT OR REPLACE INTO hashes VALUES (?, ?, ?, ?, ?, ?)",
                    [(*key, digest) for key, digest in rows if key[0] != -1],
                )
        except sqlite3.Error:
            self.close()

    def sha256(self, source: Source, inner: str) -> str:
        """The hash of one file; raises :class:`SourceReadError` when it cannot be read."""
        result = self.sha256_many(source, [inner])[inner]
        if isinstance(result, SourceReadError):
            raise result
        return result

    def sha256_many(
        self, source: Source, inners: Iterable[str]
    ) -> dict[str, str | SourceReadError]:
        """Hashes of many files: cached ones looked up, the rest digested in threads."""
        batch = self.batch(source)
        for inner in inners:
            batch.add(inner)
        return batch.results()

    def batch(self, source: Source) -> HashBatch:
        """Start hashing files as they are found; collect every hash at the end."""
        return HashBatch(self, source)

    def _submit(
        self, source: Source, inner: str, opened: tuple[FileBytes, os.stat_result] | None
    ) -> Future[tuple[str | SourceReadError, Key | None]]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=_WORKERS,
                thread_name_prefix="hash",
                initializer=_register_hash_thread,
            )
        return self._pool.submit(_work, source, inner, opened)


def _work(
    source: Source, inner: str, opened: tuple[FileBytes, os.stat_result] | None = None
) -> tuple[str | SourceReadError, Key | None]:
    try:
        digest, key = hash_file(source, inner, opened)
    except SourceReadError as err:
        return err, None
    return digest, key


class HashBatch:
    """Files being hashed in the background while a probe goes on with other work.

    Cache lookups and writes stay on the calling thread (one SQLite connection is not
    shared between threads); only reading and digesting runs in the pool.
    """

    def __init__(self, cache: HashCache, source: Source) -> None:
        self.cache = cache
        self._source = source
        self._done: dict[str, str | SourceReadError] = {}
        self._futures: dict[str, Future[tuple[str | SourceReadError, Key | None]]] = {}

    def add_open(self, inner: str, content: FileBytes, st: os.stat_result) -> None:
        """Hash ``inner`` from ``content`` (from :meth:`Source.open_bytes`), which this now
        owns."""
        if inner in self._done or inner in self._futures or self._cached(inner, st):
            content.close()
            return
        self._submit(inner, (content, st))

    def add(self, inner: str, st: os.stat_result | None = None) -> None:
        """Hash ``inner`` (``st``: its ``stat``, when the caller already has it)."""
        if inner in self._done or inner in self._futures:
            return
        if st is None:
            try:
                st = self._source.stat(inner)
            except SourceReadError as err:
                self._done[inner] = err
                return
        if st is None or not self._cached(inner, st):
            self._submit(inner, None)

    def _cached(self, inner: str, st: os.stat_result) -> bool:
        cached = self.cache._lookup(_key(st))
        if cached is None:
            return False
        self._done[inner] = cached
        with _stats_lock:
            stats.hits += 1
        return True

    def _submit(self, inner: str, opened: tuple[FileBytes, os.stat_result] | None) -> None:
        self._futures[inner] = self.cache._submit(self._source, inner, opened)

    def results(self) -> dict[str, str | SourceReadError]:
        """Every hash (or the error that prevented it), once all are computed."""
        rows: list[tuple[Key, str]] = []
        try:
            for inner, future in self._futures.items():
                outcome, key = future.result()
                self._done[inner] = outcome
                if key is not None and isinstance(outcome, str):
                    rows.append((key, outcome))
        finally:
            self._futures = {}
        self.cache._store(rows)
        self.cache.flush()
        return dict(self._done)


def cache_for(ctx: CaptureContext) -> HashCache:
    """The one hash cache of a capture, opened on first use and closed with the capture."""
    options = ctx.options
    # An image's files are copies made for this capture: their inodes name nothing stable.
    enabled = options.use_cache and ctx.source.kind != "image"
    return ctx.shared("hashcache", lambda: HashCache(options.cache_dir, enabled=enabled))
