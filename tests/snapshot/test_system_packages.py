"""system_packages: this machine's real dpkg database, and fixture rootfs trees for apk and rpm."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from envpack.manifest import Component
from envpack.redact import Redactor
from envpack.snapshot import system_packages
from envpack.snapshot.context import CaptureContext, CaptureOptions
from envpack.snapshot.dpkg_status import installed_packages, parse_paragraphs
from envpack.snapshot.source import Source

ROOTFS = Path(__file__).resolve().parents[2] / "fixtures" / "rootfs"


def _run(source: Source) -> CaptureContext:
    ctx = CaptureContext(source, CaptureOptions(), Redactor(b"test-key"))
    system_packages.probe(ctx)
    return ctx


def _dpkg_query() -> dict[tuple[str, str], tuple[str, str]]:
    """(name, arch) -> (version, source) of every installed package, as dpkg-query says."""
    tool = shutil.which("dpkg-query")
    if tool is None or not os.path.exists("/var/lib/dpkg/status"):
        pytest.skip("no dpkg on this machine")
    fmt = "${db:Status-Status}\\t${Package}\\t${Architecture}\\t${Version}\\t${source:Package}\\n"
    out = subprocess.run([tool, "-W", "-f", fmt], capture_output=True, text=True, check=True)
    found: dict[tuple[str, str], tuple[str, str]] = {}
    for line in out.stdout.splitlines():
        status, name, arch, version, source = line.split("\t")
        if status == "installed":
            found[(name, arch)] = (version, source)
    return found


@pytest.mark.parametrize("how", ["live", "root"])
def test_every_installed_dpkg_package_matches_dpkg_query(how: str) -> None:
    expected = _dpkg_query()
    source = Source.live() if how == "live" else Source.rootfs("/")
    ctx = _run(source)
    dpkg = [c for c in ctx.sections["system_packages"].values() if c["manager"] == "dpkg"]
    got = {(c["name"], c["architecture"]): (c["version"], c["source"]) for c in dpkg}
    assert len(got) > 100  # a real Debian system, not an empty read
    assert got == expected
    assert ctx.issues == []


def test_dpkg_keys_carry_the_architecture_only_for_multiarch_duplicates() -> None:
    ctx = _run(Source.live())
    section = ctx.sections["system_packages"]
    names = [c["name"] for c in section.values()]
    for key, component in section.items():
        if names.count(component["name"]) == 1:
            assert key == component["name"]
        else:
            assert key == f"{component['name']}:{component['architecture']}"
    assert list(section) == sorted(section)


STATUS = """\
Package: libc6
Status: install ok installed
Priority: optional
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u4
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.
 .
 Package: not-a-package
 Status: install ok installed

Package: libc6
Status: install ok installed
Architecture: i386
Source: glibc
Version: 2.36-9+deb12u4

Package: gcc-12-base
Status: hold ok installed
Architecture: amd64
Source: gcc-12 (12.2.0-14)
Version: 12.2.0-14

Package: removed-but-configured
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: half-installed
Status: install reinstreq half-installed
Architecture: amd64
Version: 2.0

package: lowercase-field-names
status: install ok installed
architecture: all
version: 0.1
"""


def test_status_paragraphs_continuations_and_states(tmp_path: Path) -> None:
    dpkg = tmp_path / "var" / "lib" / "dpkg"
    dpkg.mkdir(parents=True)
    (dpkg / "status").write_text(STATUS)
    section = _run(Source.rootfs(tmp_path)).sections["system_packages"]
    assert section == {
        "gcc-12-base": {
            "name": "gcc-12-base",
            "version": "12.2.0-14",
            "architecture": "amd64",
            "manager": "dpkg",
            "source": "gcc-12",
        },
        # Its unpacking stopped half-way: some of its files are on disk (issue 9).
        "half-installed": {
            "name": "half-installed",
            "version": "2.0",
            "architecture": "amd64",
            "manager": "dpkg",
            "source": "half-installed",
            "state": "half-installed, reinstreq",
        },
        "libc6:amd64": {
            "name": "libc6",
            "version": "2.36-9+deb12u4",
            "architecture": "amd64",
            "manager": "dpkg",
            "source": "glibc",
        },
        "libc6:i386": {
            "name": "libc6",
            "version": "2.36-9+deb12u4",
            "architecture": "i386",
            "manager": "dpkg",
            "source": "glibc",
        },
        "lowercase-field-names": {
            "name": "lowercase-field-names",
            "version": "0.1",
            "architecture": "all",
            "manager": "dpkg",
            "source": "lowercase-field-names",
        },
    }


def test_pending_updates_records_override_the_status_file(tmp_path: Path) -> None:
    dpkg = tmp_path / "var" / "lib" / "dpkg"
    (dpkg / "updates").mkdir(parents=True)
    (dpkg / "status").write_text(STATUS)
    # dpkg was interrupted after upgrading gcc-12-base and removing libc6:i386.
    (dpkg / "updates" / "0001").write_text(
        "Package: gcc-12-base\nStatus: install ok installed\nArchitecture: amd64\n"
        "Source: gcc-12\nVersion: 12.2.0-15\n"
    )
    (dpkg / "updates" / "0002").write_text(
        "Package: libc6\nStatus: deinstall ok not-installed\nArchitecture: i386\n"
    )
    (dpkg / "updates" / "tmp.i").write_text("garbage that dpkg would ignore too\n")
    section = _run(Source.rootfs(tmp_path)).sections["system_packages"]
    assert section["gcc-12-base"]["version"] == "12.2.0-15"
    assert "libc6" in section  # only one architecture left: the bare name again
    assert "libc6:i386" not in section


def test_parse_paragraphs_tolerates_crlf_and_trailing_spaces() -> None:
    text = "Package: a\r\nVersion: 1 \r\n\r\nPackage: b\r\n"
    assert list(parse_paragraphs(text)) == [{"package": "a", "version": "1"}, {"package": "b"}]
    assert installed_packages([""]) == []


def test_a_fifo_as_status_file_is_an_issue_not_a_hang(tmp_path: Path) -> None:
    dpkg = tmp_path / "var" / "lib" / "dpkg"
    dpkg.mkdir(parents=True)
    os.mkfifo(dpkg / "status")
    ctx = _run(Source.rootfs(tmp_path))
    assert ctx.sections["system_packages"] == {}
    assert [(i.probe, i.path) for i in ctx.issues] == [("system_packages", "/var/lib/dpkg/status")]
    assert "fifo" in ctx.issues[0].reason


def test_apk_fixture_rootfs() -> None:
    ctx = _run(Source.rootfs(ROOTFS / "alpine-mini"))
    section = ctx.sections["system_packages"]
    assert ctx.issues == []
    assert sorted(section) == [
        "alpine-baselayout",
        "alpine-release",
        "apk-tools",
        "busybox",
        "ca-certificates-bundle",
        "libcrypto3",
        "libssl3",
        "musl",
        "zlib",
    ]
    assert section["libssl3"] == {
        "name": "libssl3",
        "version": "3.1.4-r5",
        "architecture": "x86_64",
        "manager": "apk",
        "source": "openssl",
    }
    assert section["musl"]["version"] == "1.2.4_git20230717-r4"
    assert section["alpine-release"]["source"] == "alpine-base"


def test_rpm_fixture_rootfs() -> None:
    ctx = _run(Source.rootfs(ROOTFS / "rpm-mini"))
    section = ctx.sections["system_packages"]
    assert ctx.issues == []
    assert sorted(section) == [
        "envpack-data",
        "envpack-empty",
        "envpack-hello",
        "envpack-multi:i686",
        "envpack-multi:x86_64",
    ]
    assert section["envpack-data"] == {
        "name": "envpack-data",
        "version": "2:3.1-4",
        "architecture": "noarch",
        "manager": "rpm",
        "source": "envpack-data",
    }


def test_rpm_fixture_matches_the_rpm_tool(tmp_path: Path) -> None:
    rpm = shutil.which("rpm")
    if rpm is None:
        pytest.skip("the rpm tool is not installed (apt-get install rpm)")
    root = tmp_path / "root"
    shutil.copytree(ROOTFS / "rpm-mini", root, symlinks=True)
    qf = "%{NAME} %{ARCH} %|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\n"
    out = subprocess.run(
        [rpm, "--root", str(root), "--dbpath", "/var/lib/rpm", "-qa", "--qf", qf],
        capture_output=True,
        text=True,
        check=True,
    )
    expected = sorted(tuple(line.split(" ")) for line in out.stdout.splitlines())
    section = _run(Source.rootfs(root)).sections["system_packages"]
    got = sorted((c["name"], c["architecture"], c["version"]) for c in section.values())
    assert got == expected


def test_berkeleydb_rpmdb_becomes_an_issue(tmp_path: Path) -> None:
    folder = tmp_path / "var" / "lib" / "rpm"
    folder.mkdir(parents=True)
    (folder / "Packages").write_bytes(bytes(12) + (0x00061561).to_bytes(4, "little") + bytes(4080))
    ctx = _run(Source.rootfs(tmp_path))
    assert ctx.sections["system_packages"] == {}
    assert len(ctx.issues) == 1
    issue = ctx.issues[0]
    assert (issue.probe, issue.path) == ("system_packages", "/var/lib/rpm/Packages")
    assert "BerkeleyDB" in issue.reason
    assert "cannot read" in issue.reason


def test_several_managers_in_one_rootfs(tmp_path: Path) -> None:
    shutil.copytree(ROOTFS / "rpm-mini", tmp_path, dirs_exist_ok=True, symlinks=True)
    dpkg = tmp_path / "var" / "lib" / "dpkg"
    dpkg.mkdir(parents=True)
    (dpkg / "status").write_text(
        "Package: envpack-hello\nStatus: install ok installed\nArchitecture: all\nVersion: 9\n"
    )
    section = _run(Source.rootfs(tmp_path)).sections["system_packages"]
    # Two managers, two architectures: both parts are needed to tell them apart.
    assert "envpack-hello:all@dpkg" not in section
    assert section["envpack-hello:all"]["manager"] == "dpkg"
    assert section["envpack-hello:noarch"]["manager"] == "rpm"


def _c(name: str, version: str, arch: str | None, manager: str) -> Component:
    component: Component = {"name": name, "version": version, "manager": manager}
    if arch is not None:
        component["architecture"] = arch
    return component


def test_keys_add_only_what_tells_packages_apart() -> None:
    section = system_packages.keyed(
        [
            _c("kernel-core", "6.5.6-300.fc39", "x86_64", "rpm"),
            _c("kernel-core", "6.6.2-201.fc39", "x86_64", "rpm"),
            _c("gpg-pubkey", "18b8e74c-62f2920f", None, "rpm"),
            _c("gpg-pubkey", "a15b79cc-63d04c2c", None, "rpm"),
            _c("curl", "7.88.1-10", "amd64", "dpkg"),
            _c("curl", "8.2.1-1.fc39", "amd64", "rpm"),
            _c("zlib", "1.3", "x86_64", "rpm"),
            _c("twice", "1", "all", "dpkg"),
            _c("twice", "1", "all", "dpkg"),
        ]
    )
    assert sorted(section) == [
        "curl@dpkg",
        "curl@rpm",
        "gpg-pubkey=18b8e74c-62f2920f",
        "gpg-pubkey=a15b79cc-63d04c2c",
        "kernel-core=6.5.6-300.fc39",
        "kernel-core=6.6.2-201.fc39",
        "twice",
        "twice#2",
        "zlib",
    ]
