"""Temporaries beside OUT: named after the process that makes them, so a later run can
remove what a killed one (SIGKILL, a power cut) left, and nothing else.

Everything envpack writes beside an output before renaming it into place — a build's
workspace, an OCI layout or image archive in the making — is named
``.<OUT name>.envpack-tmp-<pid>-<random>``; it is stale when no process ``<pid>`` runs any
more. :func:`remove_stale_temporaries` is the one cleaner of them all.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path

__all__ = ["TEMP_MARK", "remove_stale_temporaries", "temp_prefix"]

TEMP_MARK = ".envpack-tmp-"
_NAME = re.compile(r"\..*" + re.escape(TEMP_MARK) + r"(\d+)-")


def temp_prefix(out: Path) -> str:
    """The name prefix of this process's temporaries for ``out``."""
    return f".{out.name}{TEMP_MARK}{os.getpid()}-"


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Remove the temporaries in ``folder`` whose process is gone (whatever OUT they were
    for); return them, sorted. This process's own and live processes' are kept."""
    removed: list[Path] = []
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            match = _NAME.match(entry.name)
            if match is None or _alive(int(match.group(1))):
                continue
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path, ignore_errors=True)
            else:
                try:
                    path.unlink()
                except OSError:
                    continue
            removed.append(path)
    return sorted(removed)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # ours: another step of this process may be using it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True
