"""OCI descriptors, image manifests and indexes, and the canonical JSON they are written in.

The wire form (``to_json``/``from_json``) is kept apart from the typed values; the readers
(``from_json``) validate what they read and raise :class:`InvalidImage` with one line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from envpack.errors import PackError
from envpack.oci import media
from envpack.oci.digest import Digest, InvalidDigest

__all__ = [
    "Descriptor",
    "Index",
    "InvalidImage",
    "Manifest",
    "Platform",
    "canonical_json",
    "parse_json_object",
]


class InvalidImage(PackError):
    """An image structure read from disk or a daemon is malformed or fails its digest."""


def canonical_json(value: object) -> bytes:
    """Sorted keys, no whitespace, UTF-8 (not ``\\u`` escapes): the bytes that get hashed.

    NaN and infinities are refused: they are not JSON and would not round-trip.
    """
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def parse_json_object(data: bytes, what: str) -> dict[str, Any]:
    """``data`` decoded as a JSON object, else :class:`InvalidImage` naming ``what``."""
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, ValueError) as err:
        raise InvalidImage(f"{what}: not JSON ({err})") from err
    if not isinstance(value, dict):
        raise InvalidImage(f"{what}: not a JSON object")
    return value


@dataclass(frozen=True)
class Platform:
    """The platform an index entry runs on."""

    architecture: str = "amd64"
    os: str = "linux"
    variant: str = ""

    def to_json(self) -> dict[str, str]:
        out = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        return out


@dataclass(frozen=True)
class Descriptor:
    """What a manifest or index says about one blob: its type, digest and size."""

    media_type: str
    digest: Digest
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Platform | None = None
    artifact_type: str = ""
    """An artifact manifest's ``artifactType`` (referrers indexes list it per entry)."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = self.platform.to_json()
        return out

    @classmethod
    def from_json(cls, value: object, where: str) -> Descriptor:
        if not isinstance(value, dict):
            raise InvalidImage(f"{where}: a descriptor is not a JSON object")
        media_type = value.get("mediaType")
        size = value.get("size")
        if not isinstance(media_type, str) or not media_type:
            raise InvalidImage(f"{where}: descriptor without a mediaType")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidImage(f"{where}: descriptor size is not a non-negative integer")
        try:
            digest = Digest.parse(str(value.get("digest", "")))
        except InvalidDigest as err:
            raise InvalidImage(f"{where}: {err}") from err
        annotations = _string_map(value.get("annotations", {}), f"{where} annotations")
        platform = None
        if isinstance(value.get("platform"), dict):
            raw = value["platform"]
            platform = Platform(
                str(raw.get("architecture", "")),
                str(raw.get("os", "")),
                str(raw.get("variant", "")),
            )
        artifact_type = value.get("artifactType", "")
        if not isinstance(artifact_type, str):
            raise InvalidImage(f"{where}: artifactType is not a string")
        return cls(media_type, digest, size, MappingProxyType(annotations), platform, artifact_type)


@dataclass(frozen=True)
class Manifest:
    """An OCI image manifest: one config blob and the layers, bottom first."""

    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)
    media_type: str = media.OCI_MANIFEST

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": self.media_type,
            "config": self.config.to_json(),
            "layers": [layer.to_json() for layer in self.layers],
        }
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> Manifest:
        value = parse_json_object(data, where)
        if value.get("schemaVersion") != 2:
            raise InvalidImage(f"{where}: schemaVersion is not 2")
        media_type = value.get("mediaType", media.OCI_MANIFEST)
        if media_type not in (media.OCI_MANIFEST, media.DOCKER_MANIFEST):
            raise InvalidImage(f"{where}: not an image manifest ({media_type})")
        layers = value.get("layers")
        if not isinstance(layers, list):
            raise InvalidImage(f"{where}: layers is not a list")
        return cls(
            config=Descriptor.from_json(value.get("config"), f"{where} config"),
            layers=tuple(
                Descriptor.from_json(item, f"{where} layer {n}") for n, item in enumerate(layers)
            ),
            annotations=MappingProxyType(
                _string_map(value.get("annotations", {}), f"{where} annotations")
            ),
            media_type=str(media_type),
        )


@dataclass(frozen=True)
class Index:
    """An OCI image index: the entry point of a layout (``index.json``) or a multi-arch image."""

    manifests: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": media.OCI_INDEX,
            "manifests": [item.to_json() for item in self.manifests],
        }
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> Index:
        value = parse_json_object(data, where)
        if value.get("schemaVersion") != 2:
            raise InvalidImage(f"{where}: schemaVersion is not 2")
        items = value.get("manifests")
        if not isinstance(items, list):
            raise InvalidImage(f"{where}: manifests is not a list")
        return cls(
            manifests=tuple(
                Descriptor.from_json(item, f"{where} manifest {n}") for n, item in enumerate(items)
            ),
            annotations=MappingProxyType(
                _string_map(value.get("annotations", {}), f"{where} annotations")
            ),
        )


def _string_map(value: object, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidImage(f"{where}: not a map of strings")
    return dict(value)
