"""Source: every path stays inside the root; special files never hang a read."""

from __future__ import annotations

import os
import socket
import stat
import threading
from pathlib import Path

import pytest

from envpack.errors import UsageError
from envpack.snapshot.source import NotRegularFile, Source, SourceReadError, file_kind


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("canary-outside-the-root")
    return secret


@pytest.fixture
def root(tmp_path: Path, outside: Path) -> Path:
    base = tmp_path / "root"
    (base / "etc").mkdir(parents=True)
    (base / "etc" / "os-release").write_text("ID=debian\n")
    (base / "etc" / "abs-escape").symlink_to(outside)
    (base / "etc" / "rel-escape").symlink_to("../../../../../../" + str(outside).lstrip("/"))
    (base / "etc" / "to-os-release").symlink_to("/etc/os-release")
    (base / "etc" / "loop-a").symlink_to("loop-b")
    (base / "etc" / "loop-b").symlink_to("loop-a")
    os.mkfifo(base / "etc" / "fifo")
    return base


def test_absolute_symlinks_restart_at_the_root(root: Path) -> None:
    source = Source.rootfs(root)
    resolved = source.resolve("/etc/to-os-release")
    assert resolved.inner == "/etc/os-release"
    assert source.read_text("/etc/to-os-release") == "ID=debian\n"


def test_symlinks_out_of_the_root_read_nothing_outside(root: Path, outside: Path) -> None:
    source = Source.rootfs(root)
    absolute = source.resolve("/etc/abs-escape")
    assert absolute.host.startswith(str(root) + "/")
    relative = source.resolve("/etc/rel-escape")
    assert relative.escaped
    assert relative.host.startswith(str(root) + "/")
    for path in ("/etc/abs-escape", "/etc/rel-escape"):
        with pytest.raises(SourceReadError, match="no such file"):
            source.read_text(path)


def test_symlink_loop_is_an_error_not_a_hang(root: Path) -> None:
    with pytest.raises(SourceReadError, match="too many levels of symbolic links"):
        Source.rootfs(root).read_text("/etc/loop-a")


def test_fifo_is_refused_without_blocking(root: Path) -> None:
    source = Source.rootfs(root)
    done = threading.Event()
    errors: list[BaseException] = []

    def read() -> None:
        try:
            source.read_bytes("/etc/fifo")
        except NotRegularFile as err:
            errors.append(err)
        done.set()

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(5), "reading a FIFO blocked"
    assert len(errors) == 1
    assert "is a fifo" in str(errors[0])


def test_live_socket_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    try:
        with pytest.raises(NotRegularFile, match="is a socket"):
            Source.live({}).read_bytes(str(path))
    finally:
        server.close()


def test_file_kinds() -> None:
    assert file_kind(stat.S_IFCHR) == "char-device"
    assert file_kind(stat.S_IFBLK) == "block-device"
    assert file_kind(stat.S_IFREG) == "file"
    assert file_kind(os.lstat("/dev/null").st_mode) == "char-device"


def test_listing_missing_folder_is_empty_and_bad_root_is_usage_error(root: Path) -> None:
    assert Source.rootfs(root).listdir("/nope") == []
    assert Source.rootfs(root).listdir("/etc")[0] == "abs-escape"
    with pytest.raises(UsageError, match="not a folder"):
        Source.rootfs(root / "etc" / "os-release")


def test_live_resolution_matches_realpath(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "file").write_text("x")
    (tmp_path / "link-dir").symlink_to(tmp_path / "real")
    (tmp_path / "real" / "link-file").symlink_to("file")
    source = Source.live({})
    for path in (
        f"{tmp_path}/link-dir/file",
        f"{tmp_path}/link-dir/link-file",
        f"{tmp_path}/link-dir/missing",
        f"{tmp_path}/link-dir/../real/file",
        f"{tmp_path}/link-dir/.",
        "/usr/bin/python3",
        "/",
    ):
        assert source.resolve(path).inner == os.path.realpath(path), path
        # A second call answers from the remembered folder, with the same result.
        assert source.resolve(path).inner == os.path.realpath(path), path
    not_followed = source.resolve(f"{tmp_path}/link-dir/link-file", follow_last=False)
    assert not_followed.inner == f"{tmp_path}/real/link-file"


def test_live_resolution_follows_chains_and_loops_like_realpath(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "etc" / "alternatives").mkdir(parents=True)
    (tmp_path / "bin" / "real").write_text("x")
    # Debian's alternatives: a relative chain through another folder, and a "../" hop.
    (tmp_path / "etc" / "alternatives" / "tool").symlink_to(tmp_path / "bin" / "real")
    (tmp_path / "bin" / "tool").symlink_to("../etc/alternatives/tool")
    (tmp_path / "bin" / "loop1").symlink_to("loop2")
    (tmp_path / "bin" / "loop2").symlink_to("loop1")
    source = Source.live({})
    for name in ("tool", "loop1", "real", "absent"):
        path = f"{tmp_path}/bin/{name}"
        assert source.resolve(path).inner == os.path.realpath(path), name
