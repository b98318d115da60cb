"""The shared libraries the image's ELF objects load, found as the image's loader would.

Roots are the primary interpreter, every ELF object under the Python trees (extension
modules are loaded by the interpreter, so its ``DT_RPATH`` is inherited) and the binaries
the image ships. Names resolve with :mod:`envpack.snapshot.ldso` against the source,
without ``LD_LIBRARY_PATH``: the image has none, so a library only it could find is
reported missing rather than shipped where nothing would look for it.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from envpack.snapshot.elf import ELF_MAGIC
from envpack.snapshot.hashcache import HashCache
from envpack.snapshot.ldso import LoadedObject, Resolver
from envpack.snapshot.libraries import Found, resolve_closure
from envpack.snapshot.source import Source, SourceReadError

__all__ = ["Closure", "find_closure", "looks_like_elf_name", "new_resolver"]

_VERSIONED_SO = re.compile(r"\.so(\.[0-9][0-9A-Za-z_.+-]*)?$")


def looks_like_elf_name(name: str) -> bool:
    """``x.so`` or a versioned ``libx.so.1.2``: a shared object by its name."""
    return _VERSIONED_SO.search(name) is not None


def new_resolver(source: Source, cache: HashCache | None) -> Resolver:
    """A resolver for the image: the source's files, no ``LD_LIBRARY_PATH``."""
    resolver = Resolver(source, cache)
    resolver.ld_library_path = []
    return resolver


@dataclass
class Closure:
    """What the roots load."""

    libraries: dict[str, Found] = field(default_factory=dict)
    loaders: set[str] = field(default_factory=set)
    """PT_INTERP paths of the roots."""
    missing: list[str] = field(default_factory=list)
    """``name (needed by path)`` for names that resolve nowhere."""


def is_elf_file(source: Source, path: str) -> bool:
    try:
        head = source.read_bytes(path, limit=4)
    except SourceReadError:
        return False
    return head == ELF_MAGIC


def find_closure(
    resolver: Resolver,
    interpreter: str | None,
    extensions: Iterable[str],
    binaries: Iterable[str],
) -> Closure:
    """The closure of the interpreter, its extension modules and the binaries."""
    closure = Closure()
    roots: list[LoadedObject] = []
    interp_obj: LoadedObject | None = None
    if interpreter is not None:
        interp_obj = _object(resolver, interpreter, None, closure)
        if interp_obj is not None:
            roots.append(interp_obj)
    for path in sorted(set(extensions)):
        obj = _object(resolver, path, interp_obj, closure)
        if obj is not None:
            roots.append(obj)
    for path in sorted(set(binaries)):
        obj = _object(resolver, path, None, closure)
        if obj is not None:
            roots.append(obj)

    def missing(obj: LoadedObject, name: str) -> None:
        closure.missing.append(f"{name} (needed by {obj.path})")

    closure.libraries = resolve_closure(resolver, roots, on_missing=missing)
    return closure


def _object(
    resolver: Resolver, path: str, loader: LoadedObject | None, closure: Closure
) -> LoadedObject | None:
    try:
        real = resolver.real_path(path)
        info = resolver.elf(real)
    except SourceReadError:
        return None
    if info is None:
        return None
    if info.interpreter and loader is None:
        closure.loaders.add(info.interpreter)
    return LoadedObject(real if loader is None else posixpath.normpath(path), info, loader)
