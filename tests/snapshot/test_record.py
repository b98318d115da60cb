"""RECORD parsing and verification, on real wheels unpacked the way an installer does."""

from __future__ import annotations

import base64
import hashlib
import os
import zipfile
from pathlib import Path

import pytest

from envpack.snapshot.record import (
    RecordEntry,
    parse_record,
    record_size,
    resolve_record_path,
    top_level_from_paths,
    verify_record,
)
from envpack.snapshot.source import Source


def test_parse_record_rows_with_and_without_hash_and_size() -> None:
    text = (
        "pkg/__init__.py,sha256=n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg,12\r\n"
        '"pkg/odd,name.py",sha256=AAAA,3\n'
        "pkg/__pycache__/x.cpython-311.pyc,,\n"
        "pkg-1.0.dist-info/RECORD,,\n"
        "\n"
        "../../../bin/tool,sha256=BBBB,-5\n"
        "/etc/pkg.conf,SHA256=CCCC,\n"
        "weird,=DDDD,x\n"
    )
    assert parse_record(text) == [
        RecordEntry("pkg/__init__.py", "sha256", "n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg", 12),
        RecordEntry("pkg/odd,name.py", "sha256", "AAAA", 3),
        RecordEntry("pkg/__pycache__/x.cpython-311.pyc", None, None, None),
        RecordEntry("pkg-1.0.dist-info/RECORD", None, None, None),
        RecordEntry("../../../bin/tool", "sha256", "BBBB", None),
        RecordEntry("/etc/pkg.conf", "sha256", "CCCC", None),
        RecordEntry("weird", None, None, None),
    ]


def test_record_size_counts_only_stated_sizes() -> None:
    entries = parse_record("a,sha256=x,10\nb,,\nc,sha256=y,5\n")
    assert record_size(entries) == 15
    assert record_size([]) == 0


@pytest.mark.parametrize(
    ("location", "path", "expected"),
    [
        (
            "/venv/lib/python3.11/site-packages",
            "six.py",
            "/venv/lib/python3.11/site-packages/six.py",
        ),
        ("/venv/lib/python3.11/site-packages", "../../../bin/flask", "/venv/bin/flask"),
        ("/venv/lib/python3.11/site-packages", "/etc/x.conf", "/etc/x.conf"),
        ("/site", "../../../../../etc/passwd", "/etc/passwd"),
        ("/site/", "./a/../b.py", "/site/b.py"),
    ],
)
def test_resolve_record_path(location: str, path: str, expected: str) -> None:
    assert resolve_record_path(location, path) == expected


def test_top_level_from_paths() -> None:
    paths = [
        "requests/__init__.py",
        "requests/api.py",
        "six.py",
        "_cffi_backend.cpython-311-x86_64-linux-gnu.so",
        "requests-2.31.0.dist-info/RECORD",
        "numpy.libs/libgfortran.so.5",
        "__pycache__/six.cpython-311.pyc",
        "distutils-precedence.pth",
        "../../../bin/normalizer",
        "/usr/share/doc/x",
        "README.txt",
    ]
    assert top_level_from_paths(paths) == ["_cffi_backend", "requests", "six"]


def _install_wheel(wheel: Path, site: Path) -> list[RecordEntry]:
    """Unpack a wheel the way an installer does (purelib at the root) and read its RECORD."""
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
        record_name = next(n for n in archive.namelist() if n.endswith(".dist-info/RECORD"))
        return parse_record(archive.read(record_name).decode("utf-8"))


def test_verify_real_wheel_unchanged_then_changed(wheel_dir: Path, tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    entries = _install_wheel(next(wheel_dir.glob("requests-2.31.0-*.whl")), site)
    source = Source.live()
    clean = verify_record(source, str(site), entries)
    hashed = [e for e in entries if e.algorithm is not None]
    assert clean.checked == len(hashed) > 0
    assert clean.modified == [] and clean.missing == []

    (site / "requests" / "__init__.py").write_text("tampered = True\n")
    (site / "requests-2.31.0.dist-info" / "top_level.txt").unlink()
    # Same size, other bytes: only the hash can tell.
    metadata = site / "requests-2.31.0.dist-info" / "METADATA"
    data = bytearray(metadata.read_bytes())
    data[0] ^= 0x20
    metadata.write_bytes(bytes(data))
    # A file written after install (a .pyc) is not in RECORD and is not looked at.
    (site / "requests" / "__pycache__").mkdir()
    (site / "requests" / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"x")
    result = verify_record(source, str(site), entries).to_json()
    assert result == {
        "checked": len(hashed),
        "modified": ["requests-2.31.0.dist-info/METADATA", "requests/__init__.py"],
        "missing": ["requests-2.31.0.dist-info/top_level.txt"],
    }


def test_verify_inside_a_rootfs_never_leaves_it(tmp_path: Path) -> None:
    root = tmp_path / "root"
    site = root / "usr" / "lib" / "python3" / "dist-packages"
    (root / "usr" / "bin").mkdir(parents=True)
    site.mkdir(parents=True)
    tool = b"#!/usr/bin/python3\nprint('hi')\n"
    (root / "usr" / "bin" / "tool").write_bytes(tool)
    digest = base64.urlsafe_b64encode(hashlib.sha256(tool).digest()).rstrip(b"=").decode()
    # The host's /etc/hostname exists but must not be what "../../../../../etc/hostname" means.
    entries = parse_record(
        f"../../../bin/tool,sha256={digest},{len(tool)}\n"
        f"../../../../../../../etc/hostname,sha256={digest},{len(tool)}\n"
    )
    result = verify_record(Source.rootfs(root), "/usr/lib/python3/dist-packages", entries)
    assert result.to_json() == {
        "checked": 2,
        "modified": [],
        "missing": ["../../../../../../../etc/hostname"],
    }


def test_verify_treats_a_fifo_where_a_file_was_as_modified(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.py")
    entries = parse_record("pipe.py,sha256=AAAA,4\nunknown.py,blake99=AAAA,4\n")
    result = verify_record(Source.live(), str(tmp_path), entries)
    # The FIFO is never opened for reading (no hang); an unknown algorithm is not checked.
    assert result.to_json() == {"checked": 1, "modified": ["pipe.py"], "missing": []}
