"""The default severity table and its one-line reasons."""

from __future__ import annotations

from typing import Any

import pytest

from envpack.diff.model import ChangeKind, Severity
from envpack.diff.severity import Graded, grade
from envpack.diff.versions import python_delta, system_delta

C, U, D = ChangeKind.CHANGED, ChangeKind.UPGRADED, ChangeKind.DOWNGRADED
A, R = ChangeKind.ADDED, ChangeKind.REMOVED


def py(before: str, after: str) -> dict[str, Any]:
    d = python_delta(before, after)
    kind = U if d.order > 0 else D if d.order < 0 else C
    return {"before": before, "after": after, "kind": kind, "delta": d}


@pytest.mark.parametrize(
    ("section", "key", "field", "values", "severity"),
    [
        ("interpreters", "primary", "version", py("3.11.7", "2.7.18"), Severity.CRITICAL),
        ("interpreters", "primary", "version", py("3.11.7", "3.9.18"), Severity.MAJOR),
        ("interpreters", "primary", "version", py("3.11.7", "3.11.8"), Severity.MINOR),
        ("interpreters", "primary", "version", py("3.12.0rc1", "3.12.0"), Severity.MINOR),
        (
            "interpreters",
            "primary",
            "implementation",
            {"before": "cpython", "after": "pypy", "kind": C},
            Severity.CRITICAL,
        ),
        (
            "interpreters",
            "primary",
            "markers.python_version",
            {"before": "3.11", "after": "2.7", "kind": C},
            Severity.INFO,
        ),
        (
            "interpreters",
            "primary",
            "soabi",
            {"before": "cpython-311", "after": "cpython-311d", "kind": C},
            Severity.MINOR,
        ),
        (
            "interpreters",
            "/usr/bin/python3",
            None,
            {"before": {}, "after": None, "kind": R},
            Severity.MAJOR,
        ),
        (
            "interpreters",
            "/usr/bin/python3",
            None,
            {"before": None, "after": {}, "kind": A},
            Severity.INFO,
        ),
        ("python_packages", "requests", "version", py("2.31.0", "1.0.0"), Severity.MAJOR),
        ("python_packages", "requests", "version", py("1.0.0", "2.31.0"), Severity.MAJOR),
        ("python_packages", "requests", "version", py("2.31.0", "2.27.1"), Severity.MINOR),
        ("python_packages", "requests", "version", py("2.31.0", "2.31.1"), Severity.PATCH),
        ("python_packages", "requests", "version", py("2.31.0", "2.31.0.post1"), Severity.PATCH),
        ("python_packages", "requests", "version", py("2.31.0", "2.32.0rc1"), Severity.MINOR),
        ("python_packages", "tz", "version", py("2004d", "2005a"), Severity.MAJOR),
        (
            "python_packages",
            "requests",
            None,
            {"before": {}, "after": None, "kind": R},
            Severity.MAJOR,
        ),
        (
            "python_packages",
            "requests",
            None,
            {"before": None, "after": {}, "kind": A},
            Severity.MINOR,
        ),
        (
            "python_packages",
            "wsgiref",
            None,
            {"before": None, "after": {"stdlib": True}, "kind": A},
            Severity.INFO,
        ),
        (
            "python_packages",
            "wsgiref",
            None,
            {"before": {"stdlib": True}, "after": None, "kind": R},
            Severity.INFO,
        ),
        (
            "python_packages",
            "requests",
            "location",
            {"before": "/a", "after": "/b", "kind": C},
            Severity.INFO,
        ),
        (
            "system_packages",
            "libc6",
            None,
            {"before": {}, "after": None, "kind": R},
            Severity.MAJOR,
        ),
        (
            "system_packages",
            "libc6",
            "architecture",
            {"before": "amd64", "after": "arm64", "kind": C},
            Severity.MAJOR,
        ),
        ("env", "LD_PRELOAD", None, {"before": None, "after": {}, "kind": A}, Severity.MAJOR),
        ("env", "PYTHONPATH", "value", {"before": "/a", "after": "/b", "kind": C}, Severity.MAJOR),
        (
            "env",
            "http_proxy",
            "value",
            {"before": "http://a", "after": "http://b", "kind": C},
            Severity.MAJOR,
        ),
        (
            "env",
            "TOKEN",
            "value",
            {"before": "hmac-sha256:" + "a" * 32, "after": "hmac-sha256:" + "b" * 32, "kind": C},
            Severity.MAJOR,
        ),
        ("env", "LANG", "value", {"before": "C", "after": "C.UTF-8", "kind": C}, Severity.MINOR),
        ("env", "LANG", "redacted", {"before": False, "after": True, "kind": C}, Severity.INFO),
        (
            "network",
            "proxy",
            "env.HTTP_PROXY",
            {"before": "a", "after": "b", "kind": C},
            Severity.MAJOR,
        ),
        (
            "network",
            "hostname",
            "hostname",
            {"before": "a", "after": "b", "kind": C},
            Severity.MINOR,
        ),
        (
            "config_files",
            "/etc/app.ini",
            None,
            {"before": {}, "after": None, "kind": R},
            Severity.MAJOR,
        ),
        (
            "config_files",
            "/etc/app.ini",
            None,
            {"before": None, "after": {}, "kind": A},
            Severity.MINOR,
        ),
        (
            "binaries",
            "/usr/bin/git",
            None,
            {"before": {}, "after": None, "kind": R},
            Severity.MAJOR,
        ),
        (
            "binaries",
            "/usr/bin/git",
            "sha256",
            {"before": "a", "after": "b", "kind": C},
            Severity.MINOR,
        ),
        ("app", "name", "value", {"before": "a", "after": "b", "kind": C}, Severity.MINOR),
        ("meta", "issues", "count", {"before": 0, "after": 3, "kind": C}, Severity.INFO),
    ],
)
def test_default_severities(
    section: str, key: str, field: str | None, values: dict[str, Any], severity: Severity
) -> None:
    found, reason = grade(section, Graded(key, field, **values))
    assert found is severity, reason
    assert reason and "\n" not in reason


def test_python_3_to_27_reason_cannot_be_misread() -> None:
    severity, reason = grade("interpreters", Graded("primary", "version", **py("3.11.7", "2.7.18")))
    assert severity is Severity.CRITICAL
    assert reason == (
        "Python 3.11.7 → 2.7.18: major version change; code written for Python 3 will not run"
    )


def test_system_package_version_sizes() -> None:
    delta = system_delta("dpkg", "1.1.1n-0+deb11u5", "3.0.11-1~deb12u2")
    severity, reason = grade(
        "system_packages",
        Graded("openssl", "version", "1.1.1n-0+deb11u5", "3.0.11-1~deb12u2", U, delta=delta),
    )
    assert severity is Severity.MAJOR
    assert "major upgrade" in reason


def test_secrets_never_appear_in_reasons() -> None:
    secret = "hmac-sha256:" + "c" * 32
    for section, key, field in (
        ("env", "TOKEN", "value"),
        ("config_files", "/etc/a.ini", "keys.password"),
        ("network", "interface:eth0", "mac"),
    ):
        _, reason = grade(section, Graded(key, field, secret, "hmac-sha256:" + "d" * 32, C))
        assert "hmac" not in reason and "c" * 32 not in reason
