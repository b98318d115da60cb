"""Checks that stop a build before it starts: each a :class:`PackError` of one line.

- the manifest names no primary interpreter;
- a ``--root`` tree whose ``os-release`` is not the captured one;
- a ``--user`` who cannot reach the interpreter through the image's folder modes (a
  non-root user and an interpreter under a ``0700 /root``).
"""

from __future__ import annotations

import posixpath
import stat
from collections.abc import Mapping
from typing import Any

from envpack.errors import PackError
from envpack.manifest import Component, Manifest
from envpack.pack.basefiles import NONROOT_UID
from envpack.pack.planmodel import PlannedFile
from envpack.snapshot.os_info import parse_os_release
from envpack.snapshot.source import Source, SourceReadError

__all__ = ["check_release", "check_user_reach", "parse_user", "primary_interpreter"]

_USERS = {"root": 0, "nonroot": NONROOT_UID}


def primary_interpreter(manifest: Manifest) -> Component:
    """The interpreter marked primary, with an executable path."""
    for component in manifest.section("interpreters").values():
        if component.get("primary") and isinstance(component.get("executable"), str):
            return component
    raise PackError(
        f"{manifest.name}: the manifest has no primary interpreter; capture with --python PATH"
    )


def check_release(manifest: Manifest, source: Source) -> None:
    """A ``--root`` tree must be the captured one: its os-release must match."""
    if source.is_live:
        return
    wanted = manifest.section("os").get("release") or {}
    try:
        text = source.read_text_or_none("/etc/os-release")
        if text is None:
            text = source.read_text_or_none("/usr/lib/os-release")
    except SourceReadError as err:
        raise PackError(f"--root {source.root}: cannot read os-release ({err})") from err
    found = parse_os_release(text or "")
    if _release_key(found) != _release_key(wanted):
        raise PackError(
            f"--root {source.root} is not the captured tree: its os-release says "
            f"{_describe(found)!r}, the manifest {_describe(wanted)!r}"
        )


def _release_key(release: Mapping[str, Any]) -> tuple[str, str, str]:
    return (
        str(release.get("id", "")),
        str(release.get("version_id", "")),
        str(release.get("pretty_name", "")),
    )


def _describe(release: Mapping[str, Any]) -> str:
    return str(release.get("pretty_name") or release.get("id") or "nothing")


def parse_user(user: str) -> tuple[int, int] | None:
    """``(uid, gid)`` of ``root``, ``nonroot``, ``UID`` or ``UID:GID``; ``None``: unset."""
    if not user:
        return None
    name, _, group = user.partition(":")
    if name in _USERS:
        uid = _USERS[name]
    elif name.isascii() and name.isdigit():
        uid = int(name)
    else:
        raise PackError(
            f"--user {user}: unknown user; the image has root (0) and nonroot "
            f"({NONROOT_UID}), or give a number"
        )
    if not group:
        return uid, uid
    if group in _USERS:
        return uid, _USERS[group]
    if group.isascii() and group.isdigit():
        return uid, int(group)
    raise PackError(f"--user {user}: unknown group {group!r}")


def _may(entry_mode: int, uid: int, gid: int, owner: tuple[int, int], bits: int) -> bool:
    """Whether ``uid:gid`` has ``bits`` (r=4, x=1) on an entry owned by ``owner``."""
    if uid == 0:
        return True
    if uid == owner[0]:
        return entry_mode >> 6 & bits == bits
    if gid == owner[1]:
        return entry_mode >> 3 & bits == bits
    return entry_mode & bits == bits


def check_user_reach(
    user: str, interpreter: str, entries: Mapping[str, PlannedFile], *, real: str
) -> None:
    """Every folder on the way to the interpreter must let ``user`` through."""
    ids = parse_user(user)
    if ids is None or ids[0] == 0:
        return
    uid, gid = ids
    for path in dict.fromkeys([interpreter, real]):
        folder = posixpath.dirname(path)
        parts = folder.strip("/").split("/") if folder != "/" else []
        current = ""
        for part in parts:
            current += "/" + part
            planned = entries.get(current)
            if planned is None or planned.entry.kind != "dir":
                continue
            e = planned.entry
            if not _may(e.mode, uid, gid, (e.uid, e.gid), 1):
                raise PackError(
                    f"--user {user} cannot reach the interpreter {path}: {current} is mode "
                    f"{stat.S_IMODE(e.mode):04o} owned by {e.uid}:{e.gid}"
                )
    planned = entries.get(real)
    if planned is not None and planned.entry.kind == "file":
        e = planned.entry
        if not _may(e.mode, uid, gid, (e.uid, e.gid), 5):
            raise PackError(
                f"--user {user} cannot run the interpreter {real}: mode "
                f"{stat.S_IMODE(e.mode):04o} owned by {e.uid}:{e.gid}"
            )
