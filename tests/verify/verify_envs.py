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

from realenv import make_pypi_venv, pyenv_python, run_envpack

__all__ = ["EPOCH", "VerifyEnv", "changes_of", "envpack_env", "make_verify_env", "verify_cli"]

EPOCH = "1700000000"
REQUIREMENTS = ("flask", "PyYAML")
APP_INI = "[server]\nport = 8080\nworkers = 4\n"


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


def make_verify_env(base: Path) -> VerifyEnv | str:
    """The environment, captured and built as a rootfs; or why it cannot be made."""
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
