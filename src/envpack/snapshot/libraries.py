"""Probe ``libraries``: the shared-library closure of what the capture found.

Roots: the primary interpreters' executables (section ``interpreters``), every ELF C
extension (``*.so``, ``*.so.*``) under their site-packages folders — each loaded by its
interpreter, so the interpreter's ``DT_RPATH`` is inherited — and every ELF binary of
section ``binaries``. Each ``DT_NEEDED`` name is resolved with :mod:`envpack.snapshot.ldso`
and followed breadth-first until nothing new turns up.

Key: the needed name (the soname). When the same name resolves to different files for
different requesters (two bundled copies of ``libgfortran``), the later one is keyed
``name@/path``. A name that resolves nowhere is an issue, not a crash.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from envpack.snapshot.context import CaptureContext
from envpack.snapshot.elf import ElfInfo
from envpack.snapshot.hashcache import cache_for
from envpack.snapshot.ldso import LoadedObject, Resolver, resolver_for
from envpack.snapshot.owners import owners_for
from envpack.snapshot.source import SourceReadError

__all__ = ["NEEDED_BY_LIMIT", "Found", "probe", "resolve_closure"]

SECTION = "libraries"
NEEDED_BY_LIMIT = 20
"""``needed_by`` lists this many requesters (sorted); ``needed_by_count`` has them all."""
_PROGRESS_EVERY = 200


@dataclass
class Found:
    """One library of the closure."""

    name: str
    path: str
    real_path: str
    elf: ElfInfo
    stat: os.stat_result | None
    needed_by: set[str] = field(default_factory=set)


def _component(ctx: CaptureContext, lib: Found) -> dict[str, Any]:
    """The section entry of one library; its ``sha256`` is filled when hashing is done."""
    st = lib.stat
    needed_by = sorted(lib.needed_by)
    return {
        "soname": lib.name,
        "path": lib.path,
        "real_path": lib.real_path,
        "sha256": None,
        "size": st.st_size if st is not None and stat.S_ISREG(st.st_mode) else None,
        "owner": owners_for(ctx).owner(lib.path, lib.real_path),
        "needed_by": needed_by[:NEEDED_BY_LIMIT],
        "needed_by_count": len(needed_by),
        "elf": {
            "needed": list(lib.elf.needed),
            "soname": lib.elf.soname,
            "runpath": lib.elf.runpath,
            "rpath": lib.elf.rpath,
            "build_id": lib.elf.build_id,
        },
    }


def _already_loaded(resolver: Resolver, name: str, obj: LoadedObject) -> str | None:
    """Where ``name`` is found when an object up the chain needs it directly.

    The loader maps a program's dependencies breadth first and reuses an object already
    loaded under the same name, so a library may need a name only its program's RUNPATH
    can find (systemd's private ``libsystemd-shared``).
    """
    ancestor = obj.loader
    while ancestor is not None:
        if name in ancestor.elf.needed:
            return resolver.resolve(name, ancestor)
        ancestor = ancestor.loader
    return None


_VERSIONED_SO = re.compile(r"\.so(\.[0-9][0-9A-Za-z_.+-]*)?$")


def _is_extension_name(name: str) -> bool:
    """``x.so`` or a versioned ``libx.so.1.2`` (not ``x.so.c`` or ``x.so.bak``)."""
    return _VERSIONED_SO.search(name) is not None


def _walk_extensions(ctx: CaptureContext, folder: str) -> list[str]:
    """``*.so`` / ``*.so.*`` files under ``folder`` (symlinked folders not followed).

    auditwheel's vendored folders (``numpy.libs/``, ``psycopg2_binary.libs/``) are left
    out: what is in them is loaded through the extensions' RPATH, so it joins the closure
    when something needs it. Taken as roots, a copy left behind by an older wheel version
    (scipy.libs keeps one on this project's machine) would report libraries "not found"
    that no process ever asks for.
    """
    found: list[str] = []
    pending = [folder]
    while pending:
        current = pending.pop()
        try:
            entries = list(ctx.source.scandir(current))
        except SourceReadError as err:
            ctx.issue(SECTION, current, str(err))
            continue
        for entry in entries:
            path = posixpath.join(current, entry.name)
            try:
                if entry.is_dir(follow_symlinks=False):
                    if not entry.name.endswith(".libs"):
                        pending.append(path)
                elif entry.is_file(follow_symlinks=False) and _is_extension_name(entry.name):
                    found.append(path)
            except OSError:  # vanished since the listing (d_type is known otherwise)
                continue
    return sorted(found)


def _root(ctx: CaptureContext, resolver: Resolver, path: str) -> LoadedObject | None:
    """The program at ``path`` as a load-chain root ($ORIGIN from its real path)."""
    try:
        real = resolver.real_path(path)
        info = resolver.elf(real)
    except SourceReadError as err:
        ctx.issue(SECTION, path, str(err))
        return None
    return None if info is None else LoadedObject(real, info)


def _roots(ctx: CaptureContext, resolver: Resolver) -> list[LoadedObject]:
    roots: list[LoadedObject] = []
    interpreters = ctx.sections.get("interpreters") or {}
    chosen = [c for c in interpreters.values() if c.get("primary")] or list(interpreters.values())
    for component in sorted(chosen, key=lambda c: str(c.get("executable", ""))):
        executable = component.get("executable")
        if not isinstance(executable, str):
            continue
        interpreter = _root(ctx, resolver, executable)
        if interpreter is not None:
            roots.append(interpreter)
        for folder in component.get("site_packages") or ():
            if not isinstance(folder, str):
                continue
            ctx.progress(f"libraries: C extensions under {folder}")
            for path in _walk_extensions(ctx, folder):
                try:
                    info = resolver.elf(path)
                except SourceReadError as err:
                    ctx.issue(SECTION, path, str(err))
                    continue
                if info is not None:
                    roots.append(LoadedObject(path, info, interpreter))
    binaries = ctx.sections.get("binaries") or {}
    for key in sorted(binaries):
        component = binaries[key]
        if component.get("elf") is None or not isinstance(component.get("real_path"), str):
            continue
        binary = _root(ctx, resolver, component["real_path"])
        if binary is not None:
            roots.append(binary)
    return roots


def resolve_closure(
    resolver: Resolver,
    roots: list[LoadedObject],
    *,
    on_found: Callable[[Found], None] | None = None,
    on_missing: Callable[[LoadedObject, str], None] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Found]:
    """Every library the roots load, breadth first, keyed as the section keys them."""
    queue: deque[LoadedObject] = deque(roots)
    visited: set[str] = {root.path for root in roots}
    found: dict[str, Found] = {}
    by_name: dict[str, dict[str, str]] = {}  # name → real path → key
    missing: set[tuple[str, str]] = set()
    processed = 0
    while queue:
        obj = queue.popleft()
        processed += 1
        if progress is not None and processed % _PROGRESS_EVERY == 0:
            progress(f"libraries: {processed} objects, {len(found)} libraries")
        for name in obj.elf.needed:
            path = resolver.resolve(name, obj) or _already_loaded(resolver, name, obj)
            if path is None:
                if on_missing is not None and (obj.path, name) not in missing:
                    on_missing(obj, name)
                missing.add((obj.path, name))
                continue
            real = resolver.real_path(path)
            keys = by_name.setdefault(name, {})
            key = keys.get(real)
            if key is None:
                info = resolver.elf(path)
                if info is None:  # cannot happen: resolve() returns only ELF files
                    continue
                key = name if not keys else f"{name}@{path}"
                keys[real] = key
                found[key] = Found(name, path, real, info, resolver.stat(path))
                if on_found is not None:
                    on_found(found[key])
            found[key].needed_by.add(obj.path)
            if real not in visited:
                visited.add(real)
                queue.append(LoadedObject(path, found[key].elf, obj))
    return found


def stable_keys(found: dict[str, Found]) -> dict[str, Found]:
    """Re-key the closure so keys do not depend on the order the closure was walked.

    When one soname resolves to several files, the plain key goes to the file most
    objects load (then the first path): the system's ``libpython3.11.so.1.0`` keeps its
    key whether or not a pyenv build of it is loaded too, so two captures that differ only
    in their interpreter do not trade keys and show a removed library that is not.
    """
    groups: dict[str, list[Found]] = {}
    for lib in found.values():
        groups.setdefault(lib.name, []).append(lib)
    keyed: dict[str, Found] = {}
    for name, libs in groups.items():
        libs.sort(key=lambda lib: (-len(lib.needed_by), lib.real_path))
        keyed[name] = libs[0]
        for other in libs[1:]:
            keyed[f"{name}@{other.path}"] = other
    return keyed


def probe(ctx: CaptureContext) -> None:
    resolver = resolver_for(ctx)
    owners = owners_for(ctx)
    batch = cache_for(ctx).batch(ctx.source)
    roots = _roots(ctx, resolver)
    ctx.progress(f"libraries: resolving the closure of {len(roots)} objects")

    def missing(obj: LoadedObject, name: str) -> None:
        ctx.issue(SECTION, obj.path, f"{name} not found (needed by {obj.path})")

    found = resolve_closure(
        resolver,
        roots,
        on_found=lambda lib: batch.add(lib.real_path, lib.stat),  # hashed meanwhile
        on_missing=missing,
        progress=ctx.progress,
    )
    keyed = stable_keys(found)
    section = {key: _component(ctx, lib) for key, lib in keyed.items()}
    for problem_path, reason in owners.problems:
        ctx.issue(SECTION, problem_path, reason)
    owners.problems.clear()
    ctx.sections[SECTION] = section

    def fill_hashes() -> None:
        hashes = batch.results()  # also writes the owners' answers to the cache
        for key, lib in keyed.items():
            digest = hashes.get(lib.real_path)
            if isinstance(digest, str):
                section[key]["sha256"] = digest
            elif digest is not None:
                ctx.issue(SECTION, lib.path, str(digest))

    # The libraries go on hashing in the background while the next probes run.
    ctx.defer(fill_hashes)
