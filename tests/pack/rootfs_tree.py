"""Write a plan's files into a plain folder, for the chroot checks of the planner's tests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from envpack.pack.plan import Plan

__all__ = ["write_tree"]


def write_tree(plan: Plan, root: Path) -> None:
    """Every entry of ``plan`` under ``root`` (files copied, links kept, modes set)."""
    dirs: list[tuple[Path, int]] = []
    for planned in plan.files:
        entry = planned.entry
        target = root / entry.path.lstrip("/")
        if entry.kind == "dir":
            target.mkdir(parents=True, exist_ok=True)
            dirs.append((target, entry.mode))
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if entry.kind == "symlink":
            os.symlink(entry.linkname, target)
        elif entry.kind == "hardlink":
            os.link(root / entry.linkname.lstrip("/"), target)
        else:
            assert entry.open is not None
            with entry.open() as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.chmod(target, entry.mode)
            os.utime(target, (entry.mtime, entry.mtime))
    for folder, mode in reversed(dirs):
        os.chmod(folder, mode)
