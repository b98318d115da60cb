"""`envpack capture --image` against real images that envpack did not build.

A rootfs assembled from this machine's real files is imported into a real Docker Engine
(`docker import`), an image is built on it with `docker build --network none` (a file
added, a program deleted: a whiteout; a folder emptied and refilled: an opaque folder),
and both are read through all four transports: the Docker Engine itself, its `docker save`
tar, and the OCI layout and OCI archive that skopeo (an independent tool) converts it to.

The oracles: a `--root` capture of the very tree that was imported, and a `--root`
capture of Docker's own flattening of the built image (`docker export` of a container,
unpacked with GNU tar).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from envpack.snapshot.imagesource import open_image
from image_helpers import (
    assemble_rootfs,
    docker_build,
    docker_import,
    docker_save,
    remove_image,
)
from realenv import run_envpack

pytestmark = pytest.mark.slow

DOCKERFILE = """\
FROM {base}
COPY hello.txt /etc/imagecap/hello.txt
RUN ["/usr/bin/dash", "-c", "rm /usr/bin/ls && rm -rf /etc/imagecap-opq && \\
mkdir /etc/imagecap-opq && echo new > /etc/imagecap-opq/new"]
ENV APP_MODE=prod PATH=/usr/local/bin:/usr/bin:/bin
"""


@pytest.fixture(scope="module")
def images(
    docker_client: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Path | str]]:
    work = tmp_path_factory.mktemp("images")
    tag = f"imagecap-test-{os.getpid()}"
    base, built = f"{tag}:base", f"{tag}:built"
    root = assemble_rootfs(work / "rootfs", extra=("/usr/bin/rm", "/usr/bin/mkdir"))
    (root / "etc/imagecap-opq").mkdir()
    (root / "etc/imagecap-opq/old").write_text("old\n")
    try:
        docker_import(docker_client, root, base)
        context = work / "context"
        context.mkdir()
        (context / "hello.txt").write_text("hello from docker build\n")
        (context / "Dockerfile").write_text(DOCKERFILE.format(base=base))
        docker_build(docker_client, context, built)
        saved = docker_save(docker_client, built, work / "built.tar")
        docker_save(docker_client, base, work / "base.tar")
        out: dict[str, Path | str] = {
            "root": root, "base": base, "built": built, "saved": saved,
            "base_saved": work / "base.tar", "work": work,
        }  # fmt: skip
        skopeo = shutil.which("skopeo")
        if skopeo is not None:
            for transport, target in (
                ("oci", work / "built.oci"),
                ("oci-archive", work / "built.oci.tar"),
            ):
                subprocess.run(
                    [skopeo, "copy", "-q", f"docker-archive:{saved}",
                     f"{transport}:{target}:latest"],
                    check=True, capture_output=True, timeout=300,
                )  # fmt: skip
                out[transport] = target
        flat = work / "flat"
        flat.mkdir()
        container = docker_client.containers.create(
            built, command=["/usr/bin/env"], network_mode="none"
        )
        try:
            export = work / "export.tar"
            with export.open("wb") as stream:
                for chunk in container.export(chunk_size=1 << 20):
                    stream.write(chunk)
        finally:
            container.remove(force=True)
        subprocess.run(["tar", "-x", "-f", str(export), "-C", str(flat)], check=True)
        # A container's export holds what the engine adds at run time: empty mount points
        # for these files and /.dockerenv. Put back what the image itself has there.
        for name in ("etc/hostname", "etc/hosts", "etc/resolv.conf", ".dockerenv"):
            (flat / name).unlink(missing_ok=True)
            if (root / name).exists():
                shutil.copy2(root / name, flat / name)
        out["flat"] = flat
        yield out
    finally:
        remove_image(docker_client, built)
        remove_image(docker_client, base)


def _capture(*args: str, out: Path) -> dict[str, Any]:
    done = run_envpack("capture", "-q", *args, "-o", str(out), timeout=600)
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def _sections(manifest: dict[str, Any], *, without: tuple[str, ...] = ()) -> dict[str, Any]:
    return {k: v for k, v in manifest.items() if k not in ("meta", "issues", *without)}


def test_a_docker_import_reads_like_the_tree_it_was_made_from(
    images: dict[str, Any], tmp_path: Path
) -> None:
    from_root = _capture("--root", str(images["root"]), out=tmp_path / "root.json")
    from_image = _capture(
        "--image", f"docker-archive:{images['base_saved']}", out=tmp_path / "i.json"
    )
    assert from_image["meta"]["source"]["kind"] == "image"
    assert from_image["meta"]["coverage"]["network"] == "not_applicable"
    assert from_image["meta"]["coverage"]["binaries"] == "captured"
    assert "network" not in from_image
    assert _sections(from_image) == _sections(from_root, without=("network",))
    assert len(from_image["system_packages"]) > 100
    assert "/usr/bin/python3" in from_image["interpreters"]
    assert {"cat", "ls"} <= set(from_image["binaries"])
    assert any("libc.so.6" in key for key in from_image["libraries"])


def _zstd_copy(layout: Path, target: Path) -> Path:
    """skopeo's own zstd conversion of an OCI layout (every layer recompressed)."""
    subprocess.run(
        ["skopeo", "copy", "-q", "--dest-compress-format", "zstd", f"oci:{layout}:latest",
         f"oci:{target}:latest"],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    index = json.loads((target / "index.json").read_text())
    digest = index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads((target / "blobs/sha256" / digest).read_text())
    kinds = {layer["mediaType"] for layer in manifest["layers"]}
    assert kinds == {"application/vnd.oci.image.layer.v1.tar+zstd"}, kinds
    return target


def test_every_transport_reads_the_same_built_image(images: dict[str, Any], tmp_path: Path) -> None:
    refs = {
        "docker-archive": f"docker-archive:{images['saved']}",
        "bare docker save tar": str(images["saved"]),
        "docker-daemon": f"docker-daemon:{images['built']}",
    }
    if "oci" in images:
        refs["oci"] = f"oci:{images['oci']}:latest"
        refs["oci-archive"] = f"oci-archive:{images['oci-archive']}"
        refs["bare oci layout"] = str(images["oci"])
        refs["oci, zstd layers"] = f"oci:{_zstd_copy(images['oci'], tmp_path / 'zstd.oci')}:latest"
    else:
        pytest.skip("skopeo is not installed (.ci/setup installs it): no OCI layout to read")
    captured = {
        name: _capture("--image", ref, out=tmp_path / f"{n}.json")
        for n, (name, ref) in enumerate(refs.items())
    }
    first = _sections(captured["docker-archive"])
    for name, manifest in captured.items():
        assert _sections(manifest) == first, name
    # The image's own Env, not a login's /etc/environment.
    assert first["env"]["APP_MODE"]["value"] == "prod"


def test_whiteouts_and_opaque_folders_match_dockers_own_flattening(
    images: dict[str, Any], tmp_path: Path
) -> None:
    # The saved layers really hold a whiteout and an opaque marker: the test exercises them.
    with tarfile.open(images["saved"]) as outer:
        names: set[str] = set()
        for info in outer.getmembers():
            if info.name.endswith("layer.tar"):
                stream = outer.extractfile(info)
                assert stream is not None
                with tarfile.open(fileobj=stream) as layer:
                    names.update(layer.getnames())
    assert "usr/bin/.wh.ls" in names
    assert "etc/imagecap-opq/.wh..wh..opq" in names
    from_image = _capture("--image", f"docker-archive:{images['saved']}", out=tmp_path / "i.json")
    flattened = _capture("--root", str(images["flat"]), out=tmp_path / "flat.json")
    assert _sections(from_image, without=("env",)) == _sections(
        flattened, without=("env", "network")
    )
    assert "ls" not in from_image["binaries"] and "cat" in from_image["binaries"]
    with open_image(f"docker-archive:{images['saved']}") as source:
        assert source.listdir("/etc/imagecap-opq") == ["new"]
        assert source.read_text("/etc/imagecap/hello.txt") == "hello from docker build\n"
        assert source.lstat("/usr/bin/ls") is None


@pytest.mark.parametrize("transport", ["docker-archive", "oci"])
def test_hashed_and_elf_files_are_read_in_place_not_copied_out(
    images: dict[str, Any], tmp_path: Path, transport: str
) -> None:
    # The docker save tar has plain layers, skopeo's OCI layout gzip ones. Hashing a file
    # and parsing its ELF headers read it where it lies in its layer (or the layer's
    # inflated data): no file of envpack's folder is a copy of a program or a library.
    from envpack.redact import Redactor
    from envpack.snapshot import hashcache
    from envpack.snapshot.capture import capture
    from envpack.snapshot.context import CaptureOptions

    if transport == "oci" and "oci" not in images:
        pytest.skip("skopeo is not installed: no OCI layout of the image")
    ref = (
        f"docker-archive:{images['saved']}"
        if transport == "docker-archive"
        else (f"oci:{images['oci']}:latest")
    )
    before = hashcache.stats.bytes_hashed
    with open_image(ref, workdir=tmp_path) as source:
        manifest = capture(source, CaptureOptions(cache_dir=tmp_path), Redactor(b"k" * 32))
        copies = [p for p in source.temp.iterdir() if p.name.startswith("file-")]
        elf_copies = [p for p in copies if p.read_bytes()[:4] == b"\x7fELF"]
        copied = sum(p.stat().st_size for p in copies)
    hashed = hashcache.stats.bytes_hashed - before
    binaries = manifest.sections["binaries"]
    assert (
        binaries["cat"]["sha256"]
        == hashlib.sha256(Path(os.path.realpath("/usr/bin/cat")).read_bytes()).hexdigest()
    )
    assert binaries["cat"]["elf"] is not None
    assert hashed > 1 << 20  # programs and libraries were hashed…
    assert elf_copies == []  # …and none of them copied out
    assert copied < hashed / 10
