"""Keyed comparison of two manifests: pure, and fast on 100,000-package sections.

Each section is matched by key; a component only in the baseline is ``removed``, one only
in the other environment is ``added``, and a component in both is compared field by field
(nested objects flattened to ``field.sub``, so a config file's ``keys`` dict gives one
change per ``keys.<name>``). Equal components are skipped with one ``==`` in C and never
produce an object; versions are only parsed for the few that differ.

Special cases:

* ``interpreters`` — the two *primary* interpreters (``"primary": true``) are compared
  with each other under the key ``primary`` even when their paths differ.
* ``python_packages`` / ``interpreters`` — ``version`` graded with PEP 440;
  ``system_packages`` — ``version`` ordered by the component's ``manager`` (dpkg, rpm, apk).
* ``system_packages`` — a package whose key gained or lost ``:arch``, ``@manager`` or
  ``=version`` (another package of its name came or went) is matched by name, manager
  and architecture, not called removed.
* ``libraries`` — keys are sonames; a removed ``libssl.so.1.1`` and an added
  ``libssl.so.3`` (same stem ``libssl.so``) become one ``soname`` change under the key
  ``libssl.so``: an ABI break when the major differs.
* ``meta`` is not compared, except the number of capture issues (info).
* A section that one side did not capture (``meta.coverage``: skipped with ``--only``, or
  not applicable to its source) is not compared: one info row ``meta/coverage.<section>``
  says so instead of calling every entry of the other side added or removed.
* Bookkeeping fields (a package's folder and interpreter) are not compared, and fields
  that follow from a version change (ABI tag, sys.path, RECORD size …) are not listed
  beside it: see ``_BOOKKEEPING`` and ``_FOLLOW_VERSION``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from envpack.diff.model import Change, ChangeKind, Drift, Severity
from envpack.diff.severity import Graded, grade
from envpack.diff.versions import VersionDelta, delta
from envpack.manifest import (
    CAPTURED,
    NOT_APPLICABLE,
    NOT_CAPTURED,
    SECTIONS,
    Component,
    Manifest,
    Section,
)

__all__ = [
    "COVERAGE",
    "MISSING",
    "PRIMARY",
    "cell",
    "compare",
    "compare_sections",
    "needs",
    "soname_stem",
]

PRIMARY = "primary"
"""Key under which the two primary interpreters are compared."""

COVERAGE = "coverage"
"""Key (in section ``meta``) of the rows saying a section was not captured on one side;
the field is the section's name."""

MISSING: Any = object()
"""What :func:`cell` returns for an environment without the component or field."""

_VERSIONED = {"python_packages", "interpreters", "system_packages"}

# Fields that only say where a component sits or which interpreter sees it. They differ
# between any two machines (/home/dev/venv vs /opt/app/venv) for every package and say
# nothing that the key and the version do not.
_BOOKKEEPING: dict[str, tuple[str, ...]] = {
    "python_packages": ("interpreter", "location", "metadata_dir"),
    # Who loads a library follows from the binaries and interpreters, compared on their own.
    "libraries": ("needed_by", "needed_by_count"),
}
# Fields that follow from a version (or implementation) change. Listing them beside it
# would bury the one line that matters ("Python 3.11.7 → 2.7.18") under twenty that
# restate it (abi tag, sys.path, markers, RECORD size …).
_FOLLOW_VERSION: dict[str, tuple[str, ...]] = {
    "python_packages": (
        "size", "files", "direct_url", "requires", "requires_python", "top_level", "verify",
    ),
    "interpreters": (
        "version_info", "abi_tag", "interpreter_tag", "soabi", "ext_suffix", "sys_path",
        "site_packages", "real_executable", "base_prefix", "markers.python_version",
        "markers.python_full_version", "markers.implementation_name",
        "markers.implementation_version", "markers.sys_platform",
    ),
    "system_packages": ("source",),
}  # fmt: skip


def compare(baseline: Manifest, other: Manifest) -> Drift:
    """Every difference from ``baseline`` to ``other``, graded with the default severities."""
    drift = Drift(baseline=baseline.name, other=other.name)
    drift.changes.extend(compare_sections(baseline, other))
    return drift


def compare_sections(a: Manifest, b: Manifest) -> Iterator[Change]:
    """The changes, section by section in :data:`SECTIONS` order, keys sorted."""
    for name in SECTIONS:
        sa, sb = a.section(name), b.section(name)
        coverage = a.coverage_of(name), b.coverage_of(name)
        if coverage != (CAPTURED, CAPTURED):
            # What one side did not look at cannot have drifted: one row says so.
            row = _coverage_row(a, b, name, coverage)
            if row is not None:
                yield row
            continue
        if sa is sb or sa == sb:
            continue
        if name == "interpreters":
            found = _interpreters(sa, sb)
        elif name == "libraries":
            found = _libraries(sa, sb, b)
        elif name == "system_packages":
            found = _system_packages(sa, sb)
        else:
            found = list(_keyed(name, sa, sb))
        found.sort(key=_order)
        yield from found
    if len(a.issues) != len(b.issues):
        yield _change("meta", "issues", "count", len(a.issues), len(b.issues), ChangeKind.CHANGED)


def _coverage_row(
    a: Manifest, b: Manifest, section: str, coverage: tuple[str, str]
) -> Change | None:
    """The one info row for a section that one side (or both) did not capture.

    None when both sides left it out alike (two ``--only`` captures of the same sections
    differ in nothing), or when nothing can hide behind it: no side skipped the section
    by choice and neither side holds an entry (``app``, which no probe records, against
    an older manifest that counts it as captured).
    """
    if coverage[0] == coverage[1]:
        return None
    if NOT_CAPTURED not in coverage and not a.section(section) and not b.section(section):
        return None
    missing = [m.name for m, state in zip((a, b), coverage) if state != CAPTURED]
    states = {state for state in coverage if state != CAPTURED}
    what = "not applicable to" if states == {NOT_APPLICABLE} else "not captured in"
    reason = f"{section} {what} {' and '.join(missing)}; its entries are not compared"
    before, after = coverage
    return Change(
        "meta", COVERAGE, section, before, after, ChangeKind.CHANGED, Severity.INFO, reason
    )


def _order(change: Change) -> tuple[str, str]:
    return (change.key, change.field or "")


def _change(
    section: str,
    key: str,
    field: str | None,
    before: Any,
    after: Any,
    kind: ChangeKind,
    *,
    delta: VersionDelta | None = None,
    needed_by: str = "",
    flattened_keys: bool = False,
    none_left: bool = False,
) -> Change:
    graded = Graded(key, field, before, after, kind, delta, needed_by, flattened_keys, none_left)
    severity, reason = grade(section, graded)
    return Change(section, key, field, before, after, kind, severity, reason)


def _keyed(section: str, sa: Section, sb: Section) -> Iterator[Change]:
    get = sb.get
    for key, ca in sa.items():
        cb = get(key)
        if cb is None:
            yield _whole(section, key, ca, None)
        elif ca != cb:
            yield from _fields(section, key, ca, cb)
    if len(sb) != len(sa) or sb.keys() != sa.keys():
        for key, cb in sb.items():
            if key not in sa:
                yield _whole(section, key, None, cb)


def _whole(
    section: str, key: str, ca: Component | None, cb: Component | None, needed_by: str = ""
) -> Change:
    kind = ChangeKind.REMOVED if cb is None else ChangeKind.ADDED
    return _change(section, key, None, ca, cb, kind, needed_by=needed_by)


def _fields(section: str, key: str, ca: Component, cb: Component) -> Iterator[Change]:
    flat = isinstance(ca.get("keys"), dict) and isinstance(cb.get("keys"), dict)
    # Order versions by the package manager only when both sides agree on it: a dpkg
    # version against an rpm one has no manager ordering, and picking one side's would
    # make diff(A, B) and diff(B, A) disagree.
    manager = ca.get("manager") if ca.get("manager") == cb.get("manager") else None
    skip = _BOOKKEEPING.get(section, ())
    if ca.get("version") != cb.get("version") or ca.get("implementation") != cb.get(
        "implementation"
    ):
        skip += _FOLLOW_VERSION.get(section, ())
    for field, before, after in _flat_diff(ca, cb, ""):
        if skip and _covered(field, skip):
            continue
        if before is MISSING:
            yield _change(section, key, field, None, after, ChangeKind.ADDED, flattened_keys=flat)
            continue
        if after is MISSING:
            yield _change(
                section, key, field, before, None, ChangeKind.REMOVED, flattened_keys=flat
            )
            continue
        kind = ChangeKind.CHANGED
        version_delta = None
        if (
            field == "version"
            and section in _VERSIONED
            and isinstance(before, str)
            and isinstance(after, str)
        ):
            version_delta = delta(
                section, manager if isinstance(manager, str) else None, before, after
            )
            if version_delta.order > 0:
                kind = ChangeKind.UPGRADED
            elif version_delta.order < 0:
                kind = ChangeKind.DOWNGRADED
        yield _change(
            section, key, field, before, after, kind, delta=version_delta, flattened_keys=flat
        )


def _covered(field: str, names: tuple[str, ...]) -> bool:
    """Whether ``field`` is one of ``names`` or lies inside one of them."""
    return any(field == name or field.startswith(name + ".") for name in names)


def _flat_diff(
    ca: dict[str, Any], cb: dict[str, Any], prefix: str
) -> Iterator[tuple[str, Any, Any]]:
    """``(dotted field, before, after)`` for each differing leaf; objects are walked into."""
    for field in sorted(ca.keys() | cb.keys()):
        before, after = ca.get(field, MISSING), cb.get(field, MISSING)
        if before == after and before is not MISSING:
            continue
        name = prefix + field
        if isinstance(before, dict) and isinstance(after, dict):
            yield from _flat_diff(before, after, name + ".")
        else:
            yield name, before, after


# --- interpreters ------------------------------------------------------------------------


def primary_key(section: Section) -> str | None:
    """The key of the primary interpreter in an ``interpreters`` section."""
    for key in sorted(section):
        if section[key].get("primary") is True:
            return key
    return None


def _interpreters(sa: Section, sb: Section) -> list[Change]:
    if sa and not sb:  # no Python at all on the other side
        return [
            _change("interpreters", k, None, c, None, ChangeKind.REMOVED, none_left=True)
            for k, c in sa.items()
        ]
    pa, pb = primary_key(sa), primary_key(sb)
    if pa is None or pb is None:
        return list(_keyed("interpreters", sa, sb))
    ca, cb = sa[pa], sb[pb]
    found = list(_fields("interpreters", PRIMARY, ca, cb))
    if pa != pb and ca.get("executable") == cb.get("executable"):
        # The paths differ only in how they were named: say so, once.
        found.append(_change("interpreters", PRIMARY, "path", pa, pb, ChangeKind.CHANGED))
    rest_a = {k: v for k, v in sa.items() if k != pa}
    rest_b = {k: v for k, v in sb.items() if k != pb}
    found.extend(_keyed("interpreters", rest_a, rest_b))
    return found


# --- system packages ---------------------------------------------------------------------


def _package_identity(component: Component) -> tuple[str, str, str]:
    arch = component.get("architecture")
    return (str(component.get("name")), str(component.get("manager")), str(arch or ""))


def _system_packages(sa: Section, sb: Section) -> list[Change]:
    """Keyed changes, with a package whose *key* changed matched by what it is.

    A key gets ``:arch``, ``@manager`` or ``=version`` only while two installed packages
    share the name, so installing ``libc6:i386`` turns ``libc6`` into ``libc6:amd64``, and
    an rpm upgrade caught half-way (both versions installed for a moment) turns ``bash``
    into ``bash=5.1.8-6`` and ``bash=5.1.8-9``. Matched by name, manager and architecture
    (the same version first), such a package is compared field by field under its
    baseline key, not called removed.
    """
    found: list[Change] = []
    removed: list[str] = []
    added: dict[tuple[str, str, str], list[str]] = {}
    for change in _keyed("system_packages", sa, sb):
        if change.field is None and change.kind is ChangeKind.REMOVED:
            removed.append(change.key)
        elif change.field is None and change.kind is ChangeKind.ADDED:
            added.setdefault(_package_identity(sb[change.key]), []).append(change.key)
        else:
            found.append(change)
    # Same identity and version first (only the key changed), then a lone candidate.
    left: list[str] = []
    for key in removed:
        candidates = added.get(_package_identity(sa[key]), [])
        same = [k for k in candidates if sb[k].get("version") == sa[key].get("version")]
        if same:
            candidates.remove(same[0])
            found.extend(_fields("system_packages", key, sa[key], sb[same[0]]))
        else:
            left.append(key)
    present = {_package_identity(c): k for k, c in sorted(sb.items(), reverse=True)}
    for key in left:
        identity = _package_identity(sa[key])
        candidates = added.get(identity, [])
        if len(candidates) == 1:
            found.extend(_fields("system_packages", key, sa[key], sb[candidates.pop()]))
        elif not candidates and identity in present:
            # Another version of it is still installed (the end of an rpm upgrade, or a
            # key that lost its "=version"): a version change, not a removal.
            found.extend(_fields("system_packages", key, sa[key], sb[present[identity]]))
        else:
            found.append(_whole("system_packages", key, sa[key], None))
    for keys in added.values():
        found.extend(_whole("system_packages", k, None, sb[k]) for k in keys)
    return found


# --- libraries -----------------------------------------------------------------------------


def soname_stem(soname: str) -> tuple[str, str]:
    """``libssl.so.1.1`` → ``("libssl.so", "1")``; ``libfoo.so`` → ``("libfoo.so", "")``."""
    index = soname.rfind(".so")
    if index < 0:
        return soname, ""
    stem, rest = soname[: index + 3], soname[index + 3 :]
    if rest and not rest.startswith("."):
        return soname, ""  # ".so" was part of the name (libfoo.sox), not the suffix
    return stem, rest[1:].split(".", 1)[0] if rest else ""


def _one_or_list(items: list[str]) -> str | list[str]:
    return items[0] if len(items) == 1 else items


_NOT_FOUND = re.compile(r"(\S+) not found \(needed by (.+)\)")
"""The libraries probe's issue for a needed name that resolves nowhere."""


def needs(manifest: Manifest) -> dict[str, str]:
    """Every library name something captured in ``manifest`` needs → one such requester.

    From the ``DT_NEEDED`` lists of its binaries and libraries, and from the libraries
    probe's "not found" issues (an interpreter or a C extension whose library is absent:
    those requesters have no entry of their own). The requester shown is the first path
    in sorted order, so the reason does not depend on the order of the manifest.
    """
    found: dict[str, str] = {}

    def add(name: object, who: str) -> None:
        if isinstance(name, str) and (name not in found or who < found[name]):
            found[name] = who

    for section in ("binaries", "libraries"):
        for key, component in manifest.section(section).items():
            elf = component.get("elf")
            needed = elf.get("needed") if isinstance(elf, dict) else None
            if isinstance(needed, list):
                who = component.get("path")
                for name in needed:
                    add(name, who if isinstance(who, str) else key)
    for issue in manifest.issues:
        if issue.probe == "libraries":
            match = _NOT_FOUND.fullmatch(issue.reason)
            if match is not None:
                add(match.group(1), match.group(2))
    return found


def _soname(key: str, component: Component) -> str:
    name = component.get("soname")
    return name if isinstance(name, str) else key.split("@", 1)[0]


def _libraries(sa: Section, sb: Section, target: Manifest) -> list[Change]:
    """Library changes; a library missing from ``target`` is graded by whether something
    captured there needs it (its ``needed_by`` in the baseline says nothing about the
    target, where those users may be gone too)."""
    found: list[Change] = []
    removed: dict[str, list[str]] = {}
    added: dict[str, list[str]] = {}
    for change in _keyed("libraries", sa, sb):
        if change.kind is ChangeKind.REMOVED and change.field is None:
            removed.setdefault(soname_stem(change.key)[0], []).append(change.key)
        elif change.kind is ChangeKind.ADDED and change.field is None:
            added.setdefault(soname_stem(change.key)[0], []).append(change.key)
        else:
            found.append(change)
    wanted = needs(target) if removed else {}
    for stem in sorted(removed.keys() | added.keys()):
        old, new = sorted(removed.get(stem, [])), sorted(added.get(stem, []))
        users = sorted(
            (wanted[_soname(s, sa[s])], _soname(s, sa[s]))
            for s in old
            if _soname(s, sa[s]) in wanted
        )
        if old and new:
            majors_old = {soname_stem(s)[1] for s in old}
            majors_new = {soname_stem(s)[1] for s in new}
            level = "patch" if majors_old == majors_new else "major"
            found.append(
                _change(
                    "libraries",
                    stem,
                    "soname",
                    _one_or_list(old),
                    _one_or_list(new),
                    ChangeKind.CHANGED,
                    delta=VersionDelta(0, level),
                    needed_by=f"{users[0][0]} needs {users[0][1]}" if users else "",
                )
            )
            continue
        for s in old:
            name = _soname(s, sa[s])
            found.append(_whole("libraries", s, sa[s], None, wanted.get(name, "")))
        found.extend(_whole("libraries", s, None, sb[s]) for s in new)
    return found


# --- one cell of the matrix -----------------------------------------------------------


def cell(manifest: Manifest, section: str, key: str, field: str | None) -> Any:
    """The value a change's ``(section, key, field)`` has in ``manifest``, or :data:`MISSING`.

    Knows the keys :func:`compare` invents: ``interpreters/primary`` and a library's
    ``soname`` stem; ``meta/issues.count``.
    """
    if section == "meta":
        if key == COVERAGE and field is not None:
            return manifest.coverage_of(field)
        return len(manifest.issues) if (key, field) == ("issues", "count") else MISSING
    data = manifest.section(section)
    if section == "interpreters" and key == PRIMARY:
        primary = primary_key(data)
        if primary is None:
            return MISSING
        if field == "path" and "path" not in data[primary]:
            return primary
        component: Any = data[primary]
    elif section == "libraries" and field == "soname" and key not in data:
        names = sorted(s for s in data if soname_stem(s)[0] == key)
        return _one_or_list(names) if names else MISSING
    else:
        component = data.get(key, MISSING)
    if component is MISSING or field is None:
        return component
    return _dig(component, field)


def _dig(value: Any, field: str) -> Any:
    # Field names may themselves hold dots (config keys such as "db.host"): try the whole
    # name first, then split at each dot from the left.
    if not isinstance(value, dict):
        return MISSING
    if field in value:
        return value[field]
    start = 0
    while True:
        dot = field.find(".", start)
        if dot < 0:
            return MISSING
        head = field[:dot]
        if head in value:
            found = _dig(value[head], field[dot + 1 :])
            if found is not MISSING:
                return found
        start = dot + 1
