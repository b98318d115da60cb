"""The CLI as a user meets it: real child processes, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from envpack import __version__
from realenv import run_envpack


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert lines[0].startswith("envpack: error: ")
    return lines[0]


def test_version() -> None:
    result = run_envpack("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"envpack {__version__}"


def test_schema_is_the_shipped_json_schema() -> None:
    result = run_envpack("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert schema["properties"]["schema_version"] == {"const": 1}


def test_capture_to_stdout_and_to_file(tmp_path: Path, clean_env: dict[str, str]) -> None:
    out = tmp_path / "m.json"
    to_file = run_envpack(
        "capture", "--only", "os", "--label", "dev", "-o", str(out), env=clean_env
    )
    assert to_file.returncode == 0, to_file.stderr
    assert to_file.stdout == ""
    assert "captured dev" in to_file.stderr
    document = json.loads(out.read_text())
    assert document["meta"]["label"] == "dev"
    to_stdout = run_envpack("capture", "--only", "os", "-q", env=clean_env)
    assert to_stdout.returncode == 0
    assert to_stdout.stderr == ""
    assert json.loads(to_stdout.stdout)["schema_version"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["capture", "--root", "/definitely/not/here"], "--root /definitely/not/here: no such"),
        (["capture", "--root", "/", "--probe-versions"], "--probe-versions runs binaries"),
        (["capture", "--only", "nonsense"], "--only: unknown section 'nonsense'"),
        (["capture", "--only", "os", "-o", "/no/such/dir/m.json"], "cannot write"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(
    args: list[str], message: str, clean_env: dict[str, str]
) -> None:
    result = run_envpack(*args, env=clean_env)
    assert result.returncode == 2
    assert message in _one_error_line(result.stderr)


def test_bad_source_date_epoch(clean_env: dict[str, str]) -> None:
    clean_env["SOURCE_DATE_EPOCH"] = "yesterday"
    result = run_envpack("capture", "--only", "os", env=clean_env)
    assert result.returncode == 2
    assert "SOURCE_DATE_EPOCH" in _one_error_line(result.stderr)


def test_full_stdout_is_one_line_and_exit_2(clean_env: dict[str, str]) -> None:
    with Path("/dev/full").open("w") as full:
        result = run_envpack("capture", "--only", "os", "-q", env=clean_env, stdout=full)
    assert result.returncode == 2
    assert "No space left on device" in _one_error_line(result.stderr)


def _capture_in_own_network_namespace(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A whole live capture in a fresh network namespace: on a shared machine other
    processes open and close listening ports between two captures, which is real drift,
    not the capture's; a namespace of our own holds still."""
    return subprocess.run(
        ["unshare", "--net", "--", sys.executable, "-m", "envpack", "capture", "-q"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="needs root and unshare(1) for a network namespace that holds still",
)
def test_unchanged_environment_gives_byte_identical_captures(clean_env: dict[str, str]) -> None:
    clean_env["SOURCE_DATE_EPOCH"] = "1700000000"
    first = _capture_in_own_network_namespace(clean_env)
    second = _capture_in_own_network_namespace(clean_env)
    assert first.returncode == 0, first.stderr
    assert "interface:lo" in json.loads(first.stdout)["network"], "the namespace's lo is captured"
    assert first.stdout == second.stdout
    assert json.loads(first.stdout)["meta"]["captured_at"] == "2023-11-14T22:13:20Z"
