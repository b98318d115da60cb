"""The rpmdb reader against a real sqlite rpmdb written by rpm itself (fixtures/rootfs/rpm-mini)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envpack.snapshot.rpmdb import (
    RpmdbError,
    RpmHeaderError,
    RpmPackage,
    UnsupportedRpmdb,
    locate_rpmdb,
    parse_header,
    read_rpmdb,
    source_package_name,
)
from envpack.snapshot.source import Source

RPM_MINI = Path(__file__).resolve().parents[2] / "fixtures" / "rootfs" / "rpm-mini"
DB = RPM_MINI / "var" / "lib" / "rpm" / "rpmdb.sqlite"

# What REGENERATE.sh put in the database: the reader must find exactly this.
EXPECTED = [
    ("envpack-data", 2, "3.1", "4", "noarch", "envpack-data-3.1-4.src.rpm",
     ("/etc/envpack-data.conf", "/usr/share/envpack-data/a.txt")),
    ("envpack-empty", None, "0.1", "0.rc1", "noarch", "envpack-empty-0.1-0.rc1.src.rpm", ()),
    ("envpack-hello", None, "1.0", "1", "noarch", "envpack-hello-1.0-1.src.rpm",
     ("/usr/bin/envpack-hello", "/usr/share/envpack-hello/hello.txt")),
    ("envpack-multi", None, "1.2", "1", "i686", "envpack-multi-1.2-1.src.rpm",
     ("/usr/lib/envpack-multi/i686.dat",)),
    ("envpack-multi", None, "1.2", "1", "x86_64", "envpack-multi-1.2-1.src.rpm",
     ("/usr/lib/envpack-multi/x86_64.dat",)),
]  # fmt: skip


def _as_tuple(p: RpmPackage) -> tuple[object, ...]:
    return (p.name, p.epoch, p.version, p.release, p.arch, p.sourcerpm, p.files)


def _tree_digest(root: Path) -> dict[str, tuple[str, int]]:
    """Every file under root with its content hash and mtime: to prove nothing was written."""
    out: dict[str, tuple[str, int]] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            out[str(path)] = (
                hashlib.sha256(path.read_bytes()).hexdigest(),
                path.stat().st_mtime_ns,
            )
    return out


def test_reads_the_known_content_of_the_fixture() -> None:
    before = _tree_digest(RPM_MINI)
    contents = read_rpmdb(Source.rootfs(RPM_MINI))
    assert contents is not None
    assert contents.database.path == "/var/lib/rpm/rpmdb.sqlite"
    assert contents.database.format == "sqlite"
    assert contents.problems == ()
    assert [_as_tuple(p) for p in contents.packages] == EXPECTED
    evrs = {(p.name, p.arch): p.evr for p in contents.packages}
    assert evrs[("envpack-data", "noarch")] == "2:3.1-4"
    assert evrs[("envpack-empty", "noarch")] == "0.1-0.rc1"
    # Opened read-only and immutable: no journal, -shm, lock or mtime change in the rootfs.
    assert _tree_digest(RPM_MINI) == before


def test_agrees_with_the_rpm_tool(tmp_path: Path) -> None:
    rpm = shutil.which("rpm")
    if rpm is None:
        pytest.skip("the rpm tool is not installed (apt-get install rpm)")
    # rpm may leave a lock file beside the database: let it write into a copy.
    root = tmp_path / "root"
    shutil.copytree(RPM_MINI, root, symlinks=True)
    query = "%{NAME}|%{EPOCH}|%{VERSION}|%{RELEASE}|%{ARCH}|%{SOURCERPM}|[%{FILENAMES},]\\n"
    result = subprocess.run(
        [rpm, "--root", str(root), "--dbpath", "/var/lib/rpm", "-qa", "--qf", query],
        capture_output=True,
        text=True,
        check=True,
    )
    from_rpm = set()
    for line in result.stdout.splitlines():
        name, epoch, version, release, arch, srpm, files = line.split("|")
        from_rpm.add(
            (
                name,
                None if epoch == "(none)" else int(epoch),
                version,
                release,
                arch,
                srpm,
                tuple(sorted(f for f in files.split(",") if f)),
            )
        )
    contents = read_rpmdb(Source.rootfs(RPM_MINI))
    assert contents is not None
    assert {_as_tuple(p) for p in contents.packages} == from_rpm
    assert len(from_rpm) == len(EXPECTED)


def test_finds_the_database_under_usr_lib_sysimage_through_a_symlink(tmp_path: Path) -> None:
    # Fedora ≥ 36: /var/lib/rpm -> ../../usr/lib/sysimage/rpm
    sysimage = tmp_path / "usr" / "lib" / "sysimage" / "rpm"
    sysimage.mkdir(parents=True)
    shutil.copy(DB, sysimage / "rpmdb.sqlite")
    (tmp_path / "var" / "lib").mkdir(parents=True)
    (tmp_path / "var" / "lib" / "rpm").symlink_to("../../usr/lib/sysimage/rpm")
    contents = read_rpmdb(Source.rootfs(tmp_path))
    assert contents is not None
    assert len(contents.packages) == len(EXPECTED)


def test_no_database_is_none(tmp_path: Path) -> None:
    assert locate_rpmdb(Source.rootfs(tmp_path)) is None
    assert read_rpmdb(Source.rootfs(tmp_path)) is None


@pytest.mark.parametrize(
    ("name", "word", "fmt"), [("Packages", "BerkeleyDB", "bdb"), ("Packages.db", "ndb", "ndb")]
)
def test_legacy_formats_are_reported_not_parsed(
    tmp_path: Path, name: str, word: str, fmt: str
) -> None:
    folder = tmp_path / "var" / "lib" / "rpm"
    folder.mkdir(parents=True)
    # A BerkeleyDB hash file starts with its metadata page: magic 0x00061561 at offset 12.
    (folder / name).write_bytes(bytes(12) + (0x00061561).to_bytes(4, "little") + bytes(4080))
    found = locate_rpmdb(Source.rootfs(tmp_path))
    assert found is not None
    assert found.format == fmt
    with pytest.raises(UnsupportedRpmdb, match=word) as caught:
        read_rpmdb(Source.rootfs(tmp_path))
    assert caught.value.path == f"/var/lib/rpm/{name}"


def test_sqlite_wins_over_a_leftover_berkeleydb_file(tmp_path: Path) -> None:
    folder = tmp_path / "var" / "lib" / "rpm"
    folder.mkdir(parents=True)
    (folder / "Packages").write_bytes(bytes(4096))
    shutil.copy(DB, folder / "rpmdb.sqlite")
    contents = read_rpmdb(Source.rootfs(tmp_path))
    assert contents is not None
    assert len(contents.packages) == len(EXPECTED)


def test_a_corrupt_sqlite_file_is_an_rpmdb_error(tmp_path: Path) -> None:
    folder = tmp_path / "var" / "lib" / "rpm"
    folder.mkdir(parents=True)
    (folder / "rpmdb.sqlite").write_bytes(b"this is not a database\n" * 100)
    with pytest.raises(RpmdbError, match="not a readable rpm sqlite database"):
        read_rpmdb(Source.rootfs(tmp_path))


def test_a_fifo_in_place_of_the_database_does_not_hang(tmp_path: Path) -> None:
    folder = tmp_path / "var" / "lib" / "rpm"
    folder.mkdir(parents=True)
    os.mkfifo(folder / "rpmdb.sqlite")
    with pytest.raises(RpmdbError, match="not a regular file"):
        read_rpmdb(Source.rootfs(tmp_path))


def test_a_symlink_out_of_the_root_stays_inside(tmp_path: Path) -> None:
    folder = tmp_path / "root" / "var" / "lib" / "rpm"
    folder.mkdir(parents=True)
    outside = tmp_path / "outside.sqlite"
    shutil.copy(DB, outside)
    (folder / "rpmdb.sqlite").symlink_to(outside)  # absolute: means ROOT/<that path>
    with pytest.raises(RpmdbError, match="no such file"):
        read_rpmdb(Source.rootfs(tmp_path / "root"))


def test_a_malformed_header_skips_one_package_only(tmp_path: Path) -> None:
    folder = tmp_path / "var" / "lib" / "rpm"
    folder.mkdir(parents=True)
    copy = folder / "rpmdb.sqlite"
    shutil.copy(DB, copy)
    db = sqlite3.connect(copy)
    (hnum, blob) = db.execute("SELECT hnum, blob FROM Packages ORDER BY hnum LIMIT 1").fetchone()
    db.execute("UPDATE Packages SET blob = ? WHERE hnum = ?", (blob[: len(blob) // 2], hnum))
    db.commit()
    db.close()
    contents = read_rpmdb(Source.rootfs(tmp_path))
    assert contents is not None
    assert len(contents.packages) == len(EXPECTED) - 1
    assert len(contents.problems) == 1
    assert contents.problems[0].startswith(f"header {hnum}: truncated")


def _fixture_blobs() -> list[bytes]:
    db = sqlite3.connect(f"file:{DB}?mode=ro&immutable=1", uri=True)
    try:
        return [row[0] for row in db.execute("SELECT blob FROM Packages ORDER BY hnum")]
    finally:
        db.close()


def test_parse_header_of_each_real_blob() -> None:
    names = sorted(parse_header(blob).name for blob in _fixture_blobs())
    assert names == sorted(e[0] for e in EXPECTED)


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_damaged_headers_raise_only_header_errors(data: st.DataObject) -> None:
    blobs = _fixture_blobs()
    blob = bytearray(data.draw(st.sampled_from(blobs)))
    for _ in range(data.draw(st.integers(1, 8))):
        where = data.draw(st.integers(0, len(blob) - 1))
        blob[where] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(blob)))
    try:
        package = parse_header(bytes(blob[:cut]))
    except RpmHeaderError:
        return
    assert isinstance(package.name, str)


@given(st.binary(max_size=512))
def test_random_bytes_raise_only_header_errors(blob: bytes) -> None:
    with contextlib.suppress(RpmHeaderError):
        parse_header(blob)


@pytest.mark.parametrize(
    ("srpm", "name"),
    [
        ("bash-5.2.26-3.fc40.src.rpm", "bash"),
        ("python3-pip-23.2.1-1.fc39.src.rpm", "python3-pip"),
        ("glibc-2.38-16.fc39.nosrc.rpm", "glibc"),
        ("odd", "odd"),
    ],
)
def test_source_package_name(srpm: str, name: str) -> None:
    assert source_package_name(srpm) == name
