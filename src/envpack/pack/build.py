"""Build an image from a manifest: plan → layers → OCI image → the chosen output.

This is the orchestration behind ``envpack build``; the file set comes from
:mod:`envpack.pack.plan`, the layer split from :mod:`envpack.pack.layering`, the bytes of
layers, config and layouts from :mod:`envpack.oci`. Everything is written in a workspace
beside OUT (:mod:`envpack.pack.workspace`) and renamed into place at the end, so a failed
or interrupted build leaves neither OUT nor temporary files.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import io
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from envpack.errors import PackError, UsageError
from envpack.manifest import Manifest, loads
from envpack.oci.image import Image, ImageSpec
from envpack.oci.tarlayer import TarEntry
from envpack.pack.planmodel import DEFAULT_EPOCH, Plan, PlannedFile, PlanOptions
from envpack.pack.workspace import Workspace, workspace
from envpack.snapshot.source import Source

if TYPE_CHECKING:
    from envpack.pack.layering import LayerGroup

__all__ = [
    "MANIFEST_LABEL",
    "MANIFEST_PATH",
    "SBOM_PATH",
    "BuildOptions",
    "BuildReport",
    "LayerReport",
    "OutputFormat",
    "Progress",
    "build",
    "source_date_epoch",
]

OutputFormat = Literal["oci", "tar", "rootfs"]
Progress = Callable[[str, int, int], None]
"""``(phase, done, total)``: phases ``reading``, ``hashing`` (from the plan),
``compressing`` and ``writing`` (bytes of file content)."""

MANIFEST_PATH = "/.envpack/manifest.json"
SBOM_PATH = "/.envpack/sbom.cdx.json"
"""The image's CycloneDX SBOM (:func:`envpack.sbom.render_sbom`), dated SOURCE_DATE_EPOCH."""
MANIFEST_LABEL = "io.envpack.manifest.digest"
_MANIFEST_GROUP = "envpack"


@dataclass(frozen=True)
class BuildOptions:
    """Everything ``envpack build`` was asked for, besides the manifest."""

    output: Path | None = None
    """Where the image goes; ``None`` only with ``load`` (nothing is kept on disk)."""
    format: OutputFormat = "oci"
    root: Path | None = None
    apps: Sequence[tuple[str, str]] = ()
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    workdir: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    user: str = ""
    tag: str | None = None
    exclude: Sequence[str] = ()
    include: Sequence[str] = ()
    include_secrets: bool = False
    allow_drift: bool = False
    load: bool = False
    force: bool = False
    use_cache: bool = True
    source_date_epoch: int = DEFAULT_EPOCH
    docker_client: Any = None
    """A Docker SDK client for ``load``; ``None``: from the environment (``DOCKER_HOST``)."""
    publish: Callable[[Image], str] | None = None
    """Called with the built image while its blobs still exist (``--push``); returns the
    line the summary shows. Nothing else needs to be written (no ``-o`` is required)."""


@dataclass(frozen=True)
class LayerReport:
    """One layer of the image as the report shows it."""

    group: str
    files: int
    size: int
    """Compressed bytes (0 for a rootfs-only build, which compresses nothing)."""
    uncompressed_size: int
    digest: str
    cached: bool = False
    """Taken from the layer cache: neither tarred nor compressed in this build."""


@dataclass(frozen=True)
class BuildReport:
    """What a build made and what it left out, for stderr and ``--report FILE``."""

    output: str | None
    format: str
    image_digest: str | None
    """The digest of the image manifest (what a registry names the image by)."""
    config_digest: str | None
    manifest_digest: str
    layers: tuple[LayerReport, ...]
    excluded: tuple[tuple[str, int, str], ...]
    dlopen_added: tuple[str, ...]
    secret_configs: tuple[str, ...]
    drift: tuple[tuple[str, str], ...]
    notes: tuple[str, ...]
    """What the plan could not do (a library not found, bytecode skipped)."""
    tag: str | None
    loaded_image_id: str | None
    seconds: float
    published: str | None = None
    """What ``publish`` said (``pushed HOST/REPO:TAG@sha256:…``)."""
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    """The image's environment, sorted (also what a rootfs is to be run with)."""
    workdir: str = ""
    user: str = ""
    build_cached: bool = False
    """The whole build came from the build cache (:mod:`envpack.pack.buildcache`)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "format": self.format,
            "image_digest": self.image_digest,
            "config_digest": self.config_digest,
            "manifest_digest": self.manifest_digest,
            "layers": [dataclasses.asdict(layer) for layer in self.layers],
            "excluded": [
                {"path": path, "size": size, "reason": reason}
                for path, size, reason in self.excluded
            ],
            "dlopen_added": list(self.dlopen_added),
            "secret_configs": list(self.secret_configs),
            "drift": [{"path": path, "reason": reason} for path, reason in self.drift],
            "notes": list(self.notes),
            "tag": self.tag,
            "loaded_image_id": self.loaded_image_id,
            "published": self.published,
            "seconds": round(self.seconds, 3),
            "build_cached": self.build_cached,
            "config": {
                "entrypoint": list(self.entrypoint),
                "cmd": list(self.cmd),
                "env": dict(self.env),
                "workdir": self.workdir,
                "user": self.user,
            },
        }

    def summary(self) -> list[str]:
        """The lines printed on stderr (paths may hold anything: print them as text)."""
        lines = [f"{'layer':<28} {'files':>7} {'size':>10} {'compressed':>10}  digest"]
        for layer in self.layers:
            short = layer.digest.split(":")[-1][:12] if layer.digest else "-"
            lines.append(
                f"{layer.group:<28} {layer.files:>7} {_human(layer.uncompressed_size):>10} "
                f"{_human(layer.size) if layer.size else '-':>10}  {short}"
            )
        excluded = sum(size for _, size, _ in self.excluded)
        lines.append(
            f"excluded {len(self.excluded)} files ({_human(excluded)}); "
            f"dlopen additions: {', '.join(self.dlopen_added) or 'none'}"
        )
        if self.secret_configs:
            lines.append("config files with secret-looking keys: " + ", ".join(self.secret_configs))
        if self.drift:
            lines.append(f"packed despite drift (--allow-drift): {len(self.drift)} files")
        lines.extend(f"note: {note}" for note in self.notes)
        reused = sum(layer.cached for layer in self.layers)
        if reused:
            lines.append(f"layers from the cache: {reused} of {len(self.layers)}")
        if self.build_cached:
            lines.append("build from the cache: no file it read has changed")
        if self.image_digest:
            lines.append(f"image {self.image_digest}")
        if self.loaded_image_id:
            lines.append(f"loaded into Docker as {self.tag or self.loaded_image_id}")
        if self.published:
            lines.append(self.published)
        lines.append(self._last_line())
        return lines

    def _last_line(self) -> str:
        """What the build made of the image: a file or folder, a push, a load into Docker."""
        if self.output:
            return f"built {self.format} in {self.seconds:.1f} s → {self.output}"
        done = []
        if self.published:
            # PushResult.summary(): "pushed HOST/REPO:TAG@sha256:…: …"
            done.append(self.published.split("@", 1)[0])
        if self.loaded_image_id:
            done.append(f"loaded {self.tag or self.loaded_image_id} into Docker")
        return f"built in {self.seconds:.1f} s: {' and '.join(done) or 'nothing written'}"


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def source_date_epoch(environ: Mapping[str, str]) -> int:
    """``SOURCE_DATE_EPOCH`` when set (an integer ≥ 0), else the fixed default."""
    text = environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not text:
        return DEFAULT_EPOCH
    if not text.isdigit():
        raise UsageError(f"SOURCE_DATE_EPOCH must be a whole number of seconds, not {text!r}")
    return int(text)


def _source(manifest: Manifest, root: Path | None, origin: str) -> Source:
    kind = manifest.meta.source_kind
    if root is not None:
        if not root.is_dir():
            raise UsageError(f"--root {root}: not a folder")
        return Source.rootfs(root)
    if kind == "root":
        raise UsageError(
            f"{origin} was captured from the folder {manifest.meta.source!r}: "
            "give that folder with --root DIR"
        )
    if kind not in ("live", ""):
        raise UsageError(f"{origin} was captured from an {kind}; building from it needs --root")
    return Source.live()


def plan_image(manifest: Manifest, source: Source, options: PlanOptions) -> Plan:
    """:func:`envpack.pack.plan.plan_image`, imported when a build plans: a rebuild from
    the build cache never does, and the planner's modules are a third of its start-up."""
    from envpack.pack.plan import plan_image as plan

    return plan(manifest, source, options)


def _manifest_file(data: bytes, epoch: int, path: str = MANIFEST_PATH) -> PlannedFile:
    entry = TarEntry(
        path=path,
        kind="file",
        mode=0o644,
        mtime=epoch,
        size=len(data),
        open=lambda: io.BytesIO(data),
    )
    return PlannedFile(entry=entry, group=_MANIFEST_GROUP, origin="generated")


class _Counter:
    """Thread-safe running totals for one progress phase (workers report from threads)."""

    def __init__(self, progress: Progress | None, phase: str, total: int) -> None:
        self._progress = progress
        self._phase = phase
        self._total = total
        self._done = 0
        self._lock = threading.Lock()
        if progress is not None:
            progress(phase, 0, total)

    def add(self, amount: int) -> None:
        if self._progress is None:
            return
        with self._lock:
            self._done += amount
            self._progress(self._phase, min(self._done, self._total), self._total)


def build(
    manifest_path: Path, options: BuildOptions, progress: Progress | None = None
) -> BuildReport:
    """Build the image of ``manifest_path`` as ``options`` say; raise ``EnvpackError``s."""
    started = time.monotonic()
    out = options.output
    if out is None and not options.load and options.publish is None:
        raise UsageError("give -o OUT, --load or --push")
    if out is not None and os.path.lexists(out) and not options.force:
        raise UsageError(f"{out} exists; give --force to replace it")
    if out is not None and not (out.parent if str(out.parent) else Path()).is_dir():
        raise UsageError(f"cannot write {out}: {out.parent} is not a folder")
    if options.format == "rootfs" and (options.load or options.publish) and out is None:
        raise UsageError("--format rootfs needs -o OUT")
    if options.tag is not None:
        from envpack.oci.reference import Reference

        Reference.parse(options.tag)  # a bad --tag is refused before any work
    try:
        raw = manifest_path.read_bytes()
    except OSError as err:
        raise UsageError(f"cannot read {manifest_path}: {err.strerror or err}") from None
    cached = _cached_build(raw, options, progress, started)
    if cached is not None:
        return cached
    started_ns = time.time_ns()
    observations = None
    if options.use_cache and options.format != "rootfs":
        from envpack.pack.buildcache import Observations

        observations = Observations(options.source_date_epoch)
    manifest = loads(raw, origin=str(manifest_path))
    source = _source(manifest, options.root, str(manifest_path))
    source.observer = observations
    plan = plan_image(
        manifest,
        source,
        PlanOptions(
            apps=tuple(options.apps),
            include=tuple(options.include),
            exclude=tuple(options.exclude),
            include_secrets=options.include_secrets,
            allow_drift=options.allow_drift,
            user=options.user,
            source_date_epoch=options.source_date_epoch,
            progress=progress,
            entrypoint=tuple(options.entrypoint or ()),
            use_cache=options.use_cache,
        ),
    )
    files = [f for f in plan.files if f.entry.path not in (MANIFEST_PATH, SBOM_PATH)]
    files.append(_manifest_file(raw, options.source_date_epoch))
    files.append(
        _manifest_file(_sbom(manifest, raw, options), options.source_date_epoch, SBOM_PATH)
    )
    from envpack.pack.layering import group_files

    groups = group_files(files)
    # Without -o (only --load or --push) the workspace sits in the working folder.
    anchor = out if out is not None else Path("envpack-load")
    try:
        with workspace(anchor) as space:
            result, image = _produce(space, plan, groups, options, progress, source)
            source.observer = None
            if observations is not None and image is not None:
                _store_build(raw, options, observations, image, plan, result, started_ns)
    except OSError as err:
        raise _disk_error(err, anchor) from None
    except PackError as err:
        # The oci writers say which of their files failed; a full disk is about OUT.
        cause = err.__cause__
        if isinstance(cause, OSError) and cause.errno in _DISK_FULL:
            raise _disk_error(cause, anchor) from None
        raise
    return dataclasses.replace(
        result,
        manifest_digest=plan.manifest_digest or f"sha256:{hashlib.sha256(raw).hexdigest()}",
        seconds=time.monotonic() - started,
    )


def _build_key(raw: bytes, options: BuildOptions) -> str | None:
    """The build cache's key (:mod:`envpack.pack.buildcache`); ``None``: not cacheable."""
    from envpack.pack.buildcache import build_key

    folders = [str(options.root)] if options.root is not None else []
    folders += [host for host, _ in options.apps]
    for folder in folders:
        # Replaying reads the folder by its real path: one reached through a symlink
        # (/proc/PID/root) could be another tree by then.
        if os.path.realpath(folder) != os.path.abspath(folder):
            return None
    return build_key(
        raw,
        root=os.path.realpath(options.root) if options.root is not None else None,
        apps=[(os.path.realpath(host), dest) for host, dest in options.apps],
        image_options={
            "entrypoint": options.entrypoint,
            "cmd": options.cmd,
            "workdir": options.workdir,
            "env": sorted(options.env.items()),
            "user": options.user,
            "exclude": list(options.exclude),
            "include": list(options.include),
            "include_secrets": options.include_secrets,
            "allow_drift": options.allow_drift,
            "source_date_epoch": options.source_date_epoch,
        },
        environ=os.environ,
    )


def _cached_build(
    raw: bytes, options: BuildOptions, progress: Progress | None, started: float
) -> BuildReport | None:
    """The build from the build cache when nothing it read has changed, else ``None``."""
    if not options.use_cache or options.format == "rootfs":
        return None
    from envpack.pack.buildcache import BuildCache
    from envpack.pack.layercache import open_cache

    layers = open_cache(True)
    key = _build_key(raw, options)
    if layers is None or key is None:
        return None
    cache = BuildCache(layers)
    found = cache.lookup(key, options.source_date_epoch)
    if found is None:
        return None
    anchor = options.output if options.output is not None else Path("envpack-load")
    try:
        with workspace(anchor) as space:
            blobs = space.path("blobs")
            blobs.mkdir()
            image = found.image(blobs, layers)
            if image is None:
                cache.drop(key)
                return None
            counter = _Counter(progress, "compressing", sum(x.size for x in image.layers))
            counter.add(sum(x.size for x in image.layers))
            delivered = _deliver(space, image, options, found.annotations)
    except OSError as err:
        raise _disk_error(err, anchor) from None
    report = found.report
    loaded, published = delivered
    return BuildReport(
        output=str(options.output) if options.output is not None else None,
        format=options.format,
        image_digest=str(image.manifest.digest),
        config_digest=str(image.config.digest),
        manifest_digest=str(report["manifest_digest"]),
        layers=tuple(
            LayerReport(
                group=str(x["group"]),
                files=int(x["files"]),
                size=int(x["size"]),
                uncompressed_size=int(x["uncompressed_size"]),
                digest=str(x["digest"]),
                cached=True,
            )
            for x in report["layers"]
        ),
        excluded=tuple(
            (str(x["path"]), int(x["size"]), str(x["reason"])) for x in report["excluded"]
        ),
        dlopen_added=tuple(report["dlopen_added"]),
        secret_configs=tuple(report["secret_configs"]),
        drift=tuple((str(x["path"]), str(x["reason"])) for x in report["drift"]),
        notes=tuple(report["notes"]),
        tag=options.tag,
        loaded_image_id=loaded,
        seconds=time.monotonic() - started,
        published=published,
        entrypoint=tuple(report["config"]["entrypoint"]),
        cmd=tuple(report["config"]["cmd"]),
        env=tuple(sorted(report["config"]["env"].items())),
        workdir=str(report["config"]["workdir"]),
        user=str(report["config"]["user"]),
        build_cached=True,
    )


def _store_build(
    raw: bytes,
    options: BuildOptions,
    observations: Any,
    image: Image,
    plan: Plan,
    result: BuildReport,
    started_ns: int,
) -> None:
    from envpack.pack.buildcache import BuildCache, report_fields
    from envpack.pack.layercache import open_cache

    layers = open_cache(True)
    key = _build_key(raw, options)
    if layers is None or key is None:
        return
    BuildCache(layers).store(
        key,
        observations,
        image,
        _annotations(plan, options),
        report_fields(result.to_json()),
        started_ns=started_ns,
    )


def _sbom(manifest: Manifest, raw: bytes, options: BuildOptions) -> bytes:
    """The image's SBOM, dated like its files (the build's SOURCE_DATE_EPOCH)."""
    from envpack.sbom import image_sbom
    from envpack.snapshot.hashcache import default_cache_dir

    cache = default_cache_dir() if options.use_cache else None
    return image_sbom(manifest, raw, options.source_date_epoch, cache)


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _disk_error(err: OSError, out: Path) -> PackError:
    if err.errno in _DISK_FULL:
        return PackError(f"cannot write {out}: {err.strerror} (the build was removed)")
    where = f"{err.filename}: " if err.filename else ""
    return PackError(f"build failed: {where}{err.strerror or err}")


def _history(group: LayerGroup) -> str:
    return f"envpack build: {group.name} ({len(group.files)} files)"


def _produce(
    space: Workspace,
    plan: Plan,
    groups: list[LayerGroup],
    options: BuildOptions,
    progress: Progress | None,
    source: Source,
) -> tuple[BuildReport, Image | None]:
    out = options.output
    image: Image | None = None
    if options.format != "rootfs" or options.load or options.publish is not None:
        image, cached = _make_image(space, plan, groups, options, progress, source)
        layer_reports = [
            LayerReport(
                group=g.name,
                files=len(g.files),
                size=layer.size,
                uncompressed_size=layer.uncompressed_size,
                digest=str(layer.digest),
                cached=hit,
            )
            for g, layer, hit in zip(groups, image.layers, cached)
        ]
    else:
        layer_reports = [LayerReport(g.name, len(g.files), 0, g.size, "") for g in groups]
    if image is not None:
        annotations = _annotations(plan, options)
        loaded, published = _deliver(space, image, options, annotations, groups, progress)
    else:
        staged = space.path("output")
        if out is not None:
            _write_output(staged, image, groups, options, progress, {})
            space.commit(staged, force=options.force)
        loaded = published = None
    spec = _spec(plan, groups, options)
    report = BuildReport(
        output=str(out) if out is not None else None,
        format=options.format,
        image_digest=str(image.manifest.digest) if image is not None else None,
        config_digest=str(image.config.digest) if image is not None else None,
        manifest_digest=plan.manifest_digest,
        layers=tuple(layer_reports),
        excluded=tuple((e.path, e.size, e.reason) for e in plan.excluded),
        dlopen_added=tuple(plan.dlopen_added),
        secret_configs=tuple(plan.secret_configs),
        drift=tuple((d.path, d.reason) for d in plan.drift),
        notes=tuple(plan.notes),
        tag=options.tag,
        loaded_image_id=loaded,
        seconds=0.0,
        published=published,
        entrypoint=tuple(spec.entrypoint),
        cmd=tuple(spec.cmd),
        env=tuple(spec.env.items()),
        workdir=spec.workdir,
        user=spec.user,
    )
    return report, image


def _deliver(
    space: Workspace,
    image: Image,
    options: BuildOptions,
    annotations: Mapping[str, str],
    groups: list[LayerGroup] | None = None,
    progress: Progress | None = None,
) -> tuple[str | None, str | None]:
    """Write ``image`` as OUT, load it, push it, as ``options`` say: (loaded id, pushed).

    ``groups`` are needed for ``--format rootfs`` only (the tree is written from them).
    """
    out = options.output
    staged = space.path("output")
    if out is not None:
        _write_output(staged, image, groups or [], options, progress, annotations)
    loaded = None
    if options.load:
        from envpack.oci.archive import write_image_archive
        from envpack.oci.daemon import load_into_docker

        archive = staged if out is not None and options.format == "tar" else None
        if archive is None:
            archive = space.path("load.tar")
            write_image_archive(image, archive, repo_tag=options.tag)
        loaded = load_into_docker(archive, client=options.docker_client)
    if out is not None:
        space.commit(staged, force=options.force)
    published = None
    if options.publish is not None:
        # After the commit: a failed push keeps the built OUT, which can be pushed again.
        try:
            published = options.publish(image)
        except PackError as err:
            if out is not None and options.format == "oci":
                raise type(err)(f"{err} (built {out}; `envpack push {out} REF` retries)") from None
            raise
    return loaded, published


def _annotations(plan: Plan, options: BuildOptions) -> dict[str, str]:
    return {
        "org.opencontainers.image.created": _rfc3339(options.source_date_epoch),
        MANIFEST_LABEL: plan.manifest_digest,
    }


def _make_image(
    space: Workspace,
    plan: Plan,
    groups: list[LayerGroup],
    options: BuildOptions,
    progress: Progress | None,
    source: Source,
) -> tuple[Image, list[bool]]:
    """Compress the layers (in parallel) into the workspace and assemble the image; which
    layers came from the layer cache (:mod:`envpack.pack.layercache`)."""
    from envpack.oci.image import assemble
    from envpack.pack.layercache import build_cached_layers, open_cache

    blobs = space.path("blobs")
    blobs.mkdir()
    counter = _Counter(progress, "compressing", sum(g.size for g in groups))
    layers, cached = build_cached_layers(
        [g.files for g in groups],
        blobs,
        source=source,
        cache=open_cache(options.use_cache),
        progress=counter.add,
    )
    image = assemble(_spec(plan, groups, options), layers, annotations=_annotations(plan, options))
    return image, cached


def _spec(plan: Plan, groups: list[LayerGroup], options: BuildOptions) -> ImageSpec:
    entrypoint = options.entrypoint if options.entrypoint is not None else (plan.interpreter,)
    return ImageSpec(
        entrypoint=entrypoint,
        cmd=options.cmd or (),
        env=dict(sorted({**plan.env, **options.env}.items())),
        workdir=options.workdir if options.workdir is not None else _default_workdir(options),
        user=options.user,
        labels={MANIFEST_LABEL: plan.manifest_digest},
        created=options.source_date_epoch,
        history=[_history(g) for g in groups],
    )


def _write_output(
    staged: Path,
    image: Image | None,
    groups: list[LayerGroup],
    options: BuildOptions,
    progress: Progress | None,
    annotations: Mapping[str, str],
) -> None:
    """Write the chosen output format at ``staged`` (inside the workspace)."""
    if options.format == "rootfs":
        from envpack.pack.rootfs import write_tree

        counter = _Counter(progress, "writing", sum(g.size for g in groups))
        write_tree([g.entries() for g in groups], staged, progress=counter.add)
        return
    if image is None:
        raise PackError(f"internal: no image assembled for --format {options.format}")
    if options.format == "oci":
        from envpack.oci.layout import write_oci_layout

        write_oci_layout(image, staged, ref_name=options.tag, annotations=annotations)
    else:
        from envpack.oci.archive import write_image_archive

        write_image_archive(image, staged, repo_tag=options.tag)


def _default_workdir(options: BuildOptions) -> str:
    """The application's folder when there is one (so ``--cmd app.py`` finds it)."""
    return options.apps[0][1] if options.apps else ""


def _rfc3339(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
