"""A real environment for the verify tests: a PyPI venv, its capture, its real builds.

CPython 3.11 with Flask and PyYAML (MarkupSafe and PyYAML bring C extensions, so the
image holds a library closure beyond the interpreter's), plus an INI config file of the
test's own named with ``--config``. Built once per session with the real CLI as a rootfs
folder (for bubblewrap) and, when a Docker Engine answers, loaded into it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from realenv import make_pypi_venv, pyenv_python, run_envpack

__all__ = [
    "EPOCH",
    "LIBM",
    "VerifyEnv",
    "bwrap_or_skip",
    "changes_of",
    "envpack_env",
    "make_verify_env",
    "older_blinker",
    "tamper_rootfs",
    "tampered_drift",
    "verify_cli",
]

EPOCH = "1700000000"
REQUIREMENTS = ("flask", "PyYAML")
APP_INI = "[server]\nport = 8080\nworkers = 4\n"
LIBM = "/usr/lib/x86_64-linux-gnu/libm.so.6"


def envpack_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    env.setdefault("ENVPACK_REDACT_KEY", "envpack-test-key")
    env["SOURCE_DATE_EPOCH"] = EPOCH
    return env


@dataclass(frozen=True)
class VerifyEnv:
    folder: Path
    python: Path
    config: Path
    """The app's INI file, captured with --config and packed at its own path."""
    manifest: Path
    rootfs: Path
    report: Path


_MADE: dict[Path, VerifyEnv | str] = {}


def make_verify_env(base: Path) -> VerifyEnv | str:
    """The environment, captured and built as a rootfs; or why it cannot be made.

    Made once per ``base`` (the session's folder): every verify test module shares it.
    """
    if base not in _MADE:
        _MADE[base] = _make(base)
    return _MADE[base]


def _make(base: Path) -> VerifyEnv | str:
    python = pyenv_python("3.11")
    if python is None:
        return "CPython 3.11 is not installed (pyenv versions)"
    folder = base / "verify-env"
    made = make_pypi_venv(python, folder / "venv", REQUIREMENTS)
    if isinstance(made, str):
        return made
    config = folder / "etc" / "app.ini"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(APP_INI)
    manifest = folder / "manifest.json"
    env = envpack_env()
    done = run_envpack(
        "capture", "-q", "--python", str(made), "--config", str(config), "-o", str(manifest),
        env=env, timeout=600,
    )  # fmt: skip
    if done.returncode != 0:
        raise AssertionError(f"capture failed ({done.returncode}): {done.stderr}")
    rootfs, report = folder / "image.rootfs", folder / "rootfs-report.json"
    done = run_envpack(
        "build", "-q", str(manifest), "--format", "rootfs", "-o", str(rootfs),
        "--report", str(report), env=env, timeout=900,
    )  # fmt: skip
    if done.returncode != 0:
        raise AssertionError(f"build failed ({done.returncode}): {done.stderr}")
    return VerifyEnv(folder, made, config, manifest, rootfs, report)


def verify_cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """``envpack verify ARGS… --format json`` through the real CLI."""
    return run_envpack("verify", *args, "--format", "json", env=envpack_env(), timeout=timeout)


def changes_of(report: str) -> list[tuple[str, str, str | None, str]]:
    """``(section, key, field, kind)`` of every change in a JSON diff report."""
    data: dict[str, Any] = json.loads(report)
    return sorted(
        (c["section"], c["key"], c["field"], c["kind"])
        for drift in data["drifts"]
        for c in drift["changes"]
    )


def copy_tree(source: Path, dest: Path) -> Path:
    """A copy of a rootfs (symlinks as symlinks) to tamper with."""
    shutil.copytree(source, dest, symlinks=True)
    return dest


def bwrap_or_skip() -> str:
    found = shutil.which("bwrap")
    if found is None:
        pytest.skip("bubblewrap is not installed (apt install bubblewrap)")
    return found


def in_rootfs(rootfs: Path, *command: str, binds: tuple[Path, ...] = ()) -> None:
    """Run ``command`` inside ``rootfs`` (writable): the image's own tools change it."""
    extra = [arg for b in binds for arg in ("--ro-bind", str(b), str(b))]
    done = subprocess.run(
        [bwrap_or_skip(), "--bind", str(rootfs), "/", "--proc", "/proc", "--dev", "/dev",
         *extra, "--unshare-all", "--clearenv", "--setenv", "PATH", "/usr/bin:/bin",
         # No pip config: the host's names files (constraints) no image holds.
         "--setenv", "PIP_CONFIG_FILE", "/dev/null", *command],
        check=False, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, f"{command}: {done.stderr}"


def older_blinker(folder: Path, python: Path) -> Path:
    """A real older wheel of a package the venv holds (pip download from the index)."""
    done = subprocess.run(
        [str(python), "-m", "pip", "download", "-q", "--no-deps", "blinker==1.8.2", "-d",
         str(folder)],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    wheels = sorted(folder.glob("blinker-1.8.2-*.whl"))
    if done.returncode != 0 or not wheels:
        pytest.skip(f"the index gives no blinker 1.8.2: {done.stderr[-300:]}")
    return wheels[0]


def tamper_rootfs(rootfs: Path, env: VerifyEnv, wheels: Path) -> None:
    """Change an unpacked image the way :func:`tampered_drift` says, with its own pip."""
    python = str(env.python)
    wheel = older_blinker(wheels, env.python)
    # pip inside the image: remove one distribution, downgrade another.
    in_rootfs(rootfs, python, "-m", "pip", "uninstall", "-q", "-y", "pyyaml")
    in_rootfs(
        rootfs, python, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
        str(wheel), binds=(wheel.parent,),
    )  # fmt: skip
    # The app's config file changed; a library the interpreter loads replaced by another
    # build of itself (trailing bytes: still a loadable ELF, a different file).
    config = rootfs / str(env.config).lstrip("/")
    config.write_text(config.read_text().replace("workers = 4", "workers = 8"))
    libm = rootfs / LIBM.lstrip("/")
    data, mode = libm.read_bytes(), libm.stat().st_mode
    libm.unlink()
    libm.write_bytes(data + b"\0" * 64)
    libm.chmod(mode & 0o7777)


def tampered_drift(env: VerifyEnv) -> list[tuple[str, str, str | None, str]]:
    """What verify reports for an image tampered with so (by pip, cp, a rebuilt library)."""
    ini = str(env.config)
    return [
        ("config_files", ini, "keys.server.workers", "changed"),
        ("config_files", ini, "sha256", "changed"),
        ("libraries", "libm.so.6", "sha256", "changed"),
        ("libraries", "libm.so.6", "size", "changed"),
        ("python_packages", "blinker", "version", "downgraded"),
        ("python_packages", "pyyaml", None, "removed"),
    ]
