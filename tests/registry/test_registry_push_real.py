"""Pushes to a real Distribution registry (Debian's docker-registry), read back by Docker
Engine and skopeo, under htpasswd basic auth and behind a real bearer-token server."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from regserver import PASSWORD, USER, Registry, make_image, running_registry, tool

from envpack.errors import PackError
from envpack.oci.image import Image
from envpack.oci.layout import write_oci_layout
from envpack.registry import (
    Credentials,
    RegistryClient,
    RegistryRef,
    TransientError,
    push_image,
    push_referrer,
    referrers_tag,
)
from realenv import run_envpack

pytestmark = pytest.mark.slow
REPO = "registry-envpack/app"


@pytest.fixture(params=["htpasswd", "token"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    with running_registry(tmp_path / "registry", request.param) as running:
        yield running


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Image, Path]:
    image = make_image(tmp_path / "blobs", seed="layout")
    out = tmp_path / "image.oci"
    write_oci_layout(image, out, ref_name="1")
    return image, out


def _env(clean_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    # An empty Docker config and a private cache: nothing from the machine's own login.
    config = tmp_path / "docker-config"
    config.mkdir(exist_ok=True)
    return {**clean_env, "DOCKER_CONFIG": str(config), "XDG_CACHE_HOME": str(tmp_path / "cache")}


def _skopeo_raw(ref: str) -> bytes:
    """The manifest bytes skopeo reads at ``ref`` (with the test user's credentials)."""
    cmd = [tool("skopeo"), "inspect", "--tls-verify=false", "--raw"]
    cmd += ["--creds", f"{USER}:{PASSWORD}", f"docker://{ref}"]
    return subprocess.run(cmd, check=True, capture_output=True).stdout


def _skopeo_digest(ref: str) -> str:
    raw = _skopeo_raw(ref)
    inspected = subprocess.run(
        [tool("skopeo"), "inspect", "--tls-verify=false", "--creds", f"{USER}:{PASSWORD}",
         f"docker://{ref}"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    digest = json.loads(inspected)["Digest"]
    import hashlib

    assert digest == "sha256:" + hashlib.sha256(raw).hexdigest()
    return str(digest)


def _docker_pull_digest(docker_client: Any, host: str, repo: str, tag: str) -> str:
    image = docker_client.images.pull(
        f"{host}/{repo}", tag=tag, auth_config={"username": USER, "password": PASSWORD}
    )
    try:
        digests = [d for d in image.attrs["RepoDigests"] if d.startswith(f"{host}/{repo}@")]
        assert len(digests) == 1, image.attrs["RepoDigests"]
        return str(digests[0].split("@", 1)[1])
    finally:
        docker_client.images.remove(f"{host}/{repo}:{tag}", force=True)


def test_push_pulls_back_with_the_same_digest_and_a_second_push_uploads_nothing(
    registry: Registry,
    layout: tuple[Image, Path],
    tmp_path: Path,
    clean_env: dict[str, str],
    docker_client: Any,
) -> None:
    image, folder = layout
    env = _env(clean_env, tmp_path)
    ref = f"{registry.host}/{REPO}:1"
    done = run_envpack(
        "push", str(folder), ref, "--username", USER, "--password-stdin",
        input=PASSWORD + "\n", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"@{image.digest}: 4 blobs uploaded" in done.stderr
    assert PASSWORD not in done.stderr + done.stdout
    assert _skopeo_digest(ref) == str(image.digest)
    assert _docker_pull_digest(docker_client, registry.host, REPO, "1") == str(image.digest)

    uploads_before = registry.requests_logged("POST", f"/v2/{REPO}/blobs/uploads/")
    blob_puts_before = registry.requests_logged("PUT", f"/v2/{REPO}/blobs/uploads/")
    blob_heads_before = registry.answered("HEAD", f"/v2/{REPO}/blobs/sha256:")
    assert uploads_before == 4
    again = run_envpack(
        "push", str(folder), ref, "--username", USER, "--password-stdin",
        input=PASSWORD, env=env,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "unchanged (the tag names it already), 0 blobs uploaded, 4 already there" in (
        again.stderr
    )
    # The registry's own access log: no upload session opened, no blob sent, and each of
    # the 4 blobs found by one HEAD of this push (401s that only asked for a token aside).
    assert registry.requests_logged("POST", f"/v2/{REPO}/blobs/uploads/") == uploads_before
    assert registry.requests_logged("PUT", f"/v2/{REPO}/blobs/uploads/") == blob_puts_before
    assert registry.answered("HEAD", f"/v2/{REPO}/blobs/sha256:") == blob_heads_before + 4


def test_a_wrong_password_is_one_line_exit_2_and_never_printed(
    registry: Registry, layout: tuple[Image, Path], tmp_path: Path, clean_env: dict[str, str]
) -> None:
    wrong = "Wr0ng-pa55word-NOT-to-print"
    done = run_envpack(
        "push", str(layout[1]), f"{registry.host}/{REPO}:1", "--username", USER,
        "--password-stdin", input=wrong, env=_env(clean_env, tmp_path),
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("envpack: error: "), done.stderr
    assert "refused" in lines[0] and registry.host in lines[0]
    assert wrong not in done.stderr + done.stdout
    assert base64.b64encode(f"{USER}:{wrong}".encode()).decode() not in done.stderr
    assert "Traceback" not in done.stderr


def test_no_credentials_at_all_says_how_to_log_in(
    registry: Registry, layout: tuple[Image, Path], tmp_path: Path, clean_env: dict[str, str]
) -> None:
    done = run_envpack(
        "push", str(layout[1]), f"{registry.host}/{REPO}:1", env=_env(clean_env, tmp_path)
    )
    assert done.returncode == 2
    line = done.stderr.strip()
    assert "\n" not in line and line.startswith(f"envpack: error: {registry.host}: "), line
    # Basic auth asks at once; the token server refuses the anonymous token request.
    assert line.endswith(
        f"run `docker login {registry.host}` or give --username and --password-stdin"
    ), line
    if registry.auth == "token":
        assert registry.token_server is not None and registry.token_server.refused >= 1
    assert PASSWORD not in done.stderr + done.stdout


def test_an_anonymous_token_without_push_access_says_how_to_log_in(
    layout: tuple[Image, Path], tmp_path: Path, clean_env: dict[str, str]
) -> None:
    with running_registry(tmp_path / "registry", "token") as registry:
        assert registry.token_server is not None
        registry.token_server.anonymous = True
        done = run_envpack(
            "push", str(layout[1]), f"{registry.host}/{REPO}:1", env=_env(clean_env, tmp_path)
        )
        assert done.returncode == 2
        line = done.stderr.strip()
        assert "\n" not in line and line.startswith(f"envpack: error: {registry.host}: "), line
        assert "the registry refused an anonymous token" in line, line
        assert line.endswith(
            f"run `docker login {registry.host}` or give --username and --password-stdin"
        ), line
        # The token server refused nothing: the registry refused the tokens it issued.
        assert registry.token_server.refused == 0 and len(registry.token_server.issued) >= 2


def test_credentials_from_the_docker_config_file_and_a_credential_helper(
    registry: Registry, layout: tuple[Image, Path], tmp_path: Path, clean_env: dict[str, str]
) -> None:
    image, folder = layout
    env = _env(clean_env, tmp_path)
    config = Path(env["DOCKER_CONFIG"]) / "config.json"
    pair = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    config.write_text(json.dumps({"auths": {registry.host: {"auth": pair}}}))
    done = run_envpack("push", str(folder), f"{registry.host}/{REPO}:from-config", env=env)
    assert done.returncode == 0, done.stderr
    assert _skopeo_digest(f"{registry.host}/{REPO}:from-config") == str(image.digest)

    # A credential helper (`credHelpers`), run by the Docker SDK as docker would run it.
    helpers = tmp_path / "helpers"
    helpers.mkdir()
    helper = helpers / "docker-credential-envpacktest"
    answer = json.dumps({"ServerURL": registry.host, "Username": USER, "Secret": PASSWORD})
    helper.write_text(f"#!/bin/sh\nread server\ncat <<'EOF'\n{answer}\nEOF\n")
    helper.chmod(0o755)
    config.write_text(json.dumps({"credHelpers": {registry.host: "envpacktest"}}))
    env["PATH"] = f"{helpers}:{env['PATH']}"
    done = run_envpack("push", str(folder), f"{registry.host}/{REPO}:from-helper", env=env)
    assert done.returncode == 0, done.stderr
    assert PASSWORD not in done.stderr
    assert _skopeo_digest(f"{registry.host}/{REPO}:from-helper") == str(image.digest)


def test_a_second_repository_mounts_the_blobs_instead_of_uploading(
    registry: Registry, tmp_path: Path
) -> None:
    image = make_image(tmp_path / "blobs", seed="mount")
    ref = RegistryRef.parse(f"{registry.host}/{REPO}:1")
    client = RegistryClient.for_ref(ref, credentials=Credentials(USER, PASSWORD))
    sources = tmp_path / "sources"
    first = push_image(client, REPO, "1", image, sources_folder=sources)
    assert (first.uploaded, first.mounted) == (4, 0)
    second = push_image(client, "registry-envpack/other", "1", image, sources_folder=sources)
    assert (second.uploaded, second.mounted, second.existed) == (0, 4, 0)
    mounts = [
        line
        for line in registry.log_text().splitlines()
        if '"POST /v2/registry-envpack/other/blobs/uploads/?' in line and "mount=" in line
    ]
    # 201 Created: mounted. (Behind the token server a first try may get 401: the token
    # is fetched again to cover the source repository.)
    assert sum('" 201 ' in line for line in mounts) == 4, mounts
    assert all('" 201 ' in line or '" 401 ' in line for line in mounts), mounts
    assert _skopeo_digest(f"{registry.host}/registry-envpack/other:1") == str(image.digest)


def test_chunked_upload_and_a_token_refreshed_in_the_middle_of_it(tmp_path: Path) -> None:
    with running_registry(tmp_path / "registry", "token") as registry:
        assert registry.token_server is not None
        registry.token_server.lifetime = 4.0  # seconds past which the registry refuses it
        image = make_image(tmp_path / "blobs", seed="chunks", sizes=(300_000,))
        ref = RegistryRef.parse(f"{registry.host}/{REPO}:chunked")
        client = RegistryClient.for_ref(ref, credentials=Credentials(USER, PASSWORD))
        import time

        slept: list[int] = []

        def progress(done: int, total: int) -> None:
            # Once, after the first chunk of the big layer: outlive the token mid-upload.
            if not slept and done >= 64 * 1024:
                slept.append(done)
                time.sleep(6.0)

        result = push_image(client, REPO, "chunked", image, chunk_size=64 * 1024, progress=progress)
        assert result.digest == image.digest
        assert client.calls["PATCH blob-chunk"] >= 5  # 300 kB in 64 KiB chunks, and more
        assert len(registry.token_server.issued) >= 2, "no new token after the 401"
        assert registry.requests_logged("PATCH", f"/v2/{REPO}/blobs/uploads/") >= 5
        refused = [
            line
            for line in registry.log_text().splitlines()
            if '"PATCH ' in line and '" 401 ' in line
        ]
        assert refused, "the registry never refused the expired token mid-upload"
        assert _skopeo_digest(f"{registry.host}/{REPO}:chunked") == str(image.digest)


def test_registry_killed_mid_push_is_a_clean_error_and_a_rerun_completes(
    tmp_path: Path,
) -> None:
    with running_registry(tmp_path / "registry", "htpasswd") as registry:
        image = make_image(tmp_path / "blobs", seed="kill", sizes=(6_000_000, 6_000_000, 40_000))
        ref = RegistryRef.parse(f"{registry.host}/{REPO}:killed")

        def kill_once(done: int, total: int) -> None:
            if done > 2_000_000 and registry.process is not None:
                registry.kill()

        client = RegistryClient.for_ref(
            ref, credentials=Credentials(USER, PASSWORD), retries=2, backoff=0.05
        )
        with pytest.raises(TransientError) as caught:
            push_image(client, REPO, "killed", image, progress=kill_once)
        message = str(caught.value)
        assert "\n" not in message and registry.host in message, message
        assert PASSWORD not in message
        assert isinstance(caught.value, PackError)  # the CLI's one line, exit 2

        registry.start()  # same storage, same port
        client = RegistryClient.for_ref(ref, credentials=Credentials(USER, PASSWORD))
        result = push_image(client, REPO, "killed", image)
        assert result.digest == image.digest
        assert result.uploaded + result.existed == len(image.layers) + 1  # and the config
        assert _skopeo_digest(f"{registry.host}/{REPO}:killed") == str(image.digest)


def test_an_unreachable_registry_is_one_line_after_retries(
    layout: tuple[Image, Path], tmp_path: Path, clean_env: dict[str, str]
) -> None:
    import time

    from regserver import free_port

    port = free_port()  # nothing listens there
    # The CLI's client keeps the defaults: each refused attempt but the last sleeps
    # backoff * 2**attempt (plus up to a quarter of jitter) before the next one.
    defaults = RegistryClient("127.0.0.1", "http://127.0.0.1")
    backoff_sum = sum(defaults.backoff * 2**attempt for attempt in range(defaults.retries))
    assert backoff_sum >= 1.0  # a schedule short enough to pass unretried proves nothing
    started = time.monotonic()
    done = run_envpack(
        "push", str(layout[1]), f"127.0.0.1:{port}/{REPO}:1", env=_env(clean_env, tmp_path)
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"envpack: error: 127.0.0.1:{port}: connecting: connection refused"
    ), done.stderr
    # A refused connection fails at once: only the retries' sleeps make it take this long.
    assert elapsed >= backoff_sum, (elapsed, backoff_sum)


def test_a_referrer_is_attached_with_the_tag_schema_fallback(
    registry: Registry, tmp_path: Path
) -> None:
    image = make_image(tmp_path / "blobs", seed="referrer")
    ref = RegistryRef.parse(f"{registry.host}/{REPO}:1")
    client = RegistryClient.for_ref(ref, credentials=Credentials(USER, PASSWORD))
    push_image(client, REPO, "1", image)
    sbom = b'{"bomFormat": "CycloneDX", "specVersion": "1.5"}'
    first = push_referrer(
        client, REPO, image.manifest, "application/vnd.cyclonedx+json", sbom,
        "application/vnd.cyclonedx+json",
    )  # fmt: skip
    second = push_referrer(
        client, REPO, image.manifest, "application/spdx+json", b'{"spdxVersion": "SPDX-2.3"}',
        "application/spdx+json",
    )  # fmt: skip
    index = json.loads(_skopeo_raw(f"{registry.host}/{REPO}:{referrers_tag(image.digest)}"))
    entries = {(e["digest"], e["artifactType"]) for e in index["manifests"]}
    assert entries == {
        (str(first.digest), "application/vnd.cyclonedx+json"),
        (str(second.digest), "application/spdx+json"),
    }
    artifact = json.loads(_skopeo_raw(f"{registry.host}/{REPO}@{first.digest}"))
    assert artifact["subject"]["digest"] == str(image.digest)
    assert artifact["artifactType"] == "application/vnd.cyclonedx+json"
    # Pushed again: the index is not given the same entry twice. Read back as a list, in
    # order: a set would hide a duplicate.
    again = push_referrer(
        client, REPO, image.manifest, "application/vnd.cyclonedx+json", sbom,
        "application/vnd.cyclonedx+json",
    )  # fmt: skip
    assert again.digest == first.digest
    index = json.loads(_skopeo_raw(f"{registry.host}/{REPO}:{referrers_tag(image.digest)}"))
    assert [(e["digest"], e["artifactType"]) for e in index["manifests"]] == [
        (str(first.digest), "application/vnd.cyclonedx+json"),
        (str(second.digest), "application/spdx+json"),
    ]


def test_captures_pushed_and_diffed_by_reference(
    registry: Registry, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    env = _env(clean_env, tmp_path)
    pair = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (Path(env["DOCKER_CONFIG"]) / "config.json").write_text(
        json.dumps({"auths": {registry.host: {"auth": pair}}})
    )
    refs = []
    for label, extra in (("web-1", "a"), ("web-2", "b")):
        ref = f"{registry.host}/registry-envpack/fleet:{label}"
        done = run_envpack(
            "capture", "--only", "env", "--label", label, "--push", ref,
            env={**env, "ENVPACK_REGISTRY_TEST_VAR": extra},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout == ""  # pushed, not printed
        assert f"pushed {ref}@sha256:" in done.stderr
        refs.append(f"registry:{ref}")
    done = run_envpack("diff", *refs, "--format", "json", env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    text = json.dumps(report)
    assert "ENVPACK_REGISTRY_TEST_VAR" in text and "web-1" in text and "web-2" in text

    missing = run_envpack("diff", refs[0], f"registry:{registry.host}/registry-envpack/fleet:nope",
                          env=env)  # fmt: skip
    assert missing.returncode == 2
    assert missing.stderr.strip().count("\n") == 0
    assert "no such tag" in missing.stderr


def test_an_image_is_not_read_as_a_manifest(
    registry: Registry, layout: tuple[Image, Path], tmp_path: Path, clean_env: dict[str, str]
) -> None:
    env = _env(clean_env, tmp_path)
    ref = f"{registry.host}/{REPO}:image"
    pushed = run_envpack(
        "push", str(layout[1]), ref, "--username", USER, "--password-stdin",
        input=PASSWORD, env=env,
    )  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr
    pair = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (Path(env["DOCKER_CONFIG"]) / "config.json").write_text(
        json.dumps({"auths": {registry.host: {"auth": pair}}})
    )
    done = run_envpack("diff", f"registry:{ref}", f"registry:{ref}", env=env)
    assert done.returncode == 2
    assert "not an envpack manifest artifact" in done.stderr
    assert done.stderr.strip().count("\n") == 0


def test_a_damaged_layout_is_refused_by_size_or_by_the_registry(
    registry: Registry, layout: tuple[Image, Path], tmp_path: Path, clean_env: dict[str, str]
) -> None:
    image, folder = layout
    env = _env(clean_env, tmp_path)
    blob = folder / "blobs" / "sha256" / image.layers[0].digest.hex
    data = blob.read_bytes()
    blob.chmod(0o644)
    blob.unlink()  # a hardlink into the build's blob folder: replace, never write through
    blob.write_bytes(data[:-1])
    ref = f"{registry.host}/{REPO}:damaged"
    args = ("push", str(folder), ref, "--username", USER, "--password-stdin")
    short = run_envpack(*args, input=PASSWORD, env=env)
    assert short.returncode == 2
    assert short.stderr.strip().endswith(f"{len(data) - 1} bytes, its descriptor says {len(data)}")
    # Same size, other bytes: only the registry, which hashes what it receives, can tell.
    blob.unlink()
    blob.write_bytes(bytes([data[0] ^ 1]) + data[1:])
    flipped = run_envpack(*args, input=PASSWORD, env=env)
    assert flipped.returncode == 2
    line = flipped.stderr.strip()
    assert "\n" not in line and "DIGEST_INVALID" in line, line
    assert registry.requests_logged("PUT", f"/v2/{REPO}/manifests/damaged") == 0
