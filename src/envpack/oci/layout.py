"""OCI image layout folders: written atomically, read back with every digest checked.

The writer builds the whole layout in a temporary folder beside OUT and renames it into
place, so OUT is either absent, the old content, or complete. Whether an existing OUT may
be replaced is the caller's decision (``replace=True``). The reader trusts nothing: every
blob it returns was hashed and sized against its descriptor (image capture reads layouts
written by others).
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envpack.errors import PackError
from envpack.oci import media
from envpack.oci.digest import Digest, DigestingWriter
from envpack.oci.model import (
    Descriptor,
    Index,
    InvalidImage,
    Manifest,
    Platform,
    canonical_json,
    parse_json_object,
)
from envpack.oci.outputs import TEMP_MARK, temp_prefix

if TYPE_CHECKING:  # the writer's input; reading a layout (push) needs no builder code
    from envpack.oci.image import Image

__all__ = [
    "ANNOTATION_REF_NAME",
    "TEMP_MARK",
    "LayoutImage",
    "OciLayout",
    "layout_files",
    "read_oci_layout",
    "write_oci_layout",
]

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
_MAX_JSON_BLOB = 4 << 20  # manifests, indexes and configs are small; refuse a huge one
_CHUNK = 1 << 20


def layout_files(
    image: Image, *, ref_name: str | None, annotations: Mapping[str, str] | None = None
) -> tuple[dict[str, bytes], dict[str, Path]]:
    """The small files of a layout (``oci-layout``, ``index.json``, config and manifest
    blobs) by relative path, and the layer blobs by relative path → stored file."""
    entry_annotations = dict(annotations or {})
    if ref_name:
        entry_annotations[ANNOTATION_REF_NAME] = ref_name
    entry = Descriptor(
        image.manifest.media_type,
        image.manifest.digest,
        image.manifest.size,
        entry_annotations,
        Platform(image.architecture, image.os),
    )
    small = {
        "oci-layout": canonical_json({"imageLayoutVersion": media.OCI_LAYOUT_VERSION}),
        "index.json": Index((entry,)).to_bytes(),
        _blob_name(image.config.digest): image.config_bytes,
        _blob_name(image.manifest.digest): image.manifest_bytes,
    }
    layers = {_blob_name(layer.digest): layer.path for layer in image.layers}
    return small, layers


def write_oci_layout(
    image: Image,
    out: Path,
    *,
    ref_name: str | None,
    annotations: Mapping[str, str] | None = None,
    replace: bool = False,
) -> None:
    """Write ``image`` as an OCI image layout folder at ``out``, atomically.

    ``ref_name`` becomes the index entry's ``org.opencontainers.image.ref.name`` (the tag
    ``skopeo … oci:OUT:TAG`` selects); ``annotations`` go on that entry too. An existing
    ``out`` is refused unless ``replace``; then it is swapped out only once the new
    layout is complete.
    """
    if out.exists() and not replace:
        raise PackError(f"{out} already exists")
    small, layers = layout_files(image, ref_name=ref_name, annotations=annotations)
    parent = out.parent if str(out.parent) else Path()
    try:
        temp = Path(tempfile.mkdtemp(prefix=temp_prefix(out), dir=parent))
    except OSError as err:
        raise PackError(f"cannot write {out}: {err.strerror or err}") from err
    try:
        os.chmod(temp, 0o755)  # noqa: S103 - a layout is for others to read
        (temp / "blobs" / "sha256").mkdir(parents=True, mode=0o755)
        for name, source in layers.items():
            _place_blob(source, temp / name)
        for name, data in small.items():
            (temp / name).write_bytes(data)
        for path in temp.rglob("*"):
            os.chmod(path, 0o755 if path.is_dir() else 0o644)  # not the umask's choice
        _move_into_place(temp, out, replace=replace)
    except OSError as err:
        shutil.rmtree(temp, ignore_errors=True)
        raise PackError(f"cannot write {out}: {err.strerror or err}") from err
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


def _blob_name(digest: Digest) -> str:
    return f"blobs/{digest.algorithm}/{digest.hex}"


def _place_blob(source: Path, target: Path) -> None:
    """A hardlink when the blob store is on the same filesystem, else a streamed copy."""
    if target.exists():
        return  # the same digest twice: content-addressed, already there
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _move_into_place(temp: Path, out: Path, *, replace: bool) -> None:
    if not replace or not os.path.lexists(out):
        os.rename(temp, out)  # fails (ENOTEMPTY/EEXIST) if OUT appeared meanwhile
        return
    old = Path(tempfile.mkdtemp(prefix=temp_prefix(out), dir=out.parent))
    os.rename(out, old / "previous")
    os.rename(temp, out)
    shutil.rmtree(old, ignore_errors=True)


@dataclass(frozen=True)
class LayoutImage:
    """One image manifest found through a layout's index, its blobs verified."""

    descriptor: Descriptor
    manifest: Manifest
    config: dict[str, Any]
    config_bytes: bytes

    @property
    def ref_name(self) -> str | None:
        return self.descriptor.annotations.get(ANNOTATION_REF_NAME)

    @property
    def diff_ids(self) -> tuple[Digest, ...]:
        return tuple(Digest.parse(text) for text in self.config["rootfs"]["diff_ids"])


@dataclass(frozen=True)
class OciLayout:
    """A verified OCI image layout: its index and every image manifest it leads to."""

    path: Path
    index: Index
    images: tuple[LayoutImage, ...]

    def blob_path(self, digest: Digest) -> Path:
        return self.path / _blob_name(digest)

    def image(self, ref_name: str | None = None) -> LayoutImage:
        """The image named ``ref_name``, or the only one when no name is given."""
        found = [i for i in self.images if ref_name is None or i.ref_name == ref_name]
        if len(found) != 1:
            what = f"named {ref_name!r}" if ref_name else "(no name given)"
            raise InvalidImage(f"{self.path}: {len(found)} images {what}, expected one")
        return found[0]


def read_oci_layout(
    path: Path, *, check_diff_ids: bool = False, hash_layers: bool = True
) -> OciLayout:
    """Read and verify the layout at ``path``: ``oci-layout``, the index (nested indexes
    followed), each manifest, config and layer blob hashed against its descriptor.

    With ``check_diff_ids`` each gzip layer is also decompressed and its sha256 compared
    with the config's ``rootfs.diff_ids``. Without ``hash_layers`` a layer blob is only
    checked to be a regular file of its descriptor's size (a push: the registry hashes
    what it receives, and never receives a blob it has). Any failure is
    :class:`InvalidImage`, one line.
    """
    marker = _read_json_file(path / "oci-layout", "oci-layout")
    if marker.get("imageLayoutVersion") != media.OCI_LAYOUT_VERSION:
        raise InvalidImage(f"{path}: oci-layout is not version {media.OCI_LAYOUT_VERSION}")
    index = Index.from_bytes(_read_small(path / "index.json", f"{path}/index.json"), "index.json")
    images = tuple(_images(path, index, check_diff_ids, depth=0, hash_layers=hash_layers))
    return OciLayout(path, index, images)


def _images(
    path: Path, index: Index, check_diff_ids: bool, depth: int, *, hash_layers: bool = True
) -> Iterator[LayoutImage]:
    if depth > 4:
        raise InvalidImage(f"{path}: indexes nested more than 4 deep")
    for descriptor in index.manifests:
        data = _read_blob_bytes(path, descriptor)
        where = f"{path}: manifest {descriptor.digest}"
        if descriptor.media_type in (media.OCI_INDEX, media.DOCKER_MANIFEST_LIST):
            nested = Index.from_bytes(data, where)
            yield from _images(path, nested, check_diff_ids, depth + 1, hash_layers=hash_layers)
            continue
        manifest = Manifest.from_bytes(data, where)
        config_bytes = _read_blob_bytes(path, manifest.config)
        config = parse_json_object(config_bytes, f"{path}: config {manifest.config.digest}")
        diff_ids = _diff_ids(config, f"{path}: config {manifest.config.digest}")
        if len(diff_ids) != len(manifest.layers):
            raise InvalidImage(
                f"{where}: {len(manifest.layers)} layers but {len(diff_ids)} diff_ids"
            )
        for layer, diff_id in zip(manifest.layers, diff_ids):
            if not hash_layers and not check_diff_ids:
                _check_size(path, layer)
                continue
            uncompressed = _verify_blob(path, layer, decompress=check_diff_ids)
            if check_diff_ids and uncompressed != diff_id:
                raise InvalidImage(f"{where}: layer {layer.digest} is not diff_id {diff_id}")
        yield LayoutImage(descriptor, manifest, config, config_bytes)


def _diff_ids(config: dict[str, Any], where: str) -> list[Digest]:
    rootfs = config.get("rootfs")
    texts = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(texts, list):
        raise InvalidImage(f"{where}: no rootfs.diff_ids")
    try:
        return [Digest.parse(str(text)) for text in texts]
    except ValueError as err:
        raise InvalidImage(f"{where}: {err}") from err


def _open_blob(path: Path, descriptor: Descriptor) -> tuple[int, Path]:
    blob = path / _blob_name(descriptor.digest)
    try:
        fd = os.open(blob, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as err:
        raise InvalidImage(f"{blob}: {err.strerror or err}") from err
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InvalidImage(f"{blob}: not a regular file")
    return fd, blob


def _check_size(path: Path, descriptor: Descriptor) -> None:
    fd, blob = _open_blob(path, descriptor)
    try:
        size = os.fstat(fd).st_size
    finally:
        os.close(fd)
    if size != descriptor.size:
        raise InvalidImage(f"{blob}: {size} bytes, its descriptor says {descriptor.size}")


def _read_blob_bytes(path: Path, descriptor: Descriptor) -> bytes:
    if descriptor.size > _MAX_JSON_BLOB:
        raise InvalidImage(f"{path}: {descriptor.digest} is {descriptor.size} bytes, too large")
    fd, blob = _open_blob(path, descriptor)
    with os.fdopen(fd, "rb") as stream:
        data = stream.read(descriptor.size + 1)
    if len(data) != descriptor.size or Digest.of_bytes(data) != descriptor.digest:
        raise InvalidImage(f"{blob}: content does not match its digest or size")
    return data


def _verify_blob(path: Path, descriptor: Descriptor, *, decompress: bool) -> Digest | None:
    """Hash a layer blob in chunks; with ``decompress``, also the sha256 of its gunzipped
    content (the diff_id), or of the blob itself for an uncompressed layer."""
    fd, blob = _open_blob(path, descriptor)
    stored = DigestingWriter()
    plain = DigestingWriter() if decompress else None
    gzipped = descriptor.media_type in (media.OCI_LAYER_TAR_GZIP, media.DOCKER_LAYER_GZIP)
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if plain is not None and gzipped else None
    try:
        with os.fdopen(fd, "rb") as stream:
            while chunk := stream.read(_CHUNK):
                stored.write(chunk)
                if inflate is not None and plain is not None:
                    plain.write(inflate.decompress(chunk))
                elif plain is not None:
                    plain.write(chunk)
        if inflate is not None and not inflate.eof:
            raise InvalidImage(f"{blob}: truncated gzip stream")
    except zlib.error as err:
        raise InvalidImage(f"{blob}: not a gzip stream ({err})") from err
    if stored.size != descriptor.size or stored.digest != descriptor.digest:
        raise InvalidImage(f"{blob}: content does not match its digest or size")
    return plain.digest if plain is not None else None


def _read_small(file: Path, where: str) -> bytes:
    try:
        with file.open("rb") as stream:
            data = stream.read(_MAX_JSON_BLOB + 1)
    except OSError as err:
        raise InvalidImage(f"{where}: {err.strerror or err}") from err
    if len(data) > _MAX_JSON_BLOB:
        raise InvalidImage(f"{where}: larger than {_MAX_JSON_BLOB} bytes")
    return data


def _read_json_file(file: Path, what: str) -> dict[str, Any]:
    return parse_json_object(_read_small(file, str(file)), f"{file.parent}: {what}")
