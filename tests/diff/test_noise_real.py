"""Noise: what says how a capture was started is not drift; ``--probe-versions`` records
only what looks like a version.

Real captures: one real venv, activated in a real ``bash`` and captured from two folders
(the shell sets ``PWD``, ``OLDPWD``, ``SHLVL`` and ``_`` as it would for a user); real
programs run with ``--version``.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from envpack.diff.compare import compare
from envpack.diff.model import Severity
from envpack.diff.severity import is_session_variable
from envpack.manifest import load_manifest
from envpack.snapshot.binaries import looks_like_version

BASE_PYTHON = shutil.which("python3", path="/usr/bin:/bin") or sys.executable


@pytest.mark.parametrize(
    "name",
    [
        "PWD",
        "OLDPWD",
        "SHLVL",
        "_",
        "TERM",
        "COLUMNS",
        "LINES",
        "SSH_CONNECTION",
        "SSH_TTY",
        "XDG_SESSION_ID",
        "TMUX",
        "WINDOWID",
        "DISPLAY",
        "DBUS_SESSION_BUS_ADDRESS",
    ],
)
def test_session_variables_are_info(name: str) -> None:
    assert is_session_variable(name)


@pytest.mark.parametrize("name", ["PATH", "HOME", "USER", "LANG", "TZ", "TERMINFO", "PWDX"])
def test_variables_that_change_behaviour_are_not(name: str) -> None:
    assert not is_session_variable(name)


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_one_venv_captured_from_two_folders_passes_fail_on_minor(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([BASE_PYTHON, "-m", "venv", "--without-pip", str(venv)], check=True)
    outputs = []
    for folder in ("src", "docs/build"):
        cwd = tmp_path / folder
        cwd.mkdir(parents=True)
        out = tmp_path / f"{folder.replace('/', '-')}.json"
        envpack = f"{shlex.quote(sys.executable)} -m envpack"
        script = (
            f". {shlex.quote(str(venv))}/bin/activate && cd {shlex.quote(str(cwd))} && "
            f"{envpack} capture -q --only python_packages --only env -o {shlex.quote(str(out))}"
        )
        subprocess.run(["bash", "-c", script], check=True, cwd=tmp_path, env=_login_like())
        outputs.append(out)
    a, b = (load_manifest(p) for p in outputs)
    assert a.section("env")["PWD"]["value"] != b.section("env")["PWD"]["value"]
    env_rows = [c for c in compare(a, b).changes if c.section == "env"]
    assert {c.key for c in env_rows} >= {"PWD"}
    assert {c.severity for c in env_rows} == {Severity.INFO}, [c.reason for c in env_rows]
    gate = subprocess.run(
        [sys.executable, "-m", "envpack", "diff", *map(str, outputs), "--fail-on", "minor"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert gate.returncode == 0, gate.stdout + gate.stderr


def _login_like() -> dict[str, str]:
    """What a terminal login passes on (no PWD: the shell sets it, as it does for a user)."""
    keep = ("HOME", "USER", "LANG", "ENVPACK_REDACT_KEY", "ENVPACK_CACHE_DIR")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(PATH="/usr/bin:/bin", TERM="xterm-256color", SHLVL="1", COLUMNS="80")
    return env


def test_probe_versions_keeps_versions_and_turns_errors_into_issues(tmp_path: Path) -> None:
    """Real programs: GNU gzip answers with a version; dash and ssh answer --version with
    an error (exit status 2 and 255); a program printing its usage exits 0 without one."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wanted = {"gzip": "/bin/gzip", "dash": "/bin/dash", "ssh": "/usr/bin/ssh"}
    present = {name: path for name, path in wanted.items() if Path(path).exists()}
    if "gzip" not in present or len(present) < 2:
        pytest.skip("gzip and dash or ssh are needed")
    for name, path in present.items():
        (bin_dir / name).symlink_to(path)
    usage = bin_dir / "helpless"
    usage.write_text("#!/bin/sh\necho 'usage: helpless [-h] FILE'\n")
    usage.chmod(0o755)
    out = tmp_path / "m.json"
    flags = ["-q", "--only", "binaries", "--probe-versions", "--no-cache"]
    subprocess.run(
        [sys.executable, "-m", "envpack", "capture", *flags, "-o", str(out)],
        check=True,
        env={**os.environ, "PATH": str(bin_dir)},
    )
    document = json.loads(out.read_text())
    binaries = document["binaries"]
    assert binaries["gzip"]["version"].startswith("gzip 1.")
    issues = {i["path"]: i["reason"] for i in document["issues"] if i["probe"] == "binaries"}
    for name in [*present.keys() - {"gzip"}, "helpless"]:
        assert binaries[name]["version"] is None, binaries[name]
        assert issues[str(bin_dir / name)].startswith("--version "), issues
    if "dash" in present:
        assert issues[str(bin_dir / "dash")].startswith("--version failed (exit status 2)")
    assert issues[str(bin_dir / "helpless")] == (
        "--version printed no version: usage: helpless [-h] FILE"
    )


@pytest.mark.parametrize(
    ("line", "version"),
    [
        ("gzip 1.12", True),
        ("less 590 (GNU regular expressions)", True),
        ("xxd 2022-01-14 by Juergen Weigert et al.", True),
        ("BusyBox v1.36.1 (2023-11-07 09:39:50 UTC) multi-call binary.", True),
        ("dash: 0: Illegal option --", False),
        ("unknown option -- -", False),
        ("tool: error while loading shared libraries: libx.so.1: cannot open", False),
        ("usage: tool [-h]", False),
    ],
)
def test_what_looks_like_a_version(line: str, version: bool) -> None:
    assert looks_like_version(line) is version
