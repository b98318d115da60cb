"""`envpack build` end to end against real things.

Real CPython 3.11 and 2.7 virtualenvs with Flask and C extensions from the package index,
captured with the real CLI, built with the real CLI, then run offline in a real Docker
Engine (read-only root, ``docker diff`` empty), under bubblewrap and chroot from a rootfs, and read
by skopeo and umoci; a second build from another folder under umask 077 must give the
same digest, and an interrupted build must leave nothing behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from build_envs import (
    BuiltEnv,
    build,
    capture,
    report_of,
    run_check_in_docker,
    write_app,
)

from realenv import REPO, make_pypi_venv, pyenv_python, run_envpack

# Making the environments (pip from the index) and a cold build take minutes on a loaded
# 2-core machine: well past the suite's 300 s default.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

EPOCH = "1700000000"


def _env(cache: Path | None = None) -> dict[str, str]:
    """The builds' environment; ``cache``: their own cache folder (ENVPACK_CACHE_DIR)."""
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    env.setdefault("ENVPACK_REDACT_KEY", "envpack-test-key")
    env["SOURCE_DATE_EPOCH"] = EPOCH
    if cache is not None:
        env["ENVPACK_CACHE_DIR"] = str(cache)
    return env


def _make_env(base: Path, version: str) -> BuiltEnv:
    from build_envs import REQUIREMENTS

    python = pyenv_python(version)
    if python is None:
        pytest.skip(f"CPython {version} is not installed (pyenv versions)")
    folder = base / f"build-{version}"
    made = make_pypi_venv(python, folder / "venv", REQUIREMENTS[version])
    if isinstance(made, str):
        pytest.skip(f"cannot make the CPython {version} Flask environment: {made}")
    app = write_app(folder / "app")
    manifest = capture(made, folder / "manifest.json", _env())
    return BuiltEnv(version=version, python=made, manifest=manifest, app=app)


@pytest.fixture(scope="session")
def env311(real_env_base: Path) -> BuiltEnv:
    return _make_env(real_env_base, "3.11")


@pytest.fixture(scope="session")
def env27(real_env_base: Path) -> BuiltEnv:
    return _make_env(real_env_base, "2.7")


@pytest.fixture(params=["3.11", "2.7"])
def real_env(request: pytest.FixtureRequest) -> BuiltEnv:
    name = "env311" if request.param == "3.11" else "env27"
    env: BuiltEnv = request.getfixturevalue(name)
    return env


@pytest.fixture
def image_tag(docker_client: Any) -> Iterator[str]:
    """A tag no other session uses; the image is removed afterwards."""
    tag = f"envpack-test/build:{os.getpid()}-{time.monotonic_ns()}"
    yield tag
    import docker.errors

    with contextlib.suppress(docker.errors.ImageNotFound):
        docker_client.images.remove(tag, force=True)


def _ok(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, f"exit {done.returncode}\nstderr:\n{done.stderr}"


def _check_results(output: str) -> dict[str, Any]:
    last = output.strip().splitlines()[-1] if output.strip() else ""
    try:
        results: dict[str, Any] = json.loads(last)
    except ValueError:
        raise AssertionError(f"the check printed no result:\n{output}") from None
    failed = {k: v["error"] for k, v in results.items() if not v["ok"]}
    assert not failed, "\n".join(f"{k}:\n{v}" for k, v in failed.items())
    assert set(results) == {"imports", "http", "ssl", "getaddrinfo", "threads", "find_library"}
    return results


def test_image_runs_offline_read_only_in_docker(
    real_env: BuiltEnv, docker_client: Any, image_tag: str, tmp_path: Path
) -> None:
    out = tmp_path / "image.tar"
    report = tmp_path / "report.json"
    done = build(
        real_env.manifest, "--format", "tar", "-o", str(out), "--app", real_env.app_option(),
        "--tag", image_tag, "--load", "--report", str(report), env=_env(),
    )  # fmt: skip
    _ok(done)
    data = report_of(report)
    assert data["loaded_image_id"]
    image = docker_client.images.get(image_tag)
    assert image.id == data["loaded_image_id"]
    config = image.attrs["Config"]
    manifest_bytes = real_env.manifest.read_bytes()
    assert config["Labels"]["io.envpack.manifest.digest"] == (
        "sha256:" + hashlib.sha256(manifest_bytes).hexdigest()
    )
    assert config["Entrypoint"] == [str(real_env.python)]
    assert len(image.history()) == len(data["layers"]) <= 100

    # Read-only root, no network: every check passes.
    code, output, _ = run_check_in_docker(
        docker_client, image_tag, real_env.check_command(), read_only=True
    )
    assert code == 0, output
    results = _check_results(output)
    assert "hello" in results["http"]["value"]
    assert results["ssl"]["value"] > 0

    # Writable root: still nothing written (bytecode is valid, nothing is compiled).
    code, output, changes = run_check_in_docker(
        docker_client, image_tag, real_env.check_command(), read_only=False
    )
    assert code == 0, output
    assert changes == [], changes

    # The captured manifest travels inside, byte for byte.
    code, output, _ = run_check_in_docker(
        docker_client,
        image_tag,
        ["-c", "import sys; sys.stdout.write(open('/.envpack/manifest.json').read())"],
        read_only=True,
    )
    assert code == 0, output
    assert output.encode("utf-8") == manifest_bytes


@pytest.fixture(scope="session")
def _rootfs_builds() -> dict[str, tuple[Path, dict[str, Any]]]:
    return {}


@pytest.fixture
def rootfs(
    real_env: BuiltEnv,
    _rootfs_builds: dict[str, tuple[Path, dict[str, Any]]],
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dict[str, Any]]:
    """The rootfs output of ``real_env`` and the config it is to be run with (built once;
    each runner asserts it wrote nothing into it)."""
    if real_env.version not in _rootfs_builds:
        folder = tmp_path_factory.mktemp(f"rootfs-{real_env.version}")
        root, report = folder / "rootfs", folder / "report.json"
        _ok(build(real_env.manifest, "--format", "rootfs", "-o", str(root), "-q",
                  "--app", real_env.app_option(), "--report", str(report), env=_env()))  # fmt: skip
        config = report_of(report)["config"]
        assert config["entrypoint"] == [str(real_env.python)]
        _rootfs_builds[real_env.version] = (root, config)
    return _rootfs_builds[real_env.version]


def test_rootfs_runs_under_bubblewrap(
    real_env: BuiltEnv, rootfs: tuple[Path, dict[str, Any]]
) -> None:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        pytest.skip("bubblewrap (bwrap) is not installed")
    root, config = rootfs
    # The environment the image config would carry (a rootfs has no config of its own).
    setenv = [arg for name, value in config["env"].items() for arg in ("--setenv", name, value)]
    before = _tree(root)
    done = subprocess.run(
        [bwrap, "--ro-bind", str(root), "/", "--proc", "/proc", "--dev", "/dev",
         "--unshare-net", "--clearenv", *setenv, "--chdir", config["workdir"] or "/",
         *config["entrypoint"], *real_env.check_command()],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    _check_results(done.stdout)
    assert _tree(root) == before


def test_rootfs_runs_under_chroot(real_env: BuiltEnv, rootfs: tuple[Path, dict[str, Any]]) -> None:
    """The same checks under ``chroot`` on a read-only bind of the tree, with the host's
    /dev bound as for any chroot.

    Without /dev they cannot all pass: ``ctypes.util.find_library`` runs ``ldconfig -p``
    with stderr to /dev/null, which an image holds no device node for (a container runtime
    or bwrap provides /dev; the rootfs keeps an empty folder for it).
    """
    if os.geteuid() != 0:
        pytest.skip("chroot needs root")
    tools = {name: shutil.which(name) for name in ("unshare", "ip", "mount", "chroot", "env")}
    absent = sorted(name for name, path in tools.items() if path is None)
    if absent:
        pytest.skip(f"not installed: {', '.join(absent)}")
    root, config = rootfs
    assert not os.listdir(root / "proc") and not os.listdir(root / "dev")
    before = _tree(root)
    env = [f"{name}={value}" for name, value in config["env"].items()]
    # Own network namespace with only loopback up, as `docker run --network none`; own
    # (private) mount namespace, gone with the process, where the tree is bound read-only
    # as `docker run --read-only` and bwrap's --ro-bind make it, and /dev bound on it;
    # `env -i` so that nothing of this process's environment leaks in.
    inside = (
        'ip link set lo up && mount --bind "$0" "$0" && mount -o remount,bind,ro "$0"'
        ' && mount --rbind /dev "$0/dev" && exec "$@"'
    )
    done = subprocess.run(
        [str(tools["unshare"]), "--net", "--mount", "--", "sh", "-c", inside, str(root),
         str(tools["env"]), "-i", *env, str(tools["chroot"]), str(root),
         *config["entrypoint"], *real_env.check_command()],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    results = _check_results(done.stdout)
    assert "hello" in results["http"]["value"]
    assert _tree(root) == before


def _tree(root: Path) -> dict[str, tuple[int, int, int]]:
    found: dict[str, tuple[int, int, int]] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            st = os.lstat(os.path.join(folder, name))
            found[os.path.join(folder, name)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return found


@pytest.fixture(scope="session")
def oci311(env311: BuiltEnv, real_env_base: Path) -> tuple[Path, dict[str, Any]]:
    """One OCI layout of the 3.11 image, built from the working folder ``a`` with an empty
    cache folder (``layer-cache``, which the later builds of this module share)."""
    where = real_env_base / "oci-a"
    where.mkdir()
    done = build(env311.manifest, "-o", "image.oci", "-q", "--app", env311.app_option(),
                 "--tag", "envpack-test/flask:1", "--report", "report.json",
                 env=_env(real_env_base / "layer-cache"), cwd=where)  # fmt: skip
    _ok(done)
    report = report_of(where / "report.json")
    assert not any(layer["cached"] for layer in report["layers"])
    return where / "image.oci", report


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_second_build_elsewhere_under_umask_077_is_identical(
    env311: BuiltEnv, oci311: tuple[Path, dict[str, Any]], tmp_path: Path, real_env_base: Path
) -> None:
    first, first_report = oci311
    elsewhere = tmp_path / "b" / "deeper"
    elsewhere.mkdir(parents=True)
    (elsewhere / "image.oci").mkdir()  # an existing OUT: replaced with --force
    done = build(env311.manifest, "-o", "image.oci", "-q", "--force", "--report", "r.json",
                 "--app", env311.app_option(), "--tag", "envpack-test/flask:1",
                 env=_env(real_env_base / "layer-cache"), cwd=elsewhere,
                 umask=0o077)  # fmt: skip
    _ok(done)
    second_report = report_of(elsewhere / "r.json")
    # Unchanged: every layer comes from the cache the cold build filled, and the image
    # is byte for byte the cold build's.
    assert all(layer["cached"] for layer in second_report["layers"])
    assert second_report["image_digest"] == first_report["image_digest"]
    assert _files(elsewhere / "image.oci") == _files(first)


def test_a_rebuild_from_the_build_cache_loads_and_runs_in_docker(
    env311: BuiltEnv,
    oci311: tuple[Path, dict[str, Any]],
    docker_client: Any,
    image_tag: str,
    tmp_path: Path,
    real_env_base: Path,
) -> None:
    _, first_report = oci311
    time.sleep(1.2)  # past the racy window of files written by the fixtures
    cache = real_env_base / "layer-cache"
    settle = build(env311.manifest, "-o", str(tmp_path / "settle.oci"), "-q",
                   "--app", env311.app_option(), env=_env(cache))  # fmt: skip
    _ok(settle)
    report = tmp_path / "report.json"
    done = build(env311.manifest, "--format", "tar", "-o", str(tmp_path / "image.tar"),
                 "--app", env311.app_option(), "--tag", image_tag, "--load",
                 "--report", str(report), env=_env(cache))  # fmt: skip
    _ok(done)
    data = report_of(report)
    assert data["build_cached"], done.stderr  # nothing planned: stat keys checked only
    assert "build from the cache" in done.stderr
    assert data["image_digest"] == first_report["image_digest"]
    assert docker_client.images.get(image_tag).id == data["loaded_image_id"]
    code, output, _ = run_check_in_docker(
        docker_client, image_tag, env311.check_command(), read_only=True
    )
    assert code == 0, output
    assert "hello" in _check_results(output)["http"]["value"]


def test_layout_read_by_skopeo_and_umoci(
    env311: BuiltEnv, oci311: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    layout, report = oci311
    for tool in ("skopeo", "umoci"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    inspected = subprocess.run(
        ["skopeo", "inspect", f"oci:{layout}"], capture_output=True, text=True, check=False
    )
    assert inspected.returncode == 0, inspected.stderr
    info = json.loads(inspected.stdout)
    assert info["Digest"] == report["image_digest"]
    assert info["Layers"] == [layer["digest"] for layer in report["layers"]]
    assert info["Labels"]["io.envpack.manifest.digest"] == report["manifest_digest"]
    index = json.loads((layout / "index.json").read_text())
    ref = index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
    bundle = tmp_path / "bundle"
    unpacked = subprocess.run(
        ["umoci", "unpack", "--rootless", "--image", f"{layout}:{ref}", str(bundle)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert unpacked.returncode == 0, unpacked.stderr
    rootfs = bundle / "rootfs"
    assert (rootfs / str(env311.python).lstrip("/")).exists()
    assert (rootfs / ".envpack" / "manifest.json").read_bytes() == env311.manifest.read_bytes()
    # The image's SBOM is `envpack sbom` of its manifest, dated SOURCE_DATE_EPOCH.
    sbom = run_envpack("sbom", str(env311.manifest), env=_env())
    assert sbom.returncode == 0, sbom.stderr
    assert (rootfs / ".envpack" / "sbom.cdx.json").read_text() == sbom.stdout
    assert (rootfs / "srv" / "app" / "app.py").is_file()


def test_changing_the_app_changes_one_small_layer(
    env311: BuiltEnv, oci311: tuple[Path, dict[str, Any]], tmp_path: Path, real_env_base: Path
) -> None:
    _, before = oci311
    app = write_app(tmp_path / "app", greeting="again")
    done = build(env311.manifest, "-o", str(tmp_path / "image.oci"), "-q",
                 "--app", f"{app}:/srv/app", "--tag", "envpack-test/flask:1",
                 "--report", str(tmp_path / "r.json"),
                 env=_env(real_env_base / "layer-cache"))  # fmt: skip
    _ok(done)
    after = report_of(tmp_path / "r.json")
    assert [layer["group"] for layer in after["layers"]] == [
        layer["group"] for layer in before["layers"]
    ]
    changed = [
        (b["group"], a["uncompressed_size"])
        for b, a in zip(before["layers"], after["layers"])
        if b["digest"] != a["digest"]
    ]
    assert [group for group, _ in changed] == ["app"], changed
    assert changed[0][1] < 1_000_000
    # Only that layer was built again: the others came from the layer cache.
    rebuilt = [layer["group"] for layer in after["layers"] if not layer["cached"]]
    assert rebuilt == ["app"]
    assert after["image_digest"] != before["image_digest"]


def _workspaces(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".envpack-tmp-" in p.name)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_interrupted_build_leaves_nothing(
    env311: BuiltEnv, tmp_path: Path, signum: signal.Signals
) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "image.tar"
    child = subprocess.Popen(
        [sys.executable, "-m", "envpack", "build", str(env311.manifest), "--format", "tar",
         "-o", str(out), "-q", "--app", env311.app_option()],
        # An empty cache: the layers are compressed, not copied from an earlier build.
        env=_env(tmp_path / "cache"), cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    # Interrupt it while it compresses: the workspace beside OUT holds blobs by then.
    while time.monotonic() < deadline and child.poll() is None:
        spaces = _workspaces(out_dir)
        if spaces and any((out_dir / spaces[0] / "blobs").glob("*")):
            break
        time.sleep(0.02)
    assert child.poll() is None, f"the build ended before it could be interrupted: {child.stderr}"
    child.send_signal(signum)
    _, stderr = child.communicate(timeout=120)
    # The process ends by the signal it got (a shell sees how it ended), after one line.
    assert child.returncode == -signum, stderr
    said = {signal.SIGINT: ["envpack: interrupted"], signal.SIGTERM: ["envpack: terminated"]}
    assert stderr.strip().splitlines() == said.get(signum, []), stderr
    # After SIGKILL the watchdog removes the workspace as soon as the pipe closes.
    deadline = time.monotonic() + 20
    while os.listdir(out_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert os.listdir(out_dir) == []


def test_full_disk_is_one_line_and_leaves_nothing(env311: BuiltEnv, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "small"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        done = build(env311.manifest, "--format", "tar", "-o", str(disk / "image.tar"), "-q",
                     env=_env())  # fmt: skip
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert "No space left on device" in lines[0]
        assert str(disk / "image.tar") in lines[0]
        assert os.listdir(disk) == []
    finally:
        subprocess.run(["umount", str(disk)], check=False)
