"""Fuzz targets for the on-disk database readers: dpkg status, apk installed, RECORD.

Each takes text a hostile rootfs controls. Invariant: it returns (or raises the module's
documented error), never another exception, and what it returns is no bigger than what
it read. Bounded: a few hundred examples each, a timeout per test.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envpack.snapshot import apk_db, dpkg_status, record
from envpack.snapshot.secret_formats import SECRET_PARSERS

_FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_DPKG_LINES = st.sampled_from(
    [
        "Package: a",
        "Status: install ok installed",
        "Status: hold ok installed",
        "Version: 1:2.3-4",
        "Architecture: amd64",
        "Source: glibc (2.36-9)",
        " continuation",
        "",
        ":",
        "Package:",
    ]
)
_APK_LINES = st.sampled_from(
    ["P:musl", "V:1.2.4-r2", "A:x86_64", "o:musl", "F:usr/lib", "R:libc.so", "R:", "F:", "", "P:"]
)
_RECORD_LINES = st.sampled_from(
    [
        "a/__init__.py,sha256=AAAA,12",
        "a-1.dist-info/RECORD,,",
        '"quoted,path",sha256=,',
        "b.py,md5=x,-1",
        "c.py,sha256=x," + "9" * 5000,  # past Python's int digit limit
        "d.py,=,²",
        '"unclosed',
        "x" * 140_000,  # past csv's field size limit
        "",
    ]
)


def _text(lines: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.lists(lines | st.text(max_size=40), max_size=30).map("\n".join)


@pytest.mark.fuzz
@pytest.mark.timeout(60)
@_FUZZ
@given(texts=st.lists(_text(_DPKG_LINES), min_size=1, max_size=3))
def test_fuzz_dpkg_status(texts: list[str]) -> None:
    packages = dpkg_status.installed_packages(texts)
    assert len(packages) <= sum(t.count("Package:") for t in texts)
    for package in packages:
        assert package.name and isinstance(package.version, str)


@pytest.mark.fuzz
@pytest.mark.timeout(60)
@_FUZZ
@given(text=_text(_APK_LINES))
def test_fuzz_apk_installed(text: str) -> None:
    packages = apk_db.installed_packages(text)
    files = list(apk_db.installed_files(text))
    assert len(packages) <= text.count("P:")
    assert len(files) <= text.count("R:")
    assert all(path.startswith("/") for _, _, path in files)


@pytest.mark.fuzz
@pytest.mark.timeout(60)
@_FUZZ
@given(text=_text(_RECORD_LINES))
def test_fuzz_record(text: str) -> None:
    rows = record.record_rows(text)
    entries = record.entries_from_rows(rows)
    assert len(entries) == len(rows) <= len(text.splitlines())
    assert record.rows_size(rows) == record.record_size(entries)
    for entry in entries:
        assert entry.size is None or entry.size >= 0
        assert record.resolve_record_path("/site", entry.path).startswith("/")


def test_record_oversized_fields_are_dropped_not_raised() -> None:
    text = "x" * 140_000 + "\nok.py,sha256=AAAA,5\nbig.py,sha256=AAAA," + "9" * 5000 + "\n"
    entries = record.parse_record(text)
    assert [(e.path, e.size) for e in entries] == [("ok.py", 5), ("big.py", None)]


@pytest.mark.fuzz
@pytest.mark.timeout(60)
@pytest.mark.parametrize("fmt", sorted(SECRET_PARSERS))
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=300))
def test_fuzz_secret_formats(fmt: str, text: str) -> None:
    """The secret-holding formats (.netrc, .git-credentials …): keys or ConfigParseError."""
    from envpack.snapshot.config_parsers import ConfigParseError

    try:
        keys = SECRET_PARSERS[fmt](text)
    except ConfigParseError:
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in keys.items())
