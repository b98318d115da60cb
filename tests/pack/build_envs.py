"""Real environments for the build tests: PyPI virtualenvs, a Flask app, real captures.

The CPython 3.11 environment holds Flask and the C extensions numpy, psycopg2-binary and
PyYAML; the CPython 2.7 one (virtualenv 20.15.1) Flask 1.x and PyYAML 5.4 (their last
Python 2 releases, C extensions included). Both are installed from the package index
with their own pip, once per test session.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from realenv import FIXTURES, run_envpack

__all__ = [
    "APP_SOURCE",
    "REQUIRED",
    "BuiltEnv",
    "build",
    "capture",
    "run_check_in_docker",
    "write_app",
]

APP_SOURCE = FIXTURES / "build_app"
APP_DEST = "/srv/app"
REQUIREMENTS = {
    "3.11": ("flask", "numpy", "psycopg2-binary", "PyYAML"),
    "2.7": ("flask<2", "PyYAML<6"),
}
REQUIRED = {
    "3.11": ("flask", "werkzeug", "jinja2", "markupsafe", "numpy", "psycopg2", "yaml"),
    "2.7": ("flask", "werkzeug", "jinja2", "markupsafe", "yaml"),
}


@dataclass(frozen=True)
class BuiltEnv:
    """A real virtualenv, its captured manifest and the app folder packed with it."""

    version: str
    python: Path
    manifest: Path
    app: Path

    def app_option(self) -> str:
        return f"{self.app}:{APP_DEST}"

    def check_command(self) -> list[str]:
        """The container's command (the entrypoint is the venv's python)."""
        return [f"{APP_DEST}/check.py", *REQUIRED[self.version]]


def write_app(dest: Path, *, greeting: str = "hello") -> Path:
    """The fixture Flask app and the check script, in a fresh folder ``dest``."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(APP_SOURCE, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if greeting != "hello":
        app = dest / "app.py"
        app.write_text(app.read_text().replace('"hello"', f'"hello {greeting}"'))
    return dest


def capture(python: Path, out: Path, env: dict[str, str]) -> Path:
    """``envpack capture --python PYTHON -o OUT`` through the real CLI."""
    done = run_envpack(
        "capture", "-q", "--python", str(python), "-o", str(out), env=env, timeout=600
    )
    if done.returncode != 0:
        raise AssertionError(f"capture failed ({done.returncode}): {done.stderr}")
    return out


def build(
    manifest: Path,
    *args: str,
    env: dict[str, str],
    cwd: Path | None = None,
    umask: int | None = None,
    timeout: float = 900,
) -> subprocess.CompletedProcess[str]:
    """``envpack build MANIFEST ARGS…`` through the real CLI, in ``cwd`` under ``umask``."""

    def set_umask() -> None:
        if umask is not None:
            os.umask(umask)

    return run_envpack(
        "build", str(manifest), *args, env=env, cwd=cwd, timeout=timeout, preexec_fn=set_umask
    )


def report_of(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def run_check_in_docker(
    client: Any, image: str, command: list[str], *, read_only: bool
) -> tuple[int, str, list[dict[str, Any]]]:
    """Run the check in a container without network; (exit code, output, `docker diff`)."""
    container = client.containers.create(
        image, command=command, network_mode="none", read_only=read_only
    )
    try:
        container.start()
        status = container.wait(timeout=600)
        output = container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
        changes = container.diff() or []
    finally:
        container.remove(force=True)
    return int(status["StatusCode"]), output, changes
