"""Offline interpreters (``--root``): facts from files, nothing executed, nothing on the host.

Two kinds of truth: the fixture rootfs trees in fixtures/rootfs/ (tiny, with known
answers), and this machine's real interpreters read offline (a Source rooted at ``/``)
compared with what the same interpreters say about themselves when run.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sysconfig
from pathlib import Path
from typing import Any

import pytest

from envpack.errors import UsageError
from envpack.manifest import Manifest, loads
from envpack.redact import Redactor
from envpack.snapshot.capture import capture
from envpack.snapshot.context import CaptureOptions
from envpack.snapshot.interpreters import describe
from envpack.snapshot.offline_python import (
    describe_offline,
    elf_machine,
    parse_pyvenv_cfg,
    parse_sysconfigdata,
    parse_version,
    resolve_python_arg,
)
from envpack.snapshot.source import Source
from realenv import FIXTURES, pyenv_python, pypy_python, run_envpack

DEBIAN_311 = FIXTURES / "rootfs" / "debian-py311-arm64"
DEBIAN_39 = FIXTURES / "rootfs" / "debian-py39-dpkg"


def _capture(root: Path, *pythons: str) -> Manifest:
    return capture(
        Source.rootfs(root),
        CaptureOptions(pythons=pythons, only=frozenset({"interpreters"})),
        Redactor(b"k" * 32),
        environ={"SOURCE_DATE_EPOCH": "0"},
    )


def test_debian_rootfs_default_interpreter() -> None:
    manifest = _capture(DEBIAN_311)
    assert manifest.issues == []
    section = manifest.section("interpreters")
    assert list(section) == ["/usr/bin/python3"]
    entry = section["/usr/bin/python3"]
    assert entry == {
        "primary": True,
        "implementation": "cpython",
        "version": "3.11.2",  # patchlevel.h
        "version_info": [3, 11, 2, "final", 0],
        "executable": "/usr/bin/python3",
        "real_executable": "/usr/bin/python3.11",
        "prefix": "/usr",
        "base_prefix": "/usr",
        "virtualenv": False,
        "platform": "linux-aarch64",  # the fixture's ELF header, not this x86-64 host
        "soabi": "cpython-311-aarch64-linux-gnu",
        "ext_suffix": ".cpython-311-aarch64-linux-gnu.so",
        "abi_tag": "cp311",
        "interpreter_tag": "cp311",
        "sys_path": [
            "/usr/lib/python311.zip",
            "/usr/lib/python3.11",
            "/usr/lib/python3.11/lib-dynload",
            "/usr/lib/python3/dist-packages",  # Debian scheme: read from its site.py
            "/srv/app/src",  # a path line of app-src.pth; its import line is not run
        ],
        "site_packages": ["/usr/lib/python3/dist-packages"],
        "markers": {
            "implementation_name": "cpython",
            "implementation_version": "3.11.2",
            "os_name": "posix",
            "platform_machine": "aarch64",
            "platform_release": None,
            "platform_system": "Linux",
            "platform_version": None,
            "python_full_version": "3.11.2",
            "platform_python_implementation": "CPython",
            "python_version": "3.11",
            "sys_platform": "linux",
        },
        "source": "files",
    }


def test_venv_in_rootfs_with_absolute_symlink_resolves_inside_the_root() -> None:
    # srv/app/venv/bin/python -> /usr/bin/python3 (absolute): inside the root that is the
    # fixture's AArch64 header; on this host it would be an x86-64 CPython.
    manifest = _capture(DEBIAN_311, "/srv/app/venv", "/usr/bin/python3")
    assert manifest.issues == []
    section = manifest.section("interpreters")
    assert list(section) == ["/srv/app/venv/bin/python", "/usr/bin/python3"]
    venv = section["/srv/app/venv/bin/python"]
    assert venv["primary"] is True
    assert section["/usr/bin/python3"]["primary"] is False
    assert venv["real_executable"] == "/usr/bin/python3.11"
    assert venv["markers"]["platform_machine"] == "aarch64"
    assert venv["virtualenv"] is True
    assert venv["prefix"] == "/srv/app/venv"
    assert venv["base_prefix"] == "/usr"
    assert venv["version"] == "3.11.2"  # pyvenv.cfg
    assert venv["sys_path"] == [
        "/usr/lib/python311.zip",
        "/usr/lib/python3.11",
        "/usr/lib/python3.11/lib-dynload",
        "/srv/app/venv/lib/python3.11/site-packages",
        "/usr/lib/python3/dist-packages",  # include-system-site-packages = true
        "/srv/app/src",
    ]
    assert venv["site_packages"] == [
        "/srv/app/venv/lib/python3.11/site-packages",
        "/usr/lib/python3/dist-packages",
    ]


def test_venv_without_system_site_packages(tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(DEBIAN_311, root, symlinks=True)
    cfg = root / "srv/app/venv/pyvenv.cfg"
    cfg.write_text(cfg.read_text().replace("= true", "= false"))
    entry = _capture(root, "/srv/app/venv/bin/python").section("interpreters")[
        "/srv/app/venv/bin/python"
    ]
    assert entry["site_packages"] == ["/srv/app/venv/lib/python3.11/site-packages"]
    assert "/usr/lib/python3/dist-packages" not in entry["sys_path"]


def test_version_from_dpkg_when_nothing_else_tells() -> None:
    manifest = _capture(DEBIAN_39)
    assert manifest.issues == []
    entry = manifest.section("interpreters")["/usr/bin/python3"]
    assert entry["version"] == "3.9.2"  # python3.9-minimal 3.9.2-1, upstream part
    assert entry["version_info"] == [3, 9, 2, "final", 0]
    assert entry["real_executable"] == "/usr/bin/python3.9"
    assert entry["platform"] == "linux-x86_64"
    # No sysconfigdata, no extension modules: unknown, so null, never guessed.
    assert entry["soabi"] is None
    assert entry["ext_suffix"] is None
    assert entry["abi_tag"] is None
    assert entry["interpreter_tag"] == "cp39"
    assert entry["markers"]["python_full_version"] == "3.9.2"


def test_symlink_to_a_host_python_is_not_followed_onto_the_host(tmp_path: Path) -> None:
    assert os.path.exists("/usr/bin/python3"), "the host must have the file the link names"
    root = tmp_path / "root"
    (root / "usr/local/bin").mkdir(parents=True)
    (root / "usr/local/bin/python3").symlink_to("/usr/bin/python3")
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/python3").symlink_to("/usr/bin/python3.11")  # missing in the root
    with pytest.raises(UsageError, match=r"a symlink to /usr/bin/python3\.11, which is not in"):
        _capture(root, "/usr/local/bin/python3")
    # Without --python the dangling defaults are reported, and are not interpreters.
    manifest = _capture(root)
    assert manifest.section("interpreters") == {}
    assert {(i.path, i.reason) for i in manifest.issues} == {
        (path, f"{path}: resolves to /usr/bin/python3.11, which is not a file in the root")
        for path in ("/usr/local/bin/python3", "/usr/bin/python3")
    }
    # With a real interpreter in the root, the link leads to it, never to the host's.
    (root / "usr/bin/python3").unlink()
    shutil.copytree(DEBIAN_311 / "usr", root / "usr", symlinks=True, dirs_exist_ok=True)
    (root / "usr/bin/python3").unlink()
    (root / "usr/bin/python3").symlink_to("/usr/bin/python3.11")
    manifest = _capture(root)
    assert manifest.issues == []
    section = manifest.section("interpreters")
    assert list(section) == ["/usr/local/bin/python3", "/usr/bin/python3"]
    entry = section["/usr/local/bin/python3"]
    assert entry["primary"] is True
    assert section["/usr/bin/python3"]["primary"] is False
    assert entry["real_executable"] == "/usr/bin/python3.11"
    assert entry["platform"] == "linux-aarch64"


def test_symlink_loops_and_hostile_sysconfigdata(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/python3").symlink_to("python3")  # ELOOP
    manifest = _capture(root)
    assert manifest.section("interpreters") == {}
    assert [i.path for i in manifest.issues] == ["/usr/bin/python3"]
    assert "too many levels of symbolic links" in manifest.issues[0].reason
    with pytest.raises(UsageError, match="too many levels"):
        _capture(root, "/usr/bin/python3")
    with pytest.raises(ValueError, match=r"nested too deeply|not Python source"):
        parse_sysconfigdata("build_time_vars = " + "[" * 10_000 + "]" * 10_000)


def test_nothing_in_the_root_is_executed(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    root = tmp_path / "root"
    shutil.copytree(DEBIAN_311, root, symlinks=True)
    trap = root / "usr/bin/python3.11"
    trap.unlink()
    trap.write_text(f"#!/bin/sh\ntouch {ran}\n")
    trap.chmod(0o755)
    entry = _capture(root).section("interpreters")["/usr/bin/python3"]
    assert not ran.exists()
    assert entry["version"] == "3.11.2"
    assert entry["platform"] is None  # not an ELF file: the machine is unknown
    assert entry["markers"]["platform_machine"] is None


def test_python_arguments_inside_the_root() -> None:
    source = Source.rootfs(DEBIAN_311)
    assert resolve_python_arg(source, "python3") == "/usr/bin/python3"
    assert resolve_python_arg(source, "srv/app/venv") == "/srv/app/venv/bin/python"
    with pytest.raises(UsageError, match="no such file"):
        resolve_python_arg(source, "/usr/bin/python2.7")
    with pytest.raises(UsageError, match="not found on PATH inside the root"):
        resolve_python_arg(source, "pypy3")


def test_cli_offline_missing_python_is_exit_2(clean_env: dict[str, str]) -> None:
    result = run_envpack(
        "capture", "--root", str(DEBIAN_311), "--python", "/opt/python", "--only",
        "interpreters", env=clean_env,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == "envpack: error: --python /opt/python: no such file"


def test_cli_offline_capture_twice_is_byte_identical(clean_env: dict[str, str]) -> None:
    env = dict(clean_env)
    env["SOURCE_DATE_EPOCH"] = "1700000000"
    args = ("capture", "--root", str(DEBIAN_311), "--python", "/srv/app/venv", "--python",
            "python3", "--only", "interpreters", "-q")  # fmt: skip
    first = run_envpack(*args, env=env)
    second = run_envpack(*args, env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    import jsonschema

    from envpack.manifest import schema_text

    jsonschema.validate(json.loads(first.stdout), json.loads(schema_text()))
    assert loads(first.stdout).meta.source_kind == "root"


# -- parsers --------------------------------------------------------------------------------


def test_parse_version() -> None:
    assert parse_version("3.11.7") == [3, 11, 7, "final", 0]
    assert parse_version("3.13.0rc1") == [3, 13, 0, "candidate", 1]
    assert parse_version("3.14.0a3") == [3, 14, 0, "alpha", 3]
    assert parse_version("3.12.0b4+") == [3, 12, 0, "beta", 4]
    assert parse_version("3.11") == [3, 11]
    assert parse_version("python") is None


def test_parse_pyvenv_cfg() -> None:
    cfg = parse_pyvenv_cfg("home = /usr/bin\nInclude-System-Site-Packages=true\n\nnoise\n")
    assert cfg == {"home": "/usr/bin", "include-system-site-packages": "true"}


def test_parse_real_sysconfigdata_matches_sysconfig() -> None:
    # This interpreter's own build_time_vars, read as text, must agree with sysconfig.
    name = "_sysconfigdata_{}_{}_{}".format(
        sysconfigdata_abiflags(), "linux", sysconfig.get_config_var("MULTIARCH") or ""
    )
    path = Path(sysconfig.get_paths()["stdlib"]) / f"{name}.py"
    if not path.exists():
        pytest.skip(f"{path} not present on this build")
    values = parse_sysconfigdata(path.read_text())
    for key in ("SOABI", "EXT_SUFFIX", "MULTIARCH", "VERSION", "Py_DEBUG", "WITH_PYMALLOC"):
        assert values[key] == sysconfig.get_config_var(key), key


def sysconfigdata_abiflags() -> str:
    return str(sysconfig.get_config_var("ABIFLAGS") or "")


def test_parse_sysconfigdata_keeps_literals_and_evaluates_nothing() -> None:
    text = (
        "import os\nso_ext = os.system('touch /tmp/envpack-never')\n"
        "build_time_vars = {'SO': so_ext, 'SOABI': 'pypy39-pp73', 'X': __import__('os')}\n"
    )
    assert parse_sysconfigdata(text) == {"SOABI": "pypy39-pp73"}
    assert not os.path.exists("/tmp/envpack-never")
    with pytest.raises(ValueError, match="no build_time_vars"):
        parse_sysconfigdata("x = 1\n")
    with pytest.raises(ValueError, match="not Python source"):
        parse_sysconfigdata("build_time_vars = {\n")


def test_elf_machine_of_real_binaries(tmp_path: Path) -> None:
    host = Source.rootfs("/")
    assert elf_machine(host, os.path.realpath("/usr/bin/python3")) == platform.machine()
    assert elf_machine(Source.rootfs(DEBIAN_311), "/usr/bin/python3.11") == "aarch64"
    (tmp_path / "short").write_bytes(b"\x7fELF\x02")
    (tmp_path / "script").write_text("#!/bin/sh\n")
    assert elf_machine(host, str(tmp_path / "short")) is None
    assert elf_machine(host, str(tmp_path / "script")) is None


# -- offline against live, on the real interpreters of this machine -------------------------

_ONLY_LIVE = {"source"}
_ONLY_LIVE_MARKERS = {"platform_release", "platform_version"}


def _compare(offline: dict[str, Any], live: dict[str, Any], *, pypy: bool = False) -> None:
    skip = set(_ONLY_LIVE)
    markers_skip = set(_ONLY_LIVE_MARKERS)
    if pypy:  # no headers or literal sysconfigdata: Python's micro is not in PyPy's files
        skip |= {"version", "version_info"}
        markers_skip |= {"python_full_version", "implementation_version"}
    for name, expected in live.items():
        if name == "markers":
            for marker, value in expected.items():
                if marker in markers_skip:
                    assert offline["markers"][marker] is None, marker
                else:
                    assert offline["markers"][marker] == value, marker
        elif name not in skip and name != "primary":
            assert offline[name] == expected, name
    assert offline["source"] == "files"


def _live_and_offline(python: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    live = describe(str(python), env, timeout=60)
    problems: list[str] = []
    offline = describe_offline(Source.rootfs("/"), str(python), problems)
    assert problems == []
    return offline, live


@pytest.mark.parametrize("version", ["2.7", "3.9", "3.11", "3.13"])
def test_offline_matches_live_for_pyenv_cpython(version: str) -> None:
    python = pyenv_python(version)
    if python is None:
        pytest.skip(f"CPython {version} is not installed (pyenv versions)")
    offline, live = _live_and_offline(python)
    _compare(offline, live)


def test_offline_matches_live_for_debian_python3() -> None:
    if not os.path.exists("/usr/bin/python3"):
        pytest.skip("no /usr/bin/python3 on this machine")
    offline, live = _live_and_offline(Path("/usr/bin/python3"))
    _compare(offline, live)


def test_offline_matches_live_for_pypy() -> None:
    python = pypy_python()
    if python is None:
        pytest.skip("Debian's pypy3 is not installed (apt-get install pypy3)")
    offline, live = _live_and_offline(python)
    _compare(offline, live, pypy=True)
    assert offline["version"] == "{}.{}".format(*live["version_info"][:2])


@pytest.mark.slow
def test_offline_matches_live_for_real_virtualenvs(dev_venv: Path, prod_venv: Path) -> None:
    for venv in (dev_venv, prod_venv):
        offline, live = _live_and_offline(venv)
        assert offline["virtualenv"] is True
        _compare(offline, live)
