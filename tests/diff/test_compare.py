"""Keyed comparison, section by section, on hand-built manifests."""

from __future__ import annotations

from typing import Any

import pytest
from diff_manifests import by_where, dev_sections, make, one

from envpack.diff.compare import MISSING, cell, compare, soname_stem
from envpack.diff.model import ChangeKind, Severity


def changed(edit: Any) -> list[Any]:
    """Changes from the dev environment to a copy edited by ``edit(sections)``."""
    before = dev_sections()
    after = dev_sections()
    edit(after)
    return compare(make("dev", before), make("prod", after)).changes


def test_identical_manifests_have_no_changes() -> None:
    assert compare(make("dev", dev_sections()), make("prod", dev_sections())).changes == []


def test_drift_is_named_by_label() -> None:
    drift = compare(make("dev", {}), make("prod", {}))
    assert (drift.baseline, drift.other) == ("dev", "prod")


def test_primary_interpreters_aligned_although_paths_differ() -> None:
    def edit(s: dict[str, Any]) -> None:
        component = s["interpreters"].pop("/srv/dev/venv/bin/python")
        component["version"] = "2.7.18"
        component["markers"]["python_version"] = "2.7"
        s["interpreters"]["/opt/prod/bin/python"] = component

    found = by_where(changed(edit))
    version = found["interpreters/primary.version"]
    assert (version.before, version.after, version.kind) == (
        "3.11.7",
        "2.7.18",
        ChangeKind.DOWNGRADED,
    )
    assert version.severity is Severity.CRITICAL
    assert "major version change" in version.reason
    assert found["interpreters/primary.path"].severity is Severity.INFO
    # The marker follows from the version change: listing it too would only add noise.
    assert "interpreters/primary.markers.python_version" not in found
    assert not any(c.kind in (ChangeKind.ADDED, ChangeKind.REMOVED) for c in found.values())


def test_python_packages_added_removed_and_versions() -> None:
    def edit(s: dict[str, Any]) -> None:
        pk = s["python_packages"]
        pk["requests"]["version"] = "2.27.1"
        del pk["attrs"]
        pk["enum34"] = {"name": "enum34", "version": "1.1.10", "location": "/a"}

    found = by_where(changed(edit))
    assert set(found) == {
        "python_packages/requests.version",
        "python_packages/attrs",
        "python_packages/enum34",
    }
    assert found["python_packages/requests.version"].kind is ChangeKind.DOWNGRADED
    assert found["python_packages/attrs"].kind is ChangeKind.REMOVED
    assert found["python_packages/attrs"].after is None
    assert found["python_packages/enum34"].kind is ChangeKind.ADDED
    assert found["python_packages/enum34"].before is None


def test_system_package_version_uses_dpkg_ordering() -> None:
    def edit(s: dict[str, Any]) -> None:
        # "~deb12u2" sorts *before* the bare version in dpkg: this is an upgrade.
        s["system_packages"]["libssl3"]["version"] = "3.0.11-1"

    change = one(changed(edit), "system_packages/libssl3.version")
    assert change.kind is ChangeKind.UPGRADED
    assert change.severity is Severity.PATCH


def test_system_package_version_uses_rpm_ordering() -> None:
    def edit(s: dict[str, Any]) -> None:
        for comp in s["system_packages"].values():
            comp["manager"] = "rpm"
        s["system_packages"]["openssl"]["version"] = "3.0.11-1~deb12u2^post"

    change = one(changed(edit), "system_packages/openssl.version")
    assert change.kind is ChangeKind.UPGRADED


def test_soname_stem() -> None:
    assert soname_stem("libssl.so.1.1") == ("libssl.so", "1")
    assert soname_stem("libssl.so.3") == ("libssl.so", "3")
    assert soname_stem("ld-linux-x86-64.so.2") == ("ld-linux-x86-64.so", "2")
    assert soname_stem("libfoo.so") == ("libfoo.so", "")
    assert soname_stem("libsox") == ("libsox", "")


def _git_needs(sections: dict[str, Any], *names: str) -> None:
    """Give the environment's git the ELF facts of a program needing ``names``."""
    elf = {"needed": list(names), "soname": None, "runpath": [], "rpath": [], "build_id": None}
    sections["binaries"]["/usr/bin/git"].update(path="/usr/bin/git", elf=elf)


@pytest.mark.parametrize("needed", [True, False])
def test_libssl_major_change_is_one_abi_break(needed: bool) -> None:
    """Critical when something in the target still needs the old soname; else major."""

    def edit(s: dict[str, Any]) -> None:
        libs = s["libraries"]
        del libs["libssl.so.3"]
        libs["libssl.so.1.1"] = {"path": "/usr/lib/libssl.so.1.1", "needed_by": ["a"]}
        _git_needs(s, "libc.so.6", *(["libssl.so.3"] if needed else ["libssl.so.1.1"]))

    changes = [c for c in changed(edit) if c.section == "libraries"]
    assert len(changes) == 1
    (change,) = changes
    assert change.where == "libraries/libssl.so.soname"
    assert (change.before, change.after) == ("libssl.so.3", "libssl.so.1.1")
    assert "ABI break" in change.reason
    if needed:
        assert change.severity is Severity.CRITICAL
        assert "/usr/bin/git needs libssl.so.3" in change.reason
    else:
        assert change.severity is Severity.MAJOR


def test_same_soname_major_is_minor() -> None:
    def edit(s: dict[str, Any]) -> None:
        libs = s["libraries"]
        del libs["libz.so.1"]
        libs["libz.so.1.3"] = {"path": "/usr/lib/libz.so.1.3"}

    change = one(changed(edit), "libraries/libz.so.soname")
    assert change.severity is Severity.MINOR


def test_removed_library_is_critical_only_when_the_target_needs_it() -> None:
    """What the baseline's ``needed_by`` says does not count: its users may be gone too."""

    def needed(s: dict[str, Any]) -> None:
        del s["libraries"]["libz.so.1"]
        _git_needs(s, "libz.so.1")

    change = one(changed(needed), "libraries/libz.so.1")
    assert change.severity is Severity.CRITICAL
    assert "/usr/bin/git needs it" in change.reason

    def unused(s: dict[str, Any]) -> None:
        del s["libraries"]["libz.so.1"]
        _git_needs(s, "libc.so.6")

    change = one(changed(unused), "libraries/libz.so.1")
    assert change.severity is Severity.MINOR
    assert "nothing captured here needs it" in change.reason


def test_removed_library_the_target_failed_to_find_is_critical() -> None:
    """A C extension's library: the requester has no entry, the probe's issue names it."""
    from envpack.manifest import Issue

    after = dev_sections()
    del after["libraries"]["libz.so.1"]
    prod = make("prod", after)
    prod.issues.append(
        Issue("libraries", "/srv/x/_z.so", "libz.so.1 not found (needed by /srv/x/_z.so)")
    )
    change = one(compare(make("dev", dev_sections()), prod).changes, "libraries/libz.so.1")
    assert change.severity is Severity.CRITICAL
    assert "/srv/x/_z.so needs it" in change.reason


def test_no_interpreter_left_is_critical() -> None:
    def edit(s: dict[str, Any]) -> None:
        s["interpreters"].clear()

    rows = [c for c in changed(edit) if c.section == "interpreters"]
    assert rows
    assert {c.severity for c in rows} == {Severity.CRITICAL}
    assert "no Python interpreter" in rows[0].reason


def test_config_files_compared_per_key() -> None:
    def edit(s: dict[str, Any]) -> None:
        conf = s["config_files"]["/etc/app.ini"]
        conf["sha256"] = "22"
        conf["keys"]["db.host"] = "db2"
        conf["keys"]["db.password"] = "hmac-sha256:" + "b" * 32
        conf["keys"]["debug"] = "true"

    found = by_where(changed(edit))
    host = found["config_files//etc/app.ini.keys.db.host"]
    assert (host.before, host.after, host.severity) == ("db1", "db2", Severity.MINOR)
    secret = found["config_files//etc/app.ini.keys.db.password"]
    assert secret.severity is Severity.MAJOR
    assert "hmac" not in secret.reason and "not shown" in secret.reason
    assert found["config_files//etc/app.ini.keys.debug"].kind is ChangeKind.ADDED
    assert found["config_files//etc/app.ini.sha256"].severity is Severity.INFO


def test_network_per_field() -> None:
    def edit(s: dict[str, Any]) -> None:
        net = s["network"]
        net["dns"]["nameservers"] = ["10.0.0.3"]
        net["dns"]["search"] = ["prod.example"]
        net["interface:eth0"]["mtu"] = 9000
        del net["listen:tcp:0.0.0.0:8080"]
        net["listen:tcp:0.0.0.0:9090"] = {"protocol": "tcp", "port": 9090}

    found = by_where(changed(edit))
    assert found["network/dns.nameservers"].severity is Severity.MAJOR
    assert "+10.0.0.3" in found["network/dns.nameservers"].reason
    assert found["network/dns.search"].severity is Severity.MAJOR
    assert found["network/interface:eth0.mtu"].severity is Severity.MINOR
    assert found["network/listen:tcp:0.0.0.0:8080"].kind is ChangeKind.REMOVED
    assert found["network/listen:tcp:0.0.0.0:8080"].severity is Severity.MINOR
    assert found["network/listen:tcp:0.0.0.0:9090"].severity is Severity.MINOR


def test_env_per_variable() -> None:
    def edit(s: dict[str, Any]) -> None:
        s["env"]["PATH"]["value"] = "/usr/local/bin:/usr/bin"
        del s["env"]["HTTPS_PROXY"]

    found = by_where(changed(edit))
    assert found["env/PATH.value"].severity is Severity.MINOR
    assert found["env/HTTPS_PROXY"].severity is Severity.MAJOR


def test_os_fields() -> None:
    def edit(s: dict[str, Any]) -> None:
        s["os"]["release"].update(id="alpine", version_id="3.19", pretty_name="Alpine")
        s["os"]["libc"].update(family="musl", version="1.2.4")

    found = by_where(changed(edit))
    assert found["os/release.id"].severity is Severity.CRITICAL
    assert found["os/release.version_id"].severity is Severity.MAJOR
    assert found["os/release.pretty_name"].severity is Severity.INFO
    assert found["os/libc.family"].severity is Severity.CRITICAL
    assert found["os/libc.version"].severity is Severity.MAJOR


def test_issue_counts_are_info() -> None:
    drift = compare(make("dev", dev_sections(), issues=0), make("prod", dev_sections(), issues=2))
    (change,) = drift.changes
    assert (change.where, change.before, change.after) == ("meta/issues.count", 0, 2)
    assert change.severity is Severity.INFO


def test_meta_is_not_compared() -> None:
    a, b = make("dev", dev_sections()), make("prod", dev_sections())
    assert a.meta != b.meta
    assert compare(a, b).changes == []


def test_cell_finds_invented_keys() -> None:
    manifest = make("dev", dev_sections())
    assert cell(manifest, "interpreters", "primary", "version") == "3.11.7"
    assert cell(manifest, "interpreters", "primary", "path") == "/srv/dev/venv/bin/python"
    assert cell(manifest, "libraries", "libssl.so", "soname") == "libssl.so.3"
    assert cell(manifest, "config_files", "/etc/app.ini", "keys.db.host") == "db1"
    assert cell(manifest, "python_packages", "requests", "version") == "2.31.0"
    assert cell(manifest, "python_packages", "nope", "version") is MISSING
    assert cell(manifest, "meta", "issues", "count") == 0


def test_changes_are_sorted_by_section_then_key() -> None:
    def edit(s: dict[str, Any]) -> None:
        s["python_packages"]["six"]["version"] = "1.17.0"
        s["python_packages"]["attrs"]["version"] = "23.2.0"
        s["interpreters"]["/srv/dev/venv/bin/python"]["version"] = "3.11.8"

    assert [c.where for c in changed(edit)] == [
        "interpreters/primary.version",
        "python_packages/attrs.version",
        "python_packages/six.version",
    ]
