"""dpkg packages whose files are on disk are recorded in every state, never dropped.

The real test: a rootfs whose dpkg database the machine's own ``dpkg --root`` left with a
package in each state (dpkg_states.py), captured with ``envpack capture --root``, then
finished as apt would and captured again; the diff of the two must show state changes
only, low severity, and no package "removed" (which it did while apt ran).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from dpkg_states import STATES, dpkg_available, finish, make_root

from envpack.diff.compare import compare
from envpack.diff.model import ChangeKind, Severity
from envpack.manifest import load_manifest, schema_text
from envpack.snapshot.dpkg_status import installed_packages, on_disk_state

needs_dpkg = pytest.mark.skipif(not dpkg_available(), reason="dpkg and dpkg-deb are not installed")


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("install ok installed", "installed"),
        ("hold ok installed", "installed"),
        ("deinstall ok installed", "installed"),
        ("install ok triggers-pending", "triggers-pending"),
        ("install ok triggers-awaited", "triggers-awaited"),
        ("install ok half-configured", "half-configured"),
        ("install ok unpacked", "unpacked"),
        ("install reinstreq half-installed", "half-installed, reinstreq"),
        ("deinstall ok config-files", None),
        ("purge ok not-installed", None),
        ("install ok", None),
        ("", None),
    ],
)
def test_state_of_each_status(status: str, state: str | None) -> None:
    assert on_disk_state(status) == state


def test_a_package_in_an_intermediate_state_is_kept_with_it() -> None:
    text = (
        "Package: man-db\nStatus: install ok triggers-pending\nVersion: 2.11.2-2\n"
        "Architecture: amd64\n\n"
        "Package: old\nStatus: deinstall ok config-files\nVersion: 1\n"
    )
    [package] = installed_packages([text])
    assert (package.name, package.state) == ("man-db", "triggers-pending")


def _capture(root: Path, out: Path, label: str) -> dict[str, object]:
    command = ["capture", "-q", "--root", str(root), "--label", label, "--no-cache"]
    subprocess.run(
        [sys.executable, "-m", "envpack", *command, "-o", str(out)],
        check=True,
        env={"PATH": "/usr/bin:/bin", "SOURCE_DATE_EPOCH": "1700000000"},
    )
    document: dict[str, object] = json.loads(out.read_text())
    return document


@needs_dpkg
@pytest.mark.slow
def test_real_dpkg_states_are_captured_and_diff_as_state_changes(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    during = _capture(root, tmp_path / "during.json", "during")
    jsonschema.validate(during, json.loads(schema_text()))
    packages = during["system_packages"]
    assert isinstance(packages, dict)
    recorded = {name: packages[name].get("state", "installed") for name in packages}
    on_disk = {n: s for n, s in STATES.items() if s != "config-files"}
    assert recorded == on_disk  # ep-gone (only its conffile left) is not on disk

    finish(root)
    after = _capture(root, tmp_path / "after.json", "after")
    packages_after = after["system_packages"]
    assert isinstance(packages_after, dict)
    assert sorted(packages_after) == sorted(on_disk)
    assert not [p for p in packages_after.values() if "state" in p]

    a, b = load_manifest(tmp_path / "during.json"), load_manifest(tmp_path / "after.json")
    for drift in (compare(a, b), compare(b, a)):
        rows = [c for c in drift.changes if c.section == "system_packages"]
        assert {(c.key, c.field) for c in rows} == {
            (name, "state") for name, state in on_disk.items() if state != "installed"
        }
        assert not [c for c in drift.changes if c.kind is ChangeKind.REMOVED and c.field is None]
        severity = {c.key: c.severity for c in rows}
        assert severity["ep-trigwatch"] == severity["ep-trigger"] == Severity.INFO
        assert severity["ep-unpacked"] == severity["ep-halfconf"] == Severity.PATCH

    paths = [str(tmp_path / "during.json"), str(tmp_path / "after.json")]
    gate = subprocess.run(
        [sys.executable, "-m", "envpack", "diff", *paths, "--fail-on", "minor"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert gate.returncode == 0, gate.stdout + gate.stderr
