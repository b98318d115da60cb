"""The README's first command, as a newcomer runs it on a stock Debian: Debian's own python3
(which refuses a system-wide ``pip install`` under PEP 668), a venv, ``pip install .``, a
capture — as an unprivileged user, from a copy of the repository that user owns."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from realenv import copy_checkout

REPO = Path(__file__).resolve().parent.parent
DEBIAN_PYTHON = Path("/usr/bin/python3")
NOBODY = 65534

pytestmark = pytest.mark.slow


def _readme_install_command() -> str:
    """The README's first indented command line, which is the install-and-capture one."""
    for line in (REPO / "README.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("    ") and "pip install" in line:
            return line.strip()
    raise AssertionError("README has no install command")


@pytest.fixture
def home() -> Iterator[Path]:
    """A folder the unprivileged user can reach: pytest's own home sits under a 0700
    folder of root's."""
    path = Path(tempfile.mkdtemp(prefix="envpack-newcomer-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _has_venv(python: Path) -> bool:
    probe = [str(python), "-c", "import ensurepip, venv"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


@pytest.mark.skipif(
    not DEBIAN_PYTHON.exists() or not _has_venv(DEBIAN_PYTHON),
    reason="no Debian python3 with its venv module (.ci/setup installs python3-venv)",
)
def test_readme_install_command_works_from_debian_python(home: Path) -> None:
    # The system pip refuses: this is the situation the README's venv route exists for.
    refused = subprocess.run(
        [str(DEBIAN_PYTHON), "-m", "pip", "install", "--dry-run", "packaging"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if (DEBIAN_PYTHON.parent.parent / "lib/python3.11/EXTERNALLY-MANAGED").exists():
        assert refused.returncode != 0
        assert "externally-managed-environment" in refused.stderr

    checkout = copy_checkout(home / "envpack")

    command = _readme_install_command()
    assert command.startswith("python3 -m venv .venv")
    env = {
        # Debian's python3 first, as on a stock machine; nothing from pyenv.
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
    }
    for key in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CONSTRAINT"):
        if key in os.environ:
            env[key] = os.environ[key]
    prefix: list[str] = []
    if os.geteuid() == 0:
        # A normal user, as the README's reader is: nobody owns the checkout and HOME.
        for path in [home, *home.rglob("*")]:
            os.chown(path, NOBODY, NOBODY, follow_symlinks=False)
        prefix = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    run = subprocess.run(
        [*prefix, "/bin/sh", "-c", command],
        cwd=checkout, env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]

    venv_python = checkout / ".venv/bin/python"
    base = subprocess.run(
        [str(venv_python), "-c", "import sys; print(sys.base_prefix)"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert base == "/usr"  # the venv is Debian's python's, not pyenv's

    manifest = json.loads((checkout / "dev.json").read_text(encoding="utf-8"))
    assert manifest["meta"]["label"] == "dev"
    primary = [key for key, value in manifest["interpreters"].items() if value.get("primary")]
    assert primary, "the capture found no primary interpreter"
    assert manifest["python_packages"], "the capture found no Python package"
