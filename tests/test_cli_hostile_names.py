"""The CLI's stderr lines stay one line, whatever a path, a label or an argument holds.

Real child processes (``python -m envpack``), real files whose names hold a line break
and an escape sequence: every error, note and summary line shows them as visible escapes
(``\\n``, ``\\x1b``), never raw, and the exit code is the documented one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from realenv import run_envpack

# A line break (forges a second line), CSI "clear screen", OSC "set the window title".
HOSTILE = "evil\n\x1b[2J\x1b]0;owned\x07"
SHOWN = "evil\\n\\x1b[2J\\x1b]0;owned\\x07"


def _one_line(stderr: str, prefix: str = "envpack: error: ") -> str:
    assert "\x1b" not in stderr and "\x07" not in stderr, repr(stderr)
    assert stderr.endswith("\n") and stderr.count("\n") == 1, repr(stderr)
    assert stderr.startswith(prefix), repr(stderr)
    return stderr


@pytest.fixture
def hostile_dir(tmp_path: Path) -> Path:
    folder = tmp_path / HOSTILE
    folder.mkdir()
    return folder


def _capture(out: Path, label: str, env: dict[str, str]) -> None:
    result = run_envpack("capture", "--only", "os", "-q", "--label", label, "-o", str(out), env=env)
    assert result.returncode == 0, result.stderr


def test_missing_manifest_with_a_hostile_name(tmp_path: Path, clean_env: dict[str, str]) -> None:
    missing = tmp_path / f"{HOSTILE}.json"
    good = tmp_path / "good.json"
    _capture(good, "dev", clean_env)
    result = run_envpack("diff", str(good), str(missing), env=clean_env)
    assert result.returncode == 2
    assert SHOWN in _one_line(result.stderr)


def test_invalid_manifest_in_a_hostile_folder(hostile_dir: Path, clean_env: dict[str, str]) -> None:
    bad = hostile_dir / "m.json"
    bad.write_text("{not json", encoding="utf-8")
    result = run_envpack("diff", str(bad), str(bad), env=clean_env)
    assert result.returncode == 2
    assert SHOWN in _one_line(result.stderr)


def test_capture_root_and_output_with_hostile_names(
    tmp_path: Path, hostile_dir: Path, clean_env: dict[str, str]
) -> None:
    result = run_envpack("capture", "--root", str(tmp_path / HOSTILE / "nope"), env=clean_env)
    assert result.returncode == 2
    assert SHOWN in _one_line(result.stderr)
    result = run_envpack(
        "capture", "--only", "os", "-q", "-o", str(hostile_dir / "no" / "m.json"), env=clean_env
    )
    assert result.returncode == 2
    assert f"cannot write {hostile_dir / 'no' / 'm.json'}".replace(HOSTILE, SHOWN) in _one_line(
        result.stderr
    )


def test_hostile_label_in_the_summary_line_and_the_diff(
    hostile_dir: Path, clean_env: dict[str, str]
) -> None:
    out = hostile_dir / "m.json"
    result = run_envpack(
        "capture", "--only", "os", "--label", HOSTILE, "-o", str(out), env=clean_env
    )
    assert result.returncode == 0
    line = _one_line(result.stderr, prefix="captured ")
    assert f"captured {SHOWN}: " in line and f"→ {out}".replace(HOSTILE, SHOWN) in line
    assert json.loads(out.read_text(encoding="utf-8"))["meta"]["label"] == HOSTILE  # kept exact
    dev = hostile_dir / "dev.json"
    _capture(dev, "dev", clean_env)
    # An unknown baseline: the error lists the environments, the hostile label among them.
    result = run_envpack("diff", str(dev), str(out), "--baseline", "qa", env=clean_env)
    assert result.returncode == 2
    assert SHOWN in _one_line(result.stderr)
    result = run_envpack("diff", str(dev), str(out), "--format", HOSTILE, env=clean_env)
    assert result.returncode == 2
    assert "unknown format" in _one_line(result.stderr)
    # The table on stdout: the label is a column header and in the heading, escaped.
    result = run_envpack("diff", str(dev), str(out), env=clean_env)
    assert result.returncode in (0, 1), result.stderr
    assert "\x1b" not in result.stdout and SHOWN in result.stdout


def test_hostile_usage_errors_are_one_escaped_line(clean_env: dict[str, str]) -> None:
    result = run_envpack("capture", f"--{HOSTILE}", env=clean_env)
    assert result.returncode == 2
    line = _one_line(result.stderr)
    # (click shows the line break as \x0a itself; the ESC is ours to escape.)
    assert "No such option: --evil\\x0a\\x1b[2J" in line and "capture --help')" in line
    result = run_envpack("diff", env=clean_env)
    assert result.returncode == 2
    assert "Missing argument" in _one_line(result.stderr)
