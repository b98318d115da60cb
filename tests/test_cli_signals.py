"""`-o` under SIGTERM and Ctrl-C: the old file stays whole, no temporary file is left.

A real ``envpack capture -o`` / ``envpack diff -o`` child process is stopped *mid-write*:
strace holds its ``fsync`` of the temporary file (``inject=fsync:delay_enter``), the test
sees the temporary file beside the target and sends the real signal to the envpack
process. The write cannot have finished before the signal, so what is checked is the
unwinding itself: the temporary file removed, the old target untouched (content and
mode), and the process ended by that same signal.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from realenv import run_envpack

OLD = "previous manifest\n"


def _tracee(strace_pid: int) -> int:
    children = Path(f"/proc/{strace_pid}/task/{strace_pid}/children").read_text().split()
    return int(children[0])


def _signal_mid_write(
    args: list[str], target: Path, signum: int, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run ``envpack ARGS`` held in its fsync; send ``signum`` once its temporary exists."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace(1) is needed to hold the write open")
    proc = subprocess.Popen(
        [
            strace, "-f", "-qq", "--seccomp-bpf", "-o", os.devnull,
            "-e", "trace=fsync", "-e", "inject=fsync:delay_enter=2s",
            sys.executable, "-m", "envpack", *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not list(target.parent.glob(f".{target.name}.*.tmp")):
        if proc.poll() is not None:
            _, err = proc.communicate()
            if "ptrace" in err or "PTRACE" in err:
                pytest.skip(f"this machine does not allow ptrace: {err.strip()}")
            pytest.fail(f"envpack ended before writing its temporary file: {err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("no temporary file appeared within 120 s")
        time.sleep(0.005)
    os.kill(_tracee(proc.pid), signum)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _old_target(tmp_path: Path) -> Path:
    target = tmp_path / "out.json"
    target.write_text(OLD)
    target.chmod(0o600)
    return target


def _assert_untouched(target: Path) -> None:
    assert sorted(p.name for p in target.parent.iterdir() if p.name.startswith(".")) == []
    assert target.read_text() == OLD
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "said"),
    [(signal.SIGTERM, "envpack: terminated"), (signal.SIGINT, "envpack: interrupted")],
)
def test_capture_output_survives_a_signal_mid_write(
    tmp_path: Path, clean_env: dict[str, str], signum: int, said: str
) -> None:
    target = _old_target(tmp_path)
    args = ["capture", "--only", "os", "-q", "-o", str(target)]
    result = _signal_mid_write(args, target, signum, clean_env)
    assert result.returncode == -signum, result.stderr  # ended by the signal itself
    assert result.stderr.strip() == said
    _assert_untouched(target)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_diff_output_survives_a_signal_mid_write(
    tmp_path: Path, clean_env: dict[str, str], signum: int
) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    for label in ("dev", "prod"):
        made = run_envpack(
            "capture", "--only", "os", "-q", "--label", label,
            "-o", str(manifests / f"{label}.json"), env=clean_env,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
    target = _old_target(tmp_path)
    args = ["diff", str(manifests / "dev.json"), str(manifests / "prod.json")]
    result = _signal_mid_write([*args, "--format", "json", "-o", str(target)], target, signum,
                               clean_env)  # fmt: skip
    assert result.returncode == -signum, result.stderr
    _assert_untouched(target)


def test_output_keeps_the_mode_of_the_manifest_it_replaces(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    target = _old_target(tmp_path)
    result = run_envpack("capture", "--only", "os", "-q", "-o", str(target), env=clean_env)
    assert result.returncode == 0, result.stderr
    assert target.read_text() != OLD
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    fresh = tmp_path / "fresh.json"
    result = run_envpack(
        "capture", "--only", "os", "-q", "-o", str(fresh), env=clean_env,
        preexec_fn=lambda: os.umask(0o077),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
