"""A build's temporary folder beside OUT, which no way of stopping the build leaves behind.

Everything a build writes goes into ``.<OUT name>.envpack-tmp-<pid>-<hex>`` in OUT's folder
(same file system, so the finished output is renamed into place, never copied). It is
removed:

- on any exception, Ctrl-C and SIGTERM by the ``with`` block (the CLI turns both signals
  into an exception; elsewhere, SIGTERM left at its default becomes :class:`Interrupted`
  while the build runs);
- on SIGKILL by a watchdog: a tiny child process in its own session that blocks reading a
  pipe from the build and, once the pipe closes (the kernel closes it however the build
  died), removes the folder;
- should even the watchdog be killed, by the next build into the same folder, which
  removes every envpack temporary there whose process is gone
  (:func:`envpack.oci.outputs.remove_stale_temporaries`, the one cleaner).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from envpack.errors import PackError
from envpack.oci.outputs import remove_stale_temporaries, temp_prefix

__all__ = ["Interrupted", "Workspace", "workspace"]

# Runs in the watchdog: reading stdin returns once every copy of the pipe's write end is
# closed, i.e. when the build process has exited, whatever the way.
_WATCHDOG = (
    "import shutil,sys;sys.stdin.buffer.read();shutil.rmtree(sys.argv[1],ignore_errors=True)"
)


class Workspace:
    """The temporary folder of one build and the rename of its result to OUT."""

    def __init__(self, out: Path, folder: Path) -> None:
        self.out = out
        self.folder = folder

    def path(self, name: str) -> Path:
        """A path inside the workspace."""
        return self.folder / name

    def commit(self, result: Path, *, force: bool) -> None:
        """Move ``result`` (a file or folder in the workspace) to OUT, atomically.

        With ``force`` an existing OUT is first moved into the workspace, which then
        removes it; without, an OUT that appeared during the build is still refused.
        """
        if os.path.lexists(self.out):
            if not force:
                raise PackError(f"{self.out} exists; give --force to replace it")
            os.rename(self.out, self.path("previous-output"))
        os.rename(result, self.out)


class Interrupted(KeyboardInterrupt):
    """SIGTERM arrived during a build: unwinds like Ctrl-C, so every cleanup runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def workspace(out: Path) -> Iterator[Workspace]:
    """A fresh workspace beside ``out``, removed when the block ends, however it ends."""
    parent = out.parent if str(out.parent) else Path()
    if not parent.is_dir():
        raise PackError(f"cannot write {out}: {parent} is not a folder")
    remove_stale_temporaries(parent)
    folder = parent / f"{temp_prefix(out)}{secrets.token_hex(4)}"
    try:
        folder.mkdir(mode=0o700)
    except OSError as err:
        raise PackError(f"cannot write {out}: {err.strerror or err}") from err
    watchdog = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", _WATCHDOG, str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C to the build's process group spares it
    )
    # Only where nobody handles SIGTERM yet (the CLI does): its default would kill the
    # process without running any cleanup.
    own = (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    )
    if own:
        signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield Workspace(out, folder)
    finally:
        if own:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        shutil.rmtree(folder, ignore_errors=True)
        if watchdog.stdin is not None:
            watchdog.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            watchdog.wait(timeout=10)
