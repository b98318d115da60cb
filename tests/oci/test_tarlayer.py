"""Reproducible tar streams, checked against CPython's tarfile and GNU tar reading them."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from oci_helpers import EPOCH, tree_entries

from envpack.errors import PackError
from envpack.oci.tarlayer import TarEntry, ordered_entries, write_tar

LONG_DIR = "d" * 120  # a single component past ustar's 100-byte name field
DEEP = "/".join(["segment-" + "x" * 40] * 7)  # a path past 255 bytes (ustar prefix + name)


def _members(archive: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(
        fileobj=io.BytesIO(archive), encoding="utf-8", errors="surrogateescape"
    ) as tar:
        return tar.getmembers()


def _tar_bytes(entries: list[TarEntry]) -> bytes:
    out = io.BytesIO()
    write_tar(entries, out)
    return out.getvalue()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A small real tree: nested files, long and non-ASCII names, symlinks, a hardlink pair,
    a setuid file, a sticky folder, an empty file and a large one."""
    root = tmp_path / "tree"
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "tool").write_bytes(b"#!/bin/sh\necho tool\n")
    (root / "usr" / "bin" / "tool").chmod(0o4755)
    (root / "usr" / "bin" / "tool-link").symlink_to("tool")
    (root / "usr" / "lib").mkdir()
    (root / "usr" / "lib" / "b-data").write_bytes(os.urandom(300_000))
    # The hardlink's first name in sorted order is "a-data", not the file created first.
    os.link(root / "usr" / "lib" / "b-data", root / "usr" / "lib" / "a-data")
    (root / "usr" / "lib" / "empty").write_bytes(b"")
    (root / "tmp").mkdir()
    (root / "tmp").chmod(0o1777)
    (root / "naïve-façade").mkdir()
    (root / "naïve-façade" / "日本語.txt").write_text("こんにちは\n", encoding="utf-8")
    deep = root / LONG_DIR / DEEP
    deep.mkdir(parents=True)
    (deep / "file.txt").write_text("deep\n")
    (root / "abs-link").symlink_to("/" + LONG_DIR + "/" + DEEP + "/file.txt")
    (root / "a-b").write_text("sorts between a and a/b bytewise\n")
    return root


def test_same_bytes_twice_and_from_another_process_umask_and_cwd(tree: Path) -> None:
    first = _tar_bytes(tree_entries(tree, "/"))
    assert first == _tar_bytes(tree_entries(tree, "/"))
    script = (
        "import os, sys; os.umask(0o077); os.chdir('/');"
        "sys.path.insert(0, sys.argv[2]);"
        "from oci_helpers import tree_entries; from envpack.oci.tarlayer import write_tar;"
        "write_tar(tree_entries(__import__('pathlib').Path(sys.argv[1]), '/'), sys.stdout.buffer)"
    )
    other = subprocess.run(
        [sys.executable, "-c", script, str(tree), str(Path(__file__).parent)],
        check=True,
        capture_output=True,
        cwd="/tmp",
    ).stdout
    assert hashlib.sha256(other).hexdigest() == hashlib.sha256(first).hexdigest()


def test_entry_order_is_sorted_with_parents_first(tree: Path) -> None:
    names = [m.name for m in _members(_tar_bytes(tree_entries(tree, "/")))]
    seen: set[str] = set()
    for name in names:
        parent = name.rsplit("/", 1)[0] if "/" in name else ""
        assert parent == "" or parent in seen, f"{name} before its parent"
        seen.add(name)
    assert len(seen) == len(names), "a duplicate entry"
    assert names == sorted(names, key=lambda n: n.encode().split(b"/"))


def test_headers_are_numeric_without_names_and_integer_times(tree: Path) -> None:
    members = _members(_tar_bytes(tree_entries(tree, "/")))
    for member in members:
        assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", "")
        assert isinstance(member.mtime, int)
        assert member.mtime <= EPOCH
        assert "mtime" not in member.pax_headers
    kinds = {m.name: m for m in members}
    assert kinds["usr/bin/tool"].mode == 0o4755
    assert kinds["tmp"].mode == 0o1777
    assert kinds["usr/bin/tool-link"].issym()
    assert kinds["usr/bin/tool-link"].linkname == "tool"
    assert kinds["usr/lib/a-data"].isfile()
    assert kinds["usr/lib/b-data"].islnk()
    assert kinds["usr/lib/b-data"].linkname == "usr/lib/a-data"
    deep_name = f"{LONG_DIR}/{DEEP}/file.txt"
    assert len(deep_name.encode()) > 255
    assert kinds[deep_name].pax_headers["path"] == deep_name
    assert kinds["abs-link"].linkname == "/" + deep_name
    assert "naïve-façade/日本語.txt" in kinds


def test_gnu_tar_lists_the_same_entries(tree: Path, tmp_path: Path) -> None:
    archive = tmp_path / "layer.tar"
    archive.write_bytes(_tar_bytes(tree_entries(tree, "/")))
    listing = subprocess.run(
        ["tar", "--numeric-owner", "--full-time", "-tvf", str(archive)],
        check=True,
        capture_output=True,
        env={**os.environ, "LC_ALL": "C.UTF-8", "TZ": "UTC"},
    )
    assert listing.stderr == b""  # no "unknown extended header" or checksum warnings
    lines = listing.stdout.decode("utf-8").splitlines()
    members = _members(archive.read_bytes())
    assert len(lines) == len(members)
    for line, member in zip(lines, members):
        perms, owner, size, _date, _time, rest = line.split(None, 5)
        assert owner == "0/0"
        assert int(size) == member.size
        assert perms[1:] == stat.filemode(member.mode)[1:]
        assert rest.startswith(member.name.rstrip("/")), (rest, member.name)
    by_name = {m.name.rstrip("/"): line for m, line in zip(members, lines)}
    assert by_name["usr/bin/tool"].startswith("-rwsr-xr-x")
    assert by_name["tmp"].startswith("drwxrwxrwt")
    assert by_name["usr/lib/b-data"].endswith("link to usr/lib/a-data")


def test_gnu_tar_extracts_the_tree_as_it_was(tree: Path, tmp_path: Path) -> None:
    archive = tmp_path / "layer.tar"
    archive.write_bytes(_tar_bytes(tree_entries(tree, "/")))
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(
        ["tar", "--numeric-owner", "-xpf", str(archive), "-C", str(out)],
        check=True,
        capture_output=True,
    )
    for folder, _dirs, files in os.walk(tree):
        for name in files:
            source = Path(folder) / name
            copy = out / source.relative_to(tree)
            if source.is_symlink():
                assert os.readlink(copy) == os.readlink(source)
            else:
                assert copy.read_bytes() == source.read_bytes()
                assert copy.stat().st_mode == source.stat().st_mode
    a, b = out / "usr/lib/a-data", out / "usr/lib/b-data"
    assert a.stat().st_ino == b.stat().st_ino
    assert (out / "tmp").stat().st_mode & 0o7777 == 0o1777


def test_undecodable_names_and_big_ids_go_in_pax_records(tmp_path: Path) -> None:
    name = os.fsdecode(b"/opt/caf\xe9")  # Latin-1 bytes: not UTF-8, kept as they are
    entries = [
        TarEntry(name, "file", 0o644, size=2, open=lambda: io.BytesIO(b"ok")),
        TarEntry("/opt/big-ids", "dir", 0o755, uid=10_000_000, gid=20_000_000),
    ]
    archive = tmp_path / "raw.tar"
    archive.write_bytes(_tar_bytes(entries))
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "-xf", str(archive), "-C", str(out)], check=True, capture_output=True)
    assert (out / os.fsdecode(b"opt/caf\xe9")).read_bytes() == b"ok"
    members = {m.name: m for m in _members(archive.read_bytes())}
    assert members["opt/big-ids"].uid == 10_000_000
    assert members["opt/big-ids"].gid == 20_000_000
    assert members[name[1:]].pax_headers.get("hdrcharset") == "BINARY"


def test_missing_parents_are_added_as_root_folders() -> None:
    entries = ordered_entries([TarEntry("/a/b/c", "symlink", 0o777, mtime=42, linkname="x")])
    assert [(e.path, e.kind, e.mode, e.uid, e.mtime) for e in entries] == [
        ("/a", "dir", 0o755, 0, 42),
        ("/a/b", "dir", 0o755, 0, 42),
        ("/a/b/c", "symlink", 0o777, 0, 42),
    ]


def test_the_root_entry_is_left_to_the_runtime() -> None:
    entries = ordered_entries([TarEntry("/", "dir", 0o755), TarEntry("/x", "dir", 0o700)])
    assert [e.path for e in entries] == ["/x"]


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([TarEntry("/a", "dir", 0o755), TarEntry("/a", "dir", 0o755)], "more than one entry"),
        ([TarEntry("/dev/null", "chardev", 0o666)], "not supported"),  # type: ignore[arg-type]
        ([TarEntry("relative", "dir", 0o755)], "not a normalised"),
        ([TarEntry("/a/../b", "dir", 0o755)], "not a normalised"),
        ([TarEntry("/a//b", "dir", 0o755)], "not a normalised"),
        ([TarEntry("/a/", "dir", 0o755)], "not a normalised"),
        ([TarEntry("/a", "dir", 0o100755)], "beyond the permission bits"),
        ([TarEntry("/a", "dir", 0o755, mtime=-1)], "non-negative"),
        ([TarEntry("/a", "file", 0o644, size=1)], "needs an opener"),
        ([TarEntry("/a", "hardlink", 0o644, linkname="/b")], "not in this layer"),
        ([TarEntry("/a", "hardlink", 0o644, linkname="b")], "absolute image path"),
        (
            [TarEntry("/lib", "symlink", 0o777, linkname="usr/lib"), TarEntry("/lib/x", "dir", 0)],
            "its parent /lib is a symlink",
        ),
    ],
)
def test_bad_entries_are_refused_with_one_line(entries: list[TarEntry], message: str) -> None:
    with pytest.raises(PackError, match=message) as info:
        _tar_bytes(entries)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("declared", "actual"), [(5, b"1234"), (3, b"1234")])
def test_a_file_that_changed_size_is_refused(declared: int, actual: bytes) -> None:
    entry = TarEntry("/f", "file", 0o644, size=declared, open=lambda: io.BytesIO(actual))
    with pytest.raises(PackError, match=f"/f: {declared} bytes expected, the source gave"):
        _tar_bytes([entry])


def test_the_writer_closes_every_stream(tree: Path) -> None:
    opened: list[io.BufferedReader] = []

    def wrap(entry: TarEntry) -> TarEntry:
        if entry.open is None:
            return entry
        inner = entry.open

        def open_and_keep() -> io.BufferedReader:
            stream = inner()
            assert isinstance(stream, io.BufferedReader)
            opened.append(stream)
            return stream

        return TarEntry(
            entry.path,
            entry.kind,
            entry.mode,
            mtime=entry.mtime,
            size=entry.size,
            open=open_and_keep,
        )

    _tar_bytes([wrap(e) for e in tree_entries(tree, "/")])
    assert opened
    assert all(stream.closed for stream in opened)
