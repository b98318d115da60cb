"""The paths an strace -y trace shows a process opening (for the root-boundary tests)."""

from __future__ import annotations

import os
import re

# openat(AT_FDCWD</cwd>, "path", …) or openat(5</dir>, "name", …) as written by strace -y.
_OPEN = re.compile(r'\bopen(?:at2?)?\((?:(?:AT_FDCWD|\d+)(?:<(?P<dir>[^>]*)>)?, )?"(?P<p>[^"]*)"')
# "= 7</real/path>": what an open that succeeded actually reached.
_RESULT = re.compile(r"= \d+<(?P<got>[^>]*)>$")


def opened_paths(trace: str) -> set[str]:
    """Every path the traced processes tried to open, made absolute with ``-y`` fd names.

    ``openat2(dir, "p", {… RESOLVE_IN_ROOT …})`` is resolved by the kernel as if ``dir``
    were ``/``: its path is ``dir`` + ``p`` with ``..`` held at ``dir``. The path an open
    that succeeded really reached (``= 7</path>``) is added too.
    """
    found = set()
    for line in trace.splitlines():
        match = _OPEN.search(line)
        if match is None:
            continue
        path = match["p"]
        if "RESOLVE_IN_ROOT" in line and match["dir"]:
            path = match["dir"] + os.path.normpath("/" + path)
        elif not path.startswith("/") and match["dir"]:
            path = os.path.join(match["dir"], path)
        found.add(os.path.normpath(path))
        result = _RESULT.search(line)
        if result is not None:
            found.add(result["got"])
    return found
