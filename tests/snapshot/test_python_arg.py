"""``--python``: a failure exits 2 with the useful line; relative paths work as in a shell.

Real interpreters only: venvs made by ``python -m venv``, one whose ``sitecustomize``
aborts the interpreter (a real SIGABRT of a real CPython at start-up), one whose start-up
raises, and a copy of the interpreter without its execute bit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BASE_PYTHON = shutil.which("python3", path="/usr/bin:/bin") or sys.executable


def _venv(folder: Path, at_start: str | None = None) -> Path:
    """A real venv; ``at_start``: one line of Python its ``site`` runs at every start-up
    (a ``.pth`` line starting with ``import``, as a broken package can leave behind)."""
    subprocess.run([BASE_PYTHON, "-m", "venv", "--without-pip", str(folder)], check=True)
    if at_start is not None:
        [site] = list(folder.glob("lib/python3*/site-packages"))
        (site / "broken.pth").write_text(f"import os; {at_start}\n")
    return folder


def _capture(cwd: Path, *python: str) -> subprocess.CompletedProcess[str]:
    flags = [arg for p in python for arg in ("--python", p)]
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "envpack",
            "capture",
            "-q",
            "--only",
            "interpreters",
            *flags,
            "-o",
            str(cwd / "out.json"),
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PATH": "/usr/bin:/bin"},
    )


def _refused(result: subprocess.CompletedProcess[str], cwd: Path, *expected: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # one clear line, no traceback
    assert lines[0].startswith("envpack: error: --python ")
    for text in expected:
        assert text in lines[0], lines[0]
    assert not (cwd / "out.json").exists()  # nothing half-written


def test_an_interpreter_that_crashes_exits_2(tmp_path: Path) -> None:
    _venv(tmp_path / "venv", "os.abort()")
    _refused(_capture(tmp_path, "venv/bin/python"), tmp_path, "crashed", "SIGABRT")


def test_an_interpreter_that_fails_to_start_exits_2_with_its_error(tmp_path: Path) -> None:
    # site runs the line at start-up and lets SystemExit through: Python exits 1, saying so.
    _venv(tmp_path / "venv", "raise SystemExit('libfoo.so.1: cannot open shared object file')")
    result = _capture(tmp_path, "./venv/bin/python")
    _refused(result, tmp_path, "exited with status 1", ": libfoo.so.1: cannot open")


def test_a_file_that_cannot_be_run_exits_2(tmp_path: Path) -> None:
    copy = tmp_path / "python"
    shutil.copy(Path(BASE_PYTHON).resolve(), copy)
    copy.chmod(0o644)
    _refused(_capture(tmp_path, "./python"), tmp_path, "Permission denied")


def test_a_missing_interpreter_exits_2(tmp_path: Path) -> None:
    _refused(_capture(tmp_path, "nowhere/bin/python"), tmp_path, "no such file")
    _refused(_capture(tmp_path, "no-such-python"), tmp_path, "not found on PATH")


@pytest.mark.parametrize("given", ["venv/bin/python", "./venv/bin/python", "venv", "./venv"])
def test_relative_paths_work_as_in_a_shell(tmp_path: Path, given: str) -> None:
    import json

    _venv(tmp_path / "venv")
    result = _capture(tmp_path, given)
    assert result.returncode == 0, result.stderr
    section = json.loads((tmp_path / "out.json").read_text())["interpreters"]
    expected = str(tmp_path / "venv" / "bin" / "python")
    assert list(section) == [expected]
    assert section[expected]["primary"] is True
    assert section[expected]["virtualenv"]


def test_the_useful_line_of_a_fatal_python_error() -> None:
    """A real CPython that cannot find its standard library ends its stderr with
    "Current thread … <no Python frame>"; the reason quotes the error instead."""
    from envpack.snapshot.interpreters import ProbeFailed, describe

    environ = {"PATH": "/usr/bin:/bin", "PYTHONHOME": "/nonexistent"}
    with pytest.raises(ProbeFailed) as failed:
        describe(BASE_PYTHON, environ, timeout=30)
    assert str(failed.value).endswith("ModuleNotFoundError: No module named 'encodings'")
