"""A hostile rootfs: the real CLI must finish, record each trap, and read nothing outside.

The tree is built at test time (git cannot store FIFOs, sockets or device nodes):

- ``etc/resolv.conf`` and the CA bundle are FIFOs: opening one for reading would block
  forever, so a capture that hangs fails on the subprocess timeout;
- ``etc/console`` is a character device, ``etc/agent.sock`` a Unix socket;
- ``etc/hosts`` is an absolute symlink and ``etc/escape`` a ``../../..`` symlink, both
  aimed at a canary file *outside* the root, and ``etc/shadow-link -> /etc/shadow``;
- ``etc/loop-a``/``etc/loop-b`` point at each other;
- ``etc/nsswitch.conf`` is a folder where a file is expected;
- ``etc/locked.conf`` has mode 000. Root reads it anyway (CAP_DAC_OVERRIDE), so a second
  run drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the capture process (prctl
  PR_CAPBSET_DROP before exec) to see the unreadable-file path; a setresuid to nobody
  would not do, since this machine's interpreters live under /root (mode 0700).
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from strace_paths import opened_paths

from envpack.manifest import schema_text

TIMEOUT = 60  # seconds; a capture blocked on a FIFO or device fails here instead of hanging
PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2


class Tree:
    def __init__(self, base: Path) -> None:
        self.root = base / "rootfs"
        self.outside = base / "outside"
        self.canary_text = f"CANARY-HOST-FILE-{uuid.uuid4().hex}"
        self.canary = self.outside / "canary-secret.conf"
        self.device = False


def build(base: Path) -> Tree:
    tree = Tree(base)
    etc = tree.root / "etc"
    (etc / "ssl/certs").mkdir(parents=True)
    tree.outside.mkdir()
    tree.canary.write_text(f"[s]\npassword_hint = {tree.canary_text}\n")
    (etc / "os-release").write_text('ID=hostile\nNAME="Hostile Linux"\nVERSION_ID="1"\n')
    (etc / "hostname").write_text("hostile\n")
    os.mkfifo(etc / "resolv.conf")
    os.mkfifo(etc / "ssl/certs/ca-certificates.crt")
    try:
        os.mknod(etc / "console", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
        tree.device = True
    except PermissionError:
        tree.device = False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(etc / "agent.sock"))  # the file stays after close
    (etc / "hosts").symlink_to(tree.canary)  # absolute, at an existing host file
    depth = "../" * (len(tree.root.parts) + 2)
    (etc / "escape").symlink_to(depth + str(tree.canary).lstrip("/"))
    (etc / "passwd-escape").symlink_to("../../../../etc/passwd")
    (etc / "shadow-link").symlink_to("/etc/shadow")
    (etc / "loop-a").symlink_to("loop-b")
    (etc / "loop-b").symlink_to("loop-a")
    (etc / "nsswitch.conf").mkdir()
    (etc / "locked.conf").write_text("[x]\ny = 1\n")
    (etc / "locked.conf").chmod(0o000)
    return tree


def envpack(
    *args: str, cwd: Path, prefix: tuple[str, ...] = (), drop_dac: bool = False
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    return subprocess.run(
        [*prefix, sys.executable, "-m", "envpack", "capture", "-q", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=cwd,
        env=env,
        check=False,
        preexec_fn=_drop_dac if drop_dac else None,
    )


def _drop_dac() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def issues(document: dict[str, Any], path: str) -> list[str]:
    return [i["reason"] for i in document["issues"] if i["path"] == path]


@pytest.mark.slow
def test_hostile_rootfs_full_capture(tmp_path: Path) -> None:
    tree = build(tmp_path)
    out = tmp_path / "out.json"
    result = envpack("--root", str(tree.root), "--config", "/etc/*", "-o", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert tree.canary_text not in text
    document = json.loads(text)
    jsonschema.validate(document, json.loads(schema_text()))
    files = document["config_files"]

    assert files["/etc/resolv.conf"]["type"] == "fifo"
    assert "sha256" not in files["/etc/resolv.conf"]  # recorded by type, never opened
    assert files["/etc/ssl/certs/ca-certificates.crt"]["type"] == "fifo"
    assert files["/etc/agent.sock"]["type"] == "socket"
    if tree.device:
        assert files["/etc/console"]["type"] == "char-device"
        assert "sha256" not in files["/etc/console"]
    # Symlinks out of the root resolve inside it, where nothing is: recorded, not followed.
    hosts = files["/etc/hosts"]
    assert (hosts["type"], hosts["link"]) == ("symlink", str(tree.canary))
    assert hosts["resolved"] == str(tree.canary)  # the same path, but inside the root
    assert hosts["target_type"] == "missing"
    escape = files["/etc/escape"]
    assert (escape["resolved"], escape["target_type"]) == (str(tree.canary), "missing")
    passwd = files["/etc/passwd-escape"]
    assert (passwd["resolved"], passwd["target_type"]) == ("/etc/passwd", "missing")
    assert files["/etc/shadow-link"]["target_type"] == "missing"
    for loop in ("/etc/loop-a", "/etc/loop-b"):
        assert files[loop]["target_type"] == "unresolvable"
        assert any("symbolic links" in reason for reason in issues(document, loop))
    assert files["/etc/nsswitch.conf"]["type"] == "dir"
    assert files["/etc/locked.conf"]["mode"] == "0000"
    assert files["/etc/os-release"]["format"] == "keyvalue"
    assert files["/etc/os-release"]["keys"]["ID"] == "hostile"

    network = document["network"]
    assert network["hostname"]["hostname"] == "hostile"
    assert network["dns"]["nameservers"] == []
    net_issues = [i for i in document["issues"] if i["probe"] == "network"]
    assert {i["path"] for i in net_issues} >= {"/etc/resolv.conf", "/etc/nsswitch.conf"}
    assert network["hosts"]["entries"] == []
    assert network["live_only"] == {"not_applicable": "offline capture of a rootfs"}


@pytest.mark.slow
def test_unreadable_file_is_an_issue_without_dac_override(tmp_path: Path) -> None:
    tree = build(tmp_path)
    private = tree.root / "etc/private"
    private.mkdir()
    (private / "app.ini").write_text("[a]\nb = 1\n")
    private.chmod(0o000)
    out = tmp_path / "out.json"
    result = envpack(
        "--root", str(tree.root), "--only", "config_files", "--only", "network",
        "--config", "/etc/*", "--config", "/etc/private/*.ini", "-o", str(out),
        cwd=tmp_path, drop_dac=True,
    )  # fmt: skip
    private.chmod(0o755)  # so that pytest can clean tmp_path
    assert result.returncode == 0, result.stderr
    document = json.loads(out.read_text())
    locked = document["config_files"]["/etc/locked.conf"]
    assert locked["type"] == "file"
    assert "keys" not in locked and "sha256" not in locked
    assert issues(document, "/etc/locked.conf") == [
        "cannot read: /etc/locked.conf: Permission denied"
    ]
    assert issues(document, "/etc/private/*.ini") == ["/etc/private: Permission denied"]


@pytest.mark.slow
def test_nothing_outside_the_root_is_opened(tmp_path: Path) -> None:
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed (CI: apt-get install strace)")
    tree = build(tmp_path)
    trace = tmp_path / "trace.txt"
    strace = ("strace", "-f", "-qq", "-y", "-e", "trace=open,openat,openat2", "-o", str(trace))
    out = tmp_path / "out.json"
    args = ("--root", str(tree.root), "--config", "/etc/*", "-o", str(out))
    result = envpack(*args, cwd=tmp_path, prefix=strace)
    assert result.returncode == 0, result.stderr
    opened = opened_paths(trace.read_text())
    assert any(p.startswith(str(tree.root)) for p in opened), "the trace saw no rootfs read"
    # The host's counterparts of every name in the root's /etc, and the links' targets.
    forbidden = {f"/etc/{name}" for name in os.listdir(tree.root / "etc")}
    forbidden |= {"/etc/shadow", "/etc/passwd", str(tree.canary), str(tree.outside)}
    assert sorted(opened & forbidden) == []
    assert not [p for p in opened if p.startswith(str(tree.outside))]
    # Nothing inside the root was opened through a device, FIFO or socket either.
    specials = ("resolv.conf", "ssl/certs/ca-certificates.crt", "console", "agent.sock")
    assert not [p for p in opened for s in specials if p == str(tree.root / "etc" / s)]
