"""A rootfs changed during the capture: a folder swapped for a symlink to the host, again
and again, must never make a capture read outside the root.

A second process exchanges a folder inside the root with an absolute symlink to a host
folder holding canary files (``renameat2(RENAME_EXCHANGE)``: at every instant the name is
one or the other), as fast as it can, while captures run. Resolving a path as a string and
then opening it by name loses this race within a few hundred captures (the old resolver
did: a canary's file name or content reached the manifest); resolving from descriptors
never does. Both resolvers run: ``openat2(RESOLVE_IN_ROOT)`` and the manual walk.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from strace_paths import opened_paths

from envpack.manifest import dumps
from envpack.redact import Redactor
from envpack.snapshot import rootdir
from envpack.snapshot.capture import capture
from envpack.snapshot.context import CaptureOptions
from envpack.snapshot.source import Source

RACE_SECONDS = 12.0  # per resolver; the old resolver leaked within about a second here
MAX_CAPTURES = 400

# Exchanges NAME and NAME.swap (a folder and a symlink) until killed; prints "ready".
_SWAPPER = textwrap.dedent(
    """
    import ctypes, os, sys
    libc = ctypes.CDLL(None, use_errno=True)
    RENAME_EXCHANGE = 2
    pairs = [(a.encode(), (a + ".swap").encode()) for a in sys.argv[1:]]
    print("ready", flush=True)
    while True:
        for a, b in pairs:
            if libc.renameat2(-100, a, -100, b, RENAME_EXCHANGE) != 0:
                raise OSError(ctypes.get_errno(), "renameat2")
    """
)


class RaceTree:
    def __init__(self, base: Path) -> None:
        self.canary = f"canary{uuid.uuid4().hex}"
        self.root = base / "rootfs"
        self.outside = base / "host-side"
        conf = self.root / "srv/conf"
        conf.mkdir(parents=True)
        (self.root / "etc").mkdir()
        (self.root / "etc/os-release").write_text("ID=race\nVERSION_ID=1\n")
        (conf / "app.ini").write_text("[a]\nnote = inside\n")
        (conf / "b.ini").write_text("[b]\nnote = inside too\n")
        tools = self.root / "usr/local/bin"
        tools.mkdir(parents=True)
        for name in ("tool", "other"):
            (tools / name).write_text("#!/bin/sh\necho inside\n")
            (tools / name).chmod(0o755)
        # The host side: the same names with canary content, plus canary names.
        host_conf = self.outside / "conf"
        host_bin = self.outside / "bin"
        host_conf.mkdir(parents=True)
        host_bin.mkdir()
        for name in ("app.ini", "b.ini", f"{self.canary}.ini"):
            (host_conf / name).write_text(f"[a]\nnote = {self.canary}\n")
        for name in ("tool", "other", self.canary):
            (host_bin / name).write_text(f"#!/bin/sh\necho {self.canary}\n")
            (host_bin / name).chmod(0o755)
        (self.root / "srv/conf.swap").symlink_to(host_conf)
        (self.root / "usr/local/bin.swap").symlink_to(host_bin)
        self.swapped = [str(conf), str(tools)]


@pytest.fixture
def tree(tmp_path: Path) -> RaceTree:
    return RaceTree(tmp_path)


@pytest.fixture
def swapper(tree: RaceTree) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _SWAPPER, *tree.swapped], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.05)
    assert proc.poll() is None, "the swapper stopped: renameat2(RENAME_EXCHANGE) failed"
    yield proc
    proc.kill()
    proc.wait()
    proc.stdout.close()


@pytest.fixture(params=["openat2", "walk"])
def resolver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    name = str(request.param)
    if name == "walk":
        monkeypatch.setenv("ENVPACK_RESOLVE", "walk")
    monkeypatch.setattr(rootdir, "_openat2_works", {})
    return name


OPTIONS = CaptureOptions(
    config_globs=("/srv/conf/*",),
    only=frozenset({"config_files", "binaries"}),
    use_cache=False,
)


@pytest.mark.slow
def test_a_racing_swap_never_leaks_host_files(
    tree: RaceTree, swapper: subprocess.Popen[str], resolver: str
) -> None:
    if resolver == "openat2" and not rootdir.openat2_available():
        Source.rootfs(tree.root)  # decides whether the kernel has openat2
        if not rootdir.openat2_available():
            pytest.skip("this kernel has no openat2 (Linux < 5.6, or filtered by seccomp)")
    redactor = Redactor(b"race")
    deadline = time.monotonic() + RACE_SECONDS
    captures = 0
    inside_seen = 0
    while time.monotonic() < deadline and captures < MAX_CAPTURES:
        text = dumps(capture(Source.rootfs(tree.root), OPTIONS, redactor))
        captures += 1
        assert tree.canary not in text, f"capture {captures} read outside the root"
        inside_seen += "inside" in text or "/srv/conf/app.ini" in text
    assert swapper.poll() is None, "the swapper died: the race did not run"
    print(f"{resolver}: {captures} captures under a racing swap")
    assert captures >= 20
    assert inside_seen > 0  # the captures did read the tree while it was being swapped


@pytest.mark.slow
def test_a_racing_swap_opens_nothing_outside_under_strace(
    tree: RaceTree, swapper: subprocess.Popen[str], resolver: str, tmp_path: Path
) -> None:
    """The real CLI, traced: no open is aimed at or lands in the host-side folder."""
    if subprocess.run(["which", "strace"], capture_output=True, check=False).returncode:
        pytest.skip("strace is not installed (CI: apt-get install strace)")
    env = {**os.environ, "ENVPACK_RESOLVE": "walk" if resolver == "walk" else "openat2"}
    for run in range(4):
        trace = tmp_path / f"trace{run}.txt"
        out = tmp_path / f"out{run}.json"
        result = subprocess.run(
            ["strace", "-f", "-qq", "-y", "-e", "trace=open,openat,openat2", "-o", str(trace),
             sys.executable, "-m", "envpack", "capture", "-q", "--root", str(tree.root),
             "--config", "/srv/conf/*", "--only", "config_files", "--only", "binaries",
             "--no-cache", "-o", str(out)],
            capture_output=True, text=True, timeout=120, env=env, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert tree.canary not in out.read_text()
        json.loads(out.read_text())
        opened = opened_paths(trace.read_text())
        assert any(p.startswith(str(tree.root)) for p in opened), "the trace saw no rootfs read"
        assert not [p for p in opened if p.startswith(str(tree.outside))]
