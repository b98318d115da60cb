"""The live interpreters probe, against the real interpreters of this machine.

Truth comes from the target itself by other routes: ``sys.version`` / ``os.uname()`` in a
separate run, and ``packaging.markers.default_environment()`` / ``packaging.tags``
computed INSIDE the target (its own packaging, or pip's vendored copy).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from envpack.errors import UsageError
from envpack.manifest import Manifest, loads
from envpack.redact import Redactor
from envpack.snapshot.capture import capture
from envpack.snapshot.context import CaptureOptions
from envpack.snapshot.interpreters import (
    default_interpreter,
    describe,
    resolve_python_arg,
    timeout_from_environ,
)
from envpack.snapshot.source import Source
from realenv import pyenv_python, pypy_python, run_envpack

PYENV_VERSIONS = ("2.7", "3.9", "3.11", "3.13")

# Runs inside the target (2.7-compatible): the facts a probe must agree with, by routes
# the probe does not take (sys.version text, os.uname).
TRUTH_SCRIPT = """
import json, os, sys
u = os.uname()
print(json.dumps({
    "version": sys.version.split()[0],
    "version_info": list(sys.version_info),
    "prefix": sys.prefix,
    "base_prefix": getattr(sys, "real_prefix", getattr(sys, "base_prefix", sys.prefix)),
    "executable": sys.executable,
    "path": sys.path[1:],
    "uname": list(u),
    "sys_platform": sys.platform,
    "maxunicode": sys.maxunicode,
}))
"""

# packaging's own answer, inside the target, where it can be imported.
PACKAGING_SCRIPT = """
import json
try:
    from packaging.markers import default_environment
    from packaging import tags
except ImportError:
    from pip._vendor.packaging.markers import default_environment
    from pip._vendor.packaging import tags
tag = next(iter(tags.sys_tags()))
print(json.dumps({"markers": default_environment(), "interpreter": tag.interpreter,
                  "abi": tag.abi}))
"""


def _interpreter(name: str) -> Path:
    found = pypy_python() if name == "pypy3" else pyenv_python(name)
    if found is None:
        what = "Debian's pypy3 (apt-get install pypy3)" if name == "pypy3" else f"CPython {name}"
        pytest.skip(f"{what} is not installed")
    return found


def _run_json(python: Path, script: str, env: dict[str, str] | None = None) -> Any:
    out = subprocess.run(
        [str(python), "-c", script],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd="/",
        timeout=60,
    )
    if out.returncode != 0:
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.pop("VIRTUAL_ENV", None)
    return env


def _capture(options: CaptureOptions, environ: dict[str, str]) -> Manifest:
    return capture(
        Source.live(environ),
        options,
        Redactor(b"k" * 32),
        environ={"SOURCE_DATE_EPOCH": "0"},
    )


@pytest.mark.parametrize("name", [*PYENV_VERSIONS, "pypy3"])
def test_probe_agrees_with_the_interpreter_itself(name: str) -> None:
    python = _interpreter(name)
    env = _clean_env()
    truth = _run_json(python, TRUTH_SCRIPT, env)
    assert truth is not None
    got = describe(str(python), env, timeout=60)

    assert got["source"] == "probe"
    assert got["version"] == truth["version"]
    assert got["version_info"] == truth["version_info"]
    assert got["version"].startswith(name if name != "pypy3" else "3.")
    assert got["implementation"] == ("pypy" if name == "pypy3" else "cpython")
    assert got["executable"] == truth["executable"] == str(python)
    assert got["real_executable"] == os.path.realpath(python)
    assert got["prefix"] == truth["prefix"]
    assert got["base_prefix"] == truth["base_prefix"] == got["prefix"]
    assert got["virtualenv"] is False
    # sys.path as the interpreter has it, minus the "" that -c puts first.
    assert got["sys_path"] == truth["path"]
    assert "" not in got["sys_path"]
    assert got["site_packages"], "every interpreter here has a site folder"
    assert all(entry in got["sys_path"] for entry in got["site_packages"])
    assert any(p.endswith(("site-packages", "dist-packages")) for p in got["site_packages"])
    uname = truth["uname"]
    assert got["platform"] == f"linux-{uname[4]}"
    markers = got["markers"]
    assert markers["python_full_version"] == truth["version"]
    assert markers["python_version"] == "{}.{}".format(*truth["version_info"][:2])
    assert markers["platform_machine"] == uname[4]
    assert markers["platform_system"] == uname[0]
    assert markers["platform_release"] == uname[2]
    assert markers["platform_version"] == uname[3]
    assert markers["sys_platform"] == truth["sys_platform"]
    assert markers["os_name"] == "posix"

    packaging_says = _run_json(python, PACKAGING_SCRIPT, env)
    if truth["version_info"][0] == 2:
        # PEP 508 on Python 2 (no sys.implementation); abi flags from the build.
        assert markers["implementation_name"] == ""
        assert markers["implementation_version"] == "0"
        wide = "u" if truth["maxunicode"] == 0x10FFFF else ""
        assert got["abi_tag"] == "cp27m" + wide
        assert got["interpreter_tag"] == "cp27"
        assert got["ext_suffix"] == ".so"
        assert got["soabi"] is None
    else:
        assert packaging_says is not None, f"{python} has neither packaging nor pip"
        assert markers == packaging_says["markers"]
        assert got["interpreter_tag"] == packaging_says["interpreter"]
        assert got["abi_tag"] == packaging_says["abi"]
        assert got["ext_suffix"].endswith(".so")
        assert got["soabi"] in got["ext_suffix"]


def test_pythonpath_counts_and_the_probe_cwd_does_not(tmp_path: Path) -> None:
    python = _interpreter("3.11")
    extra = tmp_path / "extra"
    extra.mkdir()
    # sitecustomize printing to stdout: the probe's answer must survive the noise.
    (extra / "sitecustomize.py").write_text("print('noise from sitecustomize {')\n")
    env = _clean_env()
    env["PYTHONPATH"] = str(extra)
    got = describe(str(python), env, timeout=60)
    assert got["sys_path"][0] == str(extra)
    assert not any("envpack-probe-" in entry for entry in got["sys_path"])
    assert os.getcwd() not in got["sys_path"]


def test_a_relative_pythonpath_reads_as_from_the_users_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``PYTHONPATH=src`` run from a project folder: the app sees ``<folder>/src``; the
    probe, in a temporary folder of its own, must report the same, not its own path."""
    python = _interpreter("3.11")
    (tmp_path / "src").mkdir()
    monkeypatch.chdir(tmp_path)
    env = _clean_env()
    env["PYTHONPATH"] = os.pathsep.join(["src", str(tmp_path / "abs")])
    got = describe(str(python), env, timeout=60)
    assert got["sys_path"][:2] == [str(tmp_path / "src"), str(tmp_path / "abs")]
    assert not any("envpack-probe-" in entry for entry in got["sys_path"])


@pytest.mark.slow
def test_dev_and_prod_virtualenvs_through_the_cli(
    dev_venv: Path, prod_venv: Path, clean_env: dict[str, str]
) -> None:
    expected = {dev_venv: ("3.11", "3.11"), prod_venv: ("2.7", "2.7")}
    for venv, (version, pyenv_version) in expected.items():
        result = run_envpack(
            "capture", "--python", str(venv), "--only", "interpreters", "-q", env=clean_env
        )
        assert result.returncode == 0, result.stderr
        manifest = loads(result.stdout)
        assert manifest.issues == []
        section = manifest.section("interpreters")
        assert list(section) == [str(venv)]
        entry = section[str(venv)]
        base = pyenv_python(pyenv_version)
        assert base is not None
        venv_dir = venv.parent.parent
        assert entry["primary"] is True
        assert entry["version"].startswith(version + ".")
        assert entry["markers"]["python_version"] == version
        assert entry["virtualenv"] is True
        assert entry["prefix"] == str(venv_dir)
        assert entry["base_prefix"] == str(base.parent.parent)
        site = str(venv_dir / "lib" / f"python{version}" / "site-packages")
        assert site in entry["site_packages"]
        assert site in entry["sys_path"]
    _validate_against_schema(result.stdout)


def _validate_against_schema(text: str) -> None:
    import jsonschema

    from envpack.manifest import schema_text

    jsonschema.validate(json.loads(text), json.loads(schema_text()))


@pytest.mark.slow
def test_default_is_the_active_virtualenv(dev_venv: Path, clean_env: dict[str, str]) -> None:
    env = dict(clean_env)
    env["VIRTUAL_ENV"] = str(dev_venv.parent.parent)
    result = run_envpack("capture", "--only", "interpreters", "-q", env=env)
    assert result.returncode == 0, result.stderr
    section = loads(result.stdout).section("interpreters")
    assert list(section) == [str(dev_venv)]
    assert section[str(dev_venv)]["version"].startswith("3.11.")
    assert section[str(dev_venv)]["primary"] is True


def test_default_without_virtualenv_is_python3_on_path(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    python39 = _interpreter("3.9")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(python39)
    env = dict(clean_env)
    env["PATH"] = f"{bin_dir}:{env.get('PATH', os.defpath)}"
    result = run_envpack("capture", "--only", "interpreters", "-q", env=env)
    assert result.returncode == 0, result.stderr
    section = loads(result.stdout).section("interpreters")
    key = str(bin_dir / "python3")
    assert list(section) == [key]
    # python3 on the captured PATH, not envpack's own interpreter (3.11 here).
    assert section[key]["version"].startswith("3.9.")
    assert section[key]["real_executable"] == os.path.realpath(python39)


def test_default_selection_rules(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    exe = venv / "bin" / "python"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    path = os.environ.get("PATH", os.defpath)
    assert default_interpreter({"VIRTUAL_ENV": str(venv), "PATH": path}) == str(exe)
    assert default_interpreter({"PATH": path}) == shutil.which("python3", path=path)
    assert default_interpreter({"PATH": str(tmp_path)}) is None
    # An active virtualenv without a python falls back to PATH.
    exe.unlink()
    assert default_interpreter({"VIRTUAL_ENV": str(venv), "PATH": path}) == shutil.which(
        "python3", path=path
    )


def test_python_arguments(tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", os.defpath)}
    assert resolve_python_arg("python3", env) == shutil.which("python3")
    with pytest.raises(UsageError, match="no such file"):
        resolve_python_arg(str(tmp_path / "nope" / "python"), env)
    with pytest.raises(UsageError, match="not found on PATH"):
        resolve_python_arg("no-such-python-here", env)
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    (tmp_path / "venv" / "bin" / "python").write_text("")
    assert resolve_python_arg(str(tmp_path / "venv"), env) == str(
        tmp_path / "venv" / "bin" / "python"
    )


def test_missing_python_is_exit_2_in_one_line(tmp_path: Path, clean_env: dict[str, str]) -> None:
    missing = tmp_path / "no" / "python"
    result = run_envpack(
        "capture", "--python", str(missing), "--only", "interpreters", env=clean_env
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip() == f"envpack: error: --python {missing}: no such file"


def test_bad_timeout_variable_is_exit_2(clean_env: dict[str, str]) -> None:
    env = dict(clean_env)
    env["ENVPACK_INTERPRETER_TIMEOUT"] = "soon"
    result = run_envpack("capture", "--only", "interpreters", env=env)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "ENVPACK_INTERPRETER_TIMEOUT" in result.stderr
    assert timeout_from_environ({}, 20.0) == 20.0
    assert timeout_from_environ({"ENVPACK_INTERPRETER_TIMEOUT": "1.5"}, 20.0) == 1.5
    with pytest.raises(UsageError):
        timeout_from_environ({"ENVPACK_INTERPRETER_TIMEOUT": "0"}, 20.0)


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.mark.slow
def test_hanging_interpreter_is_killed_and_the_capture_refused(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    pid_file = tmp_path / "pid"
    hang = _script(tmp_path / "hang", f"echo $$ > {pid_file}\nsleep 600\n")
    good = _interpreter("3.11")
    env = dict(clean_env)
    env["ENVPACK_INTERPRETER_TIMEOUT"] = "1"
    started = time.monotonic()
    result = run_envpack(
        "capture", "--python", str(hang), "--python", str(good), "--only", "interpreters",
        "-q", env=env, timeout=60,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    # A named interpreter that cannot be described: exit 2, one line, no manifest.
    assert result.returncode == 2, result.stderr
    assert elapsed < 15
    assert result.stdout == ""
    assert result.stderr.strip() == (
        f"envpack: error: --python {hang}: did not answer within 1 s (hung?); "
        "killed its process group"
    )
    # The whole process group (sh and its sleep) is gone, once init has reaped the orphan.
    group = int(pid_file.read_text())
    assert _group_gone(group, within=10.0)


def _group_gone(group: int, *, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_hang_in_process_with_a_short_timeout(tmp_path: Path) -> None:
    hang = _script(tmp_path / "hang", "sleep 600\n")
    started = time.monotonic()
    options = CaptureOptions(
        pythons=(str(hang),), only=frozenset({"interpreters"}), interpreter_timeout=0.5
    )
    with pytest.raises(UsageError, match=r"did not answer within 0\.5 s"):
        _capture(options, _clean_env())
    assert time.monotonic() - started < 10


def test_crashing_interpreters_are_refused_with_the_reason(tmp_path: Path) -> None:
    """Each one named with --python: the capture stops with one line (exit 2 at the CLI)."""
    segv = _script(tmp_path / "segv", "kill -SEGV $$\n")
    failing = _script(tmp_path / "failing", "echo 'python: cannot start' >&2\nexit 3\n")
    chatty = _script(tmp_path / "chatty", "echo 'I am not Python'\n")
    garbled = _script(tmp_path / "garbled", "echo '@@envpack-interpreter-probe@@'; echo '{'\n")
    not_exec = tmp_path / "not-exec"
    not_exec.write_text("#!/bin/sh\n")
    expected = {
        segv: f"crashed: killed by signal {signal.SIGSEGV.name}",
        failing: "exited with status 3: python: cannot start",
        chatty: "gave no answer (not a Python interpreter?)",
        garbled: "gave an unreadable answer",
        not_exec: "cannot run: Permission denied",
    }
    for python, reason in expected.items():
        options = CaptureOptions(pythons=(str(python),), only=frozenset({"interpreters"}))
        with pytest.raises(UsageError) as refused:
            _capture(options, _clean_env())
        assert str(refused.value).startswith(f"--python {python}: {reason}")


@pytest.mark.slow
def test_same_interpreter_twice_is_byte_identical(clean_env: dict[str, str]) -> None:
    env = dict(clean_env)
    env["SOURCE_DATE_EPOCH"] = "1700000000"
    pythons: list[str] = []
    for name in ("2.7", "3.11"):
        found = pyenv_python(name)
        if found is not None:
            pythons += ["--python", str(found)]
    if not pythons:
        pytest.skip("no pyenv CPython installed")
    first = run_envpack("capture", *pythons, "--only", "interpreters", "-q", env=env)
    second = run_envpack("capture", *pythons, "--only", "interpreters", "-q", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    assert loads(first.stdout).section("interpreters")
    _validate_against_schema(first.stdout)
