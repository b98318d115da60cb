"""The diff policy: ignores, expected differences, severity overrides, fail-on, acceptance.

Read from ``[policy]`` in ``envpack.toml`` or ``[tool.envpack.policy]`` in
``pyproject.toml`` (the nearest one, or the file given with ``--policy``)::

    [policy]
    fail-on = "major"                      # default "major"; "none" never fails; --fail-on wins
    ignore = ["env/HOSTNAME", "network/listen:*", "python_packages/*.location"]
    accepted = "envpack-accepted.json"     # like --accepted; relative to this file

    [policy.severity]                      # pattern → severity; first match wins
    "python_packages/numpy.version" = "critical"
    "config_files/*.keys.log_level" = "info"

    [[policy.expected]]                    # differences that are fine: lowered to info
    section = "network"                    # each field a glob; omitted = "*"
    key = "hostname"
    field = "*"
    environments = ["prod*"]               # the non-baseline environment; omitted = all
    reason = "every host has its own name"

Patterns are ``fnmatch`` globs matched against ``section/key`` and against
``section/key.field`` (a change matches when either does).

Accepting drift: ``--accept FILE`` writes every change of this run as a fingerprint list
(baseline and other environment, section, key, field, before, after); given back with
``--accepted FILE``, exactly those changes become ``info`` (disposition ``accepted``), so
only new drift reaches the threshold.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from envpack._inputfile import MANIFEST_LIMIT, read_bounded
from envpack._jsontext import indented_json
from envpack.diff.model import Change, Drift, Severity, parse_fail_on
from envpack.errors import DiffError, EnvpackError
from envpack.settings import load_settings

__all__ = [
    "ACCEPTED_FORMAT",
    "Expected",
    "Policy",
    "accepted_document",
    "apply_policy",
    "fingerprint",
    "load_accepted",
    "load_policy",
    "policy_from_table",
]

ACCEPTED_FORMAT = 1
"""Version of the ``--accept`` file format."""

_KNOWN_KEYS = ("fail-on", "ignore", "expected", "severity", "accepted")
_EXPECTED_KEYS = ("section", "key", "field", "environments", "reason")


@dataclass(frozen=True)
class Expected:
    """A difference that is fine between environments (hostnames, addresses …)."""

    section: str = "*"
    key: str = "*"
    field: str = "*"
    environments: tuple[str, ...] = ("*",)
    reason: str = ""

    def matches(self, change: Change, environment: str) -> bool:
        return (
            fnmatchcase(change.section, self.section)
            and fnmatchcase(change.key, self.key)
            and fnmatchcase(change.field or "", self.field)
            and any(fnmatchcase(environment, e) for e in self.environments)
        )


@dataclass(frozen=True)
class Policy:
    """The parsed ``[policy]`` table."""

    fail_on: Severity | None = Severity.MAJOR
    """``None``: ``fail-on = "none"``, the gate reports and never fails."""
    ignore: tuple[str, ...] = ()
    expected: tuple[Expected, ...] = ()
    severity: tuple[tuple[str, Severity], ...] = ()
    accepted: Path | None = None
    """Where the ``accepted`` key points (resolved against the settings file's folder)."""
    origin: str = "default policy"


def _names(change: Change) -> tuple[str, str]:
    """What policy patterns match: ``section/key`` and ``section/key.field``."""
    return f"{change.section}/{change.key}", change.where


def _named(names: tuple[str, str], pattern: str) -> bool:
    return fnmatchcase(names[0], pattern) or fnmatchcase(names[1], pattern)


def _str_list(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DiffError(f"{where} must be a list of strings")
    return tuple(value)


def _severity(value: Any, where: str) -> Severity:
    if not isinstance(value, str):
        raise DiffError(f"{where} must be a severity name")
    try:
        return Severity.parse(value)
    except ValueError as err:
        raise DiffError(f"{where}: {err}") from err


def _fail_on(value: Any, where: str) -> Severity | None:
    if not isinstance(value, str):
        raise DiffError(f"{where} must be a severity name or none")
    try:
        return parse_fail_on(value)
    except ValueError as err:
        raise DiffError(f"{where}: {err}") from err


def policy_from_table(table: dict[str, Any], origin: str, base: Path | None = None) -> Policy:
    """Check and convert a ``[policy]`` table; a :class:`DiffError` names the bad entry."""
    unknown = sorted(set(table) - set(_KNOWN_KEYS))
    if unknown:
        raise DiffError(
            f"{origin}: unknown [policy] key {unknown[0]!r}; known: {', '.join(_KNOWN_KEYS)}"
        )
    fail_on = (
        _fail_on(table["fail-on"], f"{origin}: [policy] fail-on")
        if "fail-on" in table
        else Severity.MAJOR
    )
    ignore = _str_list(table.get("ignore", []), f"{origin}: [policy] ignore")
    raw_expected = table.get("expected", [])
    if isinstance(raw_expected, dict):
        raw_expected = [raw_expected]
    if not isinstance(raw_expected, list):
        raise DiffError(f"{origin}: [[policy.expected]] must be a list of tables")
    expected = tuple(
        _expected(e, f"{origin}: [[policy.expected]] #{i}") for i, e in enumerate(raw_expected, 1)
    )
    raw_severity = table.get("severity", {})
    if not isinstance(raw_severity, dict):
        raise DiffError(f"{origin}: [policy.severity] must be a table of pattern = severity")
    severity = tuple(
        (pattern, _severity(name, f"{origin}: [policy.severity] {pattern!r}"))
        for pattern, name in raw_severity.items()
    )
    accepted = table.get("accepted")
    if accepted is not None and not isinstance(accepted, str):
        raise DiffError(f"{origin}: [policy] accepted must be a file name")
    accepted_path = None
    if accepted:
        accepted_path = Path(accepted) if base is None else base / accepted
    return Policy(fail_on, ignore, expected, severity, accepted_path, origin)


def _expected(entry: Any, where: str) -> Expected:
    if not isinstance(entry, dict):
        raise DiffError(f"{where} must be a table")
    unknown = sorted(set(entry) - set(_EXPECTED_KEYS))
    if unknown:
        raise DiffError(f"{where}: unknown key {unknown[0]!r}; known: {', '.join(_EXPECTED_KEYS)}")
    values: dict[str, Any] = {}
    for name in ("section", "key", "field", "reason"):
        if name in entry:
            if not isinstance(entry[name], str):
                raise DiffError(f"{where}: {name} must be a string")
            values[name] = entry[name]
    if "environments" in entry:
        values["environments"] = _str_list(entry["environments"], f"{where}: environments")
    return Expected(**values)


def load_policy(path: Path | None = None, *, search_from: Path | None = None) -> Policy:
    """The policy of the given settings file, or of the nearest one; defaults if none."""
    try:
        settings = load_settings(path, search_from=search_from)
        table = settings.table("policy")
    except EnvpackError as err:
        raise DiffError(f"bad policy: {err}") from err
    if settings.path is None:
        return Policy()
    return policy_from_table(table, str(settings.path), settings.path.parent)


# --- accepted drift --------------------------------------------------------------------------


def fingerprint(drift: Drift, change: Change) -> str:
    """Identity of one change between two named environments, stable across runs."""
    data = json.dumps(
        [
            drift.baseline,
            drift.other,
            change.section,
            change.key,
            change.field,
            change.before,
            change.after,
        ],
        sort_keys=True,
        ensure_ascii=True,
        default=str,
    )
    return "sha256:" + hashlib.sha256(data.encode("ascii")).hexdigest()


def accepted_document(drifts: Iterable[Drift]) -> bytes:
    """The ``--accept`` file: every change, readable, with its fingerprint."""
    entries = [
        {
            "fingerprint": fingerprint(drift, change),
            "baseline": drift.baseline,
            "other": drift.other,
            "where": change.where,
            "before": change.before,
            "after": change.after,
            "severity": change.severity.label,
        }
        for drift in drifts
        for change in drift.changes
    ]
    entries.sort(key=lambda e: (e["other"], e["where"], e["fingerprint"]))
    document = {"envpack_accepted": ACCEPTED_FORMAT, "changes": entries}
    return indented_json(document).encode("utf-8")


def load_accepted(path: Path) -> frozenset[str]:
    """Fingerprints from an ``--accept`` file; a :class:`DiffError` when it is not one."""
    data = read_bounded(path, limit=MANIFEST_LIMIT, what="accepted-drift file", error=DiffError)
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as err:
        raise DiffError(f"{path}: not an accepted-drift file (invalid JSON)") from err
    if not isinstance(document, dict) or not isinstance(document.get("envpack_accepted"), int):
        raise DiffError(f"{path}: not an accepted-drift file (written by `envpack diff --accept`)")
    if document["envpack_accepted"] > ACCEPTED_FORMAT:
        raise DiffError(
            f"{path}: written by a newer envpack; this one reads format {ACCEPTED_FORMAT}"
        )
    changes = document.get("changes")
    if not isinstance(changes, list) or not all(
        isinstance(c, dict) and isinstance(c.get("fingerprint"), str) for c in changes
    ):
        raise DiffError(f"{path}: damaged accepted-drift file ('changes' is not a list of entries)")
    return frozenset(c["fingerprint"] for c in changes)


# --- applying it ------------------------------------------------------------------------------


def apply_policy(
    policy: Policy,
    drift: Drift,
    accepted: frozenset[str] = frozenset(),
    *,
    accept_all: bool = False,
) -> Drift:
    """A new drift: ignored changes dropped, overrides applied, expected/accepted → info.

    ``accept_all``: every change left is accepted (``--accept``), without fingerprinting
    each one only to find it in a set of all of them.
    """
    out = Drift(baseline=drift.baseline, other=drift.other)
    for change in drift.changes:
        judged = _judge(policy, drift, change, accepted, accept_all)
        if judged is not None:
            out.changes.append(judged)
    return out


def _judge(
    policy: Policy, drift: Drift, change: Change, accepted: frozenset[str], accept_all: bool
) -> Change | None:
    if policy.ignore or policy.severity:
        names = _names(change)  # once per change, not once per pattern
        if any(_named(names, p) for p in policy.ignore):
            return None
        for pattern, severity in policy.severity:
            if _named(names, pattern):
                if severity != change.severity:  # the reason says who decided, and from what
                    said = f"policy {pattern}: {change.severity.label} → {severity.label}"
                    change = dataclasses.replace(
                        change, severity=severity, reason=f"{change.reason} ({said})"
                    )
                break
    # The fingerprint holds no severity or reason, so an override does not un-accept.
    if accept_all or (accepted and fingerprint(drift, change) in accepted):
        return dataclasses.replace(
            change,
            severity=Severity.INFO,
            reason=f"{change.reason} (accepted)",
            disposition="accepted",
        )
    for entry in policy.expected:
        if entry.matches(change, drift.other):
            why = f": {entry.reason}" if entry.reason else ""
            return dataclasses.replace(
                change,
                severity=Severity.INFO,
                reason=f"{change.reason} (expected{why})",
                disposition="expected",
            )
    return change
