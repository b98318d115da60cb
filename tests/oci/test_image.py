"""Image config and manifest: dated by the caller, sorted, one history entry per layer."""

from __future__ import annotations

import json
from pathlib import Path

import isal
import pytest
from oci_helpers import EPOCH, build_small_image

from envpack.errors import PackError
from envpack.oci import media
from envpack.oci.digest import Digest
from envpack.oci.image import ImageSpec, assemble, rfc3339
from envpack.oci.layer import DEFAULT_LEVEL, Layer, build_layers
from envpack.oci.model import Manifest, canonical_json
from envpack.oci.tarlayer import TarEntry


@pytest.fixture(scope="module")
def two_layers(tmp_path_factory: pytest.TempPathFactory) -> list[Layer]:
    groups = [[TarEntry("/a", "dir", 0o755)], [TarEntry("/b", "dir", 0o700, uid=65532)]]
    return build_layers(groups, tmp_path_factory.mktemp("blobs"))


def test_config_is_canonical_dated_and_sorted(two_layers: list[Layer]) -> None:
    spec = ImageSpec(
        entrypoint=("/usr/bin/python3",),
        cmd=("-c", "print(1)"),
        env={"Z": "last", "A": "first", "M": "a=b"},
        workdir="/srv",
        user="65532:65532",
        labels={"io.envpack.manifest.digest": "sha256:" + "0" * 64},
        created=EPOCH,
    )
    image = assemble(spec, two_layers)
    config = json.loads(image.config_bytes)
    assert canonical_json(config) == image.config_bytes
    assert config["created"] == "2023-11-14T22:13:20Z" == rfc3339(EPOCH)
    assert config["config"]["Env"] == ["A=first", "M=a=b", "Z=last"]
    assert config["config"]["Entrypoint"] == ["/usr/bin/python3"]
    assert config["config"]["User"] == "65532:65532"
    assert config["rootfs"] == {
        "type": "layers",
        "diff_ids": [str(layer.diff_id) for layer in two_layers],
    }
    assert len(config["history"]) == len(two_layers)
    for entry in config["history"]:
        assert set(entry) == {"created", "created_by"}  # no author, no comment
        assert entry["created"] == config["created"]
    assert image.config.digest == Digest.of_bytes(image.config_bytes)
    assert image.config.media_type == media.OCI_CONFIG


def test_manifest_names_blobs_creation_and_compressor(two_layers: list[Layer]) -> None:
    image = assemble(ImageSpec(created=EPOCH), two_layers, annotations={"x": "y"})
    manifest = Manifest.from_bytes(image.manifest_bytes, "manifest")
    assert image.manifest.digest == Digest.of_bytes(image.manifest_bytes)
    assert image.digest == image.manifest.digest
    assert manifest.config == image.config
    assert [(d.digest, d.size) for d in manifest.layers] == [
        (layer.digest, layer.size) for layer in two_layers
    ]
    assert manifest.annotations == {"org.opencontainers.image.created": rfc3339(EPOCH), "x": "y"}
    expected = f"isal {isal.__version__} level {DEFAULT_LEVEL}"  # the default compressor
    assert all(d.annotations["io.envpack.compressor"] == expected for d in manifest.layers)


def test_two_builds_of_real_files_give_one_digest(tmp_path: Path) -> None:
    first = build_small_image(tmp_path / "one")
    second = build_small_image(tmp_path / "two")
    assert first.digest == second.digest
    assert first.config_bytes == second.config_bytes


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (ImageSpec(env={"A=B": "x"}), "environment variable"),
        (ImageSpec(env={"": "x"}), "environment variable"),
        (ImageSpec(labels={"k": "a\0b"}), "label"),
        (ImageSpec(history=("only one",)), "1 history entries for 2 layers"),
        (ImageSpec(created=-5), "before 1970"),
    ],
)
def test_bad_specs_are_one_line(spec: ImageSpec, message: str, two_layers: list[Layer]) -> None:
    with pytest.raises(PackError, match=message):
        assemble(spec, two_layers)
