"""The shared-library closure of a real capture, cross-checked with glibc's ldd."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from elf_oracle import Built, ldd_map, require

from envpack.manifest import Manifest, dumps, schema_text
from envpack.redact import Redactor
from envpack.snapshot import libraries
from envpack.snapshot.capture import capture
from envpack.snapshot.context import CaptureContext, CaptureOptions
from envpack.snapshot.elf import ElfInfo
from envpack.snapshot.libraries import NEEDED_BY_LIMIT
from envpack.snapshot.source import Source


def _capture(
    tmp_path: Path, *, pythons: tuple[str, ...] = (), bins: tuple[str, ...] = (), path: str = ""
) -> Manifest:
    only = {"binaries", "libraries"}
    if pythons:
        only |= {"interpreters", "python_packages"}
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "VIRTUAL_ENV")}
    env["PATH"] = path
    options = CaptureOptions(
        pythons=pythons, binaries=bins, only=frozenset(only), cache_dir=tmp_path / "cache"
    )
    manifest = capture(Source.live(environ=env), options, Redactor(b"k" * 32))
    if not pythons and not path:
        # --only libraries also captures the interpreters it reads; with an empty PATH
        # there is none, which is recorded once and is not what these tests look at.
        found = [i for i in manifest.issues if i.probe == "interpreters"]
        assert [i.reason.split(":")[0] for i in found] == ["no interpreter found"]
        manifest.issues = [i for i in manifest.issues if i.probe != "interpreters"]
    return manifest


def _validate(manifest: Manifest) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(json.loads(dumps(manifest)), json.loads(schema_text()))


def _by_real_path(section: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {os.path.realpath(c["real_path"]): c for c in section.values()}


def _check_against_ldd(section: dict[str, Any], requester: str, program: str) -> None:
    """Every library ldd lists for ``program`` is in the section, as the same file."""
    by_real = _by_real_path(section)
    expected = ldd_map(program)
    assert expected, program
    for name, path in expected.items():
        assert path is not None, f"ldd cannot find {name} for {program}"
        component = by_real.get(os.path.realpath(path))
        assert component is not None, f"{name} ({path}) missing from the closure of {program}"
        assert component["soname"] == name
        assert component["sha256"] and component["size"] == os.path.getsize(path)
    # and the program's direct needs name it as a requester
    direct = [c for c in section.values() if requester in c["needed_by"]]
    assert direct


@pytest.mark.slow
def test_interpreter_closure_matches_ldd(tmp_path: Path) -> None:
    manifest = _capture(tmp_path, pythons=(sys.executable,))
    interpreter = next(iter(manifest.sections["interpreters"].values()))
    real = os.path.realpath(interpreter["executable"])
    section = manifest.sections["libraries"]
    _check_against_ldd(section, real, real)
    libc = section["libc.so.6"]
    assert libc["owner"] is not None and libc["owner"]["kind"] == "dpkg"
    assert libc["owner"]["name"].startswith("libc6")


@pytest.mark.parametrize(
    "program", ["/usr/bin/ls", "/usr/bin/bash", "/usr/bin/curl", "/usr/bin/openssl"]
)
def test_binary_closure_matches_ldd(tmp_path: Path, program: str) -> None:
    if not os.path.exists(program):
        pytest.skip(f"{program} is not installed here")
    manifest = _capture(tmp_path, bins=(program,))
    _check_against_ldd(manifest.sections["libraries"], os.path.realpath(program), program)
    assert manifest.issues == []


@pytest.mark.slow
def test_needed_by_is_sorted_and_capped(tmp_path: Path) -> None:
    manifest = _capture(tmp_path, path="/usr/bin")
    libc = manifest.sections["libraries"]["libc.so.6"]
    assert libc["needed_by"] == sorted(libc["needed_by"])
    assert len(libc["needed_by"]) == min(NEEDED_BY_LIMIT, libc["needed_by_count"])
    assert libc["needed_by_count"] > NEEDED_BY_LIMIT


def test_same_soname_two_files_and_a_missing_library(tmp_path: Path) -> None:
    built = Built(tmp_path / "build")
    built.lib("X", "libdup.so", marker=1)
    built.lib("Y", "libdup.so", marker=2)
    built.lib("B", "libb.so")
    built.lib("A", "liba.so", needs="libb.so")
    one = built.exe("one", "libdup.so", [f"-Wl,-rpath,{built.top / 'X'}"])
    two = built.exe("two", "libdup.so", [f"-Wl,-rpath,{built.top / 'Y'}"])
    # RUNPATH to A only: liba.so loads, its libb.so is found nowhere (ldd agrees).
    lost = built.exe(
        "lost",
        "liba.so",
        [
            "-Wl,--enable-new-dtags",
            f"-Wl,-rpath,{built.top / 'A'}",
            f"-Wl,-rpath-link,{built.top / 'B'}",  # the link editor finds it; ld.so will not
        ],
    )
    assert ldd_map(str(lost))["libb.so"] is None
    manifest = _capture(tmp_path, bins=(str(one), str(two), str(lost)))
    section = manifest.sections["libraries"]
    _validate(manifest)
    first = section["libdup.so"]
    second = section[f"libdup.so@{built.top / 'Y' / 'libdup.so'}"]
    assert first["path"] == str(built.top / "X" / "libdup.so")
    assert first["needed_by"] == [str(one)] and second["needed_by"] == [str(two)]
    assert first["sha256"] != second["sha256"]
    assert [(i.probe, i.path, i.reason) for i in manifest.issues] == [
        (
            "libraries",
            str(built.top / "A" / "liba.so"),
            f"libb.so not found (needed by {built.top / 'A' / 'liba.so'})",
        )
    ]


# -- C extensions of real wheels from PyPI ---------------------------------------------------


@pytest.fixture(scope="session")
def wheels_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv holding numpy and psycopg2-binary, installed from PyPI."""
    venv = tmp_path_factory.mktemp("wheels-venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    done = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "numpy",
            "psycopg2-binary",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot install numpy and psycopg2-binary from PyPI: {done.stderr[-300:]}")
    return python


def _extensions(site: Path, package: str) -> list[str]:
    return sorted(str(p) for p in (site / package).rglob("*.so"))


@pytest.mark.slow
def test_bundled_libraries_of_numpy_and_psycopg2(tmp_path: Path, wheels_venv: Path) -> None:
    require("ldd")
    manifest = _capture(tmp_path, pythons=(str(wheels_venv),))
    _validate(manifest)
    section = manifest.sections["libraries"]
    interpreter = next(iter(manifest.sections["interpreters"].values()))
    site = Path(interpreter["site_packages"][0])
    bundled = {
        "numpy": [c for c in section.values() if "/numpy.libs/" in c["path"]],
        "psycopg2-binary": [c for c in section.values() if "/psycopg2_binary.libs/" in c["path"]],
    }
    assert any("openblas" in c["soname"] for c in bundled["numpy"]), sorted(section)
    assert any(c["soname"].startswith("libpq") for c in bundled["psycopg2-binary"]), sorted(section)
    versions = {c["name"]: c["version"] for c in manifest.sections["python_packages"].values()}
    for distribution, components in bundled.items():
        for component in components:
            assert component["owner"] == {
                "kind": "python",
                "name": distribution,
                "version": versions[distribution],
            }
            # Found through the extension's $ORIGIN-relative RPATH/RUNPATH, nowhere else.
            assert component["path"].startswith(str(site))
    # Every extension's closure, as ldd sees it, is in the section as the same files.
    by_real = _by_real_path(section)
    extensions = _extensions(site, "numpy") + _extensions(site, "psycopg2")
    assert extensions
    for extension in extensions:
        for name, path in ldd_map(extension).items():
            assert path is not None, f"ldd cannot find {name} for {extension}"
            assert os.path.realpath(path) in by_real, f"{name} of {extension}"
    origin_users = [
        e for e in extensions if any(c for c in bundled["numpy"] if e in c["needed_by"])
    ]
    assert origin_users  # numpy's own extensions are what pull the bundled OpenBLAS in
    assert [i for i in manifest.issues if i.probe == "libraries"] == []


def test_vendored_libs_folders_are_not_roots(tmp_path: Path) -> None:
    """A leftover in ``x.libs/`` that nothing loads is not reported; extensions are roots."""
    built = Built(tmp_path / "build")
    built.lib("B", "libgone.so")
    site = built.top / "site-packages"
    leftover = built.lib("site-packages/old.libs", "libleft.so", needs="libgone.so")
    extension = built.lib(
        "site-packages/pkg", "_ext.cpython-311-x86_64-linux-gnu.so", needs="libgone.so"
    )
    assert leftover.exists() and extension.exists()
    ctx = CaptureContext(
        source=Source.live(environ={"PATH": ""}),
        options=CaptureOptions(cache_dir=tmp_path / "cache"),
        redactor=Redactor(b"k" * 32),
    )
    ctx.sections["interpreters"] = {
        "python": {"executable": sys.executable, "site_packages": [str(site)], "primary": True}
    }
    libraries.probe(ctx)
    ctx.finish()
    assert [(i.path, i.reason) for i in ctx.issues] == [
        (str(extension), f"libgone.so not found (needed by {extension})")
    ]


def test_keys_do_not_depend_on_the_walk_order() -> None:
    info = ElfInfo.__new__(ElfInfo)  # the ELF facts are not looked at here

    def found(path: str, *needers: str) -> libraries.Found:
        return libraries.Found("libpython3.11.so.1.0", path, path, info, None, set(needers))

    system = found("/usr/lib/libpython3.11.so.1.0", "/usr/bin/gdb", "/usr/bin/perf")
    pyenv = found("/opt/pyenv/lib/libpython3.11.so.1.0", "/opt/pyenv/bin/python3.11")
    walked_one_way = libraries.stable_keys({"a": pyenv, "b": system})
    walked_other_way = libraries.stable_keys({"a": system, "b": pyenv})
    assert walked_one_way == walked_other_way
    assert walked_one_way["libpython3.11.so.1.0"] is system
    assert walked_one_way["libpython3.11.so.1.0@/opt/pyenv/lib/libpython3.11.so.1.0"] is pyenv
