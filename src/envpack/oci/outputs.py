"""Temporary outputs beside OUT: named after the process that makes them, so a later run
can remove what a killed one (SIGKILL, a power cut) left, and nothing else.

A temporary is ``.<OUT name>.envpack-tmp-<pid>-<random>``; it is stale when no process
``<pid>`` runs any more (or when it is this process's own, from a step that failed).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

__all__ = ["TEMP_MARK", "remove_stale_temporaries", "temp_prefix"]

TEMP_MARK = ".envpack-tmp-"


def temp_prefix(out: Path) -> str:
    """The name prefix of this process's temporaries for ``out``."""
    return f".{out.name}{TEMP_MARK}{os.getpid()}-"


def remove_stale_temporaries(out: Path) -> list[Path]:
    """Remove the temporaries beside ``out`` whose process is gone; return them."""
    folder = out.parent if str(out.parent) else Path()
    pattern = re.compile(re.escape(f".{out.name}{TEMP_MARK}") + r"(\d+)-")
    removed: list[Path] = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        match = pattern.match(name)
        if match is None or _alive(int(match.group(1))):
            continue
        path = folder / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                path.unlink()
            except OSError:
                continue
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True
