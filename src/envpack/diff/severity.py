"""Default severities: how much each kind of change matters, and why, in one line.

The policy (``[policy.severity]``) can override any of these per ``section/key.field``
pattern; ``expected`` and accepted changes are lowered to ``info`` afterwards.

=================  ===========================================  ==========
section            change                                       severity
=================  ===========================================  ==========
interpreters       implementation (cpython → pypy)              critical
interpreters       version: major (3.x → 2.x) or epoch          critical
interpreters       version: minor (3.11 → 3.9)                  major
interpreters       version: patch, pre/post/dev/local           minor
interpreters       interpreter removed                          major
interpreters       removed, and no interpreter left at all      critical
interpreters       interpreter added; path, prefix, markers.*   info
interpreters       any other field                              minor
python_packages    removed                                      major
python_packages    added                                        minor
python_packages    version: major/epoch, or not PEP 440         major
python_packages    version: minor, pre-release, dev             minor
python_packages    version: patch, post, local                  patch
python_packages    other fields (location, installer …)         info
python_packages    added/removed, shipped in the stdlib folder  info
system_packages    removed                                      major
system_packages    added                                        minor
system_packages    version (dpkg/rpm/apk ordering)              as above
system_packages    arch                                         major
system_packages    dpkg state, to or from a trigger wait        info
system_packages    dpkg state: unpacked, half-configured …      patch
system_packages    other fields                                 info
libraries          soname major change, old one needed there    critical
libraries          soname major change, old one needed nowhere  major
libraries          removed, needed by something in the target   critical
libraries          removed, nothing in the target needs it      minor
libraries          same stem, same major, other soname          minor
libraries          added; path                                  info
libraries          other fields (hash, version)                 minor
os                 release.id (debian → alpine), architecture,  critical
                   libc.family (glibc → musl)
os                 release.version_id, libc.version             major
os                 names, codename, id_like, kernel, sources    info
os                 any other field                              minor
config_files       file removed                                 major
config_files       file added; key added/removed/changed        minor
config_files       secret key's fingerprint differs             major
config_files       hash/size when keys are compared one by one  info
env                proxy vars, PYTHONPATH/HOME, LD_* loader     major
env                secret value's fingerprint differs           major
env                shell, terminal, session vars (_SESSION_VARS) info
env                any other variable added/removed/changed     minor
network            DNS nameservers, search domains, proxies     major
network            MTU, routes, listening ports, addresses …    minor
binaries           removed                                      major
binaries           added, changed                               minor
any other section  anything                                     minor
meta               count of capture issues                      info
requirements       requirement or requires-python not met       critical
=================  ===========================================  ==========
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from typing import Any, Callable

from envpack.diff.model import ChangeKind, Severity
from envpack.diff.versions import VersionDelta
from envpack.redact import FINGERPRINT_PREFIX

__all__ = ["SECRET_PREFIX", "grade", "is_secret", "is_session_variable"]

SECRET_PREFIX = FINGERPRINT_PREFIX
"""How the redactor records a secret: equal secrets give equal fingerprints."""

_PROXY_VARS = {"http_proxy", "https_proxy", "no_proxy", "all_proxy", "ftp_proxy"}
# Variables that say where and how the capture was started, not what the environment is:
# the shell's own bookkeeping (the folder it ran in, nesting depth, last command), the
# terminal (its type and size, a multiplexer, an X or Wayland display) and the login
# session (SSH peer and agent, systemd/logind session, D-Bus bus). Two captures of one
# venv from two folders, or over SSH and from a console, differ only in these. Left out
# on purpose: HOME, USER, LOGNAME (another user), LANG/LC_* and TZ (programs behave
# differently), TERMINFO (where curses programs find terminal definitions), PATH.
_SESSION_VARS = frozenset(
    {
        "PWD", "OLDPWD", "SHLVL", "_",
        "TERM", "COLORTERM", "COLUMNS", "LINES", "LS_COLORS", "WINDOWID", "VTE_VERSION",
        "TERM_PROGRAM", "TERM_PROGRAM_VERSION", "TERM_SESSION_ID",
        "TMUX", "TMUX_PANE", "STY", "WINDOW", "DISPLAY", "WAYLAND_DISPLAY", "GPG_TTY",
        "XDG_RUNTIME_DIR", "XDG_SEAT", "XDG_VTNR", "DBUS_SESSION_BUS_ADDRESS",
        "INVOCATION_ID", "JOURNAL_STREAM", "MOTD_SHOWN",
    }
)  # fmt: skip
_SESSION_PREFIXES = ("SSH_", "XDG_SESSION_")


def is_session_variable(name: str) -> bool:
    """Whether ``name`` is a shell, terminal or session variable (info by default)."""
    return name in _SESSION_VARS or name.startswith(_SESSION_PREFIXES)


_LOADER_VARS = {"pythonpath", "pythonhome", "ld_library_path", "ld_preload"}
# Facts that follow from where the interpreter lives or from its version (already graded).
_INTERP_INFO_FIELDS = (
    "path",
    "prefix",
    "base_prefix",
    "exec_prefix",
    "executable",
    "real_executable",
    "sys_path",
    "site_packages",
    "version_info",
    "virtualenv",
    "source",
)
# Patterns over "<os key>.<field>" (release.id, libc.family …) or a bare field name.
_OS_CRITICAL = ("*.id", "id", "architecture.*", "*.machine", "*.arch", "libc.family")
_OS_MAJOR = ("*.version_id", "version_id", "libc.version")
_OS_INFO = (
    "*.name",
    "*.pretty_name",
    "release.version",
    "*.version_codename",
    "*.id_like",
    "kernel.*",
    "*.source",
    "libc.path",
)
_NET_MAJOR = ("*nameserver*", "*dns*", "*search*", "*proxy*", "*proxies*", "*resolv*")

_PY_LEVEL = {
    "epoch": Severity.MAJOR,
    "major": Severity.MAJOR,
    "legacy": Severity.MAJOR,
    "minor": Severity.MINOR,
    "pre": Severity.MINOR,
    "dev": Severity.MINOR,
    "patch": Severity.PATCH,
    "post": Severity.PATCH,
    "local": Severity.PATCH,
    "other": Severity.PATCH,
}
_INTERP_LEVEL = {
    "epoch": Severity.CRITICAL,
    "major": Severity.CRITICAL,
    "minor": Severity.MAJOR,
    "legacy": Severity.MAJOR,
}


def is_secret(value: Any) -> bool:
    """A redacted value (an HMAC fingerprint) rather than a value in clear."""
    return isinstance(value, str) and value.startswith(SECRET_PREFIX)


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    if is_secret(value):
        return "(secret)"
    # Lists and objects as JSON, as the manifest holds them (not Python's repr).
    text = (
        value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)
    )
    return text if len(text) <= 60 else text[:57] + "..."


def _arrow(before: Any, after: Any) -> str:
    return f"{_show(before)} → {_show(after)}"


def _direction(kind: ChangeKind) -> str:
    return {ChangeKind.UPGRADED: "upgrade", ChangeKind.DOWNGRADED: "downgrade"}.get(kind, "change")


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _list_delta(before: Any, after: Any) -> str:
    """``"+9090, -8080"`` for two lists; ``""`` when they are not both lists."""
    if not (isinstance(before, list) and isinstance(after, list)):
        return ""
    old = {_show(v) for v in before}
    new = {_show(v) for v in after}
    parts = [f"+{v}" for v in sorted(new - old)] + [f"-{v}" for v in sorted(old - new)]
    return ", ".join(parts) if parts else "same items, other order"


@dataclass(frozen=True)
class Graded:
    """What a section's grader looks at: one change, before it has a severity."""

    key: str
    field: str | None
    before: Any
    after: Any
    kind: ChangeKind
    delta: VersionDelta | None = None
    """The version comparison of a version field (for a library's ``soname``, level
    ``major`` means the soname major changed)."""
    needed_by: str = ""
    """A removed library: what captured in the target environment needs it (a path, or
    for a soname change "PATH needs NAME"); empty when nothing there does."""
    flat: bool = False
    """The component's keys are compared one by one (config files), so its hash changing
    adds nothing."""
    none_left: bool = False
    """A removed interpreter, and the other environment has no Python interpreter at all."""


def grade(section: str, change: Graded) -> tuple[Severity, str]:
    """The default severity of one change in ``section`` and its one-line reason."""
    return _GRADERS.get(section, _grade_other)(change)


Grader = Callable[[Graded], tuple[Severity, str]]


def _grade_interpreters(c: Graded) -> tuple[Severity, str]:
    key, field, before, after, kind, delta = c.key, c.field, c.before, c.after, c.kind, c.delta
    if field is None:
        if kind is ChangeKind.REMOVED and c.none_left:
            return Severity.CRITICAL, (
                f"interpreter {key} is missing and no Python interpreter was found here: "
                "Python code will not run"
            )
        if kind is ChangeKind.REMOVED:
            return Severity.MAJOR, f"interpreter {key} is missing"
        return Severity.INFO, f"interpreter {key} is new"
    if field == "implementation":
        return (
            Severity.CRITICAL,
            f"Python implementation {_arrow(before, after)}: a different interpreter; "
            "C extensions and behaviour differ",
        )
    if field == "version" and delta is not None:
        severity = _INTERP_LEVEL.get(delta.level, Severity.MINOR)
        versions = f"Python {_arrow(before, after)}"
        if delta.level in ("major", "epoch"):
            old_major = str(before).split(".", 1)[0]
            return severity, (
                f"{versions}: major version change; code written for Python {old_major} "
                "will not run"
            )
        if delta.level == "minor":
            return severity, (
                f"{versions}: minor version {_direction(kind)}; language features, the "
                "standard library and compiled extensions differ"
            )
        if delta.legacy:
            return severity, f"{versions}: unrecognised version, cannot tell the difference"
        return severity, f"{versions}: {delta.level}-level {_direction(kind)}, same language"
    if field.startswith("markers.") or field in _INTERP_INFO_FIELDS:
        return Severity.INFO, f"interpreter {field} {_arrow(before, after)}"
    return Severity.MINOR, f"interpreter {field} {_arrow(before, after)}"


def _package_version(
    what: str, key: str, before: Any, after: Any, kind: ChangeKind, delta: VersionDelta | None
) -> tuple[Severity, str]:
    versions = f"{key} {_arrow(before, after)}"
    if delta is None or delta.legacy:
        return Severity.MAJOR, (
            f"{versions}: not a {what} version envpack can order; cannot tell how big the change is"
        )
    severity = _PY_LEVEL[delta.level]
    explain = {
        "epoch": "version epoch changed; the versions are not comparable",
        "major": f"major {_direction(kind)}; the API may have changed",
        "minor": f"minor {_direction(kind)}",
        "pre": f"pre-release {_direction(kind)}",
        "dev": f"development release {_direction(kind)}",
        "patch": f"patch {_direction(kind)}",
        "post": f"post-release {_direction(kind)}",
        "local": f"local build {_direction(kind)}",
        "other": "same version, spelled differently",
    }[delta.level]
    return severity, f"{versions}: {explain}"


def _grade_python_packages(c: Graded) -> tuple[Severity, str]:
    key, field, before, after, kind, delta = c.key, c.field, c.before, c.after, c.kind, c.delta
    if field is None:
        component = before if kind is ChangeKind.REMOVED else after
        if isinstance(component, dict) and component.get("stdlib") is True:
            return Severity.INFO, f"{key} comes with the interpreter's standard library"
        if kind is ChangeKind.REMOVED:
            return Severity.MAJOR, f"{key} is not installed; code importing it will fail"
        return Severity.MINOR, f"{key} is installed only here"
    if field == "version":
        return _package_version("Python", key, before, after, kind, delta)
    return Severity.INFO, f"{key} {field} {_arrow(before, after)}"


def _grade_system_packages(c: Graded) -> tuple[Severity, str]:
    key, field, before, after, kind, delta = c.key, c.field, c.before, c.after, c.kind, c.delta
    if field is None:
        if kind is ChangeKind.REMOVED:
            return Severity.MAJOR, f"system package {key} is not installed"
        return Severity.MINOR, f"system package {key} is installed only here"
    if field == "version":
        return _package_version("system package", key, before, after, kind, delta)
    if field in ("arch", "architecture"):
        return Severity.MAJOR, f"{key} built for another architecture: {_arrow(before, after)}"
    if field == "state":
        return _package_state(key, before, after)
    return Severity.INFO, f"{key} {field} {_arrow(before, after)}"


def _package_state(key: str, before: Any, after: Any) -> tuple[Severity, str]:
    """A dpkg state change: the package is on disk on both sides (no ``state``: installed).

    Waiting for a trigger (``man-db`` after any install) changes nothing a program sees;
    unpacked or half-configured means its maintainer script has not (fully) run yet.
    """
    old, new = before or "installed", after or "installed"
    states = f"{key} dpkg state {old} → {new}"
    if {old, new} <= {"installed", "triggers-pending", "triggers-awaited"}:
        return Severity.INFO, f"{states}: its files are in place, a trigger is pending"
    return Severity.PATCH, f"{states}: its files are on disk, its configuration is unfinished"


def _grade_libraries(c: Graded) -> tuple[Severity, str]:
    key, field, before, after, kind, delta, needed_by = (
        c.key,
        c.field,
        c.before,
        c.after,
        c.kind,
        c.delta,
        c.needed_by,
    )
    if field is None:
        if kind is ChangeKind.REMOVED:
            if needed_by:
                return Severity.CRITICAL, (
                    f"{key} is missing and {needed_by} needs it: it will not start"
                )
            return Severity.MINOR, (
                f"{key} is missing; nothing captured here needs it (an unused file removed)"
            )
        return Severity.INFO, f"{key} is present only here"
    if field == "soname":
        if delta is not None and delta.level == "major":
            if needed_by:
                return Severity.CRITICAL, (
                    f"{_arrow(before, after)}: ABI break (soname major changed) and "
                    f"{needed_by}, which is missing: it will not load"
                )
            return Severity.MAJOR, (
                f"{_arrow(before, after)}: ABI break (soname major changed); nothing "
                "captured here needs the old one, code built elsewhere against it will not load"
            )
        return Severity.MINOR, f"{_arrow(before, after)}: same ABI major, another soname"
    if field == "path":
        return Severity.INFO, f"{key} found at another path: {_arrow(before, after)}"
    return Severity.MINOR, f"{key} {field} differs: same soname, another build"


def _grade_os(c: Graded) -> tuple[Severity, str]:
    key, field, before, after = c.key, c.field, c.before, c.after
    if field is None:
        return Severity.MAJOR, f"OS facts {key} recorded on one side only"
    change = f"OS {key}.{field} {_arrow(before, after)}"
    field = f"{key}.{field}"
    if _matches(field, _OS_INFO):
        return Severity.INFO, change
    if _matches(field, _OS_CRITICAL):
        return Severity.CRITICAL, f"{change}: another OS or C library; binaries may not run"
    if _matches(field, _OS_MAJOR):
        return Severity.MAJOR, f"{change}: another release; system libraries differ"
    return Severity.MINOR, change


def _grade_config_files(c: Graded) -> tuple[Severity, str]:
    key, field, before, after, kind, flat = c.key, c.field, c.before, c.after, c.kind, c.flat
    if field is None:
        if kind is ChangeKind.REMOVED:
            return Severity.MAJOR, f"config file {key} is missing"
        return Severity.MINOR, f"config file {key} exists only here"
    if field.startswith("keys."):
        name = field[len("keys.") :]
        if kind is ChangeKind.CHANGED and (is_secret(before) or is_secret(after)):
            return Severity.MAJOR, (
                f"{key}: secret {name} differs (compared by fingerprint, not shown); "
                "credentials or keys differ"
            )
        if kind is ChangeKind.ADDED:
            return Severity.MINOR, f"{key}: key {name} set only here"
        if kind is ChangeKind.REMOVED:
            return Severity.MINOR, f"{key}: key {name} is not set"
        return Severity.MINOR, f"{key}: {name} {_arrow(before, after)}"
    if flat:
        return Severity.INFO, f"{key} {field} differs (its keys are compared one by one)"
    return Severity.MINOR, f"{key} {field} differs"


def _grade_env(c: Graded) -> tuple[Severity, str]:
    key, field, before, after, kind = c.key, c.field, c.before, c.after, c.kind
    if is_session_variable(key):
        if field is None:
            what = "is set only here" if kind is ChangeKind.ADDED else "is not set"
        else:
            what = _arrow(before, after)
        return Severity.INFO, (
            f"environment variable {key} {what}: shell, terminal or session state, "
            "not the environment"
        )
    lower = key.lower()
    severity = Severity.MAJOR if lower in _PROXY_VARS | _LOADER_VARS else Severity.MINOR
    why = ""
    if lower in _PROXY_VARS:
        why = ": outgoing connections take another route"
    elif lower in _LOADER_VARS:
        why = ": other code or libraries get loaded"
    if field is None:
        state = "not set" if kind is ChangeKind.REMOVED else "set only here"
        return severity, f"environment variable {key} is {state}{why}"
    if kind is ChangeKind.CHANGED and (is_secret(before) or is_secret(after)):
        return Severity.MAJOR, (
            f"secret environment variable {key} differs (compared by fingerprint, not shown)"
        )
    if field not in ("value",):
        return Severity.INFO, f"environment variable {key}: {field} {_arrow(before, after)}"
    return severity, f"environment variable {key} {_arrow(before, after)}{why}"


def _grade_network(c: Graded) -> tuple[Severity, str]:
    key, field, before, after, kind = c.key, c.field, c.before, c.after, c.kind
    where = f"{key}.{field}" if field else key
    if field is None:
        state = "missing" if kind is ChangeKind.REMOVED else "present only here"
        severity = Severity.MAJOR if _matches(key.lower(), _NET_MAJOR) else Severity.MINOR
        return severity, f"network {key} {state}"
    items = _list_delta(before, after)
    change = f"network {where}: {items}" if items else f"network {where} {_arrow(before, after)}"
    if _matches(where.lower(), _NET_MAJOR):
        return Severity.MAJOR, f"{change}: name resolution or proxying differs"
    return Severity.MINOR, change


def _grade_binaries(c: Graded) -> tuple[Severity, str]:
    key, field, before, after, kind = c.key, c.field, c.before, c.after, c.kind
    if field is None:
        if kind is ChangeKind.REMOVED:
            return Severity.MAJOR, f"program {key} is missing"
        return Severity.MINOR, f"program {key} exists only here"
    return Severity.MINOR, f"program {key} {field} {_arrow(before, after)}"


def _grade_other(c: Graded) -> tuple[Severity, str]:
    key, field, before, after, kind = c.key, c.field, c.before, c.after, c.kind
    if key == "issues" and field == "count":
        return Severity.INFO, f"capture issues recorded: {_arrow(before, after)}"
    if field is None:
        state = "missing" if kind is ChangeKind.REMOVED else "present only here"
        return Severity.MINOR, f"{key} {state}"
    return Severity.MINOR, f"{key} {field} {_arrow(before, after)}"


_GRADERS: dict[str, Grader] = {
    "interpreters": _grade_interpreters,
    "python_packages": _grade_python_packages,
    "system_packages": _grade_system_packages,
    "libraries": _grade_libraries,
    "os": _grade_os,
    "config_files": _grade_config_files,
    "env": _grade_env,
    "network": _grade_network,
    "binaries": _grade_binaries,
}
