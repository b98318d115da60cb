"""OCI layout folders, read back by skopeo, umoci and envpack's own verifying reader."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from oci_helpers import GREETING, SMALL_ENV, build_small_image

from envpack.errors import PackError
from envpack.oci.image import Image
from envpack.oci.layout import read_oci_layout, write_oci_layout
from envpack.oci.model import InvalidImage
from envpack.oci.outputs import TEMP_MARK

TAG = "1.0"


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    return build_small_image(tmp_path_factory.mktemp("blobs"))


@pytest.fixture
def layout(image: Image, tmp_path: Path) -> Path:
    out = tmp_path / "layout"
    write_oci_layout(image, out, ref_name=TAG)
    return out


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (.ci/setup installs it)")
    return found


def _files(root: Path) -> dict[str, tuple[int, bytes]]:
    return {
        str(p.relative_to(root)): (p.stat().st_mode, p.read_bytes() if p.is_file() else b"")
        for p in sorted(root.rglob("*"))
    }


def test_reader_verifies_what_was_written(image: Image, layout: Path) -> None:
    read = read_oci_layout(layout, check_diff_ids=True)
    found = read.image(TAG)
    assert found.descriptor.digest == image.digest
    assert found.config_bytes == image.config_bytes
    assert found.diff_ids == tuple(layer.diff_id for layer in image.layers)
    assert [d.digest for d in found.manifest.layers] == [layer.digest for layer in image.layers]
    assert found.descriptor.platform is not None
    assert found.descriptor.platform.architecture == "amd64"
    blobs = sorted(os.listdir(layout / "blobs" / "sha256"))
    assert blobs == sorted(
        {image.config.digest.hex, image.digest.hex, *(layer.digest.hex for layer in image.layers)}
    )


def test_same_layout_bytes_under_another_umask(image: Image, layout: Path, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere" / "layout"
    other.parent.mkdir()
    old = os.umask(0o077)
    try:
        write_oci_layout(image, other, ref_name=TAG)
    finally:
        os.umask(old)
    assert _files(other) == _files(layout)
    assert (layout / "index.json").stat().st_mode & 0o777 == 0o644


@pytest.mark.slow
def test_skopeo_reads_the_layout(image: Image, layout: Path) -> None:
    skopeo = _tool("skopeo")
    raw = subprocess.run(
        [skopeo, "inspect", "--raw", f"oci:{layout}:{TAG}"], check=True, capture_output=True
    ).stdout
    assert raw == image.manifest_bytes
    config = subprocess.run(
        [skopeo, "inspect", "--config", "--raw", f"oci:{layout}:{TAG}"],
        check=True,
        capture_output=True,
    ).stdout
    assert config == image.config_bytes
    info = json.loads(
        subprocess.run(
            [skopeo, "inspect", f"oci:{layout}:{TAG}"], check=True, capture_output=True
        ).stdout
    )
    assert info["Digest"] == str(image.digest)
    assert info["Layers"] == [str(layer.digest) for layer in image.layers]
    assert sorted(info["Env"]) == sorted(f"{k}={v}" for k, v in SMALL_ENV.items())
    assert info["Architecture"] == "amd64"


@pytest.mark.slow
def test_umoci_unpacks_a_rootfs_that_runs(image: Image, layout: Path, tmp_path: Path) -> None:
    umoci = _tool("umoci")
    bundle = tmp_path / "bundle"
    rootless = [] if os.geteuid() == 0 else ["--rootless"]
    subprocess.run(
        [umoci, "unpack", *rootless, "--image", f"{layout}:{TAG}", str(bundle)],
        check=True,
        capture_output=True,
    )
    rootfs = bundle / "rootfs"
    assert (rootfs / "usr/bin/env").read_bytes() == Path("/usr/bin/env").read_bytes()
    assert (rootfs / "etc/greeting").read_text(encoding="utf-8") == GREETING
    assert (rootfs / "tmp").stat().st_mode & 0o7777 == 0o1777
    assert os.readlink(rootfs / "lib64") == "usr/lib64"
    chroot = shutil.which("chroot", path=f"{os.defpath}:/usr/sbin:/sbin")
    if os.geteuid() != 0 or chroot is None:
        return  # running it needs root and chroot(8); the files were checked above
    ran = subprocess.run(
        [chroot, str(rootfs), "/usr/bin/cat", "/etc/greeting"],
        check=True,
        capture_output=True,
        env={"PATH": "/usr/bin"},
    )
    assert ran.stdout.decode("utf-8") == GREETING


def test_existing_out_is_refused_or_replaced(image: Image, layout: Path) -> None:
    with pytest.raises(PackError, match="already exists"):
        write_oci_layout(image, layout, ref_name="other")
    write_oci_layout(image, layout, ref_name="other", replace=True)
    assert read_oci_layout(layout).image("other").descriptor.digest == image.digest
    assert not [p for p in os.listdir(layout.parent) if TEMP_MARK in p]


def test_a_failed_write_leaves_nothing_beside_out(image: Image, tmp_path: Path) -> None:
    broken = Image(
        image.config,
        image.config_bytes,
        image.manifest,
        image.manifest_bytes,
        (
            type(image.layers[0])(
                **{**image.layers[0].__dict__, "path": tmp_path / "gone"}  # a vanished blob
            ),
        ),
    )
    with pytest.raises(PackError, match="cannot write") as info:
        write_oci_layout(broken, tmp_path / "out", ref_name=None)
    assert "\n" not in str(info.value)
    assert os.listdir(tmp_path) == []


def _tamper(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("what", ["layer", "config", "index", "marker", "symlink"])
def test_reader_refuses_a_tampered_layout(image: Image, layout: Path, what: str) -> None:
    blobs = layout / "blobs" / "sha256"
    if what == "layer":
        _tamper(blobs / image.layers[1].digest.hex)
    elif what == "config":
        _tamper(blobs / image.config.digest.hex)
    elif what == "index":
        (layout / "index.json").write_text('{"schemaVersion": 2, "manifests": [{}]}')
    elif what == "marker":
        (layout / "oci-layout").write_text('{"imageLayoutVersion": "9"}')
    else:
        target = blobs / image.layers[0].digest.hex
        moved = layout / "elsewhere"
        target.rename(moved)
        target.symlink_to(moved)
    with pytest.raises(InvalidImage) as info:
        read_oci_layout(layout)
    assert "\n" not in str(info.value)
