"""Facts only one source kind can have stay out of a diff across kinds (pure tests).

The real host-against-image diff is in tests/verify/test_verify_real.py.
"""

from __future__ import annotations

import copy
from typing import Any

from envpack.diff.compare import compare
from envpack.diff.engine import Environment, run_diff
from envpack.diff.sources import comparable
from envpack.manifest import Manifest, Meta


def _manifest(kind: str, name: str, sections: dict[str, dict[str, Any]]) -> Manifest:
    meta = Meta("0.1.0", "2026-01-01T00:00:00Z", kind, name, name, label=name)
    return Manifest(meta=meta, sections=copy.deepcopy(sections))


def _host() -> dict[str, dict[str, Any]]:
    return {
        "interpreters": {
            "/venv/bin/python": {
                "version": "3.11.7",
                "primary": True,
                "source": "probe",
                "markers": {"python_version": "3.11", "platform_release": "6.1.0"},
            }
        },
        "os": {
            "kernel": {"release": "6.1.0"},
            "architecture": {"machine": "x86_64", "source": "uname"},
        },
        "config_files": {
            "/etc/pip.conf": {"sha256": "a", "owner_name": "root:root"},
            "/etc/hosts": {"sha256": "host"},
            "/root/.config/pip/pip.conf": {"sha256": "u"},
            "/srv/ca.pem": {"sha256": "ca"},
        },
        "env": {
            "PATH": {"value": "/usr/bin"},
            "PWD": {"value": "/root"},
            "SHLVL": {"value": "2"},
            "HOME": {"value": "/root"},
            "SSL_CERT_FILE": {"value": "/srv/ca.pem"},
        },
    }


def _image() -> dict[str, dict[str, Any]]:
    host = _host()
    interp = host["interpreters"]["/venv/bin/python"]
    interp["source"] = "files"
    interp["markers"]["platform_release"] = None
    return {
        "interpreters": host["interpreters"],
        "os": {"architecture": {"machine": "x86_64", "source": "/var/lib/dpkg/arch"}},
        "config_files": {
            "/etc/pip.conf": {"sha256": "a", "owner_name": None},
            "/etc/hosts": {"sha256": "placeholder"},
        },
        "env": {"PATH": {"value": "/usr/bin"}, "HOME": {"value": "/root"}},
    }


def _rows(a: Manifest, b: Manifest) -> list[str]:
    return [c.where for c in compare(a, b).changes]


def test_host_against_image_keeps_only_real_drift() -> None:
    host, image = _manifest("live", "host", _host()), _manifest("image", "app:1", _image())
    assert len(_rows(host, image)) > 5  # compared as they are: all of it looks like drift
    a, b, notes = comparable(host, image)
    assert _rows(a, b) == ["env/SSL_CERT_FILE"]  # a real difference stays
    assert len(notes) == 1
    for said in ("kernel", "owner names", "session variables", "/etc/hosts", "$HOME"):
        assert said in notes[0]
    # The manifests given are untouched.
    assert "kernel" in host.section("os") and "PWD" in host.section("env")


def test_the_same_facts_are_compared_between_two_live_hosts() -> None:
    one, two = _host(), _host()
    two["os"]["kernel"]["release"] = "6.5.0"
    two["config_files"]["/etc/pip.conf"]["owner_name"] = "app:app"
    two["env"]["PWD"]["value"] = "/srv"
    a, b = _manifest("live", "one", one), _manifest("live", "two", two)
    assert comparable(a, b) == (a, b, [])
    assert _rows(a, b) == [
        "os/kernel.release",
        "config_files//etc/pip.conf.owner_name",
        "env/PWD.value",
    ]


def test_a_rootfs_against_an_image_sets_aside_only_the_runtime_files() -> None:
    root, image = _image(), _image()
    image["config_files"]["/etc/hosts"]["sha256"] = "other"
    image["config_files"]["/etc/pip.conf"]["sha256"] = "changed"
    a, b, notes = comparable(_manifest("root", "tree", root), _manifest("image", "app", image))
    assert _rows(a, b) == ["config_files//etc/pip.conf.sha256"]
    assert len(notes) == 1 and "/etc/hosts" in notes[0] and "kernel" not in notes[0]


def test_run_diff_reports_the_note_and_no_false_drift() -> None:
    envs = [
        Environment("host", "host.json", _manifest("live", "host", _host())),
        Environment("app:1", "app.json", _manifest("image", "app:1", _image())),
    ]
    result = run_diff(envs).result
    assert [c.where for d in result.drifts for c in d.changes] == ["env/SSL_CERT_FILE"]
    assert any("not compared between host and app:1" in n for n in result.notes)


def test_facts_set_aside_but_equal_on_both_sides_need_no_note() -> None:
    root, image = _image(), _image()
    a, _, notes = comparable(_manifest("root", "tree", root), _manifest("image", "app", image))
    assert notes == []
    assert "/etc/hosts" not in a.section("config_files")  # set aside all the same
