"""File ownership from real package databases: this machine's dpkg, fixture apk and rpm."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from elf_oracle import require

from envpack.snapshot.hashcache import HashCache
from envpack.snapshot.owners import Owner, OwnerIndex, merged_spelling
from envpack.snapshot.source import Source

ROOTFS = Path(__file__).resolve().parents[2] / "fixtures" / "rootfs"


def test_merged_spelling() -> None:
    assert (
        merged_spelling("/lib/x86_64-linux-gnu/libc.so.6") == "/usr/lib/x86_64-linux-gnu/libc.so.6"
    )
    assert merged_spelling("/usr/bin/ls") == "/bin/ls"
    assert merged_spelling("/usr/share/doc") is None
    assert merged_spelling("/etc/hosts") is None


def test_dpkg_owner_of_libc_in_both_spellings() -> None:
    dpkg = require("dpkg")
    libc = os.path.realpath("/lib/x86_64-linux-gnu/libc.so.6")
    if not os.path.exists(libc):
        pytest.skip("not an x86_64 Debian layout")
    done = subprocess.run(
        [dpkg, "-S", "/lib/x86_64-linux-gnu/libc.so.6"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        done = subprocess.run([dpkg, "-S", libc], capture_output=True, text=True, check=True)
    package = done.stdout.split(":", 1)[0]
    index = OwnerIndex(Source.live())
    for path in ("/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6"):
        owner = index.owner(path, libc)
        assert owner is not None and owner["kind"] == "dpkg" and owner["name"] == package
    assert index.owner("/tmp/not-owned-by-anyone") is None


def test_apk_owner() -> None:
    index = OwnerIndex(Source.rootfs(ROOTFS / "alpine-mini"))
    assert index.owner("/lib/ld-musl-x86_64.so.1") == {
        "kind": "apk",
        "name": "musl",
        "version": "1.2.4_git20230717-r4",
    }
    assert index.owner("/bin/busybox") == {
        "kind": "apk",
        "name": "busybox",
        "version": "1.36.1-r15",
    }


def test_rpm_owner() -> None:
    index = OwnerIndex(Source.rootfs(ROOTFS / "rpm-mini"))
    assert index.owner("/usr/bin/envpack-hello") == {
        "kind": "rpm",
        "name": "envpack-hello",
        "version": "1.0-1",
    }
    assert index.owner("/etc/envpack-data.conf") == {
        "kind": "rpm",
        "name": "envpack-data",
        "version": "2:3.1-4",
    }


def test_python_owner_from_record(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    dist = site / "demo-1.0.dist-info"
    dist.mkdir(parents=True)
    (site / "demo.libs").mkdir()
    (site / "demo.libs" / "libx.so").write_bytes(b"\x7fELF")
    (dist / "RECORD").write_text("demo.libs/libx.so,sha256=AA,4\ndemo-1.0.dist-info/RECORD,,\n")
    components = {
        "demo": {
            "name": "demo",
            "version": "1.0",
            "location": str(site),
            "metadata_dir": "demo-1.0.dist-info",
        }
    }
    index = OwnerIndex(Source.live(), components)
    assert index.owner(str(site / "demo.libs" / "libx.so")) == {
        "kind": "python",
        "name": "demo",
        "version": "1.0",
    }
    # The same file reached through a symlinked folder (a venv's lib64 -> lib).
    os.symlink(site, tmp_path / "alias")
    alias = str(tmp_path / "alias" / "demo.libs" / "libx.so")
    assert index.owner(alias, os.path.realpath(alias)) is not None


def test_answers_are_remembered_until_the_database_changes(tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(ROOTFS / "alpine-mini", root, symlinks=True)
    cache_dir = tmp_path / "cache"
    source = Source.rootfs(root)

    def ask(path: str) -> tuple[Owner | None, bool]:
        cache = HashCache(cache_dir)
        index = OwnerIndex(source, cache=cache)
        owner = index.owner(path)
        built = index.system_index_built
        cache.close()
        return owner, built

    musl = {"kind": "apk", "name": "musl", "version": "1.2.4_git20230717-r4"}
    assert ask("/lib/ld-musl-x86_64.so.1") == (musl, True)  # cold: the database is read
    assert ask("/lib/ld-musl-x86_64.so.1") == (musl, False)  # warm: remembered
    assert ask("/usr/bin/newtool") == (None, True)  # a new question reads it again
    installed = root / "lib" / "apk" / "db" / "installed"
    text = installed.read_text()
    installed.write_text(text.rstrip("\n") + "\n\nP:newtool\nV:2.0-r0\nF:usr/bin\nR:newtool\n\n")
    newtool = {"kind": "apk", "name": "newtool", "version": "2.0-r0"}
    assert ask("/usr/bin/newtool") == (newtool, True)  # the database changed: read again
    assert ask("/usr/bin/newtool") == (newtool, False)
