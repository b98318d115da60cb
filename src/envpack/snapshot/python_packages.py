"""Probe: the Python distributions each captured interpreter can see, read from files.

For every interpreter in the ``interpreters`` section, walk its ``sys_path`` in order and
read the metadata of every distribution found there (see :mod:`.distributions`). The
first hit of a name along sys.path wins, as it does at import time; later hits of the same
name are listed in the winner's ``shadowed``. Nothing of the target is imported or run.

Keys: the PEP 503 name for the primary interpreter, ``name@<interpreter key>`` for others.
"""

from __future__ import annotations

import posixpath
from typing import Any

from envpack.manifest import Component, Section
from envpack.snapshot.context import CaptureContext
from envpack.snapshot.distributions import (
    KIND_DIST_INFO,
    Distribution,
    MetadataDir,
    MetadataError,
    canonical_name,
    find_in,
    metadata_dir_of_egg,
    read_distribution,
)
from envpack.snapshot.record import (
    Sha256Many,
    entries_from_rows,
    resolve_record_path,
    rows_size,
    top_level_from_paths,
    verify_record,
)
from envpack.snapshot.source import Source, SourceReadError

__all__ = ["probe"]

PROBE = "python_packages"


def probe(ctx: CaptureContext) -> None:
    """Fill ``python_packages`` from the sys.path of every captured interpreter."""
    section: Section = ctx.sections.setdefault(PROBE, {})
    if "interpreters" not in ctx.sections:
        ctx.issue(
            PROBE,
            "",
            "the interpreters section was not captured, so there is no sys.path to read "
            "packages from; add --only interpreters",
        )
        return
    # An empty section: the interpreters probe found none and has said so in issues.
    interpreters = ctx.sections["interpreters"]
    # The primary interpreter first; the others in key order, so output never depends on
    # the order the interpreters probe happened to insert them.
    ordered = sorted(interpreters.items(), key=lambda kv: (not kv[1].get("primary"), kv[0]))
    for key, interpreter in ordered:
        primary = bool(interpreter.get("primary"))
        for component in _distributions_of(ctx, key, interpreter):
            name = canonical_name(component["name"])
            section[name if primary else f"{name}@{key}"] = component


def _search_path(ctx: CaptureContext, key: str, interpreter: Component) -> list[str]:
    paths = interpreter.get("sys_path")
    if not isinstance(paths, list):
        # An offline capture may know only the site-packages folders.
        paths = interpreter.get("site_packages")
    if not isinstance(paths, list):
        ctx.issue(PROBE, key, "interpreter has neither sys_path nor site_packages")
        return []
    return [path for path in paths if isinstance(path, str) and path.startswith("/")]


def _distributions_of(ctx: CaptureContext, key: str, interpreter: Component) -> list[Component]:
    source = ctx.source
    winners: dict[str, Component] = {}
    seen: set[tuple[str, str]] = set()
    editable_dirs = _egg_link_targets(ctx, interpreter)
    stdlib_dir = _stdlib_dir(interpreter)
    for location in _search_path(ctx, key, interpreter):
        found: list[MetadataDir] = []
        egg = metadata_dir_of_egg(source, location)
        if egg is not None:
            found.append(egg)
        try:
            found.extend(find_in(source, location))
        except SourceReadError as err:
            ctx.issue(PROBE, location, str(err))
        for md in found:
            # An egg on sys.path is also an entry of its parent folder: read it once.
            if (md.location, md.name) in seen:
                continue
            seen.add((md.location, md.name))
            try:
                dist = read_distribution(source, md)
            except MetadataError as err:
                ctx.issue(PROBE, md.path, str(err))
                continue
            for problem in dist.problems:
                ctx.issue(PROBE, md.path, problem)
            name = canonical_name(dist.name)
            winner = winners.get(name)
            if winner is not None:
                winner["shadowed"].append({"version": dist.version, "location": md.location})
                continue
            component = _component(ctx, key, dist, editable_dirs)
            component["stdlib"] = _is_inside(md.location, stdlib_dir)
            winners[name] = component
    return list(winners.values())


def _stdlib_dir(interpreter: Component) -> str | None:
    """The interpreter's standard library folder (``<base prefix>/lib/pythonX.Y``).

    Python 2.7 ships egg-info files there ("python" in lib-dynload, "wsgiref"): they are
    part of the interpreter, not packages anybody installed, and pip hides them too.
    """
    base = interpreter.get("base_prefix")
    version = interpreter.get("version")
    if not isinstance(base, str) or not isinstance(version, str):
        return None
    major_minor = ".".join(version.split(".")[:2])
    folder = "pypy" if interpreter.get("implementation") == "pypy" else "python"
    return posixpath.join(base, "lib", f"{folder}{major_minor}")


def _is_inside(location: str, stdlib_dir: str | None) -> bool:
    if stdlib_dir is None:
        return False
    location = posixpath.normpath(location)
    if location != stdlib_dir and not location.startswith(stdlib_dir + "/"):
        return False
    # Debian's /usr/lib/python2.7/dist-packages is inside it and holds installed packages.
    return not ({"site-packages", "dist-packages"} & set(location.split("/")))


def _component(
    ctx: CaptureContext, key: str, dist: Distribution, editable_dirs: set[str]
) -> Component:
    md = dist.metadata
    direct_url = _redacted(ctx, dist.direct_url) if dist.direct_url is not None else None
    dir_info = (direct_url or {}).get("dir_info")
    editable = bool(isinstance(dir_info, dict) and dir_info.get("editable"))
    # `setup.py develop` / `pip install -e` of old: an .egg-link in site-packages points at
    # the project folder, which sys.path holds and where the egg-info lives.
    editable = editable or (
        md.kind != KIND_DIST_INFO and posixpath.normpath(md.location) in editable_dirs
    )
    files: int | None = None
    size: int | None = None
    installed: list[str] = []
    if dist.record is not None:
        files = len(dist.record)
        size = rows_size(dist.record)
        if dist.top_level is None:
            installed = [row[0] for row in dist.record]
    elif dist.installed_files is not None and md.info_dir is not None:
        files = len(dist.installed_files)
        installed = _relative_to_location(md, dist.installed_files)
    top_level = dist.top_level if dist.top_level is not None else top_level_from_paths(installed)
    component: Component = {
        "name": dist.name,
        "version": dist.version,
        "interpreter": key,
        "location": md.location,
        "metadata_dir": md.name,
        "kind": md.kind,
        "installer": dist.installer,
        # A Requires-Dist may name a URL with a token in it ("pkg @ https://tok@host/…").
        "requires": [ctx.redactor.text(line) for line in dist.requires],
        "requires_python": dist.requires_python,
        "direct_url": direct_url,
        "editable": editable,
        "top_level": top_level,
        "files": files,
        "size": size,
        "shadowed": [],
    }
    if ctx.options.verify:
        component["verify"] = (
            verify_record(
                ctx.source, md.location, entries_from_rows(dist.record), _sha256_many(ctx)
            ).to_json()
            if dist.record is not None
            else None
        )
    return component


def _sha256_many(ctx: CaptureContext) -> Sha256Many:
    """The capture's hash cache, for ``--verify`` (imported only then: sqlite is not free)."""
    from envpack.snapshot.hashcache import cache_for

    cache = cache_for(ctx)
    return lambda inners: cache.sha256_many(ctx.source, inners)


def _relative_to_location(md: MetadataDir, paths: list[str]) -> list[str]:
    """installed-files.txt paths (relative to the egg-info) made relative to the location."""
    info_dir = md.info_dir or md.path
    out = []
    for path in paths:
        full = resolve_record_path(info_dir, path)
        rel = posixpath.relpath(full, md.location)
        out.append(rel)
    return out


def _redacted(ctx: CaptureContext, value: Any) -> Any:
    """A direct_url object with every secret (URL password, token) fingerprinted."""
    if isinstance(value, dict):
        return {k: _redacted(ctx, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(ctx, v) for v in value]
    if isinstance(value, str):
        return ctx.redactor.text(value)
    return value


def _egg_link_targets(ctx: CaptureContext, interpreter: Component) -> set[str]:
    """Folders named by ``*.egg-link`` files in the interpreter's site-packages."""
    targets: set[str] = set()
    folders = interpreter.get("site_packages")
    if not isinstance(folders, list):
        return targets
    source: Source = ctx.source
    for folder in folders:
        if not isinstance(folder, str) or not folder.startswith("/"):
            continue
        try:
            links = [e.name for e in source.scandir(folder) if e.name.endswith(".egg-link")]
        except SourceReadError as err:
            ctx.issue(PROBE, folder, str(err))
            continue
        for link in links:
            path = folder.rstrip("/") + "/" + link
            try:
                text = source.read_text(path, limit=64 * 1024)
            except SourceReadError as err:
                ctx.issue(PROBE, path, str(err))
                continue
            lines = text.splitlines()
            if lines and lines[0].strip():
                targets.add(resolve_record_path(folder, lines[0].strip()))
    return targets
