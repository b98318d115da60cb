"""The podman runner's private storage is removed even when podman left mounts in it.

As root, podman's overlay driver bind-mounts its own folder and mounts each container's
tree; a podman killed mid-run (a probe past its time) can leave them. Here such leftovers
are real mounts made by the test (a bind mount of the driver's folder, a tmpfs inside it,
one under a name with a space, which /proc/self/mountinfo escapes).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from envpack.verify.podman import _base, _remove_store

pytestmark = pytest.mark.slow


def _mounted_under(folder: Path) -> list[str]:
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    return [line.split(" ")[4] for line in lines if line.split(" ")[4].startswith(str(folder))]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("makes real mounts: needs root and mount(8) (CI runs as root)")
    folder = tmp_path / "envpack-podman-store"
    yield folder
    # Whatever the code under test left, the machine is not left with it.
    for point in reversed(_mounted_under(tmp_path)):
        subprocess.run(["umount", "--lazy", point.replace("\\040", " ")], check=False)


def test_mounts_left_in_the_storage_are_detached_and_the_storage_removed(store: Path) -> None:
    overlay = store / "root" / "overlay"
    merged = overlay / "layer one" / "merged"
    merged.mkdir(parents=True)
    subprocess.run(["mount", "--bind", str(overlay), str(overlay)], check=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(merged)], check=True)
    (merged / "file").write_text("in the container's tree")
    assert len(_mounted_under(store)) == 2

    podman = shutil.which("podman") or "podman"  # `podman rm` finds nothing to stop here
    _remove_store(podman, _base(podman, store, store / "run", "overlay"), store)

    assert _mounted_under(store) == []
    assert not store.exists()
