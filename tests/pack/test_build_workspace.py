"""The build workspace beside OUT: renamed into place, or gone however the build ends.

Real child processes are killed with real signals; nothing is faked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from envpack.errors import PackError
from envpack.oci.outputs import TEMP_MARK, remove_stale_temporaries
from envpack.pack.workspace import workspace

_HOLD = """
import sys, time
from pathlib import Path
from envpack.pack.workspace import workspace
with workspace(Path(sys.argv[1])) as space:
    space.path("blob").write_bytes(b"x" * 1000)
    print(space.folder, flush=True)
    time.sleep(120)
"""


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if TEMP_MARK in p.name)


def test_commit_renames_the_result_to_out(tmp_path: Path) -> None:
    out = tmp_path / "image.tar"
    with workspace(out) as space:
        assert space.folder.parent == tmp_path
        assert space.folder.name.startswith(f".image.tar{TEMP_MARK}{os.getpid()}-")
        result = space.path("output")
        result.write_bytes(b"image")
        space.commit(result, force=False)
    assert out.read_bytes() == b"image"
    assert _leftovers(tmp_path) == []


def test_existing_out_is_kept_without_force_and_replaced_with_it(tmp_path: Path) -> None:
    out = tmp_path / "image.oci"
    out.mkdir()
    (out / "old").write_text("old")
    with pytest.raises(PackError, match="exists; give --force"), workspace(out) as space:
        space.path("output").mkdir()
        space.commit(space.path("output"), force=False)
    assert (out / "old").read_text() == "old"
    with workspace(out) as space:
        space.path("output").mkdir()
        (space.path("output") / "new").write_text("new")
        space.commit(space.path("output"), force=True)
    assert sorted(os.listdir(out)) == ["new"]
    assert _leftovers(tmp_path) == []


def test_an_exception_removes_the_workspace(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), workspace(tmp_path / "out") as space:
        space.path("half").write_bytes(b"half")
        raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_a_signal_removes_the_workspace(tmp_path: Path, signum: signal.Signals) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(tmp_path / "out")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    folder = Path(child.stdout.readline().strip())
    assert folder.is_dir()
    child.send_signal(signum)
    _, stderr = child.communicate(timeout=30)
    assert child.returncode != 0
    if signum == signal.SIGTERM:
        assert "Interrupted: signal 15" in stderr, stderr  # unwound like Ctrl-C
    # SIGKILL: the watchdog notices the closed pipe and removes the folder.
    deadline = time.monotonic() + 20
    while os.listdir(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert os.listdir(tmp_path) == []


def test_a_new_build_removes_what_killed_ones_left_beside_out(tmp_path: Path) -> None:
    """One cleaner for a dead build's workspace and a dead writer's half layout or archive."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead = int(done.stdout)
    stale_space = tmp_path / f".image.oci{TEMP_MARK}{dead}-0a1b2c3d"
    (stale_space / "blobs").mkdir(parents=True)
    stale_archive = tmp_path / f".other.tar{TEMP_MARK}{dead}-x1y2"
    stale_archive.write_bytes(b"half an archive")
    alive = tmp_path / f".image.oci{TEMP_MARK}1-0a1b2c3d"  # pid 1 is always alive
    alive.mkdir()
    unrelated = tmp_path / f".image.oci{TEMP_MARK}notapid"
    unrelated.mkdir()
    with workspace(tmp_path / "image.oci") as space:
        mine = space.folder.name
        assert sorted(os.listdir(tmp_path)) == sorted([alive.name, unrelated.name, mine])
        # This process's own temporaries are never stale, even to itself.
        assert remove_stale_temporaries(tmp_path) == []
    assert sorted(os.listdir(tmp_path)) == sorted([alive.name, unrelated.name])


def test_out_in_a_missing_folder_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PackError, match="is not a folder"), workspace(tmp_path / "no" / "out"):
        pass
