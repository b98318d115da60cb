"""Hand-built manifests for the pure diff tests (real captures are in test_diff_real.py)."""

from __future__ import annotations

import copy
from typing import Any

from envpack.diff.model import Change
from envpack.manifest import Manifest, Meta

__all__ = ["by_where", "dev_sections", "make", "one"]


def make(label: str, sections: dict[str, dict[str, Any]], issues: int = 0) -> Manifest:
    from envpack.manifest import Issue

    return Manifest(
        meta=Meta(
            envpack_version="0.1.0",
            captured_at="2026-01-01T00:00:00Z",
            source_kind="live",
            source=f"{label}-host",
            hostname=f"{label}-host",
            label=label,
        ),
        sections=copy.deepcopy(sections),
        issues=[Issue("probe", f"/p{i}", "unreadable") for i in range(issues)],
    )


def dev_sections() -> dict[str, dict[str, Any]]:
    """A small environment with something in every section."""
    return {
        "interpreters": {
            "/srv/dev/venv/bin/python": {
                "implementation": "cpython",
                "version": "3.11.7",
                "primary": True,
                "markers": {"python_version": "3.11", "python_full_version": "3.11.7"},
                "sys_path": ["/srv/dev/venv/lib/python3.11/site-packages"],
            }
        },
        "python_packages": {
            "requests": {"name": "requests", "version": "2.31.0", "location": "/a"},
            "six": {"name": "six", "version": "1.16.0", "location": "/a"},
            "attrs": {"name": "attrs", "version": "23.1.0", "location": "/a"},
        },
        "os": {
            "release": {"id": "debian", "version_id": "12", "pretty_name": "Debian 12"},
            "libc": {"family": "glibc", "version": "2.36"},
            "architecture": {"machine": "x86_64", "source": "uname"},
        },
        "system_packages": {
            "libssl3": {"name": "libssl3", "version": "3.0.11-1~deb12u2", "manager": "dpkg"},
            "openssl": {"name": "openssl", "version": "3.0.11-1~deb12u2", "manager": "dpkg"},
        },
        "binaries": {"/usr/bin/git": {"sha256": "aa", "version": "2.39.2"}},
        "libraries": {
            "libssl.so.3": {"path": "/usr/lib/x86_64-linux-gnu/libssl.so.3", "needed_by": ["a"]},
            "libc.so.6": {"path": "/usr/lib/x86_64-linux-gnu/libc.so.6", "needed_by": ["a"]},
            "libz.so.1": {"path": "/usr/lib/x86_64-linux-gnu/libz.so.1", "needed_by": ["a"]},
        },
        "config_files": {
            "/etc/app.ini": {
                "sha256": "11",
                "keys": {"db.host": "db1", "db.password": "hmac-sha256:" + "a" * 32},
            }
        },
        "env": {
            "PATH": {"value": "/usr/bin", "redacted": False},
            "HTTPS_PROXY": {"value": "http://proxy:3128", "redacted": False},
        },
        "network": {
            "dns": {"nameservers": ["10.0.0.2"], "search": ["corp.example"]},
            "interface:eth0": {"mtu": 1500, "state": "up"},
            "listen:tcp:0.0.0.0:8080": {"protocol": "tcp", "port": 8080},
            "hostname": {"hostname": "dev-host"},
        },
        "app": {"name": {"value": "shop"}},
    }


def by_where(changes: list[Change]) -> dict[str, Change]:
    found = {c.where: c for c in changes}
    assert len(found) == len(changes), "two changes at the same place"
    return found


def one(changes: list[Change], where: str) -> Change:
    found = by_where(changes)
    assert where in found, f"{where} not among {sorted(found)}"
    return found[where]
