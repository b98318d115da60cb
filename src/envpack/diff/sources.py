"""Facts only one kind of source can have, kept out of a comparison across source kinds.

A live capture learns some facts from the running system that a rootfs folder or an image
cannot have: the kernel (``uname``), the interpreter's kernel markers, user names of file
owners (a user-database lookup), ``--version`` output of binaries, the capturing shell's
session variables (``PWD``, ``SHLVL`` …). And an image's ``/etc/hosts``, ``/etc/hostname``
and ``/etc/resolv.conf`` are placeholders: the container runtime mounts its own over them.
Compared across kinds, each would be drift that says only *how* each side was captured.

:func:`comparable` returns both manifests without those facts (only when the kinds
differ: two live hosts compare them all) and one note per kind of fact it set aside, so
what was not compared is still said. Pure; the manifests given are not changed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from envpack.diff.severity import is_session_variable
from envpack.manifest import Component, Manifest, Section

__all__ = [
    "FILE_VARIABLES",
    "IMAGE_RUNTIME_FILES",
    "LIVE_ONLY_FIELDS",
    "comparable",
    "is_live",
]

LIVE = "live"
IMAGE = "image"

LIVE_ONLY_FIELDS: tuple[tuple[str, str | None, str | None, str], ...] = (
    # (section, key or None for every key, field or None for the whole component, what)
    ("os", "kernel", None, "the running kernel"),
    ("os", "architecture", "source", "where the architecture was read (uname)"),
    ("os", "timezone", "source", "where the time zone was read (TZ)"),
    ("interpreters", None, "markers.platform_release", "the interpreter's kernel markers"),
    ("interpreters", None, "markers.platform_version", "the interpreter's kernel markers"),
    ("interpreters", None, "source", "how interpreters were described (run or read)"),
    ("config_files", None, "owner_name", "owner names (a user-database lookup)"),
    ("binaries", None, "version", "binary --version output (--probe-versions)"),
)
"""Facts only a live capture records."""

IMAGE_RUNTIME_FILES = frozenset({"/etc/hosts", "/etc/hostname", "/etc/resolv.conf"})
"""Files a container runtime provides at run time over the image's own copy."""


def is_live(manifest: Manifest) -> bool:
    """Whether ``manifest`` was captured from a running host (older ones say ``""``)."""
    return manifest.meta.source_kind in (LIVE, "")


def comparable(a: Manifest, b: Manifest) -> tuple[Manifest, Manifest, list[str]]:
    """``a`` and ``b`` without the facts only one of their source kinds can have."""
    if is_live(a) == is_live(b) and IMAGE not in (a.meta.source_kind, b.meta.source_kind):
        return a, b, []
    said: dict[str, None] = {}
    sections_a, sections_b = dict(a.sections), dict(b.sections)
    if is_live(a) != is_live(b):
        for section, key, field, what in LIVE_ONLY_FIELDS:
            if _field_facts(sections_a, sections_b, section, key, field):
                said[what] = None
            _drop(sections_a, section, key, field)
            _drop(sections_b, section, key, field)
        live, offline = (sections_a, sections_b) if is_live(a) else (sections_b, sections_a)
        per_user = _looked_up_live(live, offline)
        if per_user and _drop_keys(live, "config_files", per_user):
            said["config files only a live capture looks for (under $HOME, or named by "
                 "variables such as PIP_CONFIG_FILE)"] = None  # fmt: skip
        # The shell, terminal and login session of the capture (severity's list).
        session = frozenset(
            name
            for both in (sections_a, sections_b)
            for name in both.get("env") or {}
            if is_session_variable(name)
        )
        if _key_facts(sections_a, sections_b, "env", session):
            said["the capturing shell's session variables (PWD, SHLVL …)"] = None
        for both in (sections_a, sections_b):
            _drop_keys(both, "env", session)
    if IMAGE in (a.meta.source_kind, b.meta.source_kind):
        if _key_facts(sections_a, sections_b, "config_files", IMAGE_RUNTIME_FILES):
            said[
                "/etc/hosts, /etc/hostname and /etc/resolv.conf (a container runtime "
                "provides its own)"
            ] = None
        for both in (sections_a, sections_b):
            _drop_keys(both, "config_files", IMAGE_RUNTIME_FILES)
    notes = []
    if said:
        kinds = f"{a.meta.source_kind or LIVE} and {b.meta.source_kind or LIVE}"
        notes.append(
            f"not compared between {a.name} and {b.name} ({kinds} captures): " + "; ".join(said)
        )
    return (
        dataclasses.replace(a, sections=sections_a),
        dataclasses.replace(b, sections=sections_b),
        notes,
    )


FILE_VARIABLES = (
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "PIP_CERT",
    "PIP_CONFIG_FILE",
)
"""Variables naming a file a live capture reads (envpack.snapshot.config_files)."""


def _looked_up_live(live: dict[str, Section], offline: dict[str, Section]) -> frozenset[str]:
    """Config files of the live side that only a live capture looks for, absent offline:
    per-user ones (under the session's ``HOME``) and those named by variables."""
    env = live.get("env") or {}
    home = str((env.get("HOME") or {}).get("value") or "").rstrip("/")
    named = {str((env.get(v) or {}).get("value") or "") for v in FILE_VARIABLES}
    there = offline.get("config_files") or {}
    return frozenset(
        path
        for path in live.get("config_files") or {}
        if path not in there
        and ((home not in ("", "/") and path.startswith(home + "/")) or path in named)
    )


def _field_facts(
    sections_a: dict[str, Section],
    sections_b: dict[str, Section],
    section: str,
    key: str | None,
    field: str | None,
) -> bool:
    """Whether the two sides differ in a fact about to be set aside (so it is worth a note).

    Only components both sides hold count: one held by a side alone is a row anyway.
    """
    sa, sb = sections_a.get(section) or {}, sections_b.get(section) or {}
    keys = [key] if key is not None else sorted(sa.keys() & sb.keys())
    if field is None:
        return any(sa.get(k) != sb.get(k) for k in keys)
    path = field.split(".")
    return any(_dig(sa.get(k), path) != _dig(sb.get(k), path) for k in keys)


def _dig(value: object, path: list[str]) -> object:
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _key_facts(
    sections_a: dict[str, Section],
    sections_b: dict[str, Section],
    section: str,
    names: frozenset[str],
) -> bool:
    sa, sb = sections_a.get(section) or {}, sections_b.get(section) or {}
    return any(sa.get(name) != sb.get(name) for name in names)


def _drop(sections: dict[str, Section], section: str, key: str | None, field: str | None) -> bool:
    """Remove a field (or a component) from ``sections[section]`` by copy; whether any was."""
    current = sections.get(section)
    if not current:
        return False
    keys: Iterable[str] = [key] if key is not None else list(current)
    copied: Section | None = None
    for name in keys:
        component = current.get(name)
        if component is None:
            continue
        if field is None:
            copied = copied if copied is not None else dict(current)
            del copied[name]
            continue
        trimmed = _without(component, field.split("."))
        if trimmed is not component:
            copied = copied if copied is not None else dict(current)
            copied[name] = trimmed
    if copied is None:
        return False
    sections[section] = copied
    return True


def _without(component: Component, path: list[str]) -> Component:
    """``component`` without the (nested) field ``path``; the same object when absent."""
    head, rest = path[0], path[1:]
    if head not in component:
        return component
    if not rest:
        return {k: v for k, v in component.items() if k != head}
    inner = component[head]
    if not isinstance(inner, dict):
        return component
    trimmed = _without(inner, rest)
    if trimmed is inner:
        return component
    return {**component, head: trimmed}


def _drop_keys(sections: dict[str, Section], section: str, names: frozenset[str]) -> bool:
    current = sections.get(section)
    if not current or not any(name in current for name in names):
        return False
    sections[section] = {k: v for k, v in current.items() if k not in names}
    return True
