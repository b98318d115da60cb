"""Open a container image by reference and locate its config and layer blobs, unread.

References use skopeo's transports: ``oci:DIR[:TAG]`` (an OCI image layout folder),
``oci-archive:FILE[:TAG]`` (that folder as a tar), ``docker-archive:FILE[:NAME:TAG]`` (a
``docker save`` tar) and ``docker-daemon:NAME[:TAG]`` (exported from a Docker Engine through
the Docker SDK into the caller's work folder). A bare path is detected: a folder holding
``oci-layout`` is an OCI layout, a tar holding ``manifest.json`` a ``docker save`` tar, a tar
holding ``oci-layout`` an OCI archive.

Nothing is unpacked here. An archive's members are indexed once (name → offset and size in
the archive), and a blob is then a :class:`BlobRange`: a file on this machine, an offset
and a length, read in place. Only the small JSON documents (index, manifests, config) are
read into memory, each checked against its digest where the image names one.
"""

from __future__ import annotations

import json
import os
import platform
import posixpath
import stat
import tarfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from envpack.oci import media
from envpack.oci.digest import Digest, InvalidDigest
from envpack.oci.model import Descriptor, Index, InvalidImage, Manifest, parse_json_object

__all__ = [
    "TRANSPORTS",
    "BlobRange",
    "ImageBlobs",
    "LayerBlob",
    "forget_members",
    "open_image_blobs",
    "parse_image_reference",
]

TRANSPORTS = ("oci", "oci-archive", "docker-archive", "docker-daemon")
_MAX_JSON = 8 * 1024 * 1024  # an index, manifest or config; a bigger one is hostile
_MAX_OUTER_MEMBERS = 100_000  # members of an image archive (layers, blobs, JSON files)
_MAX_INDEX_DEPTH = 4
_REF_NAME = "org.opencontainers.image.ref.name"
_CONTAINERD_NAME = "io.containerd.image.name"
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "i386": "386"}
Export = Callable[[str, Path], None]
"""Writes the ``docker save`` tar of an image name to a path (the ``docker-daemon`` transport)."""


@dataclass(frozen=True)
class BlobRange:
    """Where one blob lies: ``size`` bytes of the file ``path`` from ``offset`` on."""

    path: Path
    offset: int
    size: int

    def read(self, limit: int = _MAX_JSON) -> bytes:
        """The whole blob, refused past ``limit`` bytes (for JSON documents only)."""
        if self.size > limit:
            raise InvalidImage(f"{self.path}: a {self.size}-byte document, larger than {limit}")
        with open_regular(self.path) as stream:
            stream.seek(self.offset)
            data = stream.read(self.size)
        if len(data) != self.size:
            raise InvalidImage(f"{self.path}: truncated ({len(data)} of {self.size} bytes)")
        return data

    def head(self, count: int) -> bytes:
        with open_regular(self.path) as stream:
            stream.seek(self.offset)
            return stream.read(min(count, self.size))


@dataclass(frozen=True)
class LayerBlob:
    """One layer of an image, bottom first: where its bytes are and what it should hash to."""

    blob: BlobRange
    digest: Digest | None
    """The blob's own digest when the image names it (OCI descriptors); ``None`` in a
    ``docker save`` tar, which names layers by path."""
    diff_id: Digest | None
    """The sha256 of the uncompressed tar, from the config's ``rootfs.diff_ids``."""


@dataclass(frozen=True)
class ImageBlobs:
    """An image located but not read: its config and its layers, in order."""

    reference: str
    """The reference as given (``oci:build/app.oci:latest``)."""
    transport: str
    config: Mapping[str, Any]
    config_digest: Digest
    """The image ID: the sha256 of the config blob."""
    layers: tuple[LayerBlob, ...]


def open_regular(path: Path) -> BinaryIO:
    """Open ``path`` for reading, refusing a FIFO, device or folder (never opened)."""
    try:
        before = os.stat(path)
    except OSError as err:
        raise InvalidImage(f"{path}: {err.strerror or err}") from err
    if not stat.S_ISREG(before.st_mode):
        raise InvalidImage(f"{path}: not a regular file")
    try:
        return open(path, "rb")
    except OSError as err:
        raise InvalidImage(f"{path}: {err.strerror or err}") from err


# -- references ---------------------------------------------------------------------------


def parse_image_reference(text: str) -> tuple[str, str, str | None]:
    """``(transport, path_or_name, tag)`` for a reference; a bare path's transport detected.

    A path may itself hold ``:``: the longest existing prefix before a ``:`` is the path.
    """
    transport, sep, rest = text.partition(":")
    if sep and transport in TRANSPORTS:
        if not rest:
            raise InvalidImage(f"{text}: no path or name after {transport}:")
        if transport == "docker-daemon":
            return transport, rest, None
        path, tag = _split_path(rest)
        if transport == "oci" and not (Path(path) / "oci-layout").is_file():
            raise InvalidImage(f"{path} is not an OCI layout folder (no oci-layout file)")
        return transport, path, tag
    path, tag = _split_path(text)
    return _detect(Path(path), text), path, tag


def _split_path(text: str) -> tuple[str, str | None]:
    if os.path.lexists(text):
        return text, None
    at = len(text)
    while (at := text.rfind(":", 0, at)) > 0:
        if os.path.lexists(text[:at]):
            return text[:at], text[at + 1 :] or None
    raise InvalidImage(f"{text}: no such file or folder")


def _detect(path: Path, text: str) -> str:
    if path.is_dir():
        if (path / "oci-layout").is_file():
            return "oci"
        raise InvalidImage(f"{text}: a folder without oci-layout is not an OCI image layout")
    if not path.is_file():
        raise InvalidImage(f"{text}: not a file or folder")
    names = _TarStore(path).names
    if "manifest.json" in names:
        return "docker-archive"
    if "oci-layout" in names and "index.json" in names:
        return "oci-archive"
    raise InvalidImage(f"{text}: a tar with neither manifest.json nor oci-layout is not an image")


# -- where blobs are read from: a folder or the members of a tar ------------------------


class _Store:
    """Named files of an image: a layout folder or an image archive, read in place."""

    where: str

    def range(self, name: str) -> BlobRange:
        raise NotImplementedError

    def has(self, name: str) -> bool:
        raise NotImplementedError

    def blob(self, digest: Digest) -> BlobRange:
        return self.range(f"blobs/{digest.algorithm}/{digest.hex}")

    def checked(self, descriptor: Descriptor) -> bytes:
        """A JSON blob named by a descriptor, its size and digest checked."""
        data = self.blob(descriptor.digest).read()
        if len(data) != descriptor.size or Digest.of_bytes(data) != descriptor.digest:
            raise InvalidImage(f"{self.where}: blob {descriptor.digest} does not match its digest")
        return data


class _DirStore(_Store):
    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)

    def _file(self, name: str) -> Path:
        # Names come from the image's own JSON: keep them inside the layout folder.
        clean = posixpath.normpath(name)
        if clean.startswith(("/", "../")) or clean == "..":
            raise InvalidImage(f"{self.where}: {name!r} points outside the layout")
        return self.path / clean

    def has(self, name: str) -> bool:
        return self._file(name).is_file()

    def range(self, name: str) -> BlobRange:
        file = self._file(name)
        try:
            st = os.lstat(file)
        except OSError as err:
            raise InvalidImage(f"{self.where}: {name}: {err.strerror or err}") from err
        if not stat.S_ISREG(st.st_mode):
            raise InvalidImage(f"{self.where}: {name} is not a regular file")
        return BlobRange(file, 0, st.st_size)


@dataclass(frozen=True)
class _OuterMember:
    offset: int
    size: int
    link: str | None  # a symlink member's target (docker save links repeated layers)


class _TarStore(_Store):
    """The members of an image archive, indexed by name once (headers only)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)
        self.members: dict[str, _OuterMember] = {}
        try:
            with open_regular(path) as stream, tarfile.open(fileobj=stream, mode="r:") as tar:
                for info in _members(tar):
                    name = posixpath.normpath(info.name.lstrip("/"))
                    if info.isreg():
                        self.members[name] = _OuterMember(info.offset_data, info.size, None)
                    elif info.issym():
                        self.members[name] = _OuterMember(0, 0, info.linkname)
                    if len(self.members) > _MAX_OUTER_MEMBERS:
                        raise InvalidImage(f"{path}: more than {_MAX_OUTER_MEMBERS} members")
        except (tarfile.TarError, EOFError) as err:
            raise InvalidImage(f"{path}: not a readable tar ({err})") from err
        size = path.stat().st_size
        for name, member in self.members.items():
            if member.offset + member.size > size:
                raise InvalidImage(f"{path}: member {name!r} runs past the end of the archive")

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self.members)

    def has(self, name: str) -> bool:
        return posixpath.normpath(name) in self.members

    def range(self, name: str) -> BlobRange:
        current = posixpath.normpath(name)
        for _ in range(8):  # a symlinked layer points at another member, once
            member = self.members.get(current)
            if member is None:
                raise InvalidImage(f"{self.where}: no member {name!r}")
            if member.link is None:
                return BlobRange(self.path, member.offset, member.size)
            current = posixpath.normpath(posixpath.join(posixpath.dirname(current), member.link))
        raise InvalidImage(f"{self.where}: member {name!r}: too many symlinks")


def _members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """Every member, without the TarFile keeping a list of them (memory stays flat)."""
    while (info := tar.next()) is not None:
        forget_members(tar)
        yield info


def forget_members(tar: tarfile.TarFile) -> None:
    """Drop the list of members a TarFile keeps as it reads (it grows with the archive)."""
    tar.members.clear()  # type: ignore[attr-defined]  # typeshed omits the attribute


# -- the transports -----------------------------------------------------------------------


def open_image_blobs(reference: str, workdir: Path, *, export: Export | None = None) -> ImageBlobs:
    """Locate the config and layers of the image ``reference`` names.

    ``workdir`` is the caller's own temporary folder: a ``docker-daemon`` image is exported
    into it (with ``export``, default: through the Docker SDK from ``DOCKER_HOST``).
    Raises :class:`InvalidImage` with one line for anything missing or malformed.
    """
    transport, where, tag = parse_image_reference(reference)
    if transport == "docker-daemon":
        archive = workdir / "docker-daemon.tar"
        (export or export_from_docker)(where, archive)
        return _docker_archive(reference, "docker-daemon", _TarStore(archive), None)
    if transport == "docker-archive":
        return _docker_archive(reference, transport, _TarStore(Path(where)), tag)
    store: _Store = _DirStore(Path(where)) if transport == "oci" else _TarStore(Path(where))
    return _oci(reference, transport, store, tag)


def _oci(reference: str, transport: str, store: _Store, tag: str | None) -> ImageBlobs:
    layout = parse_json_object(store.range("oci-layout").read(), f"{store.where}: oci-layout")
    if "imageLayoutVersion" not in layout:
        raise InvalidImage(f"{store.where}: oci-layout has no imageLayoutVersion")
    index = Index.from_bytes(store.range("index.json").read(), f"{store.where}: index.json")
    descriptor = _choose(store, index, tag, depth=0)
    manifest = Manifest.from_bytes(store.checked(descriptor), f"{store.where}: manifest")
    config_bytes = store.checked(manifest.config)
    config = parse_json_object(config_bytes, f"{store.where}: config")
    diff_ids = _diff_ids(config, store.where, len(manifest.layers))
    layers = tuple(
        LayerBlob(store.blob(layer.digest), layer.digest, diff_id)
        for layer, diff_id in zip(manifest.layers, diff_ids)
    )
    for layer, desc in zip(layers, manifest.layers):
        if layer.blob.size != desc.size:
            raise InvalidImage(f"{store.where}: layer {desc.digest} is not {desc.size} bytes")
    return ImageBlobs(reference, transport, config, Digest.of_bytes(config_bytes), layers)


def _choose(store: _Store, index: Index, tag: str | None, depth: int) -> Descriptor:
    """The image manifest the tag names (or the only one), through nested indexes."""
    if depth > _MAX_INDEX_DEPTH:
        raise InvalidImage(f"{store.where}: indexes nested more than {_MAX_INDEX_DEPTH} deep")
    found = list(index.manifests)
    if tag is not None and depth == 0:
        found = [d for d in found if tag in _names(d)]
        if not found:
            known = sorted({n for d in index.manifests for n in _names(d)})
            raise InvalidImage(f"{store.where}: no image tagged {tag!r} (tags: {known or 'none'})")
    if len(found) > 1:
        arch = _ARCH.get(platform.machine(), platform.machine())
        here = [d for d in found if d.platform and d.platform.architecture == arch]
        if len(here) != 1:
            names = sorted({n for d in found for n in _names(d)})
            raise InvalidImage(
                f"{store.where}: {len(found)} images; name one with :TAG (tags: {names or 'none'})"
            )
        found = here
    if not found:
        raise InvalidImage(f"{store.where}: the index lists no image")
    descriptor = found[0]
    if descriptor.media_type in (media.OCI_INDEX, media.DOCKER_MANIFEST_LIST):
        nested = Index.from_bytes(store.checked(descriptor), f"{store.where}: nested index")
        return _choose(store, nested, tag, depth + 1)
    return descriptor


def _names(descriptor: Descriptor) -> set[str]:
    names = set()
    for key in (_REF_NAME, _CONTAINERD_NAME):
        value = descriptor.annotations.get(key)
        if value:
            names.add(value)
            if key == _CONTAINERD_NAME and ":" in value.rsplit("/", 1)[-1]:
                names.add(value.rsplit(":", 1)[1])
    return names


def _docker_archive(
    reference: str, transport: str, store: _TarStore, tag: str | None
) -> ImageBlobs:
    where = store.where
    try:
        entries = json.loads(store.range("manifest.json").read())
    except ValueError as err:
        raise InvalidImage(f"{where}: manifest.json is not JSON ({err})") from err
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise InvalidImage(f"{where}: manifest.json is not a list of images")
    if tag is not None:
        entries = [e for e in entries if _tag_matches(e.get("RepoTags"), tag)]
    if len(entries) != 1:
        tags = sorted(t for e in entries for t in (e.get("RepoTags") or []) if isinstance(t, str))
        what = f"tagged {tag!r}" if tag else "(name one with :NAME:TAG)"
        raise InvalidImage(f"{where}: {len(entries)} images {what}; tags: {tags or 'none'}")
    entry = entries[0]
    config_name, layer_names = entry.get("Config"), entry.get("Layers")
    if not isinstance(config_name, str) or not isinstance(layer_names, list):
        raise InvalidImage(f"{where}: manifest.json entry without Config or Layers")
    config_bytes = store.range(config_name).read()
    config_digest = Digest.of_bytes(config_bytes)
    stem = posixpath.basename(config_name).removesuffix(".json")
    if len(stem) == 64 and stem != config_digest.hex:  # docker names the config by its hash
        raise InvalidImage(f"{where}: {config_name} does not match its digest")
    config = parse_json_object(config_bytes, f"{where}: {config_name}")
    diff_ids = _diff_ids(config, where, len(layer_names))
    layers = []
    for name, diff_id in zip(layer_names, diff_ids):
        if not isinstance(name, str):
            raise InvalidImage(f"{where}: a layer name in manifest.json is not text")
        layers.append(LayerBlob(store.range(name), _blob_digest(name), diff_id))
    return ImageBlobs(reference, transport, config, config_digest, tuple(layers))


def _blob_digest(name: str) -> Digest | None:
    """The digest a Docker 25+ archive names a layer by (``blobs/sha256/<hex>``)."""
    parts = name.split("/")
    if len(parts) == 3 and parts[0] == "blobs":
        try:
            return Digest(parts[1], parts[2])
        except InvalidDigest:
            return None
    return None


def _tag_matches(tags: object, tag: str) -> bool:
    if not isinstance(tags, list):
        return False
    return any(t == tag or (isinstance(t, str) and t.endswith("/" + tag)) for t in tags)


def _diff_ids(config: Mapping[str, Any], where: str, count: int) -> list[Digest]:
    rootfs = config.get("rootfs")
    texts = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(texts, list):
        raise InvalidImage(f"{where}: the config has no rootfs.diff_ids")
    try:
        diff_ids = [Digest.parse(str(text)) for text in texts]
    except InvalidDigest as err:
        raise InvalidImage(f"{where}: config rootfs.diff_ids: {err}") from err
    if len(diff_ids) != count:
        raise InvalidImage(f"{where}: {count} layers but {len(diff_ids)} diff_ids in the config")
    return diff_ids


def export_from_docker(name: str, target: Path) -> None:
    """Write ``docker save NAME`` to ``target`` through the Docker SDK (``DOCKER_HOST``)."""
    from envpack.oci.daemon import _client_from_env

    try:
        client = _client_from_env()
    except Exception as err:  # the SDK raises many kinds; each is one line for the user
        raise InvalidImage(f"docker-daemon:{name}: {_one_line(err)}") from err
    try:
        export_with_client(client, name, target)
    finally:
        client.close()


def export_with_client(client: Any, name: str, target: Path) -> None:
    """``client.images.get(name).save()`` streamed into ``target`` (a new file)."""
    try:
        image = client.images.get(name)
        with open(target, "xb") as out:
            for chunk in image.save(chunk_size=1 << 20):
                out.write(chunk)
    except InvalidImage:
        raise
    except Exception as err:  # docker.errors.*, requests errors: one line each
        raise InvalidImage(f"docker-daemon:{name}: {_one_line(err)}") from err


def _one_line(err: BaseException) -> str:
    text = getattr(err, "explanation", None) or str(err)
    return " ".join(str(text).split()) or type(err).__name__
