"""envpack manifests as registry artifacts: ``capture --push`` and ``registry:REF`` inputs.

A manifest is stored as an OCI artifact: an image manifest whose ``artifactType`` is
:data:`ARTIFACT_TYPE`, with the empty config and one layer, the manifest JSON. Reading
one back checks every size and digest and reads no more than a manifest file may hold
(:data:`envpack._inputfile.MANIFEST_LIMIT`); the caller parses it as it parses a file.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from envpack.oci import media
from envpack.oci.digest import Digest
from envpack.oci.model import Descriptor, InvalidImage, parse_json_object
from envpack.registry.blobs import read_blob
from envpack.registry.client import RegistryClient
from envpack.registry.errors import RegistryError, TransientError
from envpack.registry.http import ConnectionFailed
from envpack.registry.push import PushResult
from envpack.registry.referrers import push_artifact
from envpack.registry.refs import RegistryRef

__all__ = ["ARTIFACT_TYPE", "pull_manifest", "pull_manifests", "push_manifest"]

ARTIFACT_TYPE = "application/vnd.envpack.manifest.v1+json"
_MANIFEST_JSON_LIMIT = 4 << 20
_TITLE = "org.opencontainers.image.title"


def push_manifest(
    client: RegistryClient, ref: RegistryRef, data: bytes, *, title: str = "manifest.json"
) -> PushResult:
    """Store the manifest bytes ``data`` as an artifact tagged ``ref``."""
    descriptor, _ = push_artifact(
        client,
        ref.repository,
        ref.reference,
        ARTIFACT_TYPE,
        data,
        ARTIFACT_TYPE,
        layer_annotations={_TITLE: title},
    )
    return PushResult(
        reference=str(ref),
        digest=descriptor.digest,
        size=descriptor.size,
        uploaded=1,
        uploaded_bytes=len(data),
    )


def pull_manifest(
    ref: RegistryRef, *, limit: int, client: RegistryClient | None = None, insecure: bool = False
) -> bytes:
    """The envpack manifest bytes stored at ``ref`` (at most ``limit`` bytes)."""
    client = client or RegistryClient.for_ref(ref, insecure=insecure, push=False)
    what = f"reading {ref}"
    response = client.request(
        "GET",
        f"/v2/{ref.repository}/manifests/{ref.reference}",
        what=what,
        kind="manifest-get",
        headers={"Accept": f"{media.OCI_MANIFEST}, {media.DOCKER_MANIFEST};q=0.5"},
        stream=True,
    )
    if response.status_code == 404:
        response.close()
        raise RegistryError(f"{ref}: no such tag or digest in the registry")
    if response.status_code != 200:
        raise client.error(response, what)
    try:
        body = response.read(_MANIFEST_JSON_LIMIT + 1)
    except ConnectionFailed:
        raise TransientError(f"{client.host}: {what}: connection lost") from None
    finally:
        response.close()
    if len(body) > _MANIFEST_JSON_LIMIT:
        raise RegistryError(f"{ref}: its OCI manifest is larger than {_MANIFEST_JSON_LIMIT} bytes")
    if ref.digest is not None and Digest.of_bytes(body) != ref.digest:
        raise RegistryError(f"{ref}: the registry sent a manifest of another digest")
    layer = _manifest_layer(body, str(ref))
    return read_blob(client, ref.repository, layer, limit)


def _manifest_layer(body: bytes, where: str) -> Descriptor:
    try:
        document = parse_json_object(body, where)
        artifact_type = document.get("artifactType") or (
            document.get("config", {}).get("mediaType")
            if isinstance(document.get("config"), dict)
            else None
        )
        layers = document.get("layers")
        if artifact_type != ARTIFACT_TYPE or not isinstance(layers, list) or len(layers) != 1:
            raise RegistryError(
                f"{where}: not an envpack manifest artifact (artifactType "
                f"{str(artifact_type)[:80]!r}); push one with `envpack capture --push`"
            )
        return Descriptor.from_json(layers[0], f"{where} layer")
    except InvalidImage as err:
        raise RegistryError(str(err)) from None


def pull_manifests(refs: Sequence[RegistryRef], *, limit: int) -> list[bytes]:
    """Several manifests pulled in parallel (one client per host); order kept."""
    clients: dict[str, RegistryClient] = {}
    for ref in refs:
        if ref.host not in clients:
            clients[ref.host] = RegistryClient.for_ref(ref, push=False)
        else:
            clients[ref.host].auth.add_scope(f"repository:{ref.repository}:pull")
    try:
        with ThreadPoolExecutor(max_workers=min(8, len(refs)) or 1) as pool:
            return list(
                pool.map(lambda r: pull_manifest(r, limit=limit, client=clients[r.host]), refs)
            )
    finally:
        for client in clients.values():
            client.close()
