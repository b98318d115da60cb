"""Layers cached by content: an unchanged layer is neither tarred nor compressed again.

A layer's **key** is the sha256 of everything its bytes depend on: envpack's layer format
(:data:`LAYER_FORMAT` and the envpack version), the compressor and its level, and every
entry as the tar writer sees it — path, kind, mode, ids, clamped mtime (so
``SOURCE_DATE_EPOCH`` is in), size, link target and, for a file, the sha256 of its bytes.
File hashes come from the capture's hash cache (:mod:`envpack.snapshot.hashcache`): they
are *stat-validated* — remembered under (device, inode, size, mtime, ctime), so any write
or replacement of a file gives a new stat key and the file is hashed again. Generated
files (``.pyc``, the base ``/etc`` files, the manifest) are hashed from their bytes.

Storage (``$ENVPACK_CACHE_DIR``, else the user cache folder, then ``layers/``)::

    layers/blobs/sha256/<hex>     compressed layer blobs, content-addressed
    layers/keys/<key>.json        key → digest, diff_id, sizes, media type, compressor
    layers/builds/<key>.json      whole builds (:mod:`envpack.pack.buildcache`)

Everything is written to a uniquely named temporary file in the same folder and renamed
into place, so a reader (another build) sees a whole file or none, and two builds that
make the same layer at once both rename identical bytes. Nothing is locked. A hit is
copied into the build's blob folder *while its digest is checked*: a blob that lost bytes
or was edited is dropped from the cache and the layer built again, so a hit never ships
bytes other than the ones its key names. A layer built on a miss is stored only when
none of its files changed (stat key) between hashing and packing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import stat
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from envpack import __version__
from envpack.errors import UsageError
from envpack.oci.digest import Digest, InvalidDigest
from envpack.oci.layer import (
    DEFAULT_COMPRESSOR,
    DEFAULT_LEVEL,
    Layer,
    build_layers,
    compressor_name,
)
from envpack.oci.tarlayer import TarEntry
from envpack.pack.planmodel import PlannedFile
from envpack.snapshot.hashcache import HashCache, default_cache_dir, stat_key
from envpack.snapshot.source import Source, SourceReadError

__all__ = [
    "CACHE_ENV",
    "LAYER_FORMAT",
    "CacheSummary",
    "LayerCache",
    "LayerStats",
    "build_cached_layers",
    "layer_cache_dir",
    "stats",
    "write_new",
]

CACHE_ENV = "ENVPACK_CACHE_DIR"
LAYER_FORMAT = 1
"""Bump when the tar or gzip writer changes the bytes of a layer for the same entries
(a new header field, another gzip header): old cache entries then miss."""
_COPY_BLOCK = 1 << 20
_TMP_PREFIX = ".tmp-"


@dataclass
class LayerStats:
    """Counters for this process (tests and benchmarks read them)."""

    hits: int = 0
    misses: int = 0
    stored: int = 0
    rejected: int = 0
    """Cached blobs whose bytes no longer matched their digest (dropped, rebuilt)."""
    unstable: int = 0
    """Layers built on a miss but not stored: a file changed while they were packed."""


stats = LayerStats()
_stats_lock = threading.Lock()


def layer_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$ENVPACK_CACHE_DIR/layers``, else ``layers`` in the user cache folder."""
    env = os.environ if environ is None else environ
    override = env.get(CACHE_ENV, "")
    return (Path(override) if override else default_cache_dir()) / "layers"


@dataclass(frozen=True)
class CacheSummary:
    """What ``envpack cache info`` / ``prune`` report."""

    path: Path
    layers: int
    """Key records (one per cached layer variant)."""
    blobs: int
    builds: int
    """Whole-build records (:mod:`envpack.pack.buildcache`)."""
    bytes: int
    """Bytes of blobs, records and leftover temporary files."""


class LayerCache:
    """The content-addressed layer store at ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs" / "sha256"
        self.keys = root / "keys"
        self.builds = root / "builds"

    # -- lookups -----------------------------------------------------------------------------

    def fetch(self, key: str, blob_dir: Path) -> Layer | None:
        """The layer stored under ``key``, copied into ``blob_dir`` and verified; or None."""
        record = self._record(key)
        if record is None:
            return None
        digest: Digest = record["digest"]
        if not self.fetch_blob(digest, record["size"], blob_dir):
            with contextlib.suppress(OSError):
                os.unlink(self.keys / f"{key}.json")
            return None
        target = blob_dir / digest.hex
        return Layer(
            digest=digest,
            diff_id=record["diff_id"],
            size=record["size"],
            uncompressed_size=record["uncompressed_size"],
            media_type=record["media_type"],
            path=target,
            compressor=record["compressor"],
        )

    def fetch_blob(self, digest: Digest, size: int, blob_dir: Path) -> bool:
        """Copy the blob of ``digest`` into ``blob_dir`` while checking its bytes; ``False``
        (and the blob dropped from the cache) when it is gone or damaged."""
        cached = self.blobs / digest.hex
        target = blob_dir / digest.hex
        if target.exists():  # a second layer of the same bytes shares the first's blob
            return True
        try:
            source = cached.open("rb")
        except OSError:
            return False  # pruned meanwhile, or unreadable: a miss
        # Errors writing into the build (a full disk) are the build's: not caught here.
        if _copy_verified(source, target, digest, size):
            return True
        with _stats_lock:
            stats.rejected += 1
        with contextlib.suppress(OSError):
            os.unlink(cached)
        return False

    def _record(self, key: str) -> dict[str, Any] | None:
        try:
            value = json.loads((self.keys / f"{key}.json").read_bytes())
            return {
                "digest": Digest.parse(str(value["digest"])),
                "diff_id": Digest.parse(str(value["diff_id"])),
                "size": _count(value["size"]),
                "uncompressed_size": _count(value["uncompressed_size"]),
                "media_type": str(value["media_type"]),
                "compressor": str(value["compressor"]),
            }
        except (OSError, ValueError, KeyError, TypeError, InvalidDigest):
            return None  # absent, or a record from a crash of another version: a miss

    # -- storing -----------------------------------------------------------------------------

    def store(self, key: str, layer: Layer) -> None:
        """Keep ``layer`` (its blob copied in) under ``key``; a failure only costs the cache."""
        try:
            self.blobs.mkdir(parents=True, exist_ok=True)
            self.keys.mkdir(parents=True, exist_ok=True)
            blob = self.blobs / layer.digest.hex
            if not blob.exists():
                with layer.path.open("rb") as source:
                    write_new(blob, lambda out: shutil.copyfileobj(source, out, _COPY_BLOCK))
            record = {
                "digest": str(layer.digest),
                "diff_id": str(layer.diff_id),
                "size": layer.size,
                "uncompressed_size": layer.uncompressed_size,
                "media_type": layer.media_type,
                "compressor": layer.compressor,
            }
            data = json.dumps(record, sort_keys=True).encode()
            write_new(self.keys / f"{key}.json", lambda out: out.write(data))
        except OSError:
            return
        with _stats_lock:
            stats.stored += 1

    # -- maintenance -------------------------------------------------------------------------

    def remove_stale_temporaries(self) -> int:
        """Remove the temporary files of builds that died (SIGKILL, power loss) mid-store.

        A temporary file is named after its writer's pid; one whose process is gone can
        never be renamed into place. Returns how many were removed.
        """
        removed = 0
        for folder in (self.keys, self.blobs, self.builds):
            try:
                names = os.listdir(folder)
            except OSError:
                continue
            for name in names:
                pid = _writer_pid(name)
                if pid is None or pid == os.getpid() or _alive(pid):
                    continue
                with contextlib.suppress(OSError):
                    os.unlink(folder / name)
                    removed += 1
        return removed

    def summary(self) -> CacheSummary:
        layers = blobs = builds = size = 0
        for path, kind in self._files():
            blobs += kind == "blob"
            layers += kind == "key"
            builds += kind == "build"
            with contextlib.suppress(OSError):
                size += path.lstat().st_size
        return CacheSummary(self.root, layers, blobs, builds, size)

    def prune(self) -> CacheSummary:
        """Remove every record, blob and leftover temporary file; what was removed.

        Records go first: a build running meanwhile then misses instead of finding a
        record whose blob is gone (and even that only costs it a rebuild of the layer).
        """
        layers = blobs = builds = size = 0
        files = sorted(self._files(), key=lambda item: item[1] == "blob")
        for path, kind in files:
            try:
                length = path.lstat().st_size
                path.unlink()
            except OSError:
                continue
            size += length
            blobs += kind == "blob"
            layers += kind == "key"
            builds += kind == "build"
        return CacheSummary(self.root, layers, blobs, builds, size)

    def _files(self) -> Iterator[tuple[Path, str]]:
        """(path, ``key``/``build``/``blob``/``other``) for every file of the store."""
        kinds = {self.keys: "key", self.builds: "build", self.blobs: "blob"}
        for folder in (self.keys, self.builds, self.blobs):
            try:
                names = sorted(os.listdir(folder))
            except OSError:
                continue
            for name in names:
                path = folder / name
                try:
                    if not stat.S_ISREG(path.lstat().st_mode):
                        continue
                except OSError:
                    continue
                kind = kinds[folder]
                if name.startswith(_TMP_PREFIX) or (kind != "blob" and not name.endswith(".json")):
                    kind = "other"
                yield path, kind


def _writer_pid(name: str) -> int | None:
    """The pid in a temporary file's name (``.tmp-<pid>-<hex>``), else ``None``."""
    if not name.startswith(_TMP_PREFIX):
        return None
    pid = name[len(_TMP_PREFIX) :].split("-", 1)[0]
    return int(pid) if pid.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process: alive
    return True


def _count(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError("not a size")
    return value


def write_new(target: Path, fill: Callable[[BinaryIO], object]) -> None:
    """Write ``target`` through a unique temporary file in its folder and a rename."""
    tmp = target.parent / f"{_TMP_PREFIX}{os.getpid()}-{secrets.token_hex(6)}"
    try:
        with tmp.open("xb") as out:
            fill(out)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _copy_verified(source: BinaryIO, target: Path, digest: Digest, size: int) -> bool:
    """Copy ``source`` (closed here) to ``target`` while hashing it; ``False`` (nothing
    left at ``target``) when the bytes are not those of ``digest``."""
    hasher = hashlib.sha256()
    length = 0
    with source, target.open("xb") as out:
        while True:
            chunk = source.read(_COPY_BLOCK)
            if not chunk:
                break
            hasher.update(chunk)
            out.write(chunk)
            length += len(chunk)
    if length == size and hasher.hexdigest() == digest.hex:
        os.chmod(target, 0o644)
        return True
    os.unlink(target)
    return False


# -- keys -------------------------------------------------------------------------------------


@dataclass
class _Hasher:
    """File hashes for the keys: through the hash cache, with the stat key each is valid for."""

    source: Source
    cache: HashCache
    keys: dict[tuple[int, str], tuple[int, int, int, int, int]] = field(default_factory=dict)
    _host: Source | None = None

    def source_of(self, planned: PlannedFile) -> Source:
        # Application files are read from their host folder, whatever the image's source.
        if planned.origin == "app":
            if self._host is None:
                self._host = Source.live()
            return self._host
        return self.source

    def hashes(self, files: Sequence[PlannedFile]) -> dict[tuple[int, str], str] | None:
        """(source id, path) → sha256 of every source file; ``None`` if one is unreadable."""
        wanted: dict[int, list[str]] = {}
        sources: dict[int, Source] = {}
        for planned in files:
            if planned.entry.kind != "file" or planned.source_path is None:
                continue
            source = self.source_of(planned)
            sources[id(source)] = source
            wanted.setdefault(id(source), []).append(planned.source_path)
        out: dict[tuple[int, str], str] = {}
        for ident, paths in wanted.items():
            source = sources[ident]
            batch = self.cache.batch(source)
            for path in paths:
                try:
                    st = source.stat(path)
                except SourceReadError:
                    return None
                if st is None:
                    return None
                self.keys[(ident, path)] = stat_key(st)
                batch.add(path, st)
            for path, result in batch.results().items():
                if isinstance(result, SourceReadError):
                    return None
                out[(ident, path)] = result
        return out

    def unchanged(self, files: Sequence[PlannedFile]) -> bool:
        """Whether every source file still has the stat key it was hashed under."""
        for planned in files:
            if planned.entry.kind != "file" or planned.source_path is None:
                continue
            source = self.source_of(planned)
            try:
                st = source.stat(planned.source_path)
            except SourceReadError:
                return False
            if st is None or stat_key(st) != self.keys.get((id(source), planned.source_path)):
                return False
        return True


def _generated_hash(entry: TarEntry) -> str:
    if entry.open is None:
        return ""
    hasher = hashlib.sha256()
    with entry.open() as stream:
        while chunk := stream.read(_COPY_BLOCK):
            hasher.update(chunk)
    return hasher.hexdigest()


def layer_key(
    files: Sequence[PlannedFile], hashes: Mapping[tuple[int, str], str], hasher: _Hasher, level: int
) -> str:
    """The cache key of one layer (see the module docstring for what goes in)."""
    rows: list[list[object]] = []
    for planned in sorted(files, key=lambda p: p.entry.path):
        entry = planned.entry
        content = ""
        if entry.kind == "file":
            if planned.source_path is None:
                content = _generated_hash(entry)
            else:
                content = hashes[(id(hasher.source_of(planned)), planned.source_path)]
        rows.append(
            [
                entry.path,
                entry.kind,
                entry.mode,
                entry.uid,
                entry.gid,
                entry.mtime,
                entry.size,
                entry.linkname,
                content,
            ]
        )
    head = {
        "format": LAYER_FORMAT,
        "envpack": __version__,
        "compressor": compressor_name(level, DEFAULT_COMPRESSOR),  # what build_layers uses
    }
    text = json.dumps([head, rows], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


# -- the one call of the build path -----------------------------------------------------------


def build_cached_layers(
    groups: Sequence[Sequence[PlannedFile]],
    blob_dir: Path,
    *,
    source: Source,
    cache: LayerCache | None,
    hash_cache: HashCache | None = None,
    level: int = DEFAULT_LEVEL,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[Layer], list[bool]]:
    """The layers of ``groups`` (bottom first) and, for each, whether it came from the cache.

    With ``cache=None`` (``--no-cache``) every layer is built, exactly as without a cache.
    """
    if cache is None:
        layers = build_layers(
            [[p.entry for p in g] for g in groups], blob_dir, level=level, progress=progress
        )
        return layers, [False] * len(layers)
    cache.remove_stale_temporaries()
    own = hash_cache is None
    hashes_from = hash_cache if hash_cache is not None else HashCache(cache.root.parent)
    try:
        hasher = _Hasher(source, hashes_from)
        keys: list[str | None] = []
        found: list[Layer | None] = []
        for group in groups:
            hashes = hasher.hashes(group)
            key = None if hashes is None else layer_key(group, hashes, hasher, level)
            keys.append(key)
            layer = None if key is None else cache.fetch(key, blob_dir)
            found.append(layer)
            if layer is not None and progress is not None:
                progress(sum(p.entry.size for p in group if p.entry.kind == "file"))
        missing = [i for i, layer in enumerate(found) if layer is None]
        with _stats_lock:
            stats.hits += len(groups) - len(missing)
            stats.misses += len(missing)
        built = build_layers(
            [[p.entry for p in groups[i]] for i in missing],
            blob_dir,
            level=level,
            progress=progress,
        )
        for index, layer in zip(missing, built):
            found[index] = layer
            key = keys[index]
            if key is None:
                continue
            if hasher.unchanged(groups[index]):
                cache.store(key, layer)
            else:
                with _stats_lock:
                    stats.unstable += 1
    finally:
        if own:
            hashes_from.close()
    layers = [layer for layer in found if layer is not None]
    return layers, [i not in missing for i in range(len(groups))]


def open_cache(use_cache: bool, environ: Mapping[str, str] | None = None) -> LayerCache | None:
    """The layer cache a build uses, or ``None`` with ``--no-cache``."""
    if not use_cache:
        return None
    root = layer_cache_dir(environ)
    if root.exists() and not root.is_dir():
        raise UsageError(f"{CACHE_ENV}: {root} is not a folder")
    return LayerCache(root)
