"""Files the user names that are not files: ``/dev/zero``, a FIFO, a 100 GB sparse file.

Each is refused through the real CLI with one line and exit 2, fast: a FIFO with no
writer would block an ordinary ``open`` forever and ``/dev/zero`` never ends, so a
regression shows up as the subprocess timeout, not as a slow test.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from diff_manifests import dev_sections, make

from envpack._inputfile import read_bounded
from envpack.errors import UsageError
from envpack.manifest import dumps
from realenv import run_envpack

TIMEOUT = 30  # seconds: each case takes well under one; a hang fails here


def _manifest(path: Path, label: str) -> Path:
    path.write_text(dumps(make(label, dev_sections())), encoding="utf-8")
    return path


@pytest.fixture
def hostile(tmp_path: Path) -> dict[str, Path]:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    sparse = tmp_path / "sparse"
    with sparse.open("wb") as stream:
        stream.truncate(100 * 1024**3)  # 100 GB, no block allocated
    return {"/dev/zero": Path("/dev/zero"), "FIFO": fifo, "100 GB file": sparse}


def _assert_refused(
    result: subprocess.CompletedProcess[str], path: Path, started: float, words: str
) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"envpack: error: {path}"), lines[0]
    assert words in lines[0], lines[0]
    assert time.monotonic() - started < TIMEOUT


_WORDS = {"/dev/zero": "is a character device", "FIFO": "is a FIFO", "100 GB file": "larger than"}


@pytest.mark.parametrize("kind", sorted(_WORDS))
def test_manifest_argument(kind: str, hostile: dict[str, Path], tmp_path: Path) -> None:
    other = _manifest(tmp_path / "b.json", "b")
    started = time.monotonic()
    result = run_envpack("diff", str(hostile[kind]), str(other), timeout=TIMEOUT)
    _assert_refused(result, hostile[kind], started, _WORDS[kind])


@pytest.mark.parametrize("option", ["--requirements", "--policy", "--accepted"])
@pytest.mark.parametrize("kind", sorted(_WORDS))
def test_diff_input_options(
    option: str, kind: str, hostile: dict[str, Path], tmp_path: Path
) -> None:
    a = _manifest(tmp_path / "a.json", "a")
    b = _manifest(tmp_path / "b.json", "b")
    started = time.monotonic()
    result = run_envpack("diff", str(a), str(b), option, str(hostile[kind]), timeout=TIMEOUT)
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip()
    assert "\n" not in line
    # The policy's error names the settings file after a "bad policy:" prefix.
    assert f"{hostile[kind]}: " in line, line
    assert _WORDS[kind] in line, line
    assert time.monotonic() - started < TIMEOUT


def test_stdin_device_is_refused(tmp_path: Path) -> None:
    other = _manifest(tmp_path / "b.json", "b")
    with open("/dev/zero", "rb") as zero:
        result = run_envpack("diff", "-", str(other), stdin=zero, timeout=TIMEOUT)
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        "envpack: error: <stdin>: is a character device; pipe a manifest into it or name a file\n"
    )


def test_manifest_with_a_huge_integer(tmp_path: Path) -> None:
    # Python refuses to turn more than 4300 digits into an int: that is bad input, not a bug.
    bad = tmp_path / "big.json"
    bad.write_text('{"schema_version": 1' + "0" * 5000 + ', "meta": {}}')
    result = run_envpack("diff", str(bad), str(bad), timeout=TIMEOUT)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"envpack: error: {bad}: invalid JSON (Exceeds the limit")
    assert result.stderr.count("\n") == 1


def test_requirements_pyproject_nested_and_huge(tmp_path: Path) -> None:
    a = _manifest(tmp_path / "a.json", "a")
    deep = tmp_path / "deep" / "pyproject.toml"
    deep.parent.mkdir()
    deep.write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n")
    big = tmp_path / "big" / "pyproject.toml"
    big.parent.mkdir()
    big.write_text("x = 1" + "0" * 5000 + "\n")
    for path in (deep, big):
        result = run_envpack("diff", str(a), str(a), "--requirements", str(path), timeout=TIMEOUT)
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith(f"envpack: error: {path}: invalid TOML")
        assert result.stderr.count("\n") == 1


def test_read_bounded_limits(tmp_path: Path) -> None:
    exact = tmp_path / "exact"
    exact.write_bytes(b"x" * 100)
    assert read_bounded(exact, limit=100, what="file", error=UsageError) == b"x" * 100
    with pytest.raises(UsageError, match="larger than"):
        read_bounded(exact, limit=99, what="file", error=UsageError)
    with pytest.raises(UsageError, match=r"is a folder, not a file"):
        read_bounded(tmp_path, limit=100, what="file", error=UsageError)
    with pytest.raises(UsageError, match=r"absent: no such file"):
        read_bounded(tmp_path / "absent", limit=100, what="file", error=UsageError)
