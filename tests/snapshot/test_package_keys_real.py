"""A package whose key changes because another one of its name came is not "removed".

Real package managers write the databases: the machine's ``dpkg --root`` (a Multi-Arch
package gaining its i386 sibling turns ``ep-lib`` into ``ep-lib:amd64``) and ``rpm
--root`` (an upgrade caught half-way, both versions installed, turns ``ep-up`` into
``ep-up=1.0-1`` and ``ep-up=2.0-1``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dpkg_states import build_deb, dpkg_available, run_dpkg

from envpack.diff.compare import compare
from envpack.diff.model import ChangeKind, Severity
from envpack.manifest import Manifest, load_manifest


def _capture(root: Path, out: Path) -> Manifest:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "envpack",
            "capture",
            "-q",
            "--root",
            str(root),
            "--only",
            "system_packages",
            "-o",
            str(out),
        ],
        check=True,
    )
    return load_manifest(out)


def _empty_dpkg_root(root: Path) -> Path:
    admin = root / "var/lib/dpkg"
    for sub in ("info", "updates", "triggers"):
        (admin / sub).mkdir(parents=True)
    (admin / "status").write_text("")
    (admin / "available").write_text("")
    return root


@pytest.mark.skipif(not dpkg_available(), reason="dpkg and dpkg-deb are not installed")
def test_a_multiarch_sibling_arriving_is_one_added_package(tmp_path: Path) -> None:
    debs = tmp_path / "debs"
    debs.mkdir()
    amd64, i386 = (
        build_deb(
            debs / arch,
            "ep-lib",
            {f"/usr/lib/ep-lib/{arch}.dat": arch},
            Architecture=arch,
            **{"Multi-Arch": "same"},
        )
        for arch in ("amd64", "i386")
    )
    root = _empty_dpkg_root(tmp_path / "root")
    run_dpkg(root, "--add-architecture", "amd64")
    run_dpkg(root, "--add-architecture", "i386")
    run_dpkg(root, "--force-architecture", "--install", str(amd64))
    before = _capture(root, tmp_path / "before.json")
    assert list(before.section("system_packages")) == ["ep-lib"]
    run_dpkg(root, "--force-architecture", "--install", str(i386))
    after = _capture(root, tmp_path / "after.json")
    assert sorted(after.section("system_packages")) == ["ep-lib:amd64", "ep-lib:i386"]
    changes = compare(before, after).changes
    assert [(c.key, c.kind, c.severity) for c in changes] == [
        ("ep-lib:i386", ChangeKind.ADDED, Severity.MINOR)
    ]


def _rpm(name: str, version: str, work: Path) -> Path:
    spec = work / f"{name}-{version}.spec"
    spec.write_text(
        f"Name: {name}\nVersion: {version}\nRelease: 1\nSummary: envpack test\n"
        "License: Apache-2.0\nBuildArch: noarch\n%description\nA test package.\n%files\n"
    )
    subprocess.run(
        ["rpmbuild", "--define", f"_topdir {work / 'build'}", "-bb", str(spec)],
        check=True,
        capture_output=True,
    )
    [built] = (work / "build" / "RPMS" / "noarch").glob(f"{name}-{version}-1*.rpm")
    return built


def _rpm_root(root: Path, *args: str) -> None:
    # Debian's rpm keeps its database in ~/.rpmdb by default: name the usual place.
    subprocess.run(
        ["rpm", "--root", str(root), "--dbpath", "/var/lib/rpm", *args],
        check=True,
        capture_output=True,
    )


@pytest.mark.skipif(
    shutil.which("rpm") is None or shutil.which("rpmbuild") is None,
    reason="rpm and rpmbuild are not installed (Debian's rpm package)",
)
def test_an_rpm_upgrade_caught_half_way_is_not_a_removal(tmp_path: Path) -> None:
    old, new = _rpm("ep-up", "1.0", tmp_path), _rpm("ep-up", "2.0", tmp_path)
    root = tmp_path / "root"
    root.mkdir()
    _rpm_root(root, "--initdb")
    _rpm_root(root, "--nodeps", "-i", str(old))
    before = _capture(root, tmp_path / "before.json")
    assert list(before.section("system_packages")) == ["ep-up"]
    _rpm_root(
        root, "--nodeps", "-i", str(new)
    )  # rpm -U installs the new one before erasing the old
    during = _capture(root, tmp_path / "during.json")
    assert sorted(during.section("system_packages")) == ["ep-up=1.0-1", "ep-up=2.0-1"]
    changes = compare(before, during).changes
    assert [(c.key, c.kind, c.severity) for c in changes] == [
        ("ep-up=2.0-1", ChangeKind.ADDED, Severity.MINOR)
    ]
    _rpm_root(root, "--nodeps", "-e", "ep-up-1.0-1")
    after = _capture(root, tmp_path / "after.json")
    [upgrade] = compare(before, after).changes
    assert (upgrade.key, upgrade.field, upgrade.kind) == ("ep-up", "version", ChangeKind.UPGRADED)
    # The upgrade finishing: the old copy is gone, the package is still there, newer.
    [settled] = compare(during, after).changes
    assert (settled.key, settled.field) == ("ep-up=1.0-1", "version")
    assert (settled.kind, settled.severity) == (ChangeKind.UPGRADED, Severity.MAJOR)
