"""Blob transfer: skip what the registry has, mount what a sibling repository has,
stream the rest from disk (monolithic, or in chunks where the registry wants them).

A blob is never read whole into memory: :class:`FileSlice` hands the connection 1 MiB at
a time. An upload that fails transiently (connection reset, 5xx) is restarted from a new
upload session, since the state of the old one is unknown.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal
from urllib.parse import urlencode

from envpack.oci.digest import Digest, InvalidDigest
from envpack.oci.model import Descriptor
from envpack.registry.client import RegistryClient
from envpack.registry.errors import RegistryError, TransientError
from envpack.registry.http import BLOCK, ConnectionFailed

__all__ = ["Blob", "BlobOutcome", "FileSlice", "blob_exists", "ensure_blob", "read_blob"]

_READ = BLOCK
# Monolithic uploads refused with these (payload too large, method not allowed or not
# implemented for a PUT with a body): fall back to PATCH chunks.
_REFUSED_MONOLITHIC = frozenset({405, 413, 416, 501})
DEFAULT_CHUNK = 32 << 20

BlobOutcome = Literal["existed", "mounted", "uploaded"]
Progress = Callable[[int], None]


@dataclass(frozen=True)
class Blob:
    """A blob to push: its descriptor and its bytes, on disk (``path``) or in memory."""

    descriptor: Descriptor
    path: Path | None = None
    data: bytes | None = None

    def open_slice(self, offset: int, length: int, progress: Progress | None) -> FileSlice:
        source = self.data if self.data is not None else self.path
        if source is None:
            raise RegistryError(f"blob {self.descriptor.digest}: no content")
        return FileSlice(source, offset, length, progress)


class FileSlice:
    """``length`` bytes of a file (or of bytes) from ``offset``, read 1 MiB at a time.

    ``len()`` is the length (sent as Content-Length); the connection streams the body by
    ``read()``, one block per send.
    """

    def __init__(
        self, source: Path | bytes, offset: int, length: int, progress: Progress | None
    ) -> None:
        self.name = str(source) if isinstance(source, Path) else "<bytes>"
        self._file: BinaryIO = source.open("rb") if isinstance(source, Path) else io.BytesIO(source)
        self._file.seek(offset)
        self._left = length
        self._length = length
        self._progress = progress

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1, /) -> bytes:
        if self._left <= 0:
            return b""
        chunk = self._file.read(min(self._left, _READ))
        if not chunk:
            raise RegistryError(f"{self.name}: shorter than its descriptor says")
        self._left -= len(chunk)
        if self._progress is not None:
            self._progress(len(chunk))
        return chunk

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read():
            yield chunk

    def close(self) -> None:
        self._file.close()


def blob_exists(client: RegistryClient, repository: str, digest: Digest) -> bool:
    """``repository`` holds the blob ``digest`` (one ``HEAD``)."""
    what = f"checking blob {digest.hex[:12]}"
    response = client.request("HEAD", f"/v2/{repository}/blobs/{digest}", what=what, kind="blob")
    response.close()
    if response.status_code == 200:
        return True
    if response.status_code == 404:
        return False
    raise client.error(response, what)


def _start(
    client: RegistryClient, repository: str, digest: Digest, mount_from: str | None
) -> tuple[str | None, int]:
    """Open an upload session: ``(Location, chunk minimum)``; ``None`` when a mount did it."""
    path = f"/v2/{repository}/blobs/uploads/"
    if mount_from is not None:
        path += "?" + urlencode({"mount": str(digest), "from": mount_from})
    what = f"starting the upload of {digest.hex[:12]}"
    response = client.request("POST", path, what=what, kind="upload", retry=False)
    response.close()
    if response.status_code == 201 and mount_from is not None:
        return None, 0
    if response.status_code != 202 or not response.headers.get("Location"):
        raise client.error(response, what)
    minimum = response.headers.get("OCI-Chunk-Min-Length", "")
    return response.headers["Location"], int(minimum) if minimum.isdigit() else 0


def _with_digest(location: str, digest: Digest) -> str:
    return location + ("&" if "?" in location else "?") + urlencode({"digest": str(digest)})


def _check_stored(client: RegistryClient, response_digest: str | None, blob: Blob) -> None:
    if not response_digest:
        return
    try:
        stored = Digest.parse(response_digest)
    except InvalidDigest:
        return  # another algorithm: nothing to compare
    if stored != blob.descriptor.digest:
        raise RegistryError(
            f"{client.host}: the registry stored blob {blob.descriptor.digest} as {stored}"
        )


def _monolithic(
    client: RegistryClient, location: str, blob: Blob, progress: Progress | None
) -> bool:
    """PUT the whole blob; False when the registry refuses a monolithic upload."""
    size = blob.descriptor.size
    what = f"uploading blob {blob.descriptor.digest.hex[:12]}"
    response = client.request(
        "PUT",
        _with_digest(location, blob.descriptor.digest),
        what=what,
        kind="blob-data",
        headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
        body=lambda: blob.open_slice(0, size, progress),
        retry=False,
    )
    response.close()
    if response.status_code in _REFUSED_MONOLITHIC:
        return False
    if response.status_code != 201:
        raise client.error(response, what)
    _check_stored(client, response.headers.get("Docker-Content-Digest"), blob)
    return True


def _chunked(
    client: RegistryClient, location: str, blob: Blob, chunk: int, progress: Progress | None
) -> None:
    """PATCH the blob in ``chunk``-byte pieces (``Content-Range``), then PUT the digest."""
    size = blob.descriptor.size
    what = f"uploading blob {blob.descriptor.digest.hex[:12]} in chunks"
    offset = 0
    while offset < size:
        length = min(chunk, size - offset)
        start = offset

        def body(start: int = start, length: int = length) -> FileSlice:
            return blob.open_slice(start, length, progress)

        response = client.request(
            "PATCH",
            location,
            what=what,
            kind="blob-chunk",
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Length": str(length),
                "Content-Range": f"{start}-{start + length - 1}",
            },
            body=body,
            retry=False,
        )
        response.close()
        if response.status_code != 202 or not response.headers.get("Location"):
            raise client.error(response, what)
        location = response.headers["Location"]
        offset += length
    response = client.request(
        "PUT",
        _with_digest(location, blob.descriptor.digest),
        what=what,
        kind="blob-close",
        headers={"Content-Length": "0"},
        retry=False,
    )
    response.close()
    if response.status_code != 201:
        raise client.error(response, what)
    _check_stored(client, response.headers.get("Docker-Content-Digest"), blob)


def ensure_blob(
    client: RegistryClient,
    repository: str,
    blob: Blob,
    *,
    mount_from: str | None = None,
    chunk_size: int | None = None,
    progress: Progress | None = None,
) -> BlobOutcome:
    """Make sure ``repository`` holds ``blob``: skipped when present (HEAD), mounted from
    ``mount_from`` when the registry allows, else uploaded (chunked with ``chunk_size``,
    or when the registry refuses a monolithic PUT). Transient failures restart it."""
    digest = blob.descriptor.digest
    if blob_exists(client, repository, digest):
        return "existed"
    if mount_from is not None and mount_from != repository:
        client.auth.add_scope(f"repository:{mount_from}:pull")
    else:
        mount_from = None
    attempt = 0
    while True:
        try:
            return _upload(client, repository, blob, mount_from, chunk_size, progress)
        except TransientError:  # noqa: PERF203 - a retry loop
            if attempt >= client.retries:
                raise
            time.sleep(min(client.backoff * 2**attempt, 8.0))
            attempt += 1
            mount_from = None  # the mount was answered, or is not worth a second try


def _upload(
    client: RegistryClient,
    repository: str,
    blob: Blob,
    mount_from: str | None,
    chunk_size: int | None,
    progress: Progress | None,
) -> BlobOutcome:
    digest = blob.descriptor.digest
    location, minimum = _start(client, repository, digest, mount_from)
    if location is None:
        return "mounted"
    if chunk_size is None and minimum == 0:
        if _monolithic(client, location, blob, progress):
            return "uploaded"
        location, _ = _start(client, repository, digest, None)  # a fresh session
        if location is None:
            raise RegistryError(f"{client.host}: an upload session without a Location")
    _chunked(client, location, blob, max(chunk_size or DEFAULT_CHUNK, minimum), progress)
    return "uploaded"


def read_blob(client: RegistryClient, repository: str, descriptor: Descriptor, limit: int) -> bytes:
    """A blob's bytes, at most ``limit``, checked against the descriptor's size and digest."""
    digest = descriptor.digest
    what = f"reading blob {digest.hex[:12]} of {repository}"
    if descriptor.size > limit:
        raise RegistryError(f"{client.host}: {what}: {descriptor.size} bytes is over the limit")
    response = client.request(
        "GET", f"/v2/{repository}/blobs/{digest}", what=what, kind="blob-get", stream=True
    )
    if response.status_code != 200:
        raise client.error(response, what)
    parts: list[bytes] = []
    got = 0
    try:
        for chunk in response.iter_content(_READ):
            got += len(chunk)
            if got > descriptor.size:
                raise RegistryError(f"{client.host}: {what}: longer than its descriptor says")
            parts.append(chunk)
    except ConnectionFailed:
        raise TransientError(f"{client.host}: {what}: connection lost") from None
    finally:
        response.close()
    data = b"".join(parts)
    if len(data) != descriptor.size or Digest.of_bytes(data) != digest:
        raise RegistryError(f"{client.host}: {what}: content does not match its digest")
    return data
