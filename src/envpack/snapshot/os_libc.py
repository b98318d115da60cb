"""Which C library a source has (glibc or musl) and its version, read from files.

Nothing is run, live or not, so a live capture and a capture of the same system as a
rootfs agree. glibc embeds a banner in ``libc.so.6`` ("GNU C Library (Debian GLIBC
2.36-9+deb12u4) stable release version 2.36."), read from the bytes. musl's dynamic loader
``ld-musl-<arch>.so.1`` carries no such banner, so its version comes from the apk
database's ``musl`` package, else from the one bare ``X.Y.Z`` string in the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from envpack.snapshot.source import Source, SourceReadError

__all__ = ["LibcInfo", "detect_libc", "glibc_version_from_bytes", "musl_version_from_bytes"]

_LIB_DIRS = ("/lib", "/lib64", "/usr/lib", "/usr/lib64", "/lib32", "/usr/lib32")
# The glibc banner: "GNU C Library (Debian GLIBC 2.36-9) stable release version 2.36."
# (older releases: "version 2.17, by Roland …"). Found from its "version" end, looking
# back at most _BANNER_GAP bytes for its start on the same line: a pattern with a lazy
# gap after "GNU C Library" rescans a run of those words from each one (18 s for 56 KB,
# and a libc may be 16 MB).
_BANNER_START = b"GNU C Library"
_BANNER_VERSION = re.compile(rb" version (\d+\.\d+(?:\.\d+)?)")
_BANNER_GAP = 256
# In musl's loader the version is a lone NUL-terminated string, e.g. "\x001.2.4\x00".
_MUSL_VERSION = re.compile(rb"\x00(1\.\d+\.\d+)\x00")
_APK_VERSION = re.compile(r"^\d+(?:\.\d+)*")
_APK_INSTALLED = "/lib/apk/db/installed"
# libc.so.6 is about 2 MB; the banner sits in .rodata. Reading a bit more is harmless.
_READ_LIMIT = 16 * 1024 * 1024


@dataclass(frozen=True)
class LibcInfo:
    family: str
    """``glibc``, ``musl`` or ``unknown``."""
    version: str | None
    path: str | None
    """The file the family was recognised by (inside the source)."""
    problems: tuple[tuple[str, str], ...] = ()
    """``(path, reason)`` pairs for files that could not be read."""


def glibc_version_from_bytes(data: bytes) -> str | None:
    """The version of the first glibc banner in ``data``; one pass over it."""
    if _BANNER_START not in data:
        return None
    for match in _BANNER_VERSION.finditer(data):
        at = match.start()
        window_start = max(0, at - _BANNER_GAP - len(_BANNER_START))
        start = data.rfind(_BANNER_START, window_start, at)
        if start < 0:
            continue
        gap = data[start + len(_BANNER_START) : at]
        if b"\n" not in gap and b"\0" not in gap:
            return match.group(1).decode("ascii")
    return None


def musl_version_from_bytes(data: bytes) -> str | None:
    versions = {m.group(1).decode("ascii") for m in _MUSL_VERSION.finditer(data)}
    # More than one candidate means we cannot tell which is the version: say nothing.
    return versions.pop() if len(versions) == 1 else None


# uname -m → the first word of the Debian multiarch triplet, where they differ.
_TRIPLET_PREFIX = {"i686": "i386", "armv7l": "arm", "armv5tel": "arm", "ppc64le": "powerpc64le"}


def _lib_dirs(source: Source, machine: str | None) -> list[str]:
    """The usual library folders, plus multiarch ones (``/usr/lib/x86_64-linux-gnu``).

    On a multiarch system (``i386-linux-gnu`` beside ``x86_64-linux-gnu``) the native
    architecture's folders come first, so its libc is the one described.
    """
    prefix = _TRIPLET_PREFIX.get(machine or "", machine or "") + "-"

    def native_first(name: str) -> tuple[bool, str]:
        return (not name.startswith(prefix), name)

    found: list[str] = []
    for base in _LIB_DIRS:
        if not source.is_dir(base):
            continue
        found.append(base)
        try:
            names = source.listdir(base)
        except SourceReadError:  # the base folder is still searched; detect_libc reports it
            continue
        triplets = [n for n in names if "-linux-" in n and source.is_dir(f"{base}/{n}")]
        found.extend(f"{base}/{n}" for n in sorted(triplets, key=native_first))
    return found


def detect_libc(source: Source, machine: str | None = None) -> LibcInfo:
    """glibc if a ``libc.so.6`` exists, musl if an ``ld-musl-*.so.1`` does, else unknown.

    ``machine`` (``uname -m`` style) picks the native libc on a multiarch system.
    """
    problems: list[tuple[str, str]] = []
    dirs = _lib_dirs(source, machine)
    for folder in dirs:
        path = f"{folder}/libc.so.6"
        if not source.exists(path):
            continue
        try:
            version = glibc_version_from_bytes(source.read_bytes(path, limit=_READ_LIMIT))
        except SourceReadError as err:
            problems.append((path, str(err)))
            continue
        return LibcInfo("glibc", version, path, tuple(problems))
    for folder in dirs:
        try:
            names = source.listdir(folder)
        except SourceReadError as err:
            problems.append((folder, str(err)))
            continue
        for name in names:
            if name.startswith("ld-musl-") and name.endswith(".so.1"):
                path = f"{folder}/{name}"
                version = _musl_version_from_apk(source, problems)
                if version is None:
                    version = _musl_version_from_file(source, path, problems)
                return LibcInfo("musl", version, path, tuple(problems))
    return LibcInfo("unknown", None, None, tuple(problems))


def _musl_version_from_apk(source: Source, problems: list[tuple[str, str]]) -> str | None:
    from envpack.snapshot.apk_db import installed_packages

    try:
        text = source.read_text_or_none(_APK_INSTALLED)
    except SourceReadError as err:
        problems.append((_APK_INSTALLED, str(err)))
        return None
    for package in installed_packages(text or ""):
        if package.name == "musl":
            # "1.2.4_git20230717-r4" → "1.2.4", comparable with the file's own string.
            match = _APK_VERSION.match(package.version)
            return match.group(0) if match else None
    return None


def _musl_version_from_file(
    source: Source, path: str, problems: list[tuple[str, str]]
) -> str | None:
    try:
        return musl_version_from_bytes(source.read_bytes(path, limit=_READ_LIMIT))
    except SourceReadError as err:
        problems.append((path, str(err)))
        return None
