"""`envpack verify` of an image without a Docker Engine: real podman, real bubblewrap.

The environment of test_verify_real.py, built by the real CLI as an OCI layout; its zstd
twin made by skopeo (`--dest-compress-format zstd`); and a tampered image made by umoci,
an independent tool: unpacked, changed by the image's own pip (a removal: umoci writes a
real `.wh.` whiteout), repacked as a new layer. Each is verified through the real CLI with
no engine reachable (`DOCKER_HOST` at a missing socket) and, for `auto`, a PATH that holds
only the runners the test allows: zero drift on the fresh image, the exact drift on the
tampered one, and nothing left behind in `$TMPDIR`.
podman's storage driver is seen through a `podman` on PATH that logs its arguments and
runs the real one: overlay when podman can use it; vfs after an overlay that podman
refuses (the refusal is the wrapper's, as podman words it: this kernel accepts overlay
everywhere the test can put a `$TMPDIR`, even over overlayfs). Rootless: the user
.ci/setup makes (`envpack-rootless`, with a range in /etc/subuid and /etc/subgid) runs
envpack installed from Debian's python3 into a venv of its own, as a user would.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from verify_envs import (
    VerifyEnv,
    bwrap_or_skip,
    changes_of,
    envpack_env,
    make_verify_env,
    tamper_rootfs,
    tampered_drift,
)

from realenv import copy_checkout, run_envpack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

NO_ENGINE = "unix:///nonexistent/docker.sock"


@pytest.fixture(scope="module")
def venv_env(real_env_base: Path) -> VerifyEnv:
    made = make_verify_env(real_env_base)  # made once per session, shared with the others
    if isinstance(made, str):
        pytest.skip(f"cannot make the verify environment: {made}")
    return made


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (.ci/setup installs it)")
    return found


def _run(*command: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, f"{command}: {done.stderr}"


@pytest.fixture(scope="module")
def layouts(venv_env: VerifyEnv, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """References of the fresh image (gzip, as built), its zstd copy and a tampered one."""
    work = tmp_path_factory.mktemp("layouts")
    fresh = work / "fresh.oci"
    done = run_envpack(
        "build", "-q", str(venv_env.manifest), "-o", str(fresh), "--tag", "fresh",
        env=envpack_env(), timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    zstd = work / "zstd.oci"
    _run(
        _tool("skopeo"), "copy", "-q", "--dest-compress-format", "zstd",
        f"oci:{fresh}:fresh", f"oci:{zstd}:fresh",
    )  # fmt: skip
    # The tampered image: umoci unpacks a copy, the image's own pip changes it, umoci
    # writes the difference as one more layer (whiteouts included) under a new tag.
    umoci = _tool("umoci")
    tampered = work / "tampered.oci"
    shutil.copytree(fresh, tampered)
    bundle = work / "bundle"
    _run(umoci, "unpack", "--image", f"{tampered}:fresh", str(bundle))
    tamper_rootfs(bundle / "rootfs", venv_env, work / "wheels")
    _run(umoci, "repack", "--image", f"{tampered}:tampered", str(bundle))
    return {
        "fresh": f"oci:{fresh}:fresh",
        "zstd": f"oci:{zstd}:fresh",
        "tampered": f"oci:{tampered}:tampered",
    }


@pytest.fixture
def only_path(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A PATH folder holding only the programs a test links into it, and a $TMPDIR."""
    bin_dir, temp = tmp_path / "bin", tmp_path / "tmp"
    bin_dir.mkdir()
    temp.mkdir()
    yield bin_dir, temp
    # Whatever ran, envpack removed its temporary folders (podman storage, unpacked tree).
    assert list(temp.iterdir()) == []


def _verify(
    image: str, env: VerifyEnv, *args: str, path: Path | None = None, temp: Path | None = None
) -> subprocess.CompletedProcess[str]:
    run_env = {**envpack_env(), "DOCKER_HOST": NO_ENGINE}
    if path is not None:
        run_env["PATH"] = str(path)
    if temp is not None:
        run_env["TMPDIR"] = str(temp)
    return run_envpack(
        "verify", image, str(env.manifest), *args, "--format", "json", env=run_env, timeout=900
    )


def _link(bin_dir: Path, *names: str) -> None:
    for name in names:
        (bin_dir / name).symlink_to(_tool(name))


def test_auto_runs_podman_without_an_engine_on_a_zstd_image(
    venv_env: VerifyEnv, layouts: dict[str, str], only_path: tuple[Path, Path]
) -> None:
    bin_dir, temp = only_path
    _link(bin_dir, "podman", "bwrap")
    done = _verify(layouts["zstd"], venv_env, path=bin_dir, temp=temp)
    assert done.returncode == 0, done.stderr
    assert changes_of(done.stdout) == []
    assert "interpreter in podman; no drift" in done.stderr, done.stderr
    assert "no Docker Engine answered" in done.stderr
    assert "built from another manifest" not in done.stderr


def test_podman_reports_the_exact_drift_of_a_tampered_image(
    venv_env: VerifyEnv, layouts: dict[str, str], only_path: tuple[Path, Path]
) -> None:
    _, temp = only_path
    _tool("podman")
    done = _verify(layouts["tampered"], venv_env, "--runner", "podman", temp=temp)
    assert done.returncode == 1, done.stderr
    assert changes_of(done.stdout) == tampered_drift(venv_env)
    assert "interpreter in podman" in done.stderr


def test_auto_without_podman_unpacks_the_image_for_bwrap(
    venv_env: VerifyEnv, layouts: dict[str, str], only_path: tuple[Path, Path]
) -> None:
    bin_dir, temp = only_path
    _link(bin_dir, "bwrap")
    done = _verify(layouts["zstd"], venv_env, path=bin_dir, temp=temp)
    assert done.returncode == 0, done.stderr
    assert changes_of(done.stdout) == []
    assert "interpreter under bwrap; no drift" in done.stderr


def test_bwrap_reports_the_exact_drift_of_a_tampered_image(
    venv_env: VerifyEnv, layouts: dict[str, str], only_path: tuple[Path, Path]
) -> None:
    _, temp = only_path
    bwrap_or_skip()
    # umoci's layer really removes pyyaml with whiteouts: the unpacked tree must apply them.
    index = json.loads(Path(layouts["tampered"][4:].rsplit(":", 1)[0], "index.json").read_text())
    assert len(index["manifests"]) == 2
    done = _verify(layouts["tampered"], venv_env, "--runner", "bwrap", temp=temp)
    assert done.returncode == 1, done.stderr
    assert changes_of(done.stdout) == tampered_drift(venv_env)
    assert "interpreter under bwrap" in done.stderr


def test_a_runner_asked_for_and_absent_is_one_line_exit_2(
    venv_env: VerifyEnv, layouts: dict[str, str], only_path: tuple[Path, Path]
) -> None:
    bin_dir, temp = only_path  # an empty PATH: no podman, no bwrap
    for runner, message in (
        ("podman", "--runner podman: podman is not installed"),
        ("bwrap", "--runner bwrap: bwrap is not installed"),
        ("docker", "--runner docker:"),
    ):
        done = _verify(layouts["fresh"], venv_env, "--runner", runner, path=bin_dir, temp=temp)
        assert done.returncode == 2, (runner, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"envpack: error: {message}"), done.stderr
        assert done.stdout == ""
    # With nothing to run it, auto reads the interpreter from its files and says so.
    done = _verify(layouts["fresh"], venv_env, path=bin_dir, temp=temp)
    assert done.returncode == 0, done.stderr
    assert "no Docker Engine, podman or bwrap could run it" in done.stderr


def test_a_missing_interpreter_under_podman_is_a_probe_failure(
    venv_env: VerifyEnv, layouts: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from envpack.errors import UsageError
    from envpack.snapshot.imagesource import open_image
    from envpack.snapshot.interpreters import ProbeFailed
    from envpack.verify.podman import probe_in_podman

    _tool("podman")
    # The private storages go to tmp_path (tempfile caches $TMPDIR at its first use, so
    # its cached folder is what is set), where the end checks that nothing is left.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with open_image(layouts["fresh"], workdir=tmp_path) as image:
        image_id = str(image.blobs.config_digest)
    with pytest.raises(ProbeFailed, match="cannot run in the image"):
        probe_in_podman(layouts["fresh"], image_id, "/no/such/python", timeout=300)
    # A probe past its time is killed, its container removed with the whole storage.
    with pytest.raises(ProbeFailed, match="did not answer within"):
        probe_in_podman(layouts["fresh"], image_id, str(venv_env.python), timeout=0.01)
    # A reference that is not the image captured is refused before anything runs.
    with pytest.raises(UsageError, match="not the one captured"):
        probe_in_podman(layouts["zstd"], "sha256:" + "0" * 64, str(venv_env.python), timeout=300)
    assert list(tmp_path.iterdir()) == []
    assert str(tmp_path) not in Path("/proc/self/mountinfo").read_text()


def _podman_wrapper(bin_dir: Path, log: Path, refuse_overlay_at: str = "") -> None:
    """A ``podman`` in ``bin_dir`` that logs its arguments and runs the real podman; with
    ``refuse_overlay_at``, that subcommand fails with the overlay driver as podman does
    where the kernel or the filesystem refuses it (status 125)."""
    refuse = ""
    if refuse_overlay_at:
        refuse = (
            f'case " $* " in *" --storage-driver overlay "*" {refuse_overlay_at} "*)\n'
            '    echo "Error: kernel does not support overlay fs" >&2; exit 125;;\nesac\n'
        )
    script = bin_dir / "podman"
    script.write_text(
        # The first line of the arguments: the probe's source (the last one) has several.
        f"#!/bin/sh\nprintf '%s\\n' \"$*\" | '{_tool('head')}' -n 1 >> '{log}'\n"
        f"{refuse}exec '{_tool('podman')}' \"$@\"\n"
    )
    script.chmod(0o755)


def _driver_of(log: Path, subcommand: str) -> list[str]:
    """The storage driver of each logged podman call of ``subcommand``, in order."""
    drivers = []
    for line in log.read_text().splitlines():
        words = line.split()
        if subcommand in words:
            drivers.append(words[words.index("--storage-driver") + 1])
    return drivers


def test_podman_stores_the_layers_once_with_the_overlay_driver(
    venv_env: VerifyEnv, layouts: dict[str, str], only_path: tuple[Path, Path]
) -> None:
    bin_dir, temp = only_path
    log = bin_dir.parent / "podman.log"
    _podman_wrapper(bin_dir, log)
    done = _verify(layouts["fresh"], venv_env, "--runner", "podman", path=bin_dir, temp=temp)
    assert done.returncode == 0, done.stderr
    assert changes_of(done.stdout) == []
    assert (_driver_of(log, "pull"), _driver_of(log, "run")) == (["overlay"], ["overlay"])


@pytest.mark.parametrize("refused_at", ["pull", "run"])
def test_podman_falls_back_to_vfs_where_overlay_is_refused(
    venv_env: VerifyEnv, layouts: dict[str, str], only_path: tuple[Path, Path], refused_at: str
) -> None:
    bin_dir, temp = only_path
    log = bin_dir.parent / "podman.log"
    _podman_wrapper(bin_dir, log, refuse_overlay_at=refused_at)
    done = _verify(layouts["tampered"], venv_env, "--runner", "podman", path=bin_dir, temp=temp)
    assert done.returncode == 1, done.stderr
    assert changes_of(done.stdout) == tampered_drift(venv_env)
    # overlay was tried and refused, then the image loaded and ran with vfs.
    assert _driver_of(log, refused_at) == ["overlay", "vfs"]
    assert _driver_of(log, "run")[-1] == "vfs"
    # Both private storages are gone (only_path checks $TMPDIR), and no mount is left.
    assert str(temp) not in Path("/proc/self/mounts").read_text()


ROOTLESS_USER = "envpack-rootless"
DEBIAN_PYTHON = Path("/usr/bin/python3")
STANDARD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _rootless_user() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        pytest.skip("runs envpack as another user: needs root (CI runs as root)")
    try:
        user = pwd.getpwnam(ROOTLESS_USER)
    except KeyError:
        pytest.skip(f"no user {ROOTLESS_USER} (.ci/setup makes it)")
    for tool in ("podman", "newuidmap", "newgidmap", "setpriv"):
        _tool(tool)
    if not DEBIAN_PYTHON.exists():
        pytest.skip("no Debian python3 (.ci/setup installs python3-venv)")
    return user


def _as_user(
    user: pwd.struct_passwd, command: list[str], env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` as ``user``: its own IDs and groups, no capability."""
    setpriv = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups"]
    return subprocess.run(
        [*setpriv, *command], env=env, cwd=cwd, capture_output=True, text=True,
        timeout=900, check=False,
    )  # fmt: skip


def _give(user: pwd.struct_passwd, folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        os.chown(path, user.pw_uid, user.pw_gid, follow_symlinks=False)


@pytest.fixture(scope="module")
def rootless_home() -> Iterator[tuple[pwd.struct_passwd, Path, dict[str, str]]]:
    """The rootless user, a home it owns (outside root's 0700 folders) holding envpack
    installed from a copy of this checkout by Debian's python3, and the user's environment."""
    user = _rootless_user()
    home = Path(tempfile.mkdtemp(prefix="envpack-rootless-"))
    try:
        home.chmod(0o755)
        copy_checkout(home / "envpack")
        _give(user, home)
        env = {"PATH": STANDARD_PATH, "HOME": str(home), "LANG": "C.UTF-8"}
        for key in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CONSTRAINT"):
            if key in os.environ:
                env[key] = os.environ[key]
        for command in (
            [str(DEBIAN_PYTHON), "-m", "venv", "venv"],
            ["venv/bin/pip", "install", "-q", "./envpack"],
        ):
            done = _as_user(user, command, env, home)
            assert done.returncode == 0, f"{command}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
        yield user, home, env
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_rootless_podman_verifies_with_overlay_and_removes_its_storage(
    venv_env: VerifyEnv,
    layouts: dict[str, str],
    rootless_home: tuple[pwd.struct_passwd, Path, dict[str, str]],
) -> None:
    user, home, user_env = rootless_home
    work = Path(tempfile.mkdtemp(prefix="run-", dir=home))
    bin_dir, temp, images = work / "bin", work / "tmp", work / "images"
    for folder in (bin_dir, temp, images):
        folder.mkdir()
    log = work / "podman.log"
    _podman_wrapper(bin_dir, log)
    # The user reads copies: the layouts and the manifest sit under root's 0700 folders.
    refs = {}
    for name in ("fresh", "tampered"):
        where, tag = layouts[name].removeprefix("oci:").rsplit(":", 1)
        shutil.copytree(where, images / name)
        refs[name] = f"oci:{images / name}:{tag}"
    manifest = shutil.copy(venv_env.manifest, images / "manifest.json")
    log.touch()
    _give(user, work)
    env = {
        **user_env,
        "PATH": f"{bin_dir}:{STANDARD_PATH}",
        "TMPDIR": str(temp),
        "DOCKER_HOST": NO_ENGINE,
        "ENVPACK_REDACT_KEY": envpack_env()["ENVPACK_REDACT_KEY"],
    }
    envpack = str(home / "venv/bin/envpack")
    for name, status in (("fresh", 0), ("tampered", 1)):
        command = [envpack, "verify", refs[name], str(manifest), "--runner", "podman"]
        done = _as_user(user, [*command, "--format", "json"], env, work)
        assert done.returncode == status, (name, done.stderr)
        assert "interpreter in podman" in done.stderr, done.stderr
        expected = [] if name == "fresh" else tampered_drift(venv_env)
        assert changes_of(done.stdout) == expected, name
    # Rootless podman, with the kernel's own overlay (no fuse-overlayfs is installed).
    assert _driver_of(log, "pull") == ["overlay", "overlay"]
    # The layers, owned by the user's subordinate IDs, were removed from inside podman's
    # user namespace: nothing is left in $TMPDIR, nor of the runroots that a $TMPDIR this
    # long sends to /tmp.
    assert list(temp.iterdir()) == []
    runroots = [p for p in Path("/tmp").glob("envpack-podman-*") if p.owner() == user.pw_name]
    assert runroots == []
    assert str(temp) not in Path("/proc/self/mounts").read_text()
