"""verify's scope, pure: what of a source manifest a build packs, and so what is compared.

Hand-built manifests; the real round trip (a real venv built and verified) is in
test_verify_real.py.
"""

from __future__ import annotations

import copy
from typing import Any

from envpack.diff.compare import compare
from envpack.manifest import Issue, Manifest, Meta
from envpack.verify.scope import Packing, restrict

PY = "/srv/venv/bin/python"
BASE = "/opt/py311"
SITE = "/srv/venv/lib/python3.11/site-packages"


def _manifest(kind: str, sections: dict[str, dict[str, Any]]) -> Manifest:
    return Manifest(
        meta=Meta("0.1.0", "2026-01-01T00:00:00Z", kind, kind, "host" if kind == "live" else ""),
        sections=copy.deepcopy(sections),
    )


def _lib(soname: str, real: str, needed_by: list[str], needed: list[str] = (), **kw: Any) -> Any:  # type: ignore[assignment]
    return {
        "soname": soname,
        "path": real,
        "real_path": real,
        "sha256": kw.get("sha256", "s-" + soname),
        "size": 10,
        "owner": kw.get("owner", {"kind": "dpkg", "name": "pkg"}),
        "needed_by": needed_by,
        "needed_by_count": len(needed_by),
        "elf": {"needed": list(needed), "soname": soname, "build_id": "b-" + soname},
    }


def _source() -> dict[str, dict[str, Any]]:
    interp = {
        "executable": PY,
        "real_executable": f"{BASE}/bin/python3.11",
        "prefix": "/srv/venv",
        "base_prefix": BASE,
        "version": "3.11.7",
        "primary": True,
        "source": "probe",
        "site_packages": [SITE],
        "sys_path": [f"{BASE}/lib/python3.11", f"{BASE}/lib/python3.11/lib-dynload", SITE],
        "markers": {"python_version": "3.11", "platform_release": "6.1", "platform_version": "#1"},
    }
    other = dict(interp, executable="/usr/bin/python2.7", primary=False, version="2.7.18")
    # libc has more requesters than needed_by keeps: none of the Python side among them.
    many = [f"/bin/tool{i:02}" for i in range(20)]
    return {
        "interpreters": {PY: interp, "/usr/bin/python2.7": other},
        "python_packages": {
            "flask": {"name": "Flask", "version": "3.0.0", "interpreter": PY, "location": SITE},
            "six": {"name": "six", "version": "1.16", "interpreter": "/usr/bin/python2.7"},
        },
        "libraries": {
            "libpython3.11.so.1.0": _lib(
                "libpython3.11.so.1.0",
                "/usr/lib/libpython3.11.so.1.0",
                ["/usr/bin/gdb"],
                ["libc.so.6"],
            ),
            f"libpython3.11.so.1.0@{BASE}/lib/libpython3.11.so.1.0": _lib(
                "libpython3.11.so.1.0",
                f"{BASE}/lib/libpython3.11.so.1.0",
                [f"{BASE}/bin/python3.11"],
                ["libm.so.6", "libc.so.6"],
            ),
            "libm.so.6": _lib("libm.so.6", "/lib/libm.so.6", [f"{BASE}/lib/libpython3.11.so.1.0"]),
            "libc.so.6": _lib("libc.so.6", "/lib/libc.so.6", many),
            "libyaml.so.0": _lib("libyaml.so.0", "/lib/libyaml.so.0", [f"{SITE}/_yaml.so"]),
            "libgit2.so.1": _lib("libgit2.so.1", "/lib/libgit2.so.1", ["/usr/bin/git"]),
        },
        "config_files": {
            "/etc/pip.conf": {"path": "/etc/pip.conf", "sha256": "p", "owner_name": "root:root"},
            "/etc/hosts": {"path": "/etc/hosts", "sha256": "h", "owner_name": "root:root"},
            "/etc/app/secret.ini": {
                "path": "/etc/app/secret.ini",
                "keys": {"db.password": "hmac-sha256:00ff"},
            },
            "/etc/app/skipped.conf": {"path": "/etc/app/skipped.conf", "sha256": "s"},
        },
        # Sections a build does not pack: never compared by verify.
        "system_packages": {"git": {"name": "git", "version": "1"}},
        "env": {"HOME": {"value": "/root"}},
    }


def _image_of(source: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What a faithful build of ``source`` captures as, offline."""
    libs = source["libraries"]
    image_libs = {
        "libpython3.11.so.1.0": libs[f"libpython3.11.so.1.0@{BASE}/lib/libpython3.11.so.1.0"],
        "libm.so.6": libs["libm.so.6"],
        "libc.so.6": libs["libc.so.6"],
        "libyaml.so.0": libs["libyaml.so.0"],
    }
    image_libs = copy.deepcopy(image_libs)
    for lib in image_libs.values():
        lib["owner"] = None  # an image's package database has no file lists
        lib["needed_by"] = [PY]
    interp = dict(source["interpreters"][PY])
    interp["markers"] = dict(interp["markers"], platform_release="5.10", platform_version="#9")
    return {
        "interpreters": {PY: interp},
        "python_packages": {"flask": source["python_packages"]["flask"]},
        "libraries": image_libs,
        "config_files": {
            "/etc/pip.conf": dict(source["config_files"]["/etc/pip.conf"], owner_name=None),
            "/etc/hosts": {"path": "/etc/hosts", "sha256": "generated"},
        },
        "binaries": {"ldconfig": {"path": "/sbin/ldconfig", "real_path": "/sbin/ldconfig"}},
    }


def _changes(scoped_source: Manifest, scoped_image: Manifest) -> list[tuple[str, str, Any]]:
    drift = compare(scoped_source, scoped_image)
    return [(c.section, c.label, c.kind.value) for c in drift.changes]


PACKING = Packing(excluded=frozenset({"/etc/app/skipped.conf"}))


def test_a_faithful_image_has_no_drift_and_every_omission_is_noted() -> None:
    source = _source()
    scoped = restrict(_manifest("live", source), _manifest("image", _image_of(source)), PACKING)
    assert _changes(scoped.source, scoped.image) == []
    assert set(scoped.source.sections) == {
        "interpreters",
        "python_packages",
        "libraries",
        "config_files",
    }
    notes = "\n".join(scoped.notes)
    assert "/usr/bin/python2.7" in notes  # the other interpreter
    assert "python_packages: 1 of other interpreters" in notes
    assert "libraries: 2 of the source's not compared" in notes  # gdb's libpython, libgit2
    assert "/etc/hosts" in notes and "/etc/app/secret.ini" in notes
    assert "/etc/app/skipped.conf" in notes


def test_libraries_follow_the_python_side_through_long_needed_by_lists() -> None:
    source = _source()
    scoped = restrict(_manifest("live", source), _manifest("image", _image_of(source)), PACKING)
    # libc's 20 listed requesters are all host tools; it is reached from libpython.
    assert sorted(scoped.source.section("libraries")) == [
        "libc.so.6",
        "libm.so.6",
        "libpython3.11.so.1.0",
        "libyaml.so.0",
    ]
    kept = scoped.source.section("libraries")["libpython3.11.so.1.0"]
    assert kept["real_path"] == f"{BASE}/lib/libpython3.11.so.1.0"  # not gdb's copy
    assert "owner" not in kept and "needed_by" not in kept


def test_a_library_missing_from_the_image_is_drift() -> None:
    source = _source()
    image = _image_of(source)
    del image["libraries"]["libyaml.so.0"]
    scoped = restrict(_manifest("live", source), _manifest("image", image), PACKING)
    assert _changes(scoped.source, scoped.image) == [("libraries", "libyaml.so.0", "removed")]


def test_a_replaced_library_package_and_config_are_exact_drift() -> None:
    source = _source()
    image = _image_of(source)
    image["libraries"]["libm.so.6"]["sha256"] = "other"
    image["python_packages"]["flask"] = dict(image["python_packages"]["flask"], version="3.1.0")
    image["config_files"]["/etc/pip.conf"]["sha256"] = "changed"
    image["config_files"]["/etc/app/new.conf"] = {"path": "/etc/app/new.conf"}
    scoped = restrict(_manifest("live", source), _manifest("image", image), PACKING)
    assert _changes(scoped.source, scoped.image) == [
        ("python_packages", "flask.version", "upgraded"),
        ("libraries", "libm.so.6.sha256", "changed"),
        ("config_files", "/etc/app/new.conf", "added"),
        ("config_files", "/etc/pip.conf.sha256", "changed"),
    ]


def test_kernel_markers_and_how_the_interpreter_was_described_are_not_drift() -> None:
    source = _source()
    image = _image_of(source)
    image["interpreters"][PY]["source"] = "files"
    scoped = restrict(_manifest("live", source), _manifest("image", image), PACKING)
    assert _changes(scoped.source, scoped.image) == []
    assert any("described by probe" in n and "by files" in n for n in scoped.notes)
    # …but a real difference of the interpreter is.
    image["interpreters"][PY]["sys_path"] = [SITE]
    scoped = restrict(_manifest("live", source), _manifest("image", image), PACKING)
    changes = _changes(scoped.source, scoped.image)
    assert changes == [("interpreters", "primary.sys_path", "changed")]


def test_an_interpreter_that_did_not_run_in_the_image_is_drift_not_other_interpreters() -> None:
    source = _source()
    image = _image_of(source)
    del image["interpreters"][PY]
    scoped = restrict(_manifest("live", source), _manifest("image", image), PACKING)
    assert _changes(scoped.source, scoped.image) == [("interpreters", PY, "removed")]
    # Its packages are still compared (keyed by the same executable path).
    assert "flask" in scoped.image.section("python_packages")


def test_a_secret_config_the_image_holds_is_compared() -> None:
    """``--include-secrets``: the file is in the image, so it is compared like any other."""
    source = _source()
    image = _image_of(source)
    image["config_files"]["/etc/app/secret.ini"] = {
        "path": "/etc/app/secret.ini",
        "keys": {"db.password": "hmac-sha256:1111"},
    }
    scoped = restrict(_manifest("live", source), _manifest("image", image), PACKING)
    assert _changes(scoped.source, scoped.image) == [
        ("config_files", "/etc/app/secret.ini.keys.db.password", "changed")
    ]


def test_image_capture_issues_become_notes_except_for_files_left_out() -> None:
    source = _source()
    image = _manifest("image", _image_of(source))
    image.issues = [
        Issue("config_files", "/etc/app/secret.ini", "no file matches"),
        Issue("libraries", "/srv/venv/x.so", "libfoo.so.1: not found"),
        Issue("os", "/bin/sh", "no such file"),
    ]
    scoped = restrict(_manifest("live", source), image, PACKING)
    issue_notes = [n for n in scoped.notes if n.startswith("image capture:")]
    assert issue_notes == ["image capture: libraries /srv/venv/x.so: libfoo.so.1: not found"]


def test_a_library_with_many_requesters_missing_from_the_image_is_drift() -> None:
    """libc's listed requesters are all host tools: only the walk from libpython finds it."""
    source = _source()
    image = _image_of(source)
    del image["libraries"]["libc.so.6"]
    scoped = restrict(_manifest("live", source), _manifest("image", image), PACKING)
    assert _changes(scoped.source, scoped.image) == [("libraries", "libc.so.6", "removed")]


def test_a_section_the_source_did_not_capture_is_not_verified_and_said() -> None:
    source = _source()
    image = _image_of(source)
    image["config_files"]["/etc/pip.conf"]["sha256"] = "changed"
    source_manifest = _manifest("live", source)
    source_manifest.meta.coverage.update(config_files="not_captured", network="not_captured")
    image_manifest = _manifest("image", image)
    image_manifest.meta.coverage.update(os="not_captured", network="not_applicable")
    scoped = restrict(source_manifest, image_manifest, PACKING)
    # No coverage row for the sections verify never compares, none for the skipped one.
    assert _changes(scoped.source, scoped.image) == []
    assert "config_files: not captured in the source; not verified" in scoped.notes
