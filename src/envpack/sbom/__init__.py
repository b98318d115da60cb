"""Software bills of materials of a manifest: CycloneDX 1.6 or SPDX 2.3 JSON.

``render_sbom(manifest, fmt)`` is what ``envpack sbom`` prints, what a build writes into
the image (``/.envpack/sbom.cdx.json``) and what a push attaches as an OCI referrer
(``SbomDocument.artifact_type``). The output is reproducible: the timestamp is
``SOURCE_DATE_EPOCH`` when set, else the capture's own time, and the serial number (SPDX:
the document namespace) is derived from the manifest's content, the format and that time.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from envpack._atomic import write_atomic
from envpack.errors import EnvpackError, UsageError
from envpack.manifest import Manifest, dumps

__all__ = [
    "CYCLONEDX_MEDIA_TYPE",
    "FORMATS",
    "SPDX_MEDIA_TYPE",
    "SbomDocument",
    "SbomFormat",
    "image_sbom",
    "render_sbom",
]

SbomFormat = Literal["cyclonedx", "spdx"]
FORMATS: tuple[SbomFormat, ...] = ("cyclonedx", "spdx")
CYCLONEDX_MEDIA_TYPE = "application/vnd.cyclonedx+json"
SPDX_MEDIA_TYPE = "application/spdx+json"
SBOM_FORMAT = 1
"""Bump when the rendering changes: cached image SBOMs of older renderings then miss."""
# The names under which envpack's SBOMs are namespaced (serial numbers, UUIDv5).
_NAMESPACE = uuid.UUID("6c1f0b56-3e0c-5d43-9a3b-0e2f8c1d7a10")


@dataclass(frozen=True)
class SbomDocument:
    """One rendered SBOM: its bytes and how a registry names their type."""

    data: bytes
    media_type: str
    artifact_type: str


def _moment(manifest: Manifest, environ: Mapping[str, str]) -> datetime.datetime:
    text = environ.get("SOURCE_DATE_EPOCH", "").strip()
    if text:
        if not text.isdigit():
            raise UsageError(f"SOURCE_DATE_EPOCH must be a whole number of seconds, not {text!r}")
        return datetime.datetime.fromtimestamp(int(text), tz=datetime.timezone.utc)
    try:
        captured = datetime.datetime.strptime(manifest.meta.captured_at, "%Y-%m-%dT%H:%M:%SZ")
        return captured.replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def render_sbom(
    manifest: Manifest,
    fmt: Literal["cyclonedx", "spdx"],
    *,
    environ: Mapping[str, str] | None = None,
) -> SbomDocument:
    """The SBOM of ``manifest`` in ``fmt``; the same manifest gives the same bytes."""
    from envpack.sbom.inventory import inventory

    env = os.environ if environ is None else environ
    moment = _moment(manifest, env)
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = hashlib.sha256(dumps(manifest).encode("utf-8")).hexdigest()
    serial = uuid.uuid5(_NAMESPACE, f"{fmt}:{digest}:{stamp}")
    items = inventory(manifest)
    name = manifest.name or "environment"
    if fmt == "cyclonedx":
        from envpack.sbom.cyclonedx import render_cyclonedx

        data = render_cyclonedx(items, name=name, serial=serial, timestamp=moment)
        return SbomDocument(data, CYCLONEDX_MEDIA_TYPE, CYCLONEDX_MEDIA_TYPE)
    if fmt == "spdx":
        from envpack.sbom.spdx import render_spdx

        data = render_spdx(items, name=name, serial=serial, created=stamp)
        return SbomDocument(data, SPDX_MEDIA_TYPE, SPDX_MEDIA_TYPE)
    raise UsageError(f"--format {fmt!r}: choose cyclonedx or spdx")


def image_sbom(manifest: Manifest, raw: bytes, epoch: int, cache_dir: Path | None) -> bytes:
    """The CycloneDX SBOM a build writes into the image, dated ``epoch``.

    Rendering a thousand components takes cyclonedx-python-lib a few CPU seconds, so the
    bytes are kept under ``cache_dir/sbom`` (``None``: ``--no-cache``), keyed by what they
    are a function of: the manifest's bytes, the epoch, the envpack and library versions.
    """
    from importlib.metadata import version

    from envpack import __version__

    key = hashlib.sha256(
        f"{SBOM_FORMAT}:{__version__}:{version('cyclonedx-python-lib')}:{epoch}:".encode()
        + hashlib.sha256(raw).digest()
    ).hexdigest()
    stored = None if cache_dir is None else cache_dir / "sbom" / f"{key}.cdx.json"
    if stored is not None:
        with contextlib.suppress(OSError):
            return stored.read_bytes()
    data = render_sbom(manifest, "cyclonedx", environ={"SOURCE_DATE_EPOCH": str(epoch)}).data
    if stored is not None:
        with contextlib.suppress(OSError, EnvpackError):
            stored.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(stored, data)
    return data
