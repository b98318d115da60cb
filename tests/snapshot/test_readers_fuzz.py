"""Fuzz targets for the on-disk database readers: dpkg status, apk installed, RECORD,
ld.so.cache and rpm headers.

Each takes text a hostile rootfs controls. Invariant: it returns (or raises the module's
documented error), never another exception, and what it returns is no bigger than what
it read. Bounded: a few hundred examples each, a timeout per test.
"""

from __future__ import annotations

import struct
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envpack.snapshot import apk_db, dpkg_status, ldso, os_libc, record, rpmdb
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


def _ld_so_cache(entries: list[tuple[int, int]], tail: bytes, count: int | None = None) -> bytes:
    """A new-format ld.so.cache: header, ``(key, value)`` string offsets, then ``tail``."""
    header = b"glibc-ld.so.cache1.1".ljust(20, b"\0")
    header += struct.pack("<I", len(entries) if count is None else count)
    header = header.ljust(28, b"\0") + b"\x02"  # flags: little endian
    header = header.ljust(48, b"\0")
    body = b"".join(struct.pack("<iIIIQ", 1, k, v, 0, 0) for k, v in entries)
    return header + body + tail


def test_ld_so_cache_unterminated_strings_are_bounded() -> None:
    """100,000 entries all naming one 1 MB string with no NUL: not 100 GB of copies."""
    entries = [(48 + 24 * 100_000, 48 + 24 * 100_000)] * 100_000
    data = _ld_so_cache(entries, b"x" * 1_000_000)
    started = time.process_time()  # CPU: load does not count
    found = ldso.parse_ld_so_cache(data)
    assert time.process_time() - started < 10
    assert found == {}


@pytest.mark.fuzz
@pytest.mark.timeout(60)
@_FUZZ
@given(
    entries=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 400)), max_size=20),
    tail=st.binary(max_size=200),
    count=st.one_of(st.none(), st.integers(0, 2**32 - 1)),
)
def test_fuzz_ld_so_cache(entries: list[tuple[int, int]], tail: bytes, count: int | None) -> None:
    data = _ld_so_cache(entries, tail, count)
    for cut in (len(data), len(data) // 2, 30):
        found = ldso.parse_ld_so_cache(data[:cut])
        paths = [p for listed in found.values() for p in listed]
        assert len(paths) <= cut // 24
        # A name of at most PATH_MAX bytes; its recorded form escapes a byte in 3 characters.
        assert all(len(n) <= 3 * 4096 for n in found) and all(len(p) <= 3 * 4096 for p in paths)


def _rpm_header(tags: list[tuple[int, int, bytes, int]]) -> bytes:
    """An rpm header blob: ``(tag, type, data, count)`` entries, data stored in order."""
    index = b""
    store = b""
    for tag, kind, data, count in tags:
        index += struct.pack(">iiii", tag, kind, len(store), count)
        store += data
    return struct.pack(">ii", len(tags), len(store)) + index + store


def _package_tags(files: list[tuple[int, int, bytes, int]]) -> list[tuple[int, int, bytes, int]]:
    strings = [(rpmdb.TAG_NAME, 6, b"p\0", 1), (rpmdb.TAG_VERSION, 6, b"1\0", 1)]
    return [*strings, (rpmdb.TAG_RELEASE, 6, b"1\0", 1), *files]


def test_rpm_file_list_bomb_is_refused() -> None:
    """200,000 one-byte names each joined to one 1 MB folder: 200 GB of paths if built."""
    count = 200_000
    tags = _package_tags(
        [
            (rpmdb.TAG_BASENAMES, 8, b"a\0" * count, count),
            (rpmdb.TAG_DIRNAMES, 8, b"d" * 1_000_000 + b"\0", 1),
            (rpmdb.TAG_DIRINDEXES, 4, bytes(4 * count), count),
        ]
    )
    started = time.process_time()  # CPU: load does not count
    with pytest.raises(rpmdb.RpmHeaderError, match="file list longer than"):
        rpmdb.parse_header(_rpm_header(tags))
    assert time.process_time() - started < 10


@pytest.mark.fuzz
@pytest.mark.timeout(60)
@_FUZZ
@given(
    extra=st.lists(
        st.tuples(
            st.sampled_from([1117, 1118, 1116, 1027, 1003, 1022, 1044, 1000]),
            st.sampled_from([4, 6, 8, 9, 0, 99]),
            st.binary(max_size=40),
            st.integers(-2, 50),
        ),
        max_size=6,
    ),
    cut=st.one_of(st.none(), st.integers(0, 300)),
)
def test_fuzz_rpm_header(extra: list[tuple[int, int, bytes, int]], cut: int | None) -> None:
    blob = _rpm_header(_package_tags(extra))
    if cut is not None:
        blob = blob[:cut]
    try:
        package = rpmdb.parse_header(blob)
    except rpmdb.RpmHeaderError as err:
        assert "\n" not in str(err)
        return
    assert sum(map(len, package.files)) <= 64 * 1024 * 1024


def test_glibc_banner_search_is_linear() -> None:
    """A libc made of the banner's first words: the lazy pattern rescanned the run from each."""
    banner = b"\0GNU C Library (Debian) stable release version 2.36.\n"
    for data in (
        b"GNU C Library " * 500_000 + banner,  # 18 s for 56 KB with the lazy-gap pattern
        b"GNU C Library\n version 1.1" * 300_000 + banner,  # each "version" looks back
    ):
        started = time.process_time()  # CPU: load does not count
        assert os_libc.glibc_version_from_bytes(data) == "2.36"
        assert time.process_time() - started < 10
    assert os_libc.glibc_version_from_bytes(b"GNU C Library version 2.17, by Roland") == "2.17"
    assert os_libc.glibc_version_from_bytes(b"version 2.3 GNU C Library") is None
