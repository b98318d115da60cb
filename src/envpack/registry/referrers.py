"""Artifacts that refer to an image (an SBOM, a signature): OCI manifests with ``subject``.

A registry with the referrers API indexes them itself and says so with an
``OCI-Subject`` header on the manifest PUT. Without it (Distribution 2.8, Debian 12's
``docker-registry``), the client keeps the index under the tag ``sha256-<subject hex>``
(image-spec / distribution-spec "referrers tag schema"): it reads that index, adds the new
descriptor and puts it back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from envpack.oci import media
from envpack.oci.digest import Digest
from envpack.oci.model import Descriptor, Index, InvalidImage, canonical_json
from envpack.registry.blobs import Blob, blob_exists, ensure_blob
from envpack.registry.client import RegistryClient
from envpack.registry.push import put_manifest, put_manifest_answered

__all__ = ["artifact_manifest", "push_artifact", "push_referrer", "referrers_tag"]

_INDEX_LIMIT = 4 << 20
EMPTY = Descriptor(media.OCI_EMPTY, Digest.of_bytes(media.OCI_EMPTY_DATA), 2)


def referrers_tag(subject: Digest) -> str:
    """``sha256-<hex>``: where the tag-schema fallback keeps ``subject``'s referrers."""
    return f"{subject.algorithm}-{subject.hex}"


def artifact_manifest(
    artifact_type: str,
    layer: Descriptor,
    *,
    subject: Descriptor | None = None,
    annotations: Mapping[str, str] | None = None,
) -> bytes:
    """An OCI image manifest carrying one blob as an artifact (empty config)."""
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media.OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": EMPTY.to_json(),
        "layers": [layer.to_json()],
    }
    if subject is not None:
        document["subject"] = {
            "mediaType": subject.media_type,
            "digest": str(subject.digest),
            "size": subject.size,
        }
    if annotations:
        document["annotations"] = dict(annotations)
    return canonical_json(document)


def push_artifact(
    client: RegistryClient,
    repository: str,
    reference: str | None,
    artifact_type: str,
    blob: bytes,
    media_type: str,
    *,
    subject: Descriptor | None = None,
    annotations: Mapping[str, str] | None = None,
    layer_annotations: Mapping[str, str] | None = None,
) -> tuple[Descriptor, bool]:
    """Push ``blob`` as an artifact; put its manifest under ``reference`` (a tag) or its
    own digest. Returns its descriptor and whether the registry indexed the subject."""
    layer = Descriptor(media_type, Digest.of_bytes(blob), len(blob), dict(layer_annotations or {}))
    for item in (Blob(EMPTY, data=media.OCI_EMPTY_DATA), Blob(layer, data=blob)):
        ensure_blob(client, repository, item)
    data = artifact_manifest(artifact_type, layer, subject=subject, annotations=annotations)
    digest = Digest.of_bytes(data)
    _, response_headers = put_manifest_answered(
        client, repository, reference or str(digest), data, media.OCI_MANIFEST
    )
    descriptor = Descriptor(
        media.OCI_MANIFEST,
        digest,
        len(data),
        dict(annotations or {}),
        artifact_type=artifact_type,
    )
    return descriptor, "OCI-Subject" in response_headers


def push_referrer(
    client: RegistryClient,
    repository: str,
    subject: Descriptor,
    artifact_type: str,
    blob: bytes,
    media_type: str,
    *,
    annotations: Mapping[str, str] | None = None,
) -> Descriptor:
    """Attach ``blob`` (of ``media_type``) to ``subject`` as an artifact of
    ``artifact_type``; the tag-schema index is updated when the registry lacks the
    referrers API. Returns the artifact manifest's descriptor.

    Already attached (a second ``build --push`` of the same image): its manifest and
    blobs answer their ``HEAD`` and the tag-schema index lists it, so nothing is put.
    """
    layer = Descriptor(media_type, Digest.of_bytes(blob), len(blob), {})
    data = artifact_manifest(artifact_type, layer, subject=subject, annotations=annotations)
    expected = Descriptor(
        media.OCI_MANIFEST,
        Digest.of_bytes(data),
        len(data),
        dict(annotations or {}),
        artifact_type=artifact_type,
    )
    if _attached(client, repository, subject.digest, expected, (EMPTY.digest, layer.digest)):
        return expected
    descriptor, indexed = push_artifact(
        client,
        repository,
        None,
        artifact_type,
        blob,
        media_type,
        subject=subject,
        annotations=annotations,
    )
    if not indexed:
        _add_to_tag_index(client, repository, subject.digest, descriptor)
    return descriptor


def _attached(
    client: RegistryClient,
    repository: str,
    subject: Digest,
    artifact: Descriptor,
    blobs: tuple[Digest, ...],
) -> bool:
    """The artifact is in ``repository`` with its blobs and listed in the tag-schema index.

    False whenever in doubt (a registry with the referrers API keeps no such index): the
    caller then pushes as usual, which is idempotent.
    """
    what = f"checking the referrer {artifact.digest.hex[:12]}"
    response = client.request(
        "HEAD",
        f"/v2/{repository}/manifests/{artifact.digest}",
        what=what,
        kind="manifest-head",
        headers={"Accept": media.OCI_MANIFEST},
    )
    response.close()
    if response.status_code != 200:
        return False
    if not all(blob_exists(client, repository, digest) for digest in blobs):
        return False
    return any(entry.digest == artifact.digest for entry in _tag_index(client, repository, subject))


def _tag_index(client: RegistryClient, repository: str, subject: Digest) -> list[Descriptor]:
    """The entries of the tag-schema index of ``subject`` (none when it is absent, or is
    not an index: someone else's tag, replaced as the spec says)."""
    tag = referrers_tag(subject)
    what = f"reading the referrers index {tag}"
    response = client.request(
        "GET",
        f"/v2/{repository}/manifests/{tag}",
        what=what,
        kind="manifest-get",
        headers={"Accept": media.OCI_INDEX},
    )
    if response.status_code == 404:
        response.close()
        return []
    if response.status_code != 200:
        raise client.error(response, what)
    body = response.content[: _INDEX_LIMIT + 1]
    response.close()
    try:
        return list(Index.from_bytes(body, f"{client.host}/{repository}:{tag}").manifests)
    except InvalidImage:
        return []


def _add_to_tag_index(
    client: RegistryClient, repository: str, subject: Digest, entry: Descriptor
) -> None:
    entries = _tag_index(client, repository, subject)
    if any(item.digest == entry.digest for item in entries):
        return
    index = Index((*entries, entry))
    put_manifest(client, repository, referrers_tag(subject), index.to_bytes(), media.OCI_INDEX)
