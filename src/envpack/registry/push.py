"""Push an image (the builder's :class:`~envpack.oci.image.Image`, or an OCI layout folder)
to a registry: blobs in parallel, then the manifest, whose stored digest is checked."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from envpack.oci import media
from envpack.oci.digest import Digest, InvalidDigest
from envpack.oci.model import Descriptor
from envpack.registry.blobs import Blob, BlobOutcome, ensure_blob
from envpack.registry.client import RegistryClient
from envpack.registry.errors import RegistryError
from envpack.registry.pushed import BlobSources

if TYPE_CHECKING:  # the builder's image (push_image); a layout push needs none of it
    from envpack.oci.image import Image

__all__ = [
    "PushResult",
    "image_blobs",
    "layout_blobs",
    "push_blobs",
    "push_image",
    "push_layout",
    "put_manifest",
    "tagged_digest",
]

_WORKERS = 4
Progress = Callable[[int, int], None]
"""``(bytes sent so far, bytes to send at most)``."""


@dataclass(frozen=True)
class PushResult:
    """What a push did: the image digest and what happened to each blob."""

    reference: str
    digest: Digest
    size: int
    uploaded: int = 0
    existed: int = 0
    mounted: int = 0
    uploaded_bytes: int = 0
    unchanged: bool = False
    """The tag already named this manifest and every blob was there: nothing was sent."""

    def summary(self) -> str:
        if self.unchanged:
            return (
                f"pushed {self.reference}@{self.digest}: unchanged (the tag names it already), "
                f"0 blobs uploaded, {self.existed} already there"
            )
        return (
            f"pushed {self.reference}@{self.digest}: {self.uploaded} blobs uploaded "
            f"({self.uploaded_bytes / 1e6:.1f} MB), {self.existed} already there, "
            f"{self.mounted} mounted"
        )


def image_blobs(image: Image) -> list[Blob]:
    """The config and layer blobs of a built image (layers stay on disk)."""
    blobs = [Blob(image.config, data=image.config_bytes)]
    blobs.extend(
        Blob(Descriptor(layer.media_type, layer.digest, layer.size), path=layer.path)
        for layer in image.layers
    )
    return blobs


def layout_blobs(path: Path, ref_name: str | None) -> tuple[list[Blob], Descriptor, bytes]:
    """The blobs of one image of an OCI layout, its manifest descriptor and bytes.

    Index, manifest and config are verified by digest; layers by size only: the registry
    checks each upload against its digest, and a blob it has is never read.
    """
    from envpack.oci.layout import read_oci_layout

    layout = read_oci_layout(path, hash_layers=False)
    chosen = layout.image(ref_name)
    manifest_bytes = layout.blob_path(chosen.descriptor.digest).read_bytes()
    if Digest.of_bytes(manifest_bytes) != chosen.descriptor.digest:
        raise RegistryError(f"{path}: manifest {chosen.descriptor.digest} changed while read")
    blobs = [Blob(chosen.manifest.config, data=chosen.config_bytes)]
    blobs.extend(
        Blob(layer, path=layout.blob_path(layer.digest)) for layer in chosen.manifest.layers
    )
    return blobs, chosen.descriptor, manifest_bytes


def push_blobs(
    client: RegistryClient,
    repository: str,
    blobs: Sequence[Blob],
    *,
    sources: Mapping[str, str] | None = None,
    chunk_size: int | None = None,
    progress: Progress | None = None,
) -> dict[Digest, BlobOutcome]:
    """Ensure every blob is in ``repository``, several at a time; ``sources`` maps a
    digest to a repository of the same registry that holds it (tried as a mount)."""
    unique = list({blob.descriptor.digest: blob for blob in blobs}.values())
    total = sum(blob.descriptor.size for blob in unique)
    sent = [0]
    lock = threading.Lock()

    def advance(amount: int) -> None:
        if progress is None:
            return
        with lock:
            sent[0] += amount
            progress(sent[0], total)

    def one(blob: Blob) -> tuple[Digest, BlobOutcome]:
        digest = blob.descriptor.digest
        outcome = ensure_blob(
            client,
            repository,
            blob,
            mount_from=(sources or {}).get(str(digest)),
            chunk_size=chunk_size,
            progress=advance,
        )
        return digest, outcome

    # Biggest first, so the long uploads overlap instead of finishing last one by one.
    unique.sort(key=lambda blob: -blob.descriptor.size)
    try:
        with ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="envpack-push") as pool:
            return dict(pool.map(one, unique))
    finally:
        client.close(other_threads_only=True)  # the workers are gone


def put_manifest(
    client: RegistryClient, repository: str, reference: str, data: bytes, media_type: str
) -> Digest:
    """PUT a manifest under a tag (or its digest), check the digest the registry stored."""
    return put_manifest_answered(client, repository, reference, data, media_type)[0]


def put_manifest_answered(
    client: RegistryClient, repository: str, reference: str, data: bytes, media_type: str
) -> tuple[Digest, Mapping[str, str]]:
    """:func:`put_manifest`, with the registry's answer headers (``OCI-Subject`` says
    whether it indexed a referrer's subject)."""
    ours = Digest.of_bytes(data)
    what = f"putting the manifest {reference}"
    response = client.request(
        "PUT",
        f"/v2/{repository}/manifests/{reference}",
        what=what,
        kind="manifest",
        headers={"Content-Type": media_type},
        body=lambda: data,
    )
    response.close()
    if response.status_code not in (200, 201):
        raise client.error(response, what)
    returned = response.headers.get("Docker-Content-Digest")
    if returned:
        try:
            theirs = Digest.parse(returned)
        except InvalidDigest:
            raise RegistryError(
                f"{client.host}: {what}: the registry returned a malformed digest"
            ) from None
        if theirs != ours:
            raise RegistryError(
                f"{client.host}: {what}: the registry stored it as {theirs}, not {ours}"
            )
    return ours, response.headers


_ACCEPT = ", ".join(
    (media.OCI_MANIFEST, media.OCI_INDEX, media.DOCKER_MANIFEST, media.DOCKER_MANIFEST_LIST)
)


def tagged_digest(client: RegistryClient, repository: str, tag: str) -> Digest | None:
    """The digest of the manifest ``repository:tag`` names now (one HEAD); ``None`` when the
    tag is absent or the registry does not say.

    Also the push's first request, alone: it learns the auth scheme (answering a 401)
    before the parallel blob requests start, as a ``GET /v2/`` would, at no extra cost.
    """
    response = client.request(
        "HEAD",
        f"/v2/{repository}/manifests/{tag}",
        what="connecting",
        kind="manifest-head",
        headers={"Accept": _ACCEPT},
    )
    response.close()
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise client.error(response, f"checking the manifest {tag}")
    try:
        return Digest.parse(response.headers.get("Docker-Content-Digest", ""))
    except InvalidDigest:
        return None  # not told: the manifest is put again, as if absent


def _push(
    client: RegistryClient,
    repository: str,
    tag: str,
    blobs: Sequence[Blob],
    manifest: bytes,
    media_type: str,
    *,
    sources_folder: Path | None,
    chunk_size: int | None,
    progress: Progress | None,
) -> PushResult:
    client.auth.add_scope(f"repository:{repository}:pull,push")
    ours = Digest.of_bytes(manifest)
    there = tagged_digest(client, repository, tag)
    record = BlobSources(client.host, sources_folder)
    known = record.load()
    # Every blob is HEADed even when the tag already names our manifest: a registry
    # may have lost or deleted a blob since, and only a HEAD tells.
    outcomes = push_blobs(
        client,
        repository,
        blobs,
        sources=known,
        chunk_size=chunk_size,
        progress=progress,
    )
    unchanged = there == ours and all(o == "existed" for o in outcomes.values())
    digest = ours if unchanged else put_manifest(client, repository, tag, manifest, media_type)
    record.record([str(d) for d in outcomes], repository, known)
    sizes = {blob.descriptor.digest: blob.descriptor.size for blob in blobs}
    uploaded = [d for d, outcome in outcomes.items() if outcome == "uploaded"]
    return PushResult(
        reference=f"{client.host}/{repository}:{tag}",
        digest=digest,
        size=len(manifest),
        uploaded=len(uploaded),
        existed=sum(1 for o in outcomes.values() if o == "existed"),
        mounted=sum(1 for o in outcomes.values() if o == "mounted"),
        uploaded_bytes=sum(sizes[d] for d in uploaded),
        unchanged=unchanged,
    )


def push_image(
    client: RegistryClient,
    repository: str,
    tag: str,
    image: Image,
    *,
    sources_folder: Path | None = None,
    chunk_size: int | None = None,
    progress: Progress | None = None,
) -> PushResult:
    """Push a built image as ``repository:tag``."""
    return _push(
        client,
        repository,
        tag,
        image_blobs(image),
        image.manifest_bytes,
        image.manifest.media_type or media.OCI_MANIFEST,
        sources_folder=sources_folder,
        chunk_size=chunk_size,
        progress=progress,
    )


def push_layout(
    client: RegistryClient,
    repository: str,
    tag: str,
    layout: Path,
    *,
    ref_name: str | None = None,
    sources_folder: Path | None = None,
    chunk_size: int | None = None,
    progress: Progress | None = None,
) -> PushResult:
    """Push one image of an OCI layout folder (``ref_name`` picks it when there are several)."""
    blobs, descriptor, manifest = layout_blobs(layout, ref_name)
    return _push(
        client,
        repository,
        tag,
        blobs,
        manifest,
        descriptor.media_type,
        sources_folder=sources_folder,
        chunk_size=chunk_size,
        progress=progress,
    )
