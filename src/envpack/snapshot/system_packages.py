"""Probe: the OS packages installed, read from the package databases as files.

Section ``system_packages``; key: the package name. Component::

    {"name": "libc6", "version": "2.36-9+deb12u4", "architecture": "amd64",
     "manager": "dpkg", "source": "glibc"}

A dpkg package whose files are on disk but that is not fully installed (waiting for a
trigger, unpacked, half-configured …) is recorded too, with ``"state"``
(``"triggers-pending"``); a fully installed one has no ``state`` field, so manifests of
ordinary systems read as before. apk and rpm keep no such states: their databases list a
package once its files are in place (apk writes ``installed`` at the end of a
transaction; rpm adds the header in the same sqlite transaction), so all are recorded.

Nothing is run (no ``dpkg-query``, ``rpm`` or ``apk``): a rootfs may hold binaries for
another architecture, and the live host's tools must not decide what is recorded.

Keys stay the bare name unless two installed packages share it; then only as much as tells
them apart is added, in this order: ``:architecture`` (``libc6:amd64``, ``libc6:i386``),
``@manager`` (a name installed by both dpkg and rpm), ``=version`` (several versions of an
rpm such as ``kernel-core`` or ``gpg-pubkey``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from envpack.manifest import Component, Section
from envpack.snapshot import apk_db, dpkg_status
from envpack.snapshot.context import CaptureContext
from envpack.snapshot.rpmdb import RpmdbError, read_rpmdb
from envpack.snapshot.source import Source, SourceReadError

__all__ = ["DPKG_STATUS", "probe", "read_apk", "read_dpkg", "read_rpm"]

SECTION = "system_packages"
DPKG_STATUS = "/var/lib/dpkg/status"
DPKG_UPDATES = "/var/lib/dpkg/updates"
APK_INSTALLED = "/lib/apk/db/installed"


def probe(ctx: CaptureContext) -> None:
    """Fill ``system_packages`` from every package database the source has."""
    components: list[Component] = []
    for reader in (read_dpkg, read_apk, read_rpm):
        components.extend(reader(ctx))
    ctx.sections[SECTION] = keyed(components)


def _component(
    name: str,
    version: str,
    arch: str | None,
    manager: str,
    source: str | None,
    state: str = dpkg_status.INSTALLED,
) -> Component:
    component: Component = {"name": name, "version": version, "manager": manager}
    if arch:
        component["architecture"] = arch
    if source:
        component["source"] = source
    if state != dpkg_status.INSTALLED:
        component["state"] = state
    return component


def read_dpkg(ctx: CaptureContext) -> list[Component]:
    """dpkg packages on disk (``var/lib/dpkg/status`` plus pending ``updates/``)."""
    source = ctx.source
    try:
        status = source.read_text_or_none(DPKG_STATUS, whole=True)
    except SourceReadError as err:
        ctx.issue(SECTION, DPKG_STATUS, str(err))
        return []
    if status is None:
        return []
    texts = [status, *_dpkg_updates(ctx, source)]
    return [
        _component(p.name, p.version, p.architecture, "dpkg", p.source, p.state)
        for p in dpkg_status.installed_packages(texts)
    ]


def _dpkg_updates(ctx: CaptureContext, source: Source) -> list[str]:
    try:
        names = [n for n in source.listdir(DPKG_UPDATES) if n.isdigit()]
    except SourceReadError as err:
        ctx.issue(SECTION, DPKG_UPDATES, str(err))
        return []
    texts: list[str] = []
    for name in sorted(names, key=int):
        path = f"{DPKG_UPDATES}/{name}"
        try:
            texts.append(source.read_text(path, whole=True))
        except SourceReadError as err:
            ctx.issue(SECTION, path, str(err))
    return texts


def read_apk(ctx: CaptureContext) -> list[Component]:
    """Installed apk packages (``lib/apk/db/installed``)."""
    try:
        text = ctx.source.read_text_or_none(APK_INSTALLED, whole=True)
    except SourceReadError as err:
        ctx.issue(SECTION, APK_INSTALLED, str(err))
        return []
    if text is None:
        return []
    return [
        _component(p.name, p.version, p.architecture, "apk", p.origin)
        for p in apk_db.installed_packages(text)
    ]


def read_rpm(ctx: CaptureContext) -> list[Component]:
    """Installed rpm packages (the sqlite rpmdb); another format becomes an issue."""
    try:
        contents = read_rpmdb(ctx.source)
    except RpmdbError as err:
        ctx.issue(SECTION, err.path, err.reason)
        return []
    except SourceReadError as err:
        ctx.issue(SECTION, "/var/lib/rpm", str(err))
        return []
    if contents is None:
        return []
    for problem in contents.problems:
        ctx.issue(SECTION, contents.database.path, problem)
    return [_component(p.name, p.evr, p.arch, "rpm", p.source_name) for p in contents.packages]


_Tell = Callable[[Component], str]
# What tells two same-named packages apart, tried in order (see the module docstring).
_DISAMBIGUATORS: tuple[tuple[str, _Tell], ...] = (
    (":", lambda c: str(c.get("architecture", ""))),
    ("@", lambda c: str(c["manager"])),
    ("=", lambda c: str(c["version"])),
)


def keyed(components: list[Component]) -> Section:
    """The section: components keyed by name, disambiguated only where names collide."""
    keys = [str(c["name"]) for c in components]
    for mark, tell in _DISAMBIGUATORS:
        groups: defaultdict[str, list[int]] = defaultdict(list)
        for i, key in enumerate(keys):
            groups[key].append(i)
        for members in groups.values():
            if len(members) > 1 and len({tell(components[i]) for i in members}) > 1:
                for i in members:
                    keys[i] = f"{keys[i]}{mark}{tell(components[i])}"
    section: Section = {}
    seen: defaultdict[str, int] = defaultdict(int)
    for key, component in zip(keys, components):
        # Truly identical records (a corrupt database listing a package twice): number them
        # rather than silently dropping one.
        seen[key] += 1
        section[key if seen[key] == 1 else f"{key}#{seen[key]}"] = component
    return dict(sorted(section.items()))
