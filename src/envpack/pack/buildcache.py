"""Whole builds cached: an unchanged rebuild checks stat keys and writes the cached image.

A build's **key** is the sha256 of what the image is a function of besides the files it
reads: envpack's version and a fingerprint of its code, the layer format and compressor,
the SBOM library's installed files, the manifest's bytes, every option that shapes the image
(``--root``, ``--app``, ``--entrypoint``, ``--cmd``, ``--workdir``, ``--env``, ``--user``,
``--exclude``, ``--include``, ``--include-secrets``, ``--allow-drift``, SOURCE_DATE_EPOCH)
and the variables the plan reads (``LD_LIBRARY_PATH`` for the library search, ``PATH``
for a ``--root`` build's compiler). ``--format``, ``--tag``, ``-o``, ``--load`` and
``--push`` are not in it: they say where the same image goes.

What the files contribute is checked, not hashed. While a build plans, every query its
sources answer is recorded (:class:`envpack.snapshot.source.SourceObserver`): the
``lstat``/``stat`` of each path (missing ones too: a library that appears where the search
looked first changes the plan), the ``stat`` of each folder before it is listed (an entry
added or removed changes the folder's mtime and ctime), the ``fstat`` of each file opened,
each symlink's target and each resolved path. A record holds them with their results; a
later build with the same key asks every query again and reuses the record only when every
answer is the same. Stat results compare device, inode, size, mtime, ctime and mode, in
nanoseconds: a write changes ctime even when it restores size and mtime, a chmod changes
mode and ctime, a replaced file or symlink gets a new inode.

Racy entries, as git calls them: a file written within the timestamp granularity of the
moment it was observed could be written again without its times changing. So a build
stores no record when any observed time is later than :data:`RACY_SECONDS` before the
build started (the next build, which finds those files settled, stores one).

A hit writes the output from the layer cache's blobs (each copied while its digest is
checked, :meth:`LayerCache.fetch_blob`) and the record's config and manifest bytes: the
same bytes, so the same digest, as a build without cache. A record whose blob is gone or
damaged is dropped and the build runs in full. Records live in ``layers/builds/`` of the
cache folder, written through a temporary file and a rename like the layer cache's, so
concurrent builds see a whole record or none; ``envpack cache info|prune`` count them.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import stat
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from envpack import __version__
from envpack.fsnames import escape, unescape
from envpack.oci import media
from envpack.oci.digest import Digest, InvalidDigest
from envpack.oci.image import Image
from envpack.oci.layer import DEFAULT_COMPRESSOR, DEFAULT_LEVEL, Layer, compressor_name
from envpack.oci.model import Descriptor
from envpack.pack.layercache import LAYER_FORMAT, LayerCache, write_new
from envpack.snapshot.source import Source, SourceReadError, observed_stat

__all__ = [
    "BUILD_FORMAT",
    "RACY_SECONDS",
    "BuildCache",
    "BuildStats",
    "CachedBuild",
    "Observations",
    "build_key",
    "stats",
]

BUILD_FORMAT = 1
"""Bump when a record's fields or the meaning of an observation change."""
RACY_SECONDS = 1.0
"""Files changed this long before a build started, or later, keep it from being stored."""


@dataclass
class BuildStats:
    """Counters for this process (tests read them)."""

    hits: int = 0
    misses: int = 0
    stored: int = 0
    racy: int = 0
    """Builds not stored: a file they read had changed too recently (or meanwhile)."""


stats = BuildStats()
_stats_lock = threading.Lock()


def _count(field: str) -> None:
    with _stats_lock:
        setattr(stats, field, getattr(stats, field) + 1)


# -- the key ----------------------------------------------------------------------------------


def _code_fingerprint() -> str:
    """Sizes and mtimes of envpack's own modules: an edited checkout is another envpack."""
    package = Path(__file__).resolve().parent.parent
    rows: list[str] = []
    for folder, dirs, names in os.walk(package):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(names):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with contextlib.suppress(OSError):
                    st = os.stat(path)
                    rows.append(f"{os.path.relpath(path, package)}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(rows).encode("utf-8", "surrogateescape")).hexdigest()


def _library_stamp(module: str) -> list[int] | None:
    """The stat of a library's ``__init__.py``: installing another version rewrites it.
    (Asking importlib.metadata for the version scans every distribution on ``sys.path``:
    40 ms, a twentieth of a rebuild from the cache.)"""
    from importlib.util import find_spec

    spec = find_spec(module)
    if spec is None or not spec.origin:
        return None
    try:
        return observed_stat(os.stat(spec.origin))
    except OSError:
        return None


def build_key(
    raw: bytes,
    *,
    root: str | None,
    apps: Sequence[tuple[str, str]],
    image_options: Mapping[str, object],
    environ: Mapping[str, str],
) -> str:
    """The key of a build: the manifest's bytes and what else the image depends on."""
    head = {
        "format": BUILD_FORMAT,
        "envpack": __version__,
        "code": _code_fingerprint(),
        "layers": LAYER_FORMAT,
        "compressor": compressor_name(DEFAULT_LEVEL, DEFAULT_COMPRESSOR),
        "sbom": _library_stamp("cyclonedx"),
        "manifest": hashlib.sha256(raw).hexdigest(),
        "root": root,
        "apps": [list(app) for app in apps],
        "options": dict(image_options),
        "environ": {name: environ.get(name) for name in ("LD_LIBRARY_PATH", "PATH")},
    }
    text = json.dumps(head, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


# -- observing a build ------------------------------------------------------------------------


def _normalized(op: str, value: object, epoch: int) -> object:
    """What of an answer the build depends on.

    A folder's ``lstat``/``stat`` (a parent of a shipped file: ``/tmp``, ``/home``) gives
    its type, mode and mtime clamped to SOURCE_DATE_EPOCH; its size, ctime and a later
    mtime change whenever an entry comes or goes, which matters only where the folder is
    *listed* (``list`` keeps the whole stat).
    """
    if op in ("lstat", "stat") and isinstance(value, list) and stat.S_ISDIR(value[5]):
        mtime = value[3] if value[3] < epoch * 1_000_000_000 else -1
        return [value[0], value[1], -1, mtime, -1, value[5]]
    return value


class Observations:
    """Every query the build's sources answered, with the first answer (a
    :class:`~envpack.snapshot.source.SourceObserver`)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        """The build's SOURCE_DATE_EPOCH (folder times are clamped to it)."""
        self._seen: dict[tuple[str, str, str, str], object] = {}
        self._lock = threading.Lock()
        self.changed = False
        """A query answered twice, differently: the tree changed while it was read."""
        self.foreign = False
        """A source other than the host or a folder (nothing this cache can ask again)."""

    def note(self, source: Source, op: str, inner: str, result: object) -> None:
        if source.kind not in ("live", "root"):
            self.foreign = True
            return
        key = (source.kind, source.root, op, inner)
        result = _normalized(op, result, self.epoch)
        with self._lock:
            first = self._seen.setdefault(key, result)
        if first != result:
            self.changed = True

    def __len__(self) -> int:
        return len(self._seen)

    def rows(self) -> list[list[object]]:
        """Every query and answer, the most recently changed files first: a rebuild stops
        at the first answer that differs, and what changed lately is what changes next
        (the application being worked on), so a changed rebuild stops early."""
        with self._lock:
            seen = dict(self._seen)
        rows = [[*key, value] for key, value in seen.items() if not _implied(key, value, seen)]
        rows.sort(key=lambda row: -_changed_at(row[4]))
        return rows

    def newest_time_ns(self) -> int:
        """The latest mtime or ctime among the observed stat results."""
        return max(map(_changed_at, list(self._seen.values())), default=0)


def _implied(
    key: tuple[str, str, str, str], answer: object, seen: Mapping[tuple[str, str, str, str], object]
) -> bool:
    """Whether a ``stat`` or ``open`` answer follows from the ``lstat`` of the same path:
    when that names a regular file (no symlink to follow) with these very stat values, a
    replayed ``lstat`` that matches leaves ``stat`` and ``open`` nothing else to find (a
    chmod that would make the open fail changes the ctime). A third of a record's rows."""
    kind, root, op, inner = key
    if op not in ("stat", "open") or not isinstance(answer, list):
        return False
    own = seen.get((kind, root, "lstat", inner))
    return own == answer and stat.S_ISREG(answer[5])


def _changed_at(answer: object) -> int:
    """The later of mtime and ctime of a stat answer (0 for other answers)."""
    if isinstance(answer, list) and len(answer) == 6:
        mtime, ctime = answer[3], answer[4]
        if isinstance(mtime, int) and isinstance(ctime, int):
            return max(mtime, ctime)
    return 0


def _replay(source: Source, op: str, inner: str) -> object:
    """Ask ``source`` again what the observed build asked (see ``SourceObserver``)."""
    try:
        if op == "lstat":
            return observed_stat(source.lstat(inner))
        if op in ("stat", "list"):
            return observed_stat(source.stat(inner))
        if op == "open":
            fd, st = source.open_fd(inner)
            os.close(fd)
            return observed_stat(st)
        if op == "readlink":
            return source.readlink(inner)
        if op in ("resolve", "resolve-link"):
            found = source.resolve(inner, follow_last=op == "resolve")
            return [found.inner, found.host, found.escaped]
    except SourceReadError:
        return "error"
    return ("unknown operation", op)  # never equal to a recorded answer


_MISSING = (FileNotFoundError, NotADirectoryError)


def _replay_live(op: str, inner: str) -> object:
    """:func:`_replay` on the live host, by plain system calls.

    On the host a source path is a host path and the kernel resolves it as
    :meth:`Source.resolve` does; the result types are those of the :class:`Source` methods
    (``open`` is the ``stat`` of the regular file it would open). Five times faster than
    asking a :class:`Source`, which matters: an unchanged rebuild asks thousands of them.
    """
    raw = unescape(inner) if "%" in inner else inner
    try:
        if op == "lstat":
            return observed_stat(os.lstat(raw))
        if op in ("stat", "list"):
            return observed_stat(os.stat(raw))
        if op == "open":
            st = os.stat(raw)
            return observed_stat(st) if stat.S_ISREG(st.st_mode) else "error"
        if op == "readlink":
            return escape(os.readlink(raw))
    except _MISSING:
        return {"lstat": None, "stat": None, "list": None, "open": "error"}.get(op)
    except OSError:
        return None if op == "readlink" else "error"
    return _REPLAY_BY_SOURCE


_REPLAY_BY_SOURCE = object()


def _source_for(kind: str, root: str) -> Source | None:
    if kind == "live":
        return Source.live()
    if kind == "root" and os.path.isdir(root):
        return Source.rootfs(root)
    return None


def _unchanged(rows: Sequence[Sequence[object]], epoch: int) -> bool:
    sources: dict[tuple[str, str], Source | None] = {}
    try:
        for row in rows:
            kind, root, op, inner, expected = row
            if not (isinstance(kind, str) and isinstance(root, str)):
                return False
            if not (isinstance(op, str) and isinstance(inner, str)):
                return False
            source = sources.get((kind, root))
            if source is None:
                source = sources[(kind, root)] = _source_for(kind, root)
            if source is None:
                return False
            if kind == "live":
                answer = _replay_live(op, inner)
                if answer is _REPLAY_BY_SOURCE:
                    answer = _replay(source, op, inner)
            else:
                answer = _replay(source, op, inner)
            if _normalized(op, answer, epoch) != expected:
                return False
        return True
    finally:
        for source in sources.values():
            if source is not None:
                source.close()


# -- records ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CachedBuild:
    """A validated record: the image's small documents, its layers and the build report."""

    config_bytes: bytes
    manifest_bytes: bytes
    layers: tuple[dict[str, Any], ...]
    architecture: str
    os: str
    created: int
    annotations: dict[str, str]
    report: dict[str, Any]

    def image(self, blob_dir: Path, cache: LayerCache) -> Image | None:
        """The image, its layer blobs copied (and checked) into ``blob_dir``; ``None`` when
        a blob is gone or damaged."""
        layers: list[Layer] = []
        try:
            for item in self.layers:
                digest = Digest.parse(str(item["digest"]))
                size = int(item["size"])
                if not cache.fetch_blob(digest, size, blob_dir):
                    return None
                layers.append(
                    Layer(
                        digest=digest,
                        diff_id=Digest.parse(str(item["diff_id"])),
                        size=size,
                        uncompressed_size=int(item["uncompressed_size"]),
                        media_type=str(item["media_type"]),
                        path=blob_dir / digest.hex,
                        compressor=str(item["compressor"]),
                    )
                )
        except (KeyError, TypeError, ValueError, InvalidDigest):
            return None
        config = Digest.of_bytes(self.config_bytes)
        manifest = Digest.of_bytes(self.manifest_bytes)
        return Image(
            config=Descriptor(media.OCI_CONFIG, config, len(self.config_bytes)),
            config_bytes=self.config_bytes,
            manifest=Descriptor(media.OCI_MANIFEST, manifest, len(self.manifest_bytes)),
            manifest_bytes=self.manifest_bytes,
            layers=tuple(layers),
            architecture=self.architecture,
            os=self.os,
            created=self.created,
        )


class BuildCache:
    """Build records in ``layers/builds/`` beside the layer cache they take blobs from."""

    def __init__(self, layers: LayerCache) -> None:
        self.layers = layers
        self.folder = layers.builds

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def lookup(self, key: str, epoch: int) -> CachedBuild | None:
        """The record of ``key`` when every query it holds still gets the same answer."""
        try:
            data = orjson.loads(self._path(key).read_bytes())
            if data.get("format") != BUILD_FORMAT or data.get("key") != key:
                raise ValueError("another format")
            image = data["image"]
            found = CachedBuild(
                config_bytes=base64.b64decode(image["config"]),
                manifest_bytes=base64.b64decode(image["manifest"]),
                layers=tuple(image["layers"]),
                architecture=str(image["architecture"]),
                os=str(image["os"]),
                created=int(image["created"]),
                annotations={str(k): str(v) for k, v in image["annotations"].items()},
                report=dict(data["report"]),
            )
            rows = data["observations"]
            if not isinstance(rows, list) or not all(
                isinstance(row, list) and len(row) == 5 for row in rows
            ):
                raise ValueError("not a list of observations")
        except (OSError, ValueError, KeyError, TypeError, AttributeError, orjson.JSONDecodeError):
            _count("misses")
            return None
        if not _unchanged(rows, epoch):
            _count("misses")
            return None
        _count("hits")
        return found

    def drop(self, key: str) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self._path(key))

    def store(
        self,
        key: str,
        observations: Observations,
        image: Image,
        annotations: Mapping[str, str],
        report: Mapping[str, Any],
        *,
        started_ns: int,
    ) -> bool:
        """Keep a finished build; ``False`` when it must not be kept (see the module doc)."""
        if observations.changed or observations.foreign or not len(observations):
            _count("racy")
            return False
        if observations.newest_time_ns() >= started_ns - int(RACY_SECONDS * 1e9):
            _count("racy")
            return False
        if not all((self.layers.blobs / layer.digest.hex).is_file() for layer in image.layers):
            return False  # the layer cache kept not every layer (a file changed meanwhile)
        record = {
            "format": BUILD_FORMAT,
            "key": key,
            "image": {
                "config": base64.b64encode(image.config_bytes).decode("ascii"),
                "manifest": base64.b64encode(image.manifest_bytes).decode("ascii"),
                "layers": [
                    {
                        "digest": str(layer.digest),
                        "diff_id": str(layer.diff_id),
                        "size": layer.size,
                        "uncompressed_size": layer.uncompressed_size,
                        "media_type": layer.media_type,
                        "compressor": layer.compressor,
                    }
                    for layer in image.layers
                ],
                "architecture": image.architecture,
                "os": image.os,
                "created": image.created,
                "annotations": dict(annotations),
            },
            "report": dict(report),
            "observations": observations.rows(),
        }
        try:
            encoded = orjson.dumps(record)
        except TypeError:
            return False  # a name that is not UTF-8 (orjson refuses surrogates)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_new(self._path(key), lambda out: out.write(encoded))
        except OSError:
            return False
        _count("stored")
        return True


def report_fields(report: Mapping[str, Any]) -> dict[str, Any]:
    """What of a build report (``BuildReport.to_json()``) a record keeps: the image's and
    the plan's facts, not where this build wrote it or how long it took."""
    return {
        key: value
        for key, value in report.items()
        if key
        not in (
            "output",
            "format",
            "tag",
            "loaded_image_id",
            "published",
            "seconds",
            "build_cached",
        )
    }
