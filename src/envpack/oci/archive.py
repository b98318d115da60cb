"""One image tar that every ``docker load`` and ``skopeo`` read, itself reproducible.

It is an OCI image layout (``oci-layout``, ``index.json``, ``blobs/sha256/…``) plus the
``manifest.json`` Docker 20.10 reads (``Config``, ``RepoTags``, ``Layers`` pointing at the
same blobs), as Docker 25+ writes with ``docker save``. The index entry carries the name
for the containerd image store (``io.containerd.image.name``, full) and for OCI tools
(``org.opencontainers.image.ref.name``, the tag). Entries are written by the same tar
writer as layers: sorted, numeric, dated ``created``; gzip layers are stored as they are.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from envpack.errors import PackError
from envpack.oci.image import Image
from envpack.oci.layout import layout_files
from envpack.oci.model import canonical_json
from envpack.oci.outputs import temp_prefix
from envpack.oci.reference import Reference
from envpack.oci.tarlayer import TarEntry, write_tar

__all__ = ["ANNOTATION_CONTAINERD_NAME", "archive_entries", "write_image_archive"]

ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"


def archive_entries(image: Image, *, repo_tag: str | None) -> list[TarEntry]:
    """The entries of the archive (for writers that stream it elsewhere)."""
    annotations: dict[str, str] = {}
    tags: list[str] = []
    ref_name = None
    if repo_tag:
        reference = Reference.parse(repo_tag)
        annotations[ANNOTATION_CONTAINERD_NAME] = reference.full
        ref_name = reference.tag
        tags.append(reference.familiar)
    small, layers = layout_files(image, ref_name=ref_name, annotations=annotations)
    small["manifest.json"] = canonical_json(
        [
            {
                "Config": f"blobs/sha256/{image.config.digest.hex}",
                "RepoTags": tags,
                "Layers": [f"blobs/sha256/{layer.digest.hex}" for layer in image.layers],
            }
        ]
    )
    when = image.created
    entries = [
        TarEntry("/blobs", "dir", 0o755, mtime=when),
        TarEntry("/blobs/sha256", "dir", 0o755, mtime=when),
    ]
    for name, data in small.items():
        entries.append(
            TarEntry(f"/{name}", "file", 0o644, mtime=when, size=len(data), open=_bytes(data))
        )
    for name, path in layers.items():
        if any(entry.path == f"/{name}" for entry in entries):
            continue  # two layers with one digest: stored once
        entries.append(
            TarEntry(
                f"/{name}",
                "file",
                0o644,
                mtime=when,
                size=path.stat().st_size,
                open=_file(path),
            )
        )
    return entries


def write_image_archive(
    image: Image, out: Path, *, repo_tag: str | None, replace: bool = False
) -> None:
    """Write the image archive to ``out`` through a temporary file beside it.

    ``repo_tag`` (``name[:tag]``, tag ``latest`` by default) names the image when it is
    loaded. An existing ``out`` is refused unless ``replace``.
    """
    if os.path.lexists(out) and not replace:
        raise PackError(f"{out} already exists")
    entries = archive_entries(image, repo_tag=repo_tag)
    parent = out.parent if str(out.parent) else Path()
    try:
        fd, temp = tempfile.mkstemp(prefix=temp_prefix(out), dir=parent)
    except OSError as err:
        raise PackError(f"cannot write {out}: {err.strerror or err}") from err
    try:
        with os.fdopen(fd, "wb") as stream:
            write_tar(entries, stream)
        os.chmod(temp, 0o644)
        os.replace(temp, out)
    except OSError as err:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise PackError(f"cannot write {out}: {err.strerror or err}") from err
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def _bytes(data: bytes) -> Callable[[], BinaryIO]:
    return lambda: io.BytesIO(data)


def _file(path: Path) -> Callable[[], BinaryIO]:
    return lambda: path.open("rb")
