"""``envpack verify`` without the command line: does an image hold what its manifest says?

Steps: read the source manifest; capture the image offline (nothing in it is run) for the
sections a build packs, looking at the very paths the source manifest names; run the
interpreter probe inside the image (:func:`choose` says with what) and put its answer in
place of what the files told; cut both manifests down to what the
build packs (:mod:`.scope`); the diff then grades what is left (the caller runs it).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from envpack.errors import UsageError
from envpack.manifest import Issue, Manifest, load_manifest
from envpack.oci.reader import parse_image_reference
from envpack.redact import Redactor
from envpack.snapshot.context import CaptureOptions
from envpack.snapshot.interpreters import ProbeFailed
from envpack.snapshot.source import DEFAULT_PATH, Source, SourceReadError
from envpack.verify.inimage import ImageRun, bwrap_available, probe_in_docker, probe_in_rootfs
from envpack.verify.loadable import LoadArchive, Range, write_load_archive
from envpack.verify.podman import podman_available, probe_in_podman
from envpack.verify.scope import Packing, Scoped, restrict
from envpack.verify.unpack import make_removable, unpack_rootfs

if TYPE_CHECKING:
    from envpack.snapshot.imagesource import ImageSource

__all__ = [
    "EMBEDDED_MANIFEST",
    "RUNNERS",
    "Runner",
    "VerifyOptions",
    "VerifyResult",
    "packing_from_report",
    "verify",
]

EMBEDDED_MANIFEST = "/.envpack/manifest.json"
"""Where ``envpack build`` puts the manifest an image was built from."""

Runner = Literal["auto", "docker", "podman", "bwrap", "none"]
RUNNERS: tuple[str, ...] = ("auto", "docker", "podman", "bwrap", "none")
_CAPTURED = frozenset({"interpreters", "python_packages", "binaries", "libraries", "config_files"})


@dataclass(frozen=True)
class VerifyOptions:
    """What ``envpack verify`` was asked for, besides the image and the manifest."""

    runner: Runner = "auto"
    """How the interpreter runs inside the image: ``auto`` tries a Docker Engine, then
    podman, then bwrap (over the image unpacked); ``none`` only reads its files."""
    build_report: Path | None = None
    """The build's ``--report`` JSON: what it excluded, the environment of a rootfs."""
    timeout: float = 120.0
    """Seconds the interpreter may take to answer inside the image."""
    docker_client: Any = None
    """A Docker SDK client; ``None``: from the environment (``DOCKER_HOST``)."""
    cache_dir: Path | None = None


@dataclass
class VerifyResult:
    """The two restricted manifests, how the interpreter was described, and the notes."""

    scoped: Scoped
    image_manifest: Manifest
    """The image's capture before restriction (with the probe's answer)."""
    ran: str
    """``docker``, ``podman``, ``bwrap``, ``files`` (nothing was run) or ``failed``."""
    notes: list[str] = field(default_factory=list)


Progress = Callable[[str], None]


def _silent(_: str) -> None:
    return None


def verify(
    image: str,
    manifest_path: Path,
    redactor: Redactor,
    options: VerifyOptions | None = None,
    *,
    progress: Progress = _silent,
) -> VerifyResult:
    """Capture ``image``, run its interpreter in it, restrict both sides; see the module."""
    from envpack.snapshot.capture import capture

    options = options or VerifyOptions()
    for name, found in (("podman", podman_available), ("bwrap", bwrap_available)):
        if options.runner == name and found() is None:  # said before a capture is made
            raise UsageError(f"--runner {name}: {name} is not installed")
    source_manifest = load_manifest(manifest_path)
    primary = _primary_executable(source_manifest, str(manifest_path))
    report = _read_report(options.build_report)
    target = _open_target(image, report)
    notes: list[str] = []
    try:
        capture_options = CaptureOptions(
            pythons=(primary,),
            config_globs=tuple(_literal_glob(p) for p in source_manifest.section("config_files")),
            use_cache=options.cache_dir is not None,
            cache_dir=options.cache_dir,
            only=_CAPTURED,
        )
        progress("capturing the image")
        captured = capture(target.source, capture_options, redactor, progress=progress)
        captured = replace(captured, meta=replace(captured.meta, source=image, label=None))
        notes.extend(_embedded_check(target.source, manifest_path))
        progress("running the interpreter in the image")
        ran = _run_probe(captured, target, primary, options, notes)
    finally:
        target.source.close()
    scoped = restrict(source_manifest, captured, packing_from_report(report))
    return VerifyResult(
        scoped=scoped, image_manifest=captured, ran=ran, notes=[*notes, *scoped.notes]
    )


# -- inputs ---------------------------------------------------------------------------------


def _primary_executable(manifest: Manifest, origin: str) -> str:
    for key in sorted(manifest.section("interpreters")):
        component = manifest.section("interpreters")[key]
        if component.get("primary") is True:
            executable = component.get("executable")
            return executable if isinstance(executable, str) else key
    raise UsageError(f"{origin}: no primary interpreter; nothing to verify")


def _read_report(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        data = json.loads(path.read_bytes())
    except OSError as err:
        raise UsageError(f"--report {path}: {err.strerror or err}") from None
    except ValueError as err:
        raise UsageError(f"--report {path}: not a build report (invalid JSON: {err})") from None
    if not isinstance(data, dict) or not isinstance(data.get("excluded", []), list):
        raise UsageError(f"--report {path}: not a build report from `envpack build --report`")
    return data


def packing_from_report(report: dict[str, Any] | None) -> Packing:
    """What a build report says was left out."""
    if report is None:
        return Packing()
    excluded = frozenset(
        str(item["path"])
        for item in report.get("excluded", [])
        if isinstance(item, dict) and isinstance(item.get("path"), str)
    )
    return Packing(excluded=excluded)


def _literal_glob(path: str) -> str:
    """``path`` as a glob matching only itself (``[`` ``*`` ``?`` taken literally)."""
    return "".join(f"[{c}]" if c in "[*?" else c for c in path)


# -- the image ------------------------------------------------------------------------------


@dataclass
class _Target:
    source: Source
    run: ImageRun
    image: ImageSource | None = None
    """The image read (``None`` for a rootfs folder)."""
    rootfs: Path | None = None
    """A rootfs folder on this machine (bubblewrap can run it)."""
    image_id: str | None = None
    """The image's ID (config digest), as a Docker Engine knows it."""
    config: Mapping[str, Any] | None = None
    layers: tuple[Range, ...] = ()
    """Where each layer blob lies, to load the image into an engine that lacks it."""


def _open_target(image: str, report: dict[str, Any] | None) -> _Target:
    folder = Path(image)
    if folder.is_dir() and not (folder / "oci-layout").exists():
        source = Source.rootfs(folder)
        source.kind, source.description = "image", image
        return _Target(source=source, run=_rootfs_run(report), rootfs=folder)
    from envpack.snapshot.imagesource import open_image

    opened = open_image(image)
    blobs = opened.blobs
    return _Target(
        source=opened,
        image=opened,
        run=ImageRun.from_config(blobs.config),
        image_id=str(blobs.config_digest),
        config=blobs.config,
        layers=tuple(
            Range(layer.blob.path, layer.blob.offset, layer.blob.size) for layer in blobs.layers
        ),
    )


def _rootfs_run(report: dict[str, Any] | None) -> ImageRun:
    """How a rootfs is run: the build report's config, else envpack's default."""
    config = (report or {}).get("config") or {}
    env = config.get("env") if isinstance(config, dict) else None
    if isinstance(env, dict) and all(isinstance(v, str) for v in env.values()):
        workdir = config.get("workdir")
        return ImageRun(env=dict(env), workdir=workdir if isinstance(workdir, str) else "")
    return ImageRun(env={"LANG": "C.UTF-8", "PATH": DEFAULT_PATH})


def _embedded_check(source: Source, manifest_path: Path) -> list[str]:
    """A note when the image was not built from this manifest (or not by envpack)."""
    try:
        embedded = source.read_bytes(EMBEDDED_MANIFEST, whole=True)
    except SourceReadError:
        return [f"the image holds no {EMBEDDED_MANIFEST}: was it built by envpack?"]
    given = manifest_path.read_bytes()
    if hashlib.sha256(embedded).digest() != hashlib.sha256(given).digest():
        return [
            f"the image was built from another manifest than {manifest_path} "
            f"(its {EMBEDDED_MANIFEST} differs)"
        ]
    return []


def _run_probe(
    manifest: Manifest, target: _Target, primary: str, options: VerifyOptions, notes: list[str]
) -> str:
    """Put the in-image answer in place of the files' one; which runner answered."""
    section = manifest.sections.setdefault("interpreters", {})
    key = next((k for k, c in section.items() if c.get("primary") is True), primary)
    if options.runner == "none":
        notes.append("interpreters: not run inside the image (--runner none): read from files")
        return "files"
    try:
        found = _probe(target, primary, options, notes)
    except ProbeFailed as err:
        section.pop(key, None)
        manifest.issues.append(Issue("interpreters", primary, f"in the image: {err}"))
        notes.append(f"interpreters: {primary} does not run inside the image: {err}")
        return "failed"
    if found is None:
        return "files"
    component, used = found
    component["primary"] = True
    section[key] = component
    return used


def _probe(
    target: _Target, primary: str, options: VerifyOptions, notes: list[str]
) -> tuple[dict[str, Any], str] | None:
    """The probe's answer and who gave it; ``None`` when ``auto`` found no way to run it.

    ``auto``: a rootfs folder runs under bwrap; an image in the Docker Engine when one
    answers, else with podman when installed, else under bwrap over the image unpacked.
    Asked for by name, a runner that is absent or cannot run the image is an error.
    """
    runner = options.runner
    if target.rootfs is not None:
        if runner in ("docker", "podman"):
            raise UsageError(f"--runner {runner}: a rootfs folder runs under bwrap")
        component = probe_in_rootfs(
            target.rootfs.resolve(), primary, target.run, timeout=options.timeout
        )
        return component, "bwrap"
    if runner in ("auto", "docker"):
        answer = _in_docker(target, primary, options, notes, required=runner == "docker")
        if answer is not None:
            return answer, "docker"
    if runner == "podman" or (runner == "auto" and podman_available() is not None):
        try:
            return _in_podman(target, primary, options), "podman"
        except UsageError as err:
            if runner == "podman":
                raise UsageError(f"--runner podman: {err}") from None
            notes.append(f"interpreters: {err}; trying bwrap")
    if runner == "bwrap" or (runner == "auto" and bwrap_available() is not None):
        try:
            return _in_bwrap(target, primary, options, notes), "bwrap"
        except UsageError as err:
            if runner == "bwrap":
                raise UsageError(f"--runner bwrap: {err}") from None
            notes.append(f"interpreters: {err}")
    notes.append(
        "interpreters: not run inside the image (no Docker Engine, podman or bwrap could "
        "run it); read from its files"
    )
    return None


def _image(target: _Target) -> ImageSource:
    if target.image is None:
        raise UsageError("internal: an image target without its image")
    return target.image


def _in_podman(target: _Target, primary: str, options: VerifyOptions) -> dict[str, Any]:
    """The probe's answer from podman, given the image as the user named it."""
    if podman_available() is None:
        raise UsageError("podman is not installed")
    image = _image(target)
    blobs = image.blobs
    transport, where, tag = parse_image_reference(blobs.reference)
    if transport != "docker-daemon":
        return probe_in_podman(
            f"{transport}:{where}{':' + tag if tag else ''}",
            str(blobs.config_digest),
            primary,
            timeout=options.timeout,
        )
    # Already exported from the engine: given to podman as a `docker save` archive.
    if target.config is None:
        raise UsageError("internal: an image target without its config")
    archive = write_load_archive(target.config, list(target.layers), image.temp / "podman.tar")
    return probe_in_podman(
        f"docker-archive:{archive.path}", archive.image_id, primary, timeout=options.timeout
    )


def _in_bwrap(
    target: _Target, primary: str, options: VerifyOptions, notes: list[str]
) -> dict[str, Any]:
    """The probe's answer from bwrap over the image unpacked in envpack's temporary folder."""
    if bwrap_available() is None:
        raise UsageError("bwrap is not installed")
    image = _image(target)
    rootfs = image.temp / "rootfs"
    try:
        notes.extend(unpack_rootfs(image, rootfs))
        return probe_in_rootfs(rootfs, primary, target.run, timeout=options.timeout)
    finally:
        make_removable(rootfs)  # removed with the image's temporary folder


def _in_docker(
    target: _Target, primary: str, options: VerifyOptions, notes: list[str], *, required: bool
) -> dict[str, Any] | None:
    """The probe's answer from a Docker Engine; ``None`` (with a note) when none answers
    and ``--runner docker`` was not asked for."""
    import docker.errors
    import requests

    from envpack.errors import PackError
    from envpack.oci.daemon import client_from_env

    client = options.docker_client
    made = client is None
    if client is None:
        try:
            client = client_from_env()
        except (PackError, docker.errors.DockerException, requests.RequestException) as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            if required:
                raise UsageError(f"--runner docker: {reason}") from None
            notes.append(f"interpreters: no Docker Engine answered ({reason})")
            return None
    if target.image_id is None or target.config is None:
        raise UsageError("internal: an image target without its ID or config")
    config, layers = target.config, list(target.layers)
    with tempfile.TemporaryDirectory(prefix="envpack-verify-") as temp:

        def loader() -> LoadArchive:
            return write_load_archive(config, layers, Path(temp) / "image.tar")

        try:
            return probe_in_docker(
                client, target.image_id, primary, timeout=options.timeout, loader=loader
            )
        finally:
            if made:
                client.close()
