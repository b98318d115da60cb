"""Pushing again to a real Distribution registry (Debian's docker-registry): what an
unchanged image costs, what a moved tag or a lost blob gets, when credentials are read,
and how many connections a push opens. Counts come from the registry's own access log."""

from __future__ import annotations

import base64
import json
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from regserver import PASSWORD, USER, Registry, make_image, running_registry, tool

from envpack.oci.image import Image
from envpack.oci.layout import write_oci_layout
from envpack.registry import Credentials, RegistryClient, RegistryRef, push_image, push_layout
from realenv import run_envpack

pytestmark = pytest.mark.slow
REPO = "registry-envpack/again"


@pytest.fixture(params=["htpasswd", "token"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    with running_registry(tmp_path / "registry", request.param) as running:
        yield running


def _env(clean_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "docker-config"
    config.mkdir(exist_ok=True)
    return {**clean_env, "DOCKER_CONFIG": str(config), "XDG_CACHE_HOME": str(tmp_path / "cache")}


def _layout(tmp_path: Path, seed: str) -> tuple[Image, Path]:
    image = make_image(tmp_path / f"blobs-{seed}", seed=seed)
    out = tmp_path / f"{seed}.oci"
    write_oci_layout(image, out, ref_name="1")
    return image, out


def _skopeo_digest(ref: str) -> str:
    inspected = subprocess.run(
        [tool("skopeo"), "inspect", "--tls-verify=false", "--creds", f"{USER}:{PASSWORD}",
         f"docker://{ref}"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return str(json.loads(inspected)["Digest"])


def _push(folder: Path, ref: str, env: dict[str, str]) -> str:
    done = run_envpack(
        "push", str(folder), ref, "--username", USER, "--password-stdin",
        input=PASSWORD, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert PASSWORD not in done.stderr + done.stdout
    return done.stderr


def test_a_second_push_is_one_manifest_request_and_no_upload(
    registry: Registry, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    image, folder = _layout(tmp_path, "same")
    env = _env(clean_env, tmp_path)
    ref = f"{registry.host}/{REPO}:1"
    _push(folder, ref, env)
    manifests = registry.answered("*", f"/v2/{REPO}/manifests/")  # any method
    uploads = registry.requests_logged("POST", f"/v2/{REPO}/blobs/uploads/")
    blob_heads = registry.answered("HEAD", f"/v2/{REPO}/blobs/sha256:")
    assert uploads == 4 and registry.answered("PUT", f"/v2/{REPO}/manifests/1") == 1

    again = _push(folder, ref, env)
    assert again.startswith(f"pushed {ref}@{image.digest}: unchanged"), again  # one line
    assert "0 blobs uploaded, 4 already there" in again
    # Exactly one manifest request (the HEAD that found our digest under the tag), no PUT,
    # no upload session; each blob checked once by a HEAD (one may have been lost since).
    assert registry.answered("*", f"/v2/{REPO}/manifests/") == manifests + 1
    assert registry.answered("HEAD", f"/v2/{REPO}/manifests/1") == 2  # the first push's too
    assert registry.answered("PUT", f"/v2/{REPO}/manifests/1") == 1
    assert registry.requests_logged("POST", f"/v2/{REPO}/blobs/uploads/") == uploads
    assert registry.answered("HEAD", f"/v2/{REPO}/blobs/sha256:") == blob_heads + 4
    assert _skopeo_digest(ref) == str(image.digest)


def test_a_tag_that_names_another_image_is_moved(
    registry: Registry, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    first, first_folder = _layout(tmp_path, "first")
    second, second_folder = _layout(tmp_path, "second")
    env = _env(clean_env, tmp_path)
    ref = f"{registry.host}/{REPO}:moving"
    _push(first_folder, ref, env)
    assert _skopeo_digest(ref) == str(first.digest)
    out = _push(second_folder, ref, env)
    assert f"pushed {ref}@{second.digest}: 4 blobs uploaded" in out, out
    assert _skopeo_digest(ref) == str(second.digest)
    # Back to the first image: every blob is there, but the tag must move again.
    out = _push(first_folder, ref, env)
    assert f"pushed {ref}@{first.digest}: 0 blobs uploaded (0.0 MB), 4 already there" in out
    assert registry.answered("PUT", f"/v2/{REPO}/manifests/moving") == 3
    assert _skopeo_digest(ref) == str(first.digest)


def test_a_blob_lost_behind_an_existing_manifest_is_uploaded_again(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    with running_registry(tmp_path / "registry", "htpasswd", delete=True) as registry:
        image, folder = _layout(tmp_path, "lost")
        env = _env(clean_env, tmp_path)
        ref = f"{registry.host}/{REPO}:1"
        _push(folder, ref, env)
        lost = image.layers[0].digest
        pair = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        blob_url = f"http://{registry.host}/v2/{REPO}/blobs/{lost}"
        deleted = urllib.request.urlopen(
            urllib.request.Request(
                blob_url, method="DELETE", headers={"Authorization": f"Basic {pair}"}
            )
        )
        assert deleted.status == 202
        # The tag still names the manifest, whose layer the repository no longer holds.
        assert _skopeo_digest(ref) == str(image.digest)

        again = _push(folder, ref, env)
        assert f"pushed {ref}@{image.digest}: 1 blobs uploaded" in again, again
        assert "3 already there" in again
        head = urllib.request.urlopen(
            urllib.request.Request(
                blob_url, method="HEAD", headers={"Authorization": f"Basic {pair}"}
            )
        )
        assert head.status == 200
        # And the image is whole again: skopeo copies every blob of it out.
        out = tmp_path / "copied"
        subprocess.run(
            [tool("skopeo"), "copy", "-q", "--src-tls-verify=false", "--src-creds",
             f"{USER}:{PASSWORD}", f"docker://{ref}", f"oci:{out}:1"],
            check=True, capture_output=True,
        )  # fmt: skip
        assert (out / "blobs" / "sha256" / lost.hex).stat().st_size == image.layers[0].size


def _recording_helper(tmp_path: Path) -> tuple[Path, str]:
    """A Docker credential helper that leaves a mark each time it is run."""
    helpers = tmp_path / "helpers"
    helpers.mkdir(exist_ok=True)
    mark = tmp_path / "helper-ran"
    helper = helpers / "docker-credential-envpackmark"
    answer = json.dumps({"Username": USER, "Secret": PASSWORD})
    helper.write_text(f"#!/bin/sh\nread server\necho ran >> '{mark}'\ncat <<'EOF'\n{answer}\nEOF\n")
    helper.chmod(0o755)
    return mark, str(helpers)


def test_credentials_are_read_only_when_the_registry_asks(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    image, folder = _layout(tmp_path, "creds")
    with (
        running_registry(tmp_path / "open", "none") as open_registry,
        running_registry(tmp_path / "closed", "htpasswd") as closed_registry,
    ):
        env = _env(clean_env, tmp_path)
        mark, helpers = _recording_helper(tmp_path)
        env["PATH"] = f"{helpers}:{env['PATH']}"
        config = Path(env["DOCKER_CONFIG"]) / "config.json"
        config.write_text(json.dumps({"credsStore": "envpackmark"}))

        done = run_envpack("push", str(folder), f"{open_registry.host}/{REPO}:1", env=env)
        assert done.returncode == 0, done.stderr
        assert not mark.exists(), "the credential helper ran for a registry that never asked"

        # The same config where the registry does ask: the helper runs, the push succeeds.
        done = run_envpack("push", str(folder), f"{closed_registry.host}/{REPO}:1", env=env)
        assert done.returncode == 0, done.stderr
        assert mark.exists()
        assert _skopeo_digest(f"{closed_registry.host}/{REPO}:1") == str(image.digest)


def test_a_push_reuses_a_few_keep_alive_connections(tmp_path: Path) -> None:
    with running_registry(tmp_path / "registry", "htpasswd") as registry:
        image = make_image(
            tmp_path / "blobs", seed="conns", sizes=tuple(30_000 + n for n in range(12))
        )
        folder = tmp_path / "conns.oci"
        write_oci_layout(image, folder, ref_name="1")
        ref = RegistryRef.parse(f"{registry.host}/{REPO}:conns")
        client = RegistryClient.for_ref(ref, credentials=Credentials(USER, PASSWORD))
        before = registry.client_ports()
        result = push_layout(client, REPO, "conns", folder)
        assert result.uploaded == 14  # 13 layers and the config
        requests_sent = sum(client.calls.values())
        assert requests_sent >= 14 * 3  # HEAD, POST, PUT per blob, and more
        ports = registry.client_ports() - before
        # Four upload threads and the first request's thread, each on one connection.
        assert 1 <= len(ports) <= 5, (len(ports), requests_sent)
        assert _skopeo_digest(f"{registry.host}/{REPO}:conns") == str(image.digest)


def test_the_library_call_skips_an_unchanged_image_too(registry: Registry, tmp_path: Path) -> None:
    image = make_image(tmp_path / "blobs", seed="library")
    ref = RegistryRef.parse(f"{registry.host}/{REPO}:lib")
    client = RegistryClient.for_ref(ref, credentials=Credentials(USER, PASSWORD))
    first = push_image(client, REPO, "lib", image)
    assert (first.uploaded, first.unchanged) == (4, False)
    second = push_image(client, REPO, "lib", image)
    assert (second.uploaded, second.existed, second.unchanged) == (0, 4, True)
    assert client.calls["PUT manifest"] == 1  # the first push's only
    assert client.calls["PUT blob-data"] == 4


def test_an_identity_token_is_exchanged_for_a_registry_token(tmp_path: Path) -> None:
    """`docker login` with OAuth stores an identity token: POSTed to the token realm as a
    refresh token (Docker's oauth.md), never sent to the registry itself."""
    from regserver import REFRESH_TOKEN, Recorder

    from envpack.registry import AuthError

    with running_registry(tmp_path / "registry", "token") as registry:
        assert registry.token_server is not None
        recorder = Recorder(registry.host)  # every request to the registry, headers and all
        try:
            image = make_image(tmp_path / "blobs", seed="identity")
            ref = RegistryRef.parse(f"{recorder.host}/{REPO}:oauth")
            client = RegistryClient.for_ref(
                ref, credentials=Credentials(identity_token=REFRESH_TOKEN)
            )
            result = push_image(client, REPO, "oauth", image)
        finally:
            recorder.close()
        assert result.digest == image.digest
        assert registry.token_server.posts >= 1 and client.calls["POST token"] >= 1
        assert client.calls["GET token"] == 0
        assert _skopeo_digest(f"{registry.host}/{REPO}:oauth") == str(image.digest)
        # The whole push went through the recorder, with the tokens the realm issued...
        sent = recorder.requests
        assert any(r.method == "PUT" and r.path == f"/v2/{REPO}/manifests/oauth" for r in sent)
        bearers = {v for r in sent for k, v in r.headers if k.lower() == "authorization"}
        assert bearers and bearers <= {f"Bearer {t}" for t in registry.token_server.issued}
        # ...and the refresh token in no request line, header or body the registry got.
        for request in sent:
            assert REFRESH_TOKEN not in request.path, request.method
            assert not any(REFRESH_TOKEN in k + v for k, v in request.headers), request.path
            assert REFRESH_TOKEN.encode() not in request.body, request.path
        assert REFRESH_TOKEN not in registry.log_text()

        direct = RegistryRef.parse(f"{registry.host}/{REPO}:oauth")
        wrong = RegistryClient.for_ref(direct, credentials=Credentials(identity_token="expired"))
        with pytest.raises(AuthError) as caught:
            push_image(wrong, REPO, "oauth", image)
        assert "refused" in str(caught.value) and "expired" not in str(caught.value)


def test_a_referrer_already_attached_is_not_put_again(registry: Registry, tmp_path: Path) -> None:
    from envpack.oci import media
    from envpack.oci.model import Index
    from envpack.registry import push_referrer, referrers_tag
    from envpack.registry.push import put_manifest

    image = make_image(tmp_path / "blobs", seed="sbom-again")
    ref = RegistryRef.parse(f"{registry.host}/{REPO}:sbom")
    client = RegistryClient.for_ref(ref, credentials=Credentials(USER, PASSWORD))
    push_image(client, REPO, "sbom", image)
    sbom = b'{"bomFormat": "CycloneDX", "specVersion": "1.6"}'
    kind = "application/vnd.cyclonedx+json"
    first = push_referrer(client, REPO, image.manifest, kind, sbom, kind)
    puts = registry.answered("PUT", f"/v2/{REPO}/")

    again = push_referrer(client, REPO, image.manifest, kind, sbom, kind)
    assert again == first
    assert registry.answered("PUT", f"/v2/{REPO}/") == puts  # no blob, manifest or index
    assert registry.answered("POST", f"/v2/{REPO}/blobs/uploads/") == 4 + 2  # the first's

    # The index lost its entry (someone replaced the tag): the next push lists it again.
    tag = referrers_tag(image.digest)
    put_manifest(client, REPO, tag, Index(()).to_bytes(), media.OCI_INDEX)
    third = push_referrer(client, REPO, image.manifest, kind, sbom, kind)
    assert third == first
    raw = subprocess.run(
        [tool("skopeo"), "inspect", "--tls-verify=false", "--raw", "--creds",
         f"{USER}:{PASSWORD}", f"docker://{registry.host}/{REPO}:{tag}"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    index = json.loads(raw)
    assert [entry["digest"] for entry in index["manifests"]] == [str(first.digest)]
