"""Real images for the image-capture tests: a rootfs assembled from this machine's files,
imported into a real Docker Engine, built on with ``docker build``, and saved.

debootstrap needs a Debian mirror, which this machine cannot reach; so the base is a tree
of the machine's own real files: its dpkg status, os-release, passwd, libc and loader, a
few programs with their ELF closure and Debian's CPython 3 with its standard library.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "BASE_PROGRAMS",
    "assemble_rootfs",
    "docker_build",
    "docker_import",
    "docker_save",
    "elf_closure",
    "remove_image",
]

BASE_PROGRAMS = ("/usr/bin/env", "/usr/bin/cat", "/usr/bin/dash", "/usr/bin/ls")
_ETC = ("os-release", "debian_version", "passwd", "group", "nsswitch.conf", "host.conf")


def elf_closure(program: str) -> list[str]:
    """``program`` and the loader and libraries ``ldd`` says it loads (vdso left out)."""
    out = subprocess.run(["ldd", program], check=True, capture_output=True, text=True).stdout
    paths = [program]
    for line in out.splitlines():
        match = re.search(r"(/\S+) \(0x", line)
        if match:
            paths.append(match.group(1))
    return paths


def _copy(path: str, root: Path) -> None:
    """Copy one host path (its symlink chain too) into ``root`` at the same place."""
    current = path
    for _ in range(10):
        target = root / current.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if os.path.islink(current):
            link = os.readlink(current)
            if not target.is_symlink():
                os.symlink(link, target)
            current = os.path.normpath(os.path.join(os.path.dirname(current), link))
            continue
        if os.path.isdir(current):
            shutil.copytree(current, target, symlinks=True, dirs_exist_ok=True)
        elif not target.exists():
            shutil.copy2(current, target)
        return


def _real(path: str) -> str:
    """``path`` with its folder's symlinks resolved (usr-merge: /lib → /usr/lib)."""
    return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))


def assemble_rootfs(root: Path, *, python: bool = True, extra: Iterable[str] = ()) -> Path:
    """A small Debian rootfs at ``root`` from this machine's real files.

    usr-merge symlinks, /etc basics, the real dpkg status, a few programs and their ELF
    closure, and with ``python`` Debian's ``/usr/bin/python3`` with its standard library.
    """
    root.mkdir(parents=True)
    for name in ("usr/bin", "usr/lib", "usr/sbin", "etc", "tmp", "var/lib/dpkg", "root"):
        (root / name).mkdir(parents=True, exist_ok=True)
    for link, target in (("bin", "usr/bin"), ("lib", "usr/lib"), ("sbin", "usr/sbin")):
        os.symlink(target, root / link)
    if os.path.islink("/lib64"):
        os.symlink(os.readlink("/lib64"), root / "lib64")
    for name in _ETC:
        if os.path.exists(f"/etc/{name}"):
            _copy(f"/etc/{name}", root)
    shutil.copy2("/var/lib/dpkg/status", root / "var/lib/dpkg/status")
    programs = list(BASE_PROGRAMS) + list(extra)
    if python:
        programs.append(os.path.realpath("/usr/bin/python3"))
    for program in programs:
        for path in elf_closure(program):
            _copy(_real(path), root)
    if python:
        _copy("/usr/bin/python3", root)
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        stdlib = f"/usr/lib/{version}"
        shutil.copytree(
            stdlib,
            root / stdlib.lstrip("/"),
            symlinks=True,
            ignore=shutil.ignore_patterns("test", "tests", "idlelib", "tkinter", "__pycache__"),
            dirs_exist_ok=True,
        )
        for folder in ("lib-dynload",):
            src = Path(stdlib) / folder
            if src.is_dir():
                shutil.copytree(src, root / stdlib.lstrip("/") / folder, dirs_exist_ok=True)
    (root / "etc/hostname").write_text("imagecap-base\n")
    return root


def docker_import(client: Any, root: Path, tag: str) -> str:
    """``docker import`` of the tree at ``root`` as ``tag``; its image id."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(str(root), arcname=".")
    repository, _, version = tag.partition(":")
    client.api.import_image_from_data(buffer.getvalue(), repository=repository, tag=version)
    image = client.images.get(tag)
    return str(image.id)


def docker_build(client: Any, context: Path, tag: str) -> str:
    """``docker build --network none`` of ``context`` as ``tag``; its image id."""
    image, _ = client.images.build(
        path=str(context), tag=tag, network_mode="none", rm=True, forcerm=True
    )
    return str(image.id)


def docker_save(client: Any, tag: str, target: Path) -> Path:
    """``docker save TAG`` into ``target``."""
    with target.open("wb") as out:
        for chunk in client.images.get(tag).save(chunk_size=1 << 20):
            out.write(chunk)
    return target


def remove_image(client: Any, tag: str) -> None:
    with contextlib.suppress(Exception):  # already gone: nothing to clean
        client.images.remove(tag, force=True, noprune=False)


# -- crafted images: a layer is a list of (TarInfo, content) built with Python's tarfile ----

Entry = tuple[tarfile.TarInfo, bytes]


def member(
    name: str,
    kind: bytes = tarfile.REGTYPE,
    data: bytes = b"",
    *,
    link: str = "",
    mode: int = 0o644,
    size: int | None = None,
) -> Entry:
    """One crafted tar entry; ``size`` overrides the declared size (a lying header)."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o755 if kind == tarfile.DIRTYPE and mode == 0o644 else mode
    info.linkname = link
    info.mtime = 1_600_000_000
    info.size = len(data) if size is None else size
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = 1, 3
    return info, data


def layer_bytes(entries: Iterable[Entry]) -> bytes:
    """An uncompressed layer tar of ``entries``, in the given order (duplicates kept)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in entries:
            if info.size != len(data):  # a lying header: write it raw, then the bytes
                buffer.write(info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape"))
                buffer.write(data + b"\0" * (-len(data) % 512))
                tar.offset = buffer.tell()
                continue
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buffer.getvalue()


def _config(layers: list[bytes], env: dict[str, str]) -> bytes:
    import hashlib
    import json

    diff_ids = [f"sha256:{hashlib.sha256(layer).hexdigest()}" for layer in layers]
    return json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": [f"{k}={v}" for k, v in env.items()]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    ).encode()


def zstd_compress(data: bytes) -> bytes:
    """``data`` as one zstd frame (the library ``zstd(1)`` is built on)."""
    import zstandard

    return zstandard.ZstdCompressor(level=3).compress(data)


def write_docker_archive(
    target: Path,
    layers: list[bytes],
    *,
    env: dict[str, str] | None = None,
    tag: str = "",
    zstd: bool = False,
) -> Path:
    """A ``docker save``-format tar (Docker 20.10's layout) of uncompressed ``layers``
    (with ``zstd``, each layer file zstd-compressed; the diff IDs stay the tars')."""
    import hashlib
    import json

    config = _config(layers, env or {})
    config_name = f"{hashlib.sha256(config).hexdigest()}.json"
    files: list[tuple[str, bytes]] = [(config_name, config)]
    names = []
    for number, layer in enumerate(layers):
        name = f"{number:04d}{hashlib.sha256(layer).hexdigest()[:8]}/layer.tar"
        names.append(name)
        files.append((name, zstd_compress(layer) if zstd else layer))
    manifest = [{"Config": config_name, "RepoTags": [tag] if tag else None, "Layers": names}]
    files.append(("manifest.json", json.dumps(manifest).encode()))
    with tarfile.open(target, "w") as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return target


def write_oci_layout(
    target: Path,
    layers: list[bytes],
    *,
    env: dict[str, str] | None = None,
    tag: str = "latest",
    zstd: bool = False,
) -> Path:
    """An OCI image layout folder of ``layers``, gzip-compressed (or zstd), tagged ``tag``."""
    import gzip
    import hashlib
    import json

    blobs = target / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> tuple[str, int]:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return f"sha256:{digest}", len(data)

    config_digest, config_size = put(_config(layers, env or {}))
    descriptors = []
    for layer in layers:
        digest, size = put(zstd_compress(layer) if zstd else gzip.compress(layer, mtime=0))
        kind = "zstd" if zstd else "gzip"
        descriptors.append(
            {
                "mediaType": f"application/vnd.oci.image.layer.v1.tar+{kind}",
                "digest": digest,
                "size": size,
            }
        )
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config_size,
            },
            "layers": descriptors,
        }
    ).encode()
    manifest_digest, manifest_size = put(manifest)
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": manifest_size,
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (target / "index.json").write_text(json.dumps(index))
    (target / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return target
