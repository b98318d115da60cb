"""`envpack cache info|prune` through the real CLI when the cache folder cannot be one."""

from __future__ import annotations

from pathlib import Path

import pytest

from realenv import run_envpack


@pytest.mark.parametrize("command", ["info", "prune"])
def test_a_cache_dir_that_is_a_file_is_one_line_exit_2(
    command: str, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    not_a_folder = tmp_path / "cache-file"
    not_a_folder.write_text("not a folder\n")
    done = run_envpack("cache", command, env={**clean_env, "ENVPACK_CACHE_DIR": str(not_a_folder)})
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("envpack: error: "), done.stderr
    assert f"{not_a_folder} is not a folder" in lines[0]
    assert not_a_folder.read_text() == "not a folder\n"


def test_an_absent_cache_is_empty_not_an_error(tmp_path: Path, clean_env: dict[str, str]) -> None:
    done = run_envpack(
        "cache", "prune", env={**clean_env, "ENVPACK_CACHE_DIR": str(tmp_path / "x")}
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("removed 0 layers, 0 blobs, 0 builds, 0 B freed")
