"""An image from its layers: the config JSON and the manifest, both canonical and dated.

Nothing here reads a clock or the host: ``created`` comes from the caller
(``SOURCE_DATE_EPOCH``), env is written sorted, each layer gets one history entry without
an author, and the layer descriptors name the compressor their bytes depend on.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from envpack.errors import PackError
from envpack.oci import media
from envpack.oci.digest import Digest
from envpack.oci.layer import Layer
from envpack.oci.model import Descriptor, Manifest, canonical_json

__all__ = [
    "ANNOTATION_COMPRESSOR",
    "ANNOTATION_CREATED",
    "Image",
    "ImageSpec",
    "assemble",
    "config_document",
    "rfc3339",
]

ANNOTATION_CREATED = "org.opencontainers.image.created"
ANNOTATION_COMPRESSOR = "io.envpack.compressor"


@dataclass(frozen=True)
class ImageSpec:
    """What goes into the image config besides the layers."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    """Written sorted by name as ``K=V``."""
    workdir: str = ""
    user: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    created: int = 0
    """``SOURCE_DATE_EPOCH``: the config's ``created``, every history entry's and the
    ``org.opencontainers.image.created`` annotation."""
    architecture: str = "amd64"
    os: str = "linux"
    history: Sequence[str] = ()
    """One ``created_by`` text per layer; empty gives ``envpack build: layer N``."""


@dataclass(frozen=True)
class Image:
    """A complete image in memory: its config and manifest bytes and its stored layers."""

    config: Descriptor
    config_bytes: bytes
    manifest: Descriptor
    manifest_bytes: bytes
    layers: tuple[Layer, ...]
    architecture: str = "amd64"
    os: str = "linux"
    created: int = 0

    @property
    def digest(self) -> Digest:
        """The image digest: that of its manifest."""
        return self.manifest.digest


def rfc3339(seconds: int) -> str:
    """``1970-01-01T00:00:00Z`` form, UTC, whole seconds."""
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def config_document(spec: ImageSpec, diff_ids: Sequence[Digest]) -> dict[str, Any]:
    """The image config (OCI image-spec ``config.md``) as a JSON-ready dict."""
    _check(spec, len(diff_ids))
    created = rfc3339(spec.created)
    run: dict[str, Any] = {}
    if spec.entrypoint:
        run["Entrypoint"] = list(spec.entrypoint)
    if spec.cmd:
        run["Cmd"] = list(spec.cmd)
    if spec.env:
        run["Env"] = [f"{key}={spec.env[key]}" for key in sorted(spec.env)]
    if spec.workdir:
        run["WorkingDir"] = spec.workdir
    if spec.user:
        run["User"] = spec.user
    if spec.labels:
        run["Labels"] = dict(spec.labels)
    texts = list(spec.history) or [f"envpack build: layer {n + 1}" for n in range(len(diff_ids))]
    return {
        "architecture": spec.architecture,
        "os": spec.os,
        "created": created,
        "config": run,
        "rootfs": {"type": "layers", "diff_ids": [str(d) for d in diff_ids]},
        "history": [{"created": created, "created_by": text} for text in texts],
    }


def assemble(
    spec: ImageSpec, layers: Sequence[Layer], *, annotations: Mapping[str, str] | None = None
) -> Image:
    """The config and manifest of ``layers`` (bottom first) described by ``spec``.

    ``annotations`` go on the manifest after ``org.opencontainers.image.created``, which
    they may override; use ``org.opencontainers.image.*`` keys (title, version, source …).
    """
    config_bytes = canonical_json(config_document(spec, [layer.diff_id for layer in layers]))
    config = Descriptor(media.OCI_CONFIG, Digest.of_bytes(config_bytes), len(config_bytes))
    manifest = Manifest(
        config=config,
        layers=tuple(
            Descriptor(
                layer.media_type,
                layer.digest,
                layer.size,
                {ANNOTATION_COMPRESSOR: layer.compressor} if layer.compressor else {},
            )
            for layer in layers
        ),
        annotations={ANNOTATION_CREATED: rfc3339(spec.created), **(annotations or {})},
    )
    manifest_bytes = manifest.to_bytes()
    return Image(
        config=config,
        config_bytes=config_bytes,
        manifest=Descriptor(
            media.OCI_MANIFEST, Digest.of_bytes(manifest_bytes), len(manifest_bytes)
        ),
        manifest_bytes=manifest_bytes,
        layers=tuple(layers),
        architecture=spec.architecture,
        os=spec.os,
        created=spec.created,
    )


def _check(spec: ImageSpec, layer_count: int) -> None:
    if spec.created < 0:
        raise PackError(f"image creation time {spec.created} is before 1970")
    for key, value in spec.env.items():
        if not key or "=" in key or "\0" in key or "\0" in value:
            raise PackError(f"environment variable {key!r}: a name without '=' or NUL is needed")
    for key, value in spec.labels.items():
        if not key or "\0" in key or "\0" in value:
            raise PackError(f"label {key!r}: empty or holds a NUL byte")
    if spec.history and len(spec.history) != layer_count:
        raise PackError(
            f"{len(spec.history)} history entries for {layer_count} layers: one per layer"
        )
