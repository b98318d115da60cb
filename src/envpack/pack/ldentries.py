"""Which of the image's libraries go into its ``ld.so.cache``, as ``ldconfig`` picks them.

``ldconfig`` scans the folders of ``ld.so.conf`` and its trusted folders (the multiarch
ones, ``lib64``, ``/lib``, ``/usr/lib``), a folder reached twice through a symlink only
once (the first spelling wins). A library is listed under its ``DT_SONAME``; another name
(a ``libz.so`` development link) is listed under its own name unless the soname is
already in that folder.
"""

from __future__ import annotations

import posixpath
from collections.abc import Collection

from envpack.pack.closure import looks_like_elf_name
from envpack.pack.ldcache import CacheEntry, entry_flags
from envpack.snapshot.ldso import Resolver, read_ld_so_conf
from envpack.snapshot.source import SourceReadError

__all__ = ["cache_entries", "scanned_folders"]

_TRIPLETS = {
    ("x86_64", "ELF64"): "x86_64-linux-gnu",
    ("386", "ELF32"): "i386-linux-gnu",
    ("aarch64", "ELF64"): "aarch64-linux-gnu",
    ("arm", "ELF32"): "arm-linux-gnueabihf",
    ("ppc64", "ELF64"): "powerpc64le-linux-gnu",
    ("s390", "ELF64"): "s390x-linux-gnu",
    ("riscv", "ELF64"): "riscv64-linux-gnu",
}


def scanned_folders(resolver: Resolver, machine: str, elf_class: str) -> list[str]:
    """The folders ldconfig would scan, in order, as spelled."""
    folders = read_ld_so_conf(resolver.source)
    triplet = _TRIPLETS.get((machine, elf_class))
    if triplet:
        folders += [f"/lib/{triplet}", f"/usr/lib/{triplet}"]
    if elf_class == "ELF64":
        folders += ["/lib64", "/usr/lib64"]
    folders += ["/lib", "/usr/lib"]
    return list(dict.fromkeys(folders))


def cache_entries(
    resolver: Resolver, shipped: Collection[str], machine: str, elf_class: str
) -> list[CacheEntry]:
    """The cache's entries for the shipped paths (real paths, symlinks included)."""
    by_folder: dict[str, list[str]] = {}
    for path in shipped:
        folder, name = posixpath.split(path)
        if name.startswith("lib") and looks_like_elf_name(name):
            by_folder.setdefault(folder, []).append(name)
    entries: list[CacheEntry] = []
    seen: set[str] = set()
    for spelled in scanned_folders(resolver, machine, elf_class):
        try:
            real = resolver.source.resolve(spelled).inner
        except SourceReadError:
            continue
        if real in seen or real not in by_folder:
            continue
        seen.add(real)
        names = set(by_folder[real])
        for name in sorted(names):
            try:
                info = resolver.elf(posixpath.join(real, name))
            except SourceReadError:
                continue
            if info is None or info.type != "ET_DYN" or info.abi[:2] != (machine, elf_class):
                continue
            soname = info.soname or name
            if name != soname and soname in names:
                continue  # listed once, under its soname
            key = soname if name == soname else name
            entries.append((key, f"{spelled}/{name}", entry_flags(machine, elf_class)))
    return entries
