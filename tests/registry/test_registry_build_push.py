"""`envpack build --push`: a real capture built and pushed with no daemon, pulled back by
Docker Engine with the same digest, and run."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from regserver import PASSWORD, USER, running_registry, tool

from realenv import run_envpack

pytestmark = pytest.mark.slow


def _raw(ref: str) -> bytes:
    """The manifest bytes skopeo reads at ``ref`` (with the test user's credentials)."""
    cmd = [tool("skopeo"), "inspect", "--tls-verify=false", "--raw"]
    cmd += ["--creds", f"{USER}:{PASSWORD}", f"docker://{ref}"]
    return subprocess.run(cmd, check=True, capture_output=True).stdout


def referrers_tag_of(digest: str) -> str:
    from envpack.oci.digest import Digest
    from envpack.registry import referrers_tag

    return referrers_tag(Digest.parse(digest))


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("auth", ["htpasswd", "token"])
def test_build_push_pulls_back_and_runs(
    auth: str, dev_venv: Path, tmp_path: Path, clean_env: dict[str, str], docker_client: Any
) -> None:
    env = {**clean_env, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    (tmp_path / "docker-config").mkdir()
    env["DOCKER_CONFIG"] = str(tmp_path / "docker-config")
    manifest = tmp_path / "dev.json"
    done = run_envpack("capture", "-q", "--python", str(dev_venv), "-o", str(manifest), env=env,
                       timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    with running_registry(tmp_path / "registry", auth) as registry:
        repo = "registry-envpack/built"
        ref = f"{registry.host}/{repo}:1"
        report = tmp_path / "report.json"
        work = tmp_path / "work"  # no -o: the build's workspace sits in the working folder
        work.mkdir()
        built = run_envpack(
            "build", str(manifest), "--push", ref, "--username", USER, "--password-stdin",
            "--report", str(report), input=PASSWORD, env=env, timeout=1500, cwd=work,
        )  # fmt: skip
        assert built.returncode == 0, built.stderr
        digest = json.loads(report.read_text())["image_digest"]
        assert f"pushed {ref}@{digest}" in built.stderr
        # No progress bar left behind (stderr is no terminal); the last line says what
        # was done with the image: no layout was written, it was pushed.
        assert built.stderr.startswith("layer "), built.stderr[:200]
        assert "\n\n" not in built.stderr
        last = built.stderr.splitlines()[-1]
        assert last.startswith("built in ") and last.endswith(f": pushed {ref}"), last
        assert json.loads(report.read_text())["published"].startswith(f"pushed {ref}@{digest}")
        assert list(work.iterdir()) == [], "the workspace was left behind"
        assert PASSWORD not in built.stderr

        # The image's SBOM rides along as an OCI referrer (subject + artifactType); this
        # registry has no referrers API, so it is listed in the tag-schema index.
        from envpack.manifest import load_manifest
        from envpack.pack.build import source_date_epoch
        from envpack.sbom import render_sbom

        epoch = {"SOURCE_DATE_EPOCH": str(source_date_epoch(env))}
        sbom = render_sbom(load_manifest(manifest), "cyclonedx", environ=epoch).data
        index = json.loads(_raw(f"{registry.host}/{repo}:{referrers_tag_of(digest)}"))
        [entry] = index["manifests"]
        assert entry["artifactType"] == "application/vnd.cyclonedx+json"
        assert f"SBOM attached as referrer {entry['digest']}" in built.stderr
        artifact = json.loads(_raw(f"{registry.host}/{repo}@{entry['digest']}"))
        assert artifact["subject"]["digest"] == digest
        [layer] = artifact["layers"]
        assert layer["mediaType"] == "application/vnd.cyclonedx+json"
        assert layer["digest"] == "sha256:" + hashlib.sha256(sbom).hexdigest()
        assert layer["size"] == len(sbom)

        inspected = subprocess.run(
            [tool("skopeo"), "inspect", "--tls-verify=false", "--creds", f"{USER}:{PASSWORD}",
             f"docker://{ref}"],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        assert json.loads(inspected)["Digest"] == digest

        pulled = docker_client.images.pull(
            f"{registry.host}/{repo}", tag="1", auth_config={"username": USER, "password": PASSWORD}
        )
        try:
            assert f"{registry.host}/{repo}@{digest}" in pulled.attrs["RepoDigests"]
            output = docker_client.containers.run(
                f"{registry.host}/{repo}:1",
                command=["-c", "import six, sys; print(six.__version__, sys.version_info[:2])"],
                network_mode="none",
                remove=True,
            )
            assert output.decode().strip() == "1.16.0 (3, 11)"
        finally:
            docker_client.images.remove(f"{registry.host}/{repo}:1", force=True)
