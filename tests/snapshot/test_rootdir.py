"""The descriptor-based resolver on crafted trees, with openat2 and with the manual walk."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from envpack.snapshot import rootdir
from envpack.snapshot.source import Source, SourceReadError


@pytest.fixture(params=["openat2", "walk"])
def resolver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    name = str(request.param)
    if name == "walk":
        monkeypatch.setenv("ENVPACK_RESOLVE", "walk")
    monkeypatch.setattr(rootdir, "_openat2_works", {})
    return name


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """usr/lib/real.so, a chain of links through absolute targets and ``..``, a loop."""
    root = tmp_path / "root"
    (root / "usr/lib/deep/er").mkdir(parents=True)
    (root / "usr/lib/real.so").write_text("inside\n")
    (root / "lib").symlink_to("usr/lib")  # relative folder link
    (root / "usr/lib/abs.so").symlink_to("/lib/real.so")  # absolute: restarts at the root
    (root / "usr/lib/deep/er/up.so").symlink_to("../../real.so")
    (root / "usr/lib/deep/er/climb.so").symlink_to("../../../../../../../usr/lib/real.so")
    (root / "usr/lib/deep/er/chain").symlink_to("/lib/deep/er/up.so")
    (root / "etc").mkdir()
    (root / "etc/loop-a").symlink_to("loop-b")
    (root / "etc/loop-b").symlink_to("/etc/loop-a")
    (root / "etc/self").symlink_to(".")
    (root / "etc/dir-loop").symlink_to("dir-loop/x")
    (tmp_path / "outside.txt").write_text("host secret\n")
    (root / "etc/out").symlink_to(tmp_path / "outside.txt")
    return root


def _source(root: Path, resolver: str) -> Source:
    source = Source.rootfs(root)
    if resolver == "openat2" and not rootdir.openat2_available():
        pytest.skip("this kernel has no openat2 (Linux < 5.6, or filtered by seccomp)")
    assert rootdir.openat2_available() == (resolver == "openat2")
    return source


@pytest.mark.parametrize(
    ("path", "real"),
    [
        ("/usr/lib/abs.so", "/usr/lib/real.so"),
        ("/lib/abs.so", "/usr/lib/real.so"),
        ("/usr/lib/deep/er/up.so", "/usr/lib/real.so"),
        ("/usr/lib/deep/er/climb.so", "/usr/lib/real.so"),
        ("/lib/deep/er/chain", "/usr/lib/real.so"),
        ("/etc/self/self/self/../usr/lib/real.so", "/usr/lib/real.so"),
        ("/../../../lib/real.so", "/usr/lib/real.so"),
    ],
)
def test_links_and_dotdot_chains_resolve_inside(
    tree: Path, resolver: str, path: str, real: str
) -> None:
    source = _source(tree, resolver)
    assert source.resolve(path).inner == real
    assert source.read_text(path) == "inside\n"
    st = source.stat(path)
    assert st is not None and st.st_ino == (tree / real.lstrip("/")).stat().st_ino


def test_lstat_and_readlink_do_not_follow_the_last_link(tree: Path, resolver: str) -> None:
    source = _source(tree, resolver)
    assert source.readlink("/lib/abs.so") == "/lib/real.so"
    st = source.lstat("/lib/abs.so")
    assert st is not None and st.st_ino == (tree / "usr/lib/abs.so").lstat().st_ino
    assert source.readlink("/usr/lib/real.so") is None
    assert source.lstat("/usr/lib/none.so") is None
    assert source.listdir("/lib/deep") == ["er"]
    assert sorted(e.name for e in source.scandir("/lib/deep/er")) == ["chain", "climb.so", "up.so"]


def test_an_absolute_link_out_reads_nothing_outside(tree: Path, resolver: str) -> None:
    source = _source(tree, resolver)
    with pytest.raises(SourceReadError, match="no such file"):
        source.read_text("/etc/out")
    assert source.stat("/etc/out") is None
    assert source.resolve("/etc/out").inner == str(tree.parent / "outside.txt")


@pytest.mark.parametrize("path", ["/etc/loop-a", "/etc/loop-b/x", "/etc/dir-loop"])
def test_loops_are_eloop_errors(tree: Path, resolver: str, path: str) -> None:
    source = _source(tree, resolver)
    with pytest.raises(SourceReadError, match="too many levels of symbolic links"):
        source.read_text(path)
    with pytest.raises(SourceReadError, match="too many levels of symbolic links"):
        source.resolve(path)


# Run inside a private mount namespace where the root has a real /proc: a link to
# /proc/self/cwd is a magic link to the capturing process's folder, outside the root.
_MAGIC = textwrap.dedent(
    """
    import os, sys
    from envpack.snapshot.source import Source, SourceReadError
    root, outside = sys.argv[1], sys.argv[2]
    os.chdir(outside)
    source = Source.rootfs(root)
    for path in ("/etc/magic/secret.txt", "/proc/self/cwd/secret.txt",
                 "/proc/self/root" + outside + "/secret.txt"):
        try:
            text = source.read_text(path)
        except SourceReadError as err:
            print("refused", err)
        else:
            print("READ", text.strip())
    """
)


@pytest.mark.slow
def test_proc_magic_links_never_lead_out(tmp_path: Path, resolver: str) -> None:
    root = tmp_path / "root"
    (root / "proc").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "etc/magic").symlink_to("/proc/self/cwd")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("host secret\n")
    env = {**os.environ, "ENVPACK_RESOLVE": resolver}
    script = f'mount -t proc proc "$1/proc" && exec "{sys.executable}" -c "$3" "$1" "$2"'
    result = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh",
         str(root), str(outside), _MAGIC],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    if "mount" in result.stderr and result.returncode != 0:
        pytest.skip(f"cannot mount a proc in a private namespace here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and all(line.startswith("refused") for line in lines), lines
    if resolver == "openat2":  # the kernel refuses magic links outright
        assert all("too many levels of symbolic links" in line for line in lines)
