"""`envpack sbom registry:HOST/REPO:TAG`: a manifest stored by `capture --push` in a real
Distribution registry (htpasswd auth) gives the same SBOM as the file it came from."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "registry"))
from regserver import PASSWORD, USER, running_registry

from realenv import FIXTURES, run_envpack

pytestmark = pytest.mark.slow


def test_sbom_of_a_pushed_manifest(tmp_path: Path, clean_env: dict[str, str]) -> None:
    config = tmp_path / "docker-config"
    config.mkdir()
    env = {
        **clean_env,
        "DOCKER_CONFIG": str(config),
        "ENVPACK_CACHE_DIR": str(tmp_path / "cache"),
        "SOURCE_DATE_EPOCH": "1700000000",
    }
    manifest = tmp_path / "m.json"
    done = run_envpack(
        "capture", "-q", "--root", str(FIXTURES / "rootfs" / "debian-py39-dpkg"),
        "-o", str(manifest), env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with running_registry(tmp_path / "registry", "htpasswd") as registry:
        pair = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        (config / "config.json").write_text(json.dumps({"auths": {registry.host: {"auth": pair}}}))
        ref = f"{registry.host}/sbom-test/fleet:host-1"
        pushed = run_envpack(
            "capture", "-q", "--root", str(FIXTURES / "rootfs" / "debian-py39-dpkg"),
            "--push", ref, env=env,
        )  # fmt: skip
        assert pushed.returncode == 0, pushed.stderr
        for fmt in ("cyclonedx", "spdx"):
            remote = run_envpack("sbom", f"registry:{ref}", "--format", fmt, env=env)
            assert remote.returncode == 0, remote.stderr
            local = run_envpack("sbom", str(manifest), "--format", fmt, env=env)
            assert local.returncode == 0, local.stderr
            # The two captures differ only in their time; the packages are the same.
            components = json.loads(remote.stdout).get("components") or json.loads(
                remote.stdout
            ).get("packages")
            expected = json.loads(local.stdout).get("components") or json.loads(local.stdout).get(
                "packages"
            )
            assert components == expected
            assert components
        missing = run_envpack("sbom", f"registry:{registry.host}/sbom-test/fleet:nope", env=env)
        assert missing.returncode == 2
        assert missing.stderr.strip().count("\n") == 0 and "no such tag" in missing.stderr
