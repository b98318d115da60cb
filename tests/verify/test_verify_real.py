"""`envpack verify` against real things: a real venv from the package index, captured and
built with the real CLI, its interpreter run inside the image (bubblewrap over the rootfs,
a real Docker Engine); then the image tampered with by real tools (pip inside the image,
a changed config file, a changed library) and verified again: the exact drift, exit 1.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from verify_envs import (
    LIBM,
    VerifyEnv,
    bwrap_or_skip,
    changes_of,
    copy_tree,
    envpack_env,
    make_verify_env,
    older_blinker,
    tamper_rootfs,
    tampered_drift,
    verify_cli,
)

from realenv import run_envpack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def venv_env(real_env_base: Path) -> VerifyEnv:
    made = make_verify_env(real_env_base)  # made once per session, shared with the others
    if isinstance(made, str):
        pytest.skip(f"cannot make the verify environment: {made}")
    return made


def test_a_fresh_rootfs_build_verifies_with_no_drift(venv_env: VerifyEnv) -> None:
    bwrap_or_skip()
    report = str(venv_env.report)
    done = verify_cli(str(venv_env.rootfs), str(venv_env.manifest), "--report", report)
    assert done.returncode == 0, done.stderr
    assert changes_of(done.stdout) == []
    # The interpreter really ran inside the rootfs, and the omissions are said.
    assert "interpreter under bwrap; no drift" in done.stderr
    assert "config_files: written by the build's base" in done.stderr
    assert "libraries:" in done.stderr


def test_a_tampered_rootfs_gives_the_exact_drift(venv_env: VerifyEnv, tmp_path: Path) -> None:
    tampered = copy_tree(venv_env.rootfs, tmp_path / "tampered.rootfs")
    tamper_rootfs(tampered, venv_env, tmp_path / "wheels")
    done = verify_cli(str(tampered), str(venv_env.manifest), "--report", str(venv_env.report))
    assert done.returncode == 1, done.stderr
    assert changes_of(done.stdout) == tampered_drift(venv_env)
    # The same drift with the default table report, and --fail-on lets minor drift pass.
    done = run_envpack(
        "verify", str(tampered), str(venv_env.manifest), "--fail-on", "critical", "-q",
        env=envpack_env(), timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    was = json.loads(venv_env.manifest.read_text())["python_packages"]["blinker"]["version"]
    assert "python_packages/pyyaml" in done.stdout and f"{was} → 1.8.2" in done.stdout


def test_an_interpreter_that_cannot_run_in_the_image_is_drift(
    venv_env: VerifyEnv, tmp_path: Path
) -> None:
    tampered = copy_tree(venv_env.rootfs, tmp_path / "broken.rootfs")
    # The loader the interpreter names in its ELF header is gone: exec fails inside.
    (tampered / "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2").unlink()
    done = verify_cli(str(tampered), str(venv_env.manifest))
    assert done.returncode == 1, done.stderr
    rows = changes_of(done.stdout)
    assert ("interpreters", str(venv_env.python), None, "removed") in rows
    assert "does not run inside the image" in done.stderr
    assert "interpreter failed to run in the image" in done.stderr


def test_verify_refuses_bad_input_with_one_line(venv_env: VerifyEnv, tmp_path: Path) -> None:
    cases = [
        (str(tmp_path / "missing"), str(venv_env.manifest)),
        (str(venv_env.rootfs), str(tmp_path / "missing.json")),
    ]
    bad_report = tmp_path / "report.json"
    bad_report.write_text("[1, 2")
    for image, manifest in cases:
        done = run_envpack("verify", image, manifest, env=envpack_env())
        assert done.returncode == 2, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr
    done = run_envpack(
        "verify", str(venv_env.rootfs), str(venv_env.manifest), "--report", str(bad_report),
        env=envpack_env(),
    )  # fmt: skip
    assert done.returncode == 2 and "not a build report" in done.stderr, done.stderr
    done = run_envpack(
        "verify", str(venv_env.rootfs), str(venv_env.manifest), "--runner", "runc",
        env=envpack_env(),
    )  # fmt: skip
    assert done.returncode == 2 and "--runner" in done.stderr, done.stderr


# -- the probe inside a real Docker Engine ------------------------------------------------------


@pytest.fixture(scope="module")
def loaded_image(venv_env: VerifyEnv, docker_client: Any) -> Any:
    """The environment built as an archive and loaded into the engine (removed after)."""
    tag = f"verify-test-{os.getpid()}:fresh"
    archive = venv_env.folder / "image.tar"
    done = run_envpack(
        "build", "-q", str(venv_env.manifest), "--format", "tar", "-o", str(archive),
        "--force", "--tag", tag, "--load", env=envpack_env(), timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    image = docker_client.images.get(tag)
    yield image, archive
    docker_client.images.remove(image.id, force=True)


def test_the_probe_runs_inside_a_docker_image_as_on_the_host(
    venv_env: VerifyEnv, loaded_image: Any, docker_client: Any
) -> None:
    from envpack.verify.inimage import probe_in_docker

    image, _ = loaded_image
    answer = probe_in_docker(docker_client, image.id, str(venv_env.python), timeout=300)
    host = json.loads(venv_env.manifest.read_text())["interpreters"][str(venv_env.python)]
    for name in ("executable", "version", "prefix", "base_prefix", "sys_path", "site_packages"):
        assert answer[name] == host[name], name
    assert answer["source"] == "probe"
    # Nothing of the probe's container is left behind.
    left = docker_client.containers.list(all=True, filters={"label": "io.envpack.verify"})
    assert left == []


def test_an_image_not_in_the_engine_is_loaded_for_the_probe_and_removed(
    venv_env: VerifyEnv, loaded_image: Any, docker_client: Any
) -> None:
    from envpack.verify.inimage import probe_in_docker
    from envpack.verify.loadable import LoadArchive

    image, archive = loaded_image
    docker_client.images.remove(image.id, force=True)
    try:
        answer = probe_in_docker(
            docker_client,
            image.id,
            str(venv_env.python),
            timeout=300,
            loader=lambda: LoadArchive(archive, image.id),
        )
        assert answer["executable"] == str(venv_env.python)
        with pytest.raises(Exception, match="No such image"):
            docker_client.images.get(image.id)
    finally:
        with archive.open("rb") as stream:  # put it back for the other tests
            list(docker_client.api.load_image(stream))


def test_a_missing_interpreter_in_docker_is_a_probe_failure(
    loaded_image: Any, docker_client: Any
) -> None:
    from envpack.snapshot.interpreters import ProbeFailed
    from envpack.verify.inimage import probe_in_docker

    image, _ = loaded_image
    with pytest.raises(ProbeFailed, match="cannot run in the image"):
        probe_in_docker(docker_client, image.id, "/no/such/python", timeout=300)
    assert docker_client.containers.list(all=True, filters={"label": "io.envpack.verify"}) == []


# -- images: a Docker Engine's, an OCI layout; tampered with `docker build` ---------------------


def _build_tampered(client: Any, base: str, venv_env: VerifyEnv, folder: Path, tag: str) -> None:
    """``docker build`` FROM the fresh image: pip downgrades and removes a package, the app's
    config file and a library are replaced (the image has no shell: exec-form RUNs)."""
    wheel = older_blinker(folder, venv_env.python)
    shutil.copy(venv_env.config, folder / "app.ini")
    (folder / "app.ini").write_text((folder / "app.ini").read_text().replace("= 4", "= 8"))
    libm = (venv_env.rootfs / LIBM.lstrip("/")).read_bytes()
    (folder / "libm.so.6").write_bytes(libm + b"\0" * 64)
    python = str(venv_env.python)

    def pip(*args: str) -> str:
        # No pip config: the packed one names a constraints file no image holds.
        code = (
            "import os, runpy, sys; os.environ['PIP_CONFIG_FILE'] = os.devnull; "
            f"sys.argv = ['pip', *{list(args)!r}]; runpy.run_module('pip', run_name='__main__')"
        )
        return json.dumps([python, "-c", code])

    (folder / "Dockerfile").write_text(
        f"FROM {base}\n"
        f"COPY {wheel.name} /tmp/wheels/\n"
        f"RUN {pip('install', '-q', '--no-deps', '--no-index', f'/tmp/wheels/{wheel.name}')}\n"
        f"RUN {pip('uninstall', '-q', '-y', 'pyyaml')}\n"
        f"COPY app.ini {venv_env.config}\n"
        f"COPY libm.so.6 {LIBM}\n"
    )
    client.images.build(path=str(folder), tag=tag, network_mode="none", rm=True, forcerm=True)


@pytest.mark.parametrize("transport", ["docker-daemon", "docker-archive", "oci-archive"])
def test_a_fresh_image_verifies_with_no_drift(
    venv_env: VerifyEnv, loaded_image: Any, transport: str
) -> None:
    """The engine's image, and the build's one archive read as a `docker save` tar and as
    an OCI archive (it is both)."""
    image, archive = loaded_image
    where = image.tags[0] if transport == "docker-daemon" else str(archive)
    done = verify_cli(f"{transport}:{where}", str(venv_env.manifest))
    assert done.returncode == 0, done.stderr
    assert changes_of(done.stdout) == []
    assert "interpreter in Docker; no drift" in done.stderr
    assert "built from another manifest" not in done.stderr


def test_an_image_built_from_another_manifest_is_said(venv_env: VerifyEnv, tmp_path: Path) -> None:
    other = tmp_path / "relabelled.json"
    document = json.loads(venv_env.manifest.read_text())
    document["meta"]["label"] = "relabelled"
    other.write_text(json.dumps(document))
    done = verify_cli(str(venv_env.rootfs), str(other))
    assert done.returncode == 0, done.stderr  # the same environment: no drift
    assert f"built from another manifest than {other}" in done.stderr


def test_an_image_changed_by_docker_build_gives_the_exact_drift(
    venv_env: VerifyEnv, loaded_image: Any, docker_client: Any, tmp_path: Path
) -> None:
    image, _ = loaded_image
    tag = f"verify-test-{os.getpid()}:tampered"
    _build_tampered(docker_client, image.tags[0], venv_env, tmp_path, tag)
    try:
        done = verify_cli(f"docker-daemon:{tag}", str(venv_env.manifest))
    finally:
        docker_client.images.remove(tag, force=True)
    assert done.returncode == 1, done.stderr
    assert changes_of(done.stdout) == tampered_drift(venv_env)
    assert "interpreter in Docker" in done.stderr


def test_an_oci_layout_the_engine_lacks_is_loaded_for_the_probe_then_removed(
    venv_env: VerifyEnv, docker_client: Any, tmp_path: Path
) -> None:
    layout = tmp_path / "image.oci"
    env = envpack_env()
    env["SOURCE_DATE_EPOCH"] = "1600000000"  # another config digest: not in the engine
    done = run_envpack(
        "build", "-q", str(venv_env.manifest), "-o", str(layout), env=env, timeout=900
    )
    assert done.returncode == 0, done.stderr
    image_id = _image_id_of_layout(layout)
    # The engine may be shared with other work; only this image's own ID is ours to check.
    assert image_id not in _engine_image_ids(docker_client)
    done = verify_cli(f"oci:{layout}", str(venv_env.manifest))
    assert done.returncode == 0, done.stderr
    assert changes_of(done.stdout) == []
    assert "interpreter in Docker; no drift" in done.stderr
    assert image_id not in _engine_image_ids(docker_client)


def _image_id_of_layout(layout: Path) -> str:
    """The ID an engine gives the layout's image: the digest of its config blob."""

    def blob(digest: str) -> Any:
        algorithm, hexdigest = digest.split(":", 1)
        return json.loads((layout / "blobs" / algorithm / hexdigest).read_text())

    index = json.loads((layout / "index.json").read_text())
    config_digest = blob(index["manifests"][0]["digest"])["config"]["digest"]
    assert isinstance(config_digest, str)
    return config_digest


def _engine_image_ids(docker_client: Any) -> set[str]:
    return {image.id for image in docker_client.images.list(all=True)}


def test_host_against_image_diff_has_no_false_drift_from_source_kinds(
    venv_env: VerifyEnv, loaded_image: Any, tmp_path: Path
) -> None:
    """Item 4: the real host capture against the real image's capture."""
    image, _ = loaded_image
    image_json = tmp_path / "image.json"
    done = run_envpack(
        "capture", "-q", "--image", f"docker-daemon:{image.tags[0]}",
        "--python", str(venv_env.python), "--config", str(venv_env.config),
        "-o", str(image_json), env=envpack_env(), timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    done = run_envpack(
        "diff", str(venv_env.manifest), str(image_json), "--format", "json",
        env=envpack_env(), timeout=600,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    data = json.loads(done.stdout)
    rows = [(c["section"], c["key"], c["field"]) for d in data["drifts"] for c in d["changes"]]
    false = [
        row
        for row in rows
        if row[0:2] == ("os", "kernel")
        or (row[0] == "interpreters" and row[2] in ("source", "markers.platform_release",
                                                    "markers.platform_version"))
        or (row[0] == "config_files" and (row[2] or "").startswith("owner_name"))
        or (row[0] == "config_files" and row[1] in ("/etc/hosts", "/etc/resolv.conf"))
        or (row[0] == "env" and row[1] in ("PWD", "SHLVL", "OLDPWD", "_"))
    ]  # fmt: skip
    assert false == []
    # What the two sides really share is equal: the interpreter, the packages, the config.
    assert not [r for r in rows if r[0] in ("interpreters", "python_packages")]
    assert not [r for r in rows if r[0] == "config_files" and r[1] == str(venv_env.config)]
    # The network cannot apply to an image: one info row, never its entries.
    network = [c for d in data["drifts"] for c in d["changes"] if "network" in (c["field"] or "")]
    assert [(c["section"], c["severity"]) for c in network] == [("meta", "info")]
    assert any("not compared between" in note for note in data["notes"])
