"""An image's merged tree written out as a rootfs folder, for bubblewrap to run its probe.

What is written is the capture's own view of the image (:mod:`envpack.oci.view`): the
layers already applied with their whiteouts and opaque folders, and every hostile entry
already neutralised there (names climbing out dropped, absolute names and writes through
symlinks placed inside the image, hardlinks outside dropped). So this module only writes
that tree, into a new folder inside envpack's temporary folder for the image:

- every path written is a real path of the view, whose parents are folders this module
  made itself: nothing is written through a symlink (files are created ``O_EXCL`` and
  ``O_NOFOLLOW``), and a symlink's target, the image's own text, is only ever followed
  by the sandboxed interpreter, inside the sandbox's root;
- device nodes, FIFOs and sparse files are not created (bubblewrap gives the sandbox its
  own ``/dev``; ``/proc`` and ``/dev`` are made as empty folders when the image has none,
  as a container runtime makes its mount points); the setuid and setgid bits are dropped,
  and owners are not set: the folder lies in a ``0o700`` temporary folder of envpack's,
  the probe runs with no new privileges, and its answer does not depend on them;
- a file whose bytes envpack already holds alone in a file of its own (a large member of a
  compressed layer) is hard-linked, not copied; others are copied from their layer.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from envpack.errors import UsageError

if TYPE_CHECKING:
    from envpack.snapshot.imagesource import ImageSource

__all__ = ["make_removable", "unpack_rootfs"]

_MOUNT_POINTS = ("proc", "dev")
_MODE_BITS = 0o1777  # permissions and the sticky bit; never setuid or setgid
_SKIPPED = {
    "char-device": "device nodes",
    "block-device": "device nodes",
    "fifo": "FIFOs",
}


def unpack_rootfs(source: ImageSource, target: Path) -> list[str]:
    """Write the image of ``source`` at ``target`` (a new folder); notes of what was left out.

    Raises :class:`UsageError` (one line) when the tree cannot be written.
    """
    writer = _Writer(source, target)
    try:
        os.mkdir(target, 0o700)
        writer.write_all()
    except OSError as err:
        where = f" ({err.filename})" if err.filename else ""
        raise UsageError(
            f"cannot unpack the image for bwrap: {err.strerror or err}{where}"
        ) from err
    if not writer.skipped:
        return []
    what = ", ".join(f"{count} {kind}" for kind, count in sorted(writer.skipped.items()))
    return [f"interpreters: not created in the tree bwrap runs: {what} of the image"]


class _Writer:
    def __init__(self, source: ImageSource, target: Path) -> None:
        self.source = source
        self.view = source.view
        self.target = target
        self.skipped: Counter[str] = Counter()
        self.folders: list[tuple[str, int]] = []
        self.written: dict[int, str] = {}  # id(node) → where it was written (hardlinks)

    def write_all(self) -> None:
        pending = ["/"]
        while pending:
            folder = pending.pop()
            for name in self.view.listdir(folder):
                inner = posixpath.join(folder, name)
                if self._write(inner):
                    pending.append(inner)
        for name in _MOUNT_POINTS:  # bwrap mounts these; a read-only root cannot make them
            host = os.path.join(self.target, name)
            if not os.path.lexists(host):
                os.mkdir(host, 0o755)
        # Modes last, deepest first: a read-only folder is filled before it is closed.
        for host, mode in reversed(self.folders):
            os.chmod(host, mode & _MODE_BITS)
        os.chmod(self.target, self.view.nodes["/"].mode & _MODE_BITS)

    def _write(self, inner: str) -> bool:
        """Write one entry; whether it is a folder to descend into."""
        node = self.view.nodes.get(inner)
        if node is None:
            return False
        host = os.path.join(self.target, inner.lstrip("/"))
        if node.kind == "dir":
            os.mkdir(host, 0o700)
            self.folders.append((host, node.mode))
            return True
        if node.kind == "symlink":
            os.symlink(node.target, host)
        elif node.kind == "file" and node.data is not None:
            first = self.written.get(id(node))
            if first is not None:
                os.link(first, host)
            else:
                self.source.export_file(node, Path(host))
                os.chmod(host, node.mode & _MODE_BITS)
                self.written[id(node)] = host
        else:
            self.skipped[_SKIPPED.get(node.kind, "sparse files")] += 1
        return False


def make_removable(target: Path) -> None:
    """Give every folder of the tree its owner's write and search bits back, so the image's
    temporary folder can be removed by a user without root (an image's ``0o555`` folders,
    such as ``/proc`` in many base images, would keep their entries otherwise)."""
    for folder, dirs, _ in os.walk(target):
        for name in dirs:
            path = os.path.join(folder, name)
            with contextlib.suppress(OSError):
                if not os.path.islink(path):
                    os.chmod(path, 0o700)
