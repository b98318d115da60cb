"""`envpack sbom` through the real CLI: stdout, -o, formats, bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from realenv import FIXTURES, run_envpack


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["SOURCE_DATE_EPOCH"] = "1700000000"
    env["ENVPACK_CACHE_DIR"] = str(tmp_path / "cache")
    env.setdefault("ENVPACK_REDACT_KEY", "envpack-test-key")
    return env


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    out = tmp_path / "m.json"
    done = run_envpack(
        "capture", "-q", "--root", str(FIXTURES / "rootfs" / "debian-py39-dpkg"),
        "-o", str(out), env=_env(tmp_path),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out


def test_stdout_and_file_are_the_same_bytes(manifest: Path, tmp_path: Path) -> None:
    for fmt, key in (("cyclonedx", "bomFormat"), ("spdx", "spdxVersion")):
        printed = run_envpack("sbom", str(manifest), "--format", fmt, env=_env(tmp_path))
        assert printed.returncode == 0, printed.stderr
        out = tmp_path / f"sbom.{fmt}.json"
        written = run_envpack(
            "sbom", str(manifest), "--format", fmt, "-o", str(out), env=_env(tmp_path)
        )
        assert written.returncode == 0, written.stderr
        assert written.stdout == ""
        assert out.read_text() == printed.stdout
        assert key in json.loads(printed.stdout)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--format", "swid"], "choose cyclonedx or spdx"),
        (["-o", "/nonexistent-folder/x.json"], "nonexistent-folder"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    manifest: Path, tmp_path: Path, args: list[str], needle: str
) -> None:
    done = run_envpack("sbom", str(manifest), *args, env=_env(tmp_path))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("envpack: error:") and needle in lines[0]
    assert done.stdout == ""


def test_missing_and_broken_manifests_are_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    for path in (tmp_path / "absent.json", broken):
        done = run_envpack("sbom", str(path), env=_env(tmp_path))
        assert done.returncode == 2
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr


def test_image_sbom_is_the_cli_output_and_kept_in_the_cache(manifest: Path, tmp_path: Path) -> None:
    from envpack.manifest import load_manifest
    from envpack.sbom import image_sbom

    raw = manifest.read_bytes()
    made = image_sbom(load_manifest(manifest), raw, 1700000000, tmp_path / "c")
    printed = run_envpack("sbom", str(manifest), env=_env(tmp_path))
    assert made.decode() == printed.stdout
    kept = list((tmp_path / "c" / "sbom").iterdir())
    assert [p.read_bytes() for p in kept] == [made]
    # The next call returns the kept bytes without rendering: marked ones come back marked.
    marked = made + b"\n"
    kept[0].write_bytes(marked)
    assert image_sbom(load_manifest(manifest), raw, 1700000000, tmp_path / "c") == marked
    # No cache: rendered again, the same bytes as the first time, and nothing kept.
    assert image_sbom(load_manifest(manifest), raw, 1700000000, None) == made
    assert [p.read_bytes() for p in (tmp_path / "c" / "sbom").iterdir()] == [marked]
    # Another epoch is another document, kept under another key.
    other = image_sbom(load_manifest(manifest), raw, 1600000000, tmp_path / "c")
    assert b'"2020-09-13T12:26:40' in other
    assert len(list((tmp_path / "c" / "sbom").iterdir())) == 2
