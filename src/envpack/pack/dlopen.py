"""What glibc and Python load with ``dlopen`` although no ELF header names it.

- ``libgcc_s.so.1``: glibc loads it to unwind a thread that exits or is cancelled
  (``pthread_exit``); without it a Python thread's exit aborts the process.
- NSS modules for every service the image's ``nsswitch.conf`` names (``files dns`` as
  generated; ``compat``, ``systemd``… in an older distribution's): glibc before 2.34
  loads ``libnss_<service>.so.2`` for each; from 2.34 on ``files`` and ``dns`` are built
  into libc, the others are still modules.
- OpenSSL's providers and engines (``ossl-modules/``, ``engines-3/``, ``engines-1.1/``),
  beside the libcrypto of the closure: the legacy provider and engines are dlopen'd.
- gconv modules, beside libc, when a shipped object calls ``iconv_open``.
- ``/sbin/ldconfig``: ``ctypes.util.find_library`` runs ``ldconfig -p`` to read the cache.
"""

from __future__ import annotations

import mmap
import os
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass

from envpack.snapshot.ldso import LoadedObject, Resolver
from envpack.snapshot.libraries import Found
from envpack.snapshot.source import Source, SourceReadError

__all__ = ["Extra", "dlopen_extras", "glibc_before", "nss_services", "uses_iconv"]

_NSS_BUILT_IN = frozenset({"files", "dns"})
"""Services glibc 2.34 and later has in libc itself."""
_OPENSSL_DIRS = {
    "libcrypto.so.3": ("ossl-modules", "engines-3"),
    "libcrypto.so.1.1": ("engines-1.1",),
}


@dataclass(frozen=True)
class Extra:
    """One path to add, and why."""

    path: str
    what: str
    """``libgcc_s``, ``nss:files``, ``openssl:ossl-modules``, ``gconv``, ``ldconfig``."""
    walk: bool = False


def glibc_before(version: str, wanted: tuple[int, int]) -> bool:
    """Whether a glibc ``version`` (``"2.31"``) is older than ``wanted``."""
    try:
        parts = tuple(int(p) for p in version.split(".")[:2])
    except ValueError:
        return False
    return parts < wanted


def nss_services(nsswitch: str) -> list[str]:
    """The services an ``nsswitch.conf`` names, in order of first mention.

    ``hosts: files [NOTFOUND=return] dns`` names ``files`` and ``dns``: bracketed actions
    are not services, ``#`` starts a comment, a line without ``:`` is ignored.
    """
    services: dict[str, None] = {}
    for line in nsswitch.splitlines():
        database, colon, rest = line.split("#", 1)[0].partition(":")
        if not colon or not database.strip():
            continue
        in_action = False
        for word in rest.split():
            if word.startswith("["):
                in_action = True
            if not in_action and word.replace("_", "").replace("-", "").isalnum():
                services.setdefault(word, None)
            if word.endswith("]"):
                in_action = False
    return list(services)


def dlopen_extras(
    source: Source,
    resolver: Resolver,
    interpreter: str,
    libraries: Iterable[Found],
    *,
    libc_family: str,
    libc_version: str,
    iconv_used: bool,
    nsswitch: str,
) -> list[Extra]:
    """The dlopen'd files the image needs, found in the source.

    ``nsswitch``: the text of the image's ``/etc/nsswitch.conf``.
    """
    extras: list[Extra] = []
    glibc = libc_family == "glibc"
    requester = _requester(resolver, interpreter)
    libs = list(libraries)
    if glibc and requester is not None:
        found = resolver.resolve("libgcc_s.so.1", requester)
        if found is not None:
            extras.append(Extra(found, "libgcc_s"))
        built_in = _NSS_BUILT_IN if not glibc_before(libc_version, (2, 34)) else frozenset()
        for service in nss_services(nsswitch):
            if service in built_in:
                continue
            found = resolver.resolve(f"libnss_{service}.so.2", requester)
            if found is not None:
                extras.append(Extra(found, f"nss:{service}"))
    for lib in libs:
        for folder_name in _OPENSSL_DIRS.get(lib.name, ()):
            folder = posixpath.join(posixpath.dirname(lib.real_path), folder_name)
            if source.is_dir(folder):
                extras.append(Extra(folder, f"openssl:{folder_name}", walk=True))
    libc = next((lib for lib in libs if lib.name == "libc.so.6"), None)
    if glibc and iconv_used and libc is not None:
        folder = posixpath.join(posixpath.dirname(libc.real_path), "gconv")
        if source.is_dir(folder):
            extras.append(Extra(folder, "gconv", walk=True))
    if glibc and source.exists("/sbin/ldconfig"):
        extras.append(Extra("/sbin/ldconfig", "ldconfig"))
    return extras


def _requester(resolver: Resolver, interpreter: str) -> LoadedObject | None:
    try:
        real = resolver.real_path(interpreter)
        info = resolver.elf(real)
    except SourceReadError:
        return None
    return None if info is None else LoadedObject(real, info)


def uses_iconv(source: Source, paths: Iterable[str]) -> bool:
    """Whether any of these ELF files names ``iconv_open`` (a dynamic symbol it imports)."""
    for path in paths:
        try:
            fd, st = source.open_fd(path)
        except SourceReadError:
            continue
        try:
            if st.st_size == 0:
                continue
            with mmap.mmap(fd, 0, prot=mmap.PROT_READ) as data:
                if data.find(b"\0iconv_open\0") != -1:
                    return True
        except (OSError, ValueError):
            continue
        finally:
            os.close(fd)
    return False
