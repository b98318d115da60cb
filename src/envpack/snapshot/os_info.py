"""Probe: the operating system under the application.

Section ``os``, one component per aspect::

    release       {"id": "debian", "id_like": [...], "version_id": "12",
                   "version_codename": "bookworm", "pretty_name": "...", "name": "..."}
    architecture  {"machine": "x86_64", "source": "uname"}
    libc          {"family": "glibc", "version": "2.36", "path": "/usr/lib/.../libc.so.6"}
    kernel        {"release": "6.1.0-18-amd64"}                    (live only)
    timezone      {"name": "Europe/Paris", "source": "/etc/localtime"}
                  or {"localtime_sha256": "…", "source": "/etc/localtime"} for a copied zone
                  file, or {"name": "UTC", "source": "default"} when nothing sets one
    locale        {"lang": "C.UTF-8", "lc_all": "...", "lc_ctype": "..."} (those set)

Fields that are absent from the source are absent from the component (never ``null``),
so a field appearing or disappearing is what a diff sees. Anything unreadable becomes an
``issues`` entry; the probe never raises for a file.
"""

from __future__ import annotations

import hashlib
import platform

from envpack.manifest import Component
from envpack.snapshot.context import CaptureContext
from envpack.snapshot.os_arch import ArchProblem, machine_of
from envpack.snapshot.os_libc import detect_libc
from envpack.snapshot.shell_vars import parse_shell_assignments
from envpack.snapshot.source import SourceReadError

__all__ = ["parse_os_release", "probe"]

SECTION = "os"
_OS_RELEASE = ("/etc/os-release", "/usr/lib/os-release")
_RELEASE_FIELDS = ("ID", "ID_LIKE", "VERSION_ID", "VERSION_CODENAME", "PRETTY_NAME", "NAME")
_LOCALE_VARS = ("LANG", "LC_ALL", "LC_CTYPE")
_LOCALE_FILES = ("/etc/default/locale", "/etc/locale.conf")
_ZONEINFO = "zoneinfo/"


def probe(ctx: CaptureContext) -> None:
    """Fill the ``os`` section."""
    architecture = _architecture(ctx)
    # The libc is looked for where this machine's loader lives: read the machine once.
    machine = architecture["machine"] if architecture is not None else None
    components = {
        "release": _release(ctx),
        "architecture": architecture,
        "libc": _libc(ctx, machine),
        "kernel": _kernel(ctx),
        "timezone": _timezone(ctx),
        "locale": _locale(ctx),
    }
    ctx.sections[SECTION] = {k: c for k, c in components.items() if c is not None}


def parse_os_release(text: str) -> Component:
    """The release component from os-release text; empty fields are left out."""
    values = parse_shell_assignments(text)
    component: Component = {}
    for field in _RELEASE_FIELDS:
        value = values.get(field, "").strip()
        if not value:
            continue
        component[field.lower()] = value.split() if field == "ID_LIKE" else value
    return component


def _release(ctx: CaptureContext) -> Component | None:
    unreadable = False
    for path in _OS_RELEASE:
        try:
            text = ctx.source.read_text_or_none(path)
        except SourceReadError as err:
            ctx.issue(SECTION, path, str(err))
            unreadable = True
            continue
        if text is not None:
            return parse_os_release(text)
    if not unreadable:
        ctx.issue(SECTION, _OS_RELEASE[0], "no os-release file (nor /usr/lib/os-release)")
    return None


def _architecture(ctx: CaptureContext) -> Component | None:
    try:
        machine, where = machine_of(ctx.source)
    except (ArchProblem, SourceReadError) as err:
        ctx.issue(SECTION, "/bin/sh", f"architecture unknown: {err}")
        return None
    return {"machine": machine, "source": where}


def _libc(ctx: CaptureContext, machine: str | None) -> Component:
    """``machine``: from the architecture part, ``None`` when it could not be told."""
    info = detect_libc(ctx.source, machine)
    for path, reason in info.problems:
        ctx.issue(SECTION, path, reason)
    component: Component = {"family": info.family}
    if info.version is not None:
        component["version"] = info.version
    if info.path is not None:
        component["path"] = info.path
    return component


def _kernel(ctx: CaptureContext) -> Component | None:
    # A rootfs has no running kernel: whatever boots it decides that.
    return {"release": platform.release()} if ctx.source.is_live else None


def _timezone(ctx: CaptureContext) -> Component:
    """The zone programs will use.

    ``TZ`` (live) overrides everything. Then ``/etc/localtime``, because that is the file
    glibc and musl actually read; ``/etc/timezone`` (Debian's name file) only when
    localtime says nothing, since the two can disagree after a manual change.
    """
    source = ctx.source
    tz = source.environ.get("TZ") if source.is_live else None
    if tz:
        return {"name": _zone_name(tz.lstrip(":")), "source": "TZ"}
    try:
        st = source.lstat("/etc/localtime")
    except SourceReadError as err:
        ctx.issue(SECTION, "/etc/localtime", str(err))
        st = None
    target = source.readlink("/etc/localtime") if st is not None else None
    if target is not None and _ZONEINFO in target:
        return {"name": _zone_name(target), "source": "/etc/localtime"}
    try:
        text = source.read_text_or_none("/etc/timezone")
    except SourceReadError as err:
        ctx.issue(SECTION, "/etc/timezone", str(err))
        text = None
    if text and text.split():
        return {"name": text.split()[0], "source": "/etc/timezone"}
    if st is not None:
        try:
            data = source.read_bytes("/etc/localtime")
        except SourceReadError as err:
            ctx.issue(SECTION, "/etc/localtime", str(err))
        else:
            digest = hashlib.sha256(data).hexdigest()
            return {"localtime_sha256": digest, "source": "/etc/localtime"}
    # No TZ, no localtime, no timezone file: the C library falls back to UTC.
    return {"name": "UTC", "source": "default"}


def _zone_name(value: str) -> str:
    """``Europe/Paris`` from ``/usr/share/zoneinfo/Europe/Paris`` (or the name itself)."""
    _, found, tail = value.rpartition(_ZONEINFO)
    return tail if found else value


def _locale(ctx: CaptureContext) -> Component:
    source = ctx.source
    if source.is_live:
        values = {k: source.environ[k] for k in _LOCALE_VARS if source.environ.get(k)}
    else:
        values = {}
        for path in _LOCALE_FILES:
            try:
                text = source.read_text_or_none(path)
            except SourceReadError as err:
                ctx.issue(SECTION, path, str(err))
                continue
            assigned = parse_shell_assignments(text or "")
            for name in _LOCALE_VARS:
                if assigned.get(name):
                    values.setdefault(name, assigned[name])
    return {name.lower(): value for name, value in sorted(values.items())}
