"""The build cache's observations on real trees: what a source is asked, and the answers
replayed by plain system calls equal those of the source itself."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from envpack.pack import buildcache
from envpack.snapshot.source import Source, observed_stat

EPOCH = 1700000000


def _tree(root: Path) -> list[str]:
    """Files, folders, symlinks (chained, to a folder, dangling, looping), a FIFO, a name
    that is not UTF-8: the paths to ask about."""
    (root / "dir" / "sub").mkdir(parents=True)
    (root / "dir" / "file.py").write_text("x = 1\n")
    (root / "dir" / "link").symlink_to("file.py")
    (root / "dir" / "chain").symlink_to("link")
    (root / "to-dir").symlink_to("dir")
    (root / "dangling").symlink_to("nowhere")
    (root / "loop").symlink_to("loop")
    os.mkfifo(root / "fifo")
    os.close(os.open(os.fsencode(root) + b"/caf\xe9", os.O_CREAT | os.O_WRONLY, 0o644))
    names = ["dir", "dir/sub", "dir/file.py", "dir/link", "dir/chain", "to-dir",
             "to-dir/file.py", "to-dir/sub/..", "dangling", "loop", "fifo", "missing",
             "missing/deeper", "dir/file.py/not-a-folder", "caf%E9"]  # fmt: skip
    return [f"{root}/{name}" for name in names]


@pytest.mark.parametrize("op", ["lstat", "stat", "list", "open", "readlink"])
def test_live_replay_answers_as_the_source_does(tmp_path: Path, op: str) -> None:
    source = Source.live()
    for path in _tree(tmp_path):
        by_source = buildcache._replay(source, op, path)
        by_syscalls = buildcache._replay_live(op, path)
        assert by_syscalls == by_source, (op, path)


def test_a_source_reports_each_query_once_with_its_answer(tmp_path: Path) -> None:
    _tree(tmp_path)
    observations = buildcache.Observations(EPOCH)
    source = Source.rootfs(tmp_path)
    source.observer = observations
    source.lstat("/dir/file.py")
    source.lstat("/dir/file.py")
    assert source.read_bytes("/dir/chain") == b"x = 1\n"
    assert sorted(e.name for e in source.scandir("/dir")) == ["chain", "file.py", "link", "sub"]
    assert source.readlink("/dangling") == "nowhere"
    assert source.lstat("/missing") is None
    listed = observations.rows()
    rows = {(op, inner): answer for kind, root, op, inner, answer in listed}
    assert {kind for kind, *_ in listed} == {"root"}
    # Once each: the twice-asked lstat is one row (the dict above would hide a second).
    assert len(listed) == len(rows) == 5
    file_stat = observed_stat(os.stat(tmp_path / "dir" / "file.py"))
    assert rows[("lstat", "/dir/file.py")] == file_stat
    assert rows[("open", "/dir/chain")] == file_stat
    # A folder's stat is taken before it is listed (an entry added later changes it).
    assert rows[("list", "/dir")] == observed_stat(os.stat(tmp_path / "dir"))
    assert rows[("readlink", "/dangling")] == "nowhere"
    assert rows[("lstat", "/missing")] is None
    # The queries lstat and open made themselves are implied by their answers.
    assert not any(str(op).startswith("resolve") for op, _ in rows)
    assert not observations.changed
    assert buildcache._unchanged(observations.rows(), EPOCH)


def test_a_change_to_any_answer_is_seen(tmp_path: Path) -> None:
    _tree(tmp_path)
    observations = buildcache.Observations(EPOCH)
    source = Source.live()
    source.observer = observations
    folder = str(tmp_path / "dir")
    list(source.scandir(folder))
    source.lstat(f"{folder}/file.py")
    source.readlink(f"{folder}/link")
    source.lstat(f"{tmp_path}/absent.py")
    source.lstat(str(tmp_path))  # a parent: only its type and mode count
    rows = observations.rows()
    assert buildcache._unchanged(rows, EPOCH)
    (tmp_path / "unrelated").write_text("a new entry in a parent folder\n")
    assert buildcache._unchanged(rows, EPOCH)  # the parent was never listed
    (tmp_path / "absent.py").write_text("")
    assert not buildcache._unchanged(rows, EPOCH)  # a missing path appeared
    (tmp_path / "absent.py").unlink()
    assert buildcache._unchanged(rows, EPOCH)
    (tmp_path / "dir" / "new.py").write_text("")
    assert not buildcache._unchanged(rows, EPOCH)  # the listed folder's times moved
    (tmp_path / "dir" / "new.py").unlink()
    assert not buildcache._unchanged(rows, EPOCH)  # and do not move back


def test_stat_and_open_of_a_file_already_lstat_ed_are_left_out_of_the_record(
    tmp_path: Path,
) -> None:
    _tree(tmp_path)
    observations = buildcache.Observations(EPOCH)
    source = Source.live()
    source.observer = observations
    file, link = str(tmp_path / "dir" / "file.py"), str(tmp_path / "dir" / "link")
    source.lstat(file)
    source.read_bytes(file)
    source.stat(file)
    source.lstat(link)
    source.read_bytes(link)
    kept = {(op, inner) for _, _, op, inner, _ in observations.rows()}
    # The lstat of the file implies its stat and open; a symlink's does not.
    assert kept == {("lstat", file), ("lstat", link), ("open", link)}
    assert buildcache._unchanged(observations.rows(), EPOCH)
    os.chmod(file, 0o600)
    assert not buildcache._unchanged(observations.rows(), EPOCH)
