"""Temporaries beside OUT: a killed run's are removed, a live process's and ours are kept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from envpack.oci.outputs import TEMP_MARK, remove_stale_temporaries, temp_prefix


def test_only_dead_processes_temporaries_are_removed(tmp_path: Path) -> None:
    out = tmp_path / "image"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead_pid = int(dead.stdout)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale_dir = tmp_path / f".image{TEMP_MARK}{dead_pid}-abc"
        (stale_dir / "blobs").mkdir(parents=True)
        stale_file = tmp_path / f".image{TEMP_MARK}{dead_pid}-def"
        stale_file.write_bytes(b"half an archive")
        busy = tmp_path / f".image{TEMP_MARK}{live.pid}-ghi"
        busy.mkdir()
        other_out = tmp_path / f".other{TEMP_MARK}{dead_pid}-jkl"
        other_out.mkdir()
        mine = tmp_path / f"{temp_prefix(out)}mno"
        mine.mkdir()
        unrelated = tmp_path / "image.tar"
        unrelated.write_bytes(b"x")
        lookalike = tmp_path / f"image{TEMP_MARK}{dead_pid}-pqr"  # not hidden: not ours
        lookalike.write_bytes(b"x")
        removed = remove_stale_temporaries(out.parent)
        assert removed == sorted([stale_dir, stale_file, other_out])
        assert sorted(os.listdir(tmp_path)) == sorted(
            [busy.name, mine.name, "image.tar", lookalike.name]
        )
    finally:
        live.kill()
        live.wait()


def test_this_process_names_its_temporaries(tmp_path: Path) -> None:
    assert temp_prefix(tmp_path / "out") == f".out{TEMP_MARK}{os.getpid()}-"
