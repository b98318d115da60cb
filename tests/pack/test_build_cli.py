"""`envpack build` bad input through the real CLI: one line on stderr, exit 2, nothing left."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from envpack.manifest import Manifest, Meta, dumps
from realenv import run_envpack


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    """A manifest of a live host that names no interpreter at all."""
    path = tmp_path / "m.json"
    meta = Meta(
        envpack_version="0.1.0",
        captured_at="2026-01-01T00:00:00Z",
        source_kind="live",
        source="vm",
        hostname="vm",
        label="dev",
    )
    path.write_text(dumps(Manifest(meta=meta, sections={"interpreters": {}})))
    return path


def _one_line_exit_2(done: object, *needles: str) -> str:
    assert getattr(done, "returncode", None) == 2, done
    stderr: str = getattr(done, "stderr", "")
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("envpack: error: "), stderr
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_existing_out_is_refused_without_force(
    manifest: Path, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    out = tmp_path / "image.tar"
    out.write_bytes(b"keep me")
    done = run_envpack("build", str(manifest), "--format", "tar", "-o", str(out), env=clean_env)
    _one_line_exit_2(done, str(out), "exists", "--force")
    assert out.read_bytes() == b"keep me"
    assert sorted(os.listdir(tmp_path)) == ["image.tar", "m.json"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--format", "zip"], "--format 'zip'"),
        (["--env", "NOVALUE"], "--env 'NOVALUE'"),
        (["--app", "/nonexistent-folder"], "is not a folder"),
        (["--app", "{tmp}:relative"], "must be an absolute path"),
        (["--entrypoint", '["python", 1]'], "JSON array of strings"),
        (["--cmd", "'unclosed"], "--cmd"),
        (["--root", "/nonexistent-root"], "--root /nonexistent-root"),
        (["--tag", "Bad Tag!"], "Bad Tag!"),
        (["-o", "/nonexistent-folder/image.oci"], "/nonexistent-folder"),
    ],
)
def test_bad_options_are_one_line(
    manifest: Path, tmp_path: Path, clean_env: dict[str, str], args: list[str], needle: str
) -> None:
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "-o" not in args:
        args += ["-o", str(tmp_path / "out")]
    done = run_envpack("build", str(manifest), *args, env=clean_env)
    _one_line_exit_2(done, needle)
    assert sorted(os.listdir(tmp_path)) == ["m.json"]


def test_bad_source_date_epoch_is_one_line(
    manifest: Path, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    env = {**clean_env, "SOURCE_DATE_EPOCH": "yesterday"}
    done = run_envpack("build", str(manifest), "-o", str(tmp_path / "out"), env=env)
    _one_line_exit_2(done, "SOURCE_DATE_EPOCH")


def test_missing_or_broken_manifest_is_one_line(tmp_path: Path, clean_env: dict[str, str]) -> None:
    done = run_envpack("build", str(tmp_path / "none.json"), "-o", str(tmp_path / "o"),
                       env=clean_env)  # fmt: skip
    _one_line_exit_2(done, "none.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema_version": 1, "meta": {')
    done = run_envpack("build", str(broken), "-o", str(tmp_path / "o"), env=clean_env)
    _one_line_exit_2(done, "broken.json")
    assert sorted(os.listdir(tmp_path)) == ["broken.json"]


def test_manifest_without_primary_interpreter_is_one_line(
    manifest: Path, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    done = run_envpack("build", str(manifest), "-o", str(tmp_path / "image.oci"), env=clean_env)
    _one_line_exit_2(done, "interpreter")
    assert sorted(os.listdir(tmp_path)) == ["m.json"]
