"""The generated ld.so.cache: glibc's order and format, read back by the real ldconfig."""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path

import pytest

from envpack.pack.ldcache import entry_flags, libcmp, write_ld_so_cache
from envpack.snapshot.ldso import parse_ld_so_cache


def _ldconfig() -> str:
    found = shutil.which("ldconfig") or shutil.which("/sbin/ldconfig")
    if found is None:
        pytest.skip("no ldconfig on this host")
    return found


def test_order_matches_the_hosts_ldconfig() -> None:
    out = subprocess.run([_ldconfig(), "-p"], capture_output=True, text=True, check=True).stdout
    names = [line.split()[0] for line in out.splitlines() if "=>" in line]
    if len(names) < 10:
        pytest.skip("the host's ld.so.cache is nearly empty")

    def descending(a: str, b: str) -> int:
        return libcmp(b, a)

    ordered = sorted(names, key=functools.cmp_to_key(descending))
    assert ordered == names


def test_numbers_compare_as_numbers() -> None:
    assert libcmp("libc.so.10", "libc.so.6") > 0
    assert libcmp("libc.so.6", "libc.so.6") == 0
    assert libcmp("liba.so", "libb.so") < 0


def test_ldconfig_reads_the_cache(tmp_path: Path) -> None:
    flags = entry_flags("x86_64", "ELF64")
    entries = [
        ("libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6", flags),
        ("libssl.so.3", "/lib/x86_64-linux-gnu/libssl.so.3", flags),
        ("libz.so.1", "/usr/lib/x86_64-linux-gnu/libz.so.1", flags),
    ]
    data = write_ld_so_cache(entries)
    cache = tmp_path / "ld.so.cache"
    cache.write_bytes(data)
    out = subprocess.run(
        [_ldconfig(), "-p", "-C", str(cache)], capture_output=True, text=True, check=True
    ).stdout
    assert out.splitlines()[0].startswith("3 libs found")
    assert "libc.so.6 (libc6,x86-64) => /lib/x86_64-linux-gnu/libc.so.6" in out
    assert parse_ld_so_cache(data)["libz.so.1"] == ["/usr/lib/x86_64-linux-gnu/libz.so.1"]
    assert write_ld_so_cache(reversed(entries)) == data  # deterministic whatever the order
