"""Turn real host files into TarEntry lists for the OCI tests (the planner does this for real).

Only what the tests need: a host folder copied under an image path, and host paths with the
symlinks that lead to them (usr-merge: ``/lib64 -> usr/lib64``), so an image can hold a
real ELF program and its loader and libraries at their own paths.
"""

from __future__ import annotations

import io
import os
import re
import stat
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from envpack.oci.image import Image, ImageSpec, assemble
from envpack.oci.layer import DEFAULT_LEVEL, build_layers
from envpack.oci.tarlayer import TarEntry

EPOCH = 1_700_000_000


def _opener(path: str) -> Callable[[], BinaryIO]:
    def open_file() -> BinaryIO:
        return open(path, "rb")

    return open_file


def entry_for(host: str, image_path: str, *, epoch: int = EPOCH) -> TarEntry:
    """The entry of one host path (not followed) at ``image_path``, mtime clamped to epoch."""
    st = os.lstat(host)
    mode = stat.S_IMODE(st.st_mode)
    mtime = min(int(st.st_mtime), epoch)
    if stat.S_ISDIR(st.st_mode):
        return TarEntry(image_path, "dir", mode, mtime=mtime)
    if stat.S_ISLNK(st.st_mode):
        return TarEntry(image_path, "symlink", mode, mtime=mtime, linkname=os.readlink(host))
    if stat.S_ISREG(st.st_mode):
        return TarEntry(image_path, "file", mode, mtime=mtime, size=st.st_size, open=_opener(host))
    raise ValueError(f"{host}: not a file, folder or symlink")


def tree_entries(root: Path, dest: str, *, epoch: int = EPOCH) -> list[TarEntry]:
    """Every path under ``root`` at ``dest`` in the image; hardlinked files as hardlinks."""
    entries = [entry_for(str(root), dest, epoch=epoch)]
    first_of_inode: dict[tuple[int, int], str] = {}
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(dirs) + sorted(files):
            host = os.path.join(folder, name)
            image = dest.rstrip("/") + "/" + os.path.relpath(host, root)
            st = os.lstat(host)
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                if key in first_of_inode:
                    entries.append(TarEntry(image, "hardlink", 0o644, linkname=first_of_inode[key]))
                    continue
                first_of_inode[key] = image
            entries.append(entry_for(host, image, epoch=epoch))
    return entries


def path_entries(paths: Iterable[str], *, epoch: int = EPOCH) -> list[TarEntry]:
    """Host paths at their own image paths, with every symlink on the way to them."""
    found: dict[str, TarEntry] = {}
    pending = list(paths)
    while pending:
        path = os.path.normpath(pending.pop())
        parts = path.strip("/").split("/")
        current = ""
        for index, part in enumerate(parts):
            current = f"{current}/{part}"
            st = os.lstat(current)
            if stat.S_ISLNK(st.st_mode):
                found[current] = entry_for(current, current, epoch=epoch)
                target = os.path.join(os.path.dirname(current), os.readlink(current))
                pending.append(os.path.join(target, *parts[index + 1 :]))
                break
            if index == len(parts) - 1:
                found[current] = entry_for(current, current, epoch=epoch)
    return list(found.values())


def elf_closure(program: str) -> list[str]:
    """``program`` and the loader and libraries ``ldd`` says it loads (vdso left out)."""
    out = subprocess.run(["ldd", program], check=True, capture_output=True, text=True).stdout
    paths = [program]
    for line in out.splitlines():
        match = re.search(r"(/\S+) \(0x", line)
        if match:
            paths.append(match.group(1))
    return paths


GREETING = "héllo from envpack\n"
SMALL_ENV = {"PATH": "/usr/bin", "GREETING": "héllo from envpack"}


def small_image_groups() -> list[list[TarEntry]]:
    """Two layers of real host files: the loader and libc (with the usr-merge symlinks
    that lead to them), then ``/usr/bin/env`` and ``/usr/bin/cat``, a generated
    ``/etc/greeting`` and a sticky ``/tmp``."""
    programs = ["/usr/bin/env", "/usr/bin/cat"]
    libraries = sorted({path for program in programs for path in elf_closure(program)[1:]})
    greeting = GREETING.encode("utf-8")
    tools = [
        *path_entries(programs),
        TarEntry(
            "/etc/greeting",
            "file",
            0o644,
            mtime=EPOCH,
            size=len(greeting),
            open=lambda: io.BytesIO(greeting),
        ),
        TarEntry("/tmp", "dir", 0o1777, mtime=EPOCH),
    ]
    return [path_entries(libraries), tools]


def build_small_image(blob_dir: Path, *, level: int = DEFAULT_LEVEL) -> Image:
    """The small image of :func:`small_image_groups`, its blobs in ``blob_dir``."""
    blob_dir.mkdir(parents=True, exist_ok=True)
    layers = build_layers(small_image_groups(), blob_dir, level=level)
    spec = ImageSpec(
        entrypoint=("/usr/bin/env",),
        env=SMALL_ENV,
        labels={"org.opencontainers.image.title": "envpack oci test"},
        created=EPOCH,
        history=("loader and libc", "env, cat and a greeting"),
    )
    return assemble(spec, layers, annotations={"org.opencontainers.image.title": "small"})
