"""envpack itself runs on the oldest Python it declares (requires-python >= 3.9)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from realenv import REPO, pyenv_python


@pytest.mark.slow
def test_install_and_capture_on_python_39(tmp_path: Path) -> None:
    base = pyenv_python("3.9")
    if base is None:
        pytest.skip("CPython 3.9 is not installed (pyenv versions)")
    venv = tmp_path / "venv"
    subprocess.run([str(base), "-m", "venv", str(venv)], check=True)
    # Resolves the dependencies for 3.9 from the package index (typer, tomli …).
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(REPO)],
        capture_output=True,
        text=True,
        check=False,
    )
    if install.returncode != 0 and "Could not find a version" in install.stderr:
        pytest.skip(f"the package index is unreachable: {install.stderr.strip()[-200:]}")
    assert install.returncode == 0, install.stderr
    env = dict(os.environ, ENVPACK_REDACT_KEY="k")
    result = subprocess.run(
        [str(venv / "bin" / "envpack"), "capture", "--only", "os", "-q", "--label", "py39"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["meta"]["label"] == "py39"
    # Options declared with Annotated must be seen by the typer release that 3.9 gets.
    bad = subprocess.run(
        [str(venv / "bin" / "envpack"), "diff", "/no/such.json", "/no/other.json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip() == "envpack: error: /no/such.json: no such file"
