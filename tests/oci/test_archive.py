"""The image archive, read by GNU tar, skopeo (oci-archive:), containerd and Docker 20.10."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from oci_helpers import GREETING, build_small_image

from envpack.errors import PackError
from envpack.oci.archive import write_image_archive
from envpack.oci.daemon import load_into_docker
from envpack.oci.image import Image
from envpack.oci.layout import read_oci_layout
from envpack.oci.outputs import TEMP_MARK

REPO_TAG = "envpack-oci-test:1"


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    return build_small_image(tmp_path_factory.mktemp("blobs"))


@pytest.fixture(scope="module")
def archive(image: Image, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("archive") / "image.tar"
    write_image_archive(image, out, repo_tag=REPO_TAG)
    return out


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (.ci/setup installs it)")
    return found


def test_archive_holds_a_layout_and_a_docker_manifest(
    image: Image, archive: Path, tmp_path: Path
) -> None:
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        docker_manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        # Extraction filters exist from 3.11.4 (Debian 12 ships 3.11.2); where they exist,
        # leaving one out warns, and warnings are errors here.
        safe = {"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}
        tar.extractall(tmp_path / "x", **safe)  # type: ignore[arg-type]  # noqa: S202 (our own archive)
    assert {"oci-layout", "index.json", "manifest.json", "blobs/sha256"} <= set(names)
    assert docker_manifest == [
        {
            "Config": f"blobs/sha256/{image.config.digest.hex}",
            "RepoTags": [REPO_TAG],
            "Layers": [f"blobs/sha256/{layer.digest.hex}" for layer in image.layers],
        }
    ]
    layout = read_oci_layout(tmp_path / "x", check_diff_ids=True)
    found = layout.image("1")
    assert found.descriptor.digest == image.digest
    assert found.descriptor.annotations["io.containerd.image.name"] == (
        "docker.io/library/envpack-oci-test:1"
    )


def test_archive_bytes_repeat_and_nothing_is_left_beside(
    image: Image, archive: Path, tmp_path: Path
) -> None:
    again = tmp_path / "again.tar"
    write_image_archive(image, again, repo_tag=REPO_TAG)
    assert again.read_bytes() == archive.read_bytes()
    with pytest.raises(PackError, match="already exists"):
        write_image_archive(image, again, repo_tag=REPO_TAG)
    write_image_archive(image, again, repo_tag=None, replace=True)
    assert again.read_bytes() != archive.read_bytes()  # no name now
    assert os.listdir(tmp_path) == ["again.tar"]
    assert not any(TEMP_MARK in name for name in os.listdir(tmp_path))


def test_gnu_tar_reads_the_archive(archive: Path) -> None:
    listing = subprocess.run(
        ["tar", "--numeric-owner", "-tvf", str(archive)], check=True, capture_output=True
    )
    assert listing.stderr == b""
    assert b"manifest.json" in listing.stdout


@pytest.mark.slow
def test_skopeo_reads_the_archive(image: Image, archive: Path) -> None:
    skopeo = _tool("skopeo")
    for reference in (f"oci-archive:{archive}", f"oci-archive:{archive}:1"):
        info = json.loads(
            subprocess.run([skopeo, "inspect", reference], check=True, capture_output=True).stdout
        )
        assert info["Digest"] == str(image.digest)
        assert info["Layers"] == [str(layer.digest) for layer in image.layers]


def _containerd_socket() -> str:
    """containerd of the engine under test: dockerd keeps it in its exec root."""
    host = urlparse(os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"))
    for candidate in (
        Path(host.path).parent / "exec" / "containerd" / "containerd.sock",
        Path("/run/containerd/containerd.sock"),
    ):
        if candidate.is_socket() and os.access(candidate, os.W_OK):
            return str(candidate)
    pytest.skip("no containerd socket beside the Docker Engine under test")


@pytest.mark.slow
def test_containerd_imports_the_archive_by_its_index_name(
    image: Image, archive: Path, docker_client: Any
) -> None:
    """What Docker's containerd image store does with `docker load`: read index.json."""
    ctr = _tool("ctr")
    socket = _containerd_socket()
    namespace = "envpack-oci-test"
    base = [ctr, "--address", socket, "--namespace", namespace]
    try:
        subprocess.run(
            [*base, "images", "import", "--no-unpack", str(archive)],
            check=True,
            capture_output=True,
        )
        listed = subprocess.run(
            [*base, "images", "list"], check=True, capture_output=True, text=True
        ).stdout
        rows = [line.split() for line in listed.splitlines()[1:]]
        assert ["docker.io/library/envpack-oci-test:1", str(image.digest)] in [
            [row[0], row[2]] for row in rows
        ]
    finally:
        subprocess.run(
            [*base, "images", "rm", "docker.io/library/envpack-oci-test:1"],
            check=False,
            capture_output=True,
        )
        subprocess.run([*base, "content", "prune", "references"], check=False, capture_output=True)
        subprocess.run(
            [ctr, "--address", socket, "namespaces", "rm", namespace],
            check=False,
            capture_output=True,
        )


@pytest.fixture
def loaded(archive: Path, docker_client: Any) -> Iterator[str]:
    image_id = load_into_docker(archive, client=docker_client)
    yield image_id
    docker_client.images.remove(REPO_TAG, force=True)


@pytest.mark.slow
def test_docker_loads_tags_and_runs_the_image(
    image: Image, loaded: str, docker_client: Any
) -> None:
    assert loaded == str(image.config.digest)  # Docker's image id is the config digest
    assert REPO_TAG in docker_client.images.get(loaded).tags
    listed = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert f"{REPO_TAG} {image.config.digest.hex[:12]}" in listed.splitlines()
    env_out = docker_client.containers.run(REPO_TAG, network_mode="none", remove=True)
    assert "GREETING=héllo from envpack" in env_out.decode("utf-8").splitlines()
    cat_out = docker_client.containers.run(
        REPO_TAG,
        entrypoint=["/usr/bin/cat"],
        command=["/etc/greeting"],
        network_mode="none",
        read_only=True,
        remove=True,
    )
    assert cat_out.decode("utf-8") == GREETING


@pytest.mark.slow
def test_docker_load_without_a_client_honours_docker_host(
    archive: Path, docker_client: Any
) -> None:
    image_id = load_into_docker(archive)  # DOCKER_HOST points at the engine under test
    try:
        assert docker_client.images.get(image_id).id == image_id
    finally:
        docker_client.images.remove(REPO_TAG, force=True)


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated", "not a tar", "bad layer"])
def test_a_corrupt_archive_is_one_line(
    archive: Path, tmp_path: Path, damage: str, docker_client: Any
) -> None:
    broken = tmp_path / "broken.tar"
    data = archive.read_bytes()
    if damage == "truncated":
        broken.write_bytes(data[: len(data) // 3])
    elif damage == "not a tar":
        broken.write_bytes(b"this is not an image\n" * 100)
    else:
        with tarfile.open(archive) as tar:
            layer = next(m for m in tar.getmembers() if m.size > 100_000)
            start = layer.offset_data
        damaged = bytearray(data)
        damaged[start + 50_000 : start + 50_100] = bytes(100)
        broken.write_bytes(bytes(damaged))
    with pytest.raises(PackError, match="docker load of") as info:
        load_into_docker(broken, client=docker_client)
    assert "\n" not in str(info.value)


def test_no_engine_is_one_line(
    archive: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/absent.sock")
    with pytest.raises(PackError, match="docker load of") as info:
        load_into_docker(archive)
    assert "\n" not in str(info.value)
