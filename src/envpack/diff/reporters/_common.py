"""What several formats share: ordering, compact values, the matrix, the summary words.

Every format sorts and words things the same way, so a change reads the same in the
terminal, the pull-request comment and the HTML page.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from envpack._escape import for_terminal
from envpack.diff.model import Change, ChangeKind, DiffResult, Placed, Severity
from envpack.manifest import SECTIONS

__all__ = [
    "ABSENT",
    "SEVERITIES_DESC",
    "Cell",
    "MatrixRow",
    "after_text",
    "before_text",
    "cell_key",
    "compact",
    "component",
    "counts_text",
    "encodable",
    "gate_lines",
    "level",
    "matrix_rows",
    "section_rank",
    "sorted_changes",
    "verdict_line",
    "worst_first",
]

ABSENT = "—"
"""Shown where an environment does not have the component (or the field) at all."""

SEVERITIES_DESC: tuple[Severity, ...] = tuple(sorted(Severity, reverse=True))

SECTION = "requirements"
"""The section of ``--requirements`` misses (:mod:`envpack.diff.requirements`; not
imported, so a report does not load the requirement parsers)."""

_SECTION_INDEX = {name: i for i, name in enumerate(SECTIONS)}

_SURROGATE = re.compile("[\ud800-\udfff]")


def encodable(text: str) -> str:
    """``text`` with lone surrogates (undecodable file names) as visible ``\\udcXX``
    escapes, so a whole report always encodes as UTF-8.

    A safety net over a whole rendered report: each field was already escaped for its
    medium (:mod:`envpack._escape`), so this finds nothing in practice.
    """
    if text.isascii():
        return text
    return _SURROGATE.sub(lambda m: for_terminal(m.group()), text)


def section_rank(section: str) -> tuple[int, str]:
    """Manifest sections in their documented order; others (``requirements``) after, by name."""
    return (_SECTION_INDEX.get(section, len(_SECTION_INDEX)), section)


def cell_key(section: str, key: str, field: str | None) -> tuple[tuple[int, str], str, str]:
    return (section_rank(section), key, field or "")


def sorted_changes(changes: Iterable[Change]) -> list[Change]:
    """Section order, then component, then field: the order of the machine formats (JSON,
    SARIF), where a stable place matters more than what a reader sees first."""
    return sorted(
        changes,
        key=lambda c: (*cell_key(c.section, c.key, c.field), c.kind.value, -c.severity),
    )


def worst_first(changes: Iterable[Change]) -> list[Change]:
    """Severity (worst first), then section order, component and field: the order of every
    report a person reads, so the one critical row is never buried under info rows."""
    return sorted(
        changes,
        key=lambda c: (-c.severity, *cell_key(c.section, c.key, c.field), c.kind.value),
    )


def component(item: Placed) -> str:
    """A row's component as a reader sees it: ``section/key.field``, but a requirement
    reads as a sentence: ``requirements/requests>=2.31 in prod`` (its field is the
    environment that misses it)."""
    if item.section == SECTION and item.field:
        return f"{item.section}/{item.key} in {item.field}"
    return item.where


def compact(value: Any, limit: int | None = None) -> str:
    """A value on one line: strings as they are, anything else as compact JSON.

    Line breaks, escape sequences and every other unprintable character become visible
    escapes (``\\n``, ``\\x1b``: :func:`~envpack._escape.for_terminal`), so a value can
    never break a table row or a workflow command, nor drive a terminal. ``limit`` cuts long values
    (a whole ``sys.path``) with an ellipsis; machine formats keep the full value instead.
    """
    if isinstance(value, str):
        text = value if value else '""'
    else:
        text = json.dumps(
            value, ensure_ascii=False, sort_keys=True, separators=(", ", ": "), default=str
        )
    text = for_terminal(text)
    if limit is not None and len(text) > limit:
        text = text[: max(limit - 1, 0)] + "…"
    return text


# A whole added or removed component is shown by the one field that names it best.
_SUMMARY_FIELDS = ("version", "value", "soname", "path")


def summary(field: str | None, value: Any, limit: int | None = None) -> str:
    """A value as shown in a report: a whole component by its version (or name), else
    compactly."""
    if field is None and isinstance(value, dict):
        for name in _SUMMARY_FIELDS:
            shown = value.get(name)
            if isinstance(shown, str) and shown:
                return compact(shown, limit)
    return compact(value, limit)


def _missing(change: Change, value: Any, kind: ChangeKind) -> bool:
    # A requirement's value is the installed version; None means not installed at all.
    return value is None and (change.kind is kind or change.section == SECTION)


def before_text(change: Change, limit: int | None = None) -> str:
    if _missing(change, change.before, ChangeKind.ADDED):
        return ABSENT
    return summary(change.field, change.before, limit)


def after_text(change: Change, limit: int | None = None) -> str:
    if _missing(change, change.after, ChangeKind.REMOVED):
        return ABSENT
    return summary(change.field, change.after, limit)


def level(severity: Severity, threshold: Severity | None) -> str:
    """SARIF-style level: at/above the gate fails; majors and minors below it warn
    (``threshold`` ``None``: ``--fail-on none``, nothing fails)."""
    if threshold is not None and severity >= threshold:
        return "error"
    if severity >= Severity.MINOR:
        return "warning"
    return "note"


def counts_text(counts: Mapping[Severity, int]) -> str:
    """``1 critical, 2 major`` (zeros left out), or ``no changes``."""
    parts = [f"{counts.get(s, 0)} {s.label}" for s in SEVERITIES_DESC if counts.get(s, 0)]
    return ", ".join(parts) if parts else "no changes"


def verdict_line(result: DiffResult) -> str:
    """The one-line summary every human-facing format ends (or starts) with."""
    verdict = result.verdict
    n_env = len(result.environments)
    threshold = verdict.threshold_label
    if verdict.worst is None:
        return f"PASSED: no drift across {n_env} environments (fail-on: {threshold})"
    status = "FAILED" if verdict.failed else "PASSED"
    relation = "at or above" if verdict.failed else "below"
    return (
        f"{status}: worst drift is {verdict.worst.label}, {relation} fail-on {threshold}; "
        f"{counts_text(verdict.counts)} across {n_env} environments (exit {verdict.exit_code})"
    )


def gate_lines(result: DiffResult, limit: int = 10) -> list[str]:
    """The verdict, then the changes that fail the gate, worst first (at most ``limit``):
    what a CI log shows on stderr whatever the format and wherever the report went."""
    verdict = result.verdict
    lines = [verdict_line(result)]
    failing = [
        (drift.other, change)
        for drift in result.drifts
        for change in worst_first(drift.changes)
        if verdict.fails(change.severity)
    ]
    failing.sort(key=lambda pair: -pair[1].severity)  # stable: worst first across drifts
    for other, change in failing[:limit]:
        # A requirement row names its environment already (``requests>=2.31 in prod``).
        where = component(change) if change.section == SECTION else f"{change.where} in {other}"
        lines.append(f"  {change.severity.label:<8} {where}: {change.reason}")
    if len(failing) > limit:
        lines.append(f"  … and {len(failing) - limit} more at or above fail-on")
    return lines


@dataclass(frozen=True)
class Cell:
    """One environment's value of a changed component/field, and the change that made it."""

    present: bool
    value: Any
    change: Change | None
    """The change from the baseline to this environment; ``None`` for the baseline itself
    and for environments that agree with it."""
    whole: bool = False
    """The cell holds a whole component (an added or removed one), not one field."""

    def text(self, limit: int | None = None) -> str:
        if not self.present:
            return ABSENT
        return summary(None if self.whole else "", self.value, limit)


@dataclass(frozen=True)
class MatrixRow(Placed):
    section: str
    key: str
    field: str | None
    cells: dict[str, Cell]
    """Environment name → cell, for every environment of the result."""

    @property
    def worst(self) -> Severity | None:
        return max((c.change.severity for c in self.cells.values() if c.change), default=None)


Slot = tuple[str, str, "str | None"]


def _row_of(section: str, key: str, field: str | None) -> tuple[Slot, str | None]:
    """The matrix row a change or a value belongs to, and the environment it is about
    when that is not the drift's own: a requirement's misses (one change per environment,
    its field naming that environment) share one row, each coloured in its own cell."""
    if section == SECTION:
        return (section, key, None), field
    return (section, key, field), None


def matrix_rows(result: DiffResult) -> list[MatrixRow]:
    """Rows = every changed (section, key, field); columns = every environment.

    Worst row first (then section, component, field), like every report a person reads.
    Values come from ``result.values``; for a cell the engine did not fill in, the
    change's own before/after stands in (baseline = before, other = after).
    """
    by_cell: dict[Slot, dict[str, Change]] = {}
    for drift in result.drifts:
        for change in drift.changes:
            slot, about = _row_of(change.section, change.key, change.field)
            env = about or drift.other
            slot_changes = by_cell.setdefault(slot, {})
            known = slot_changes.get(env)
            if known is None or change.severity > known.severity:
                slot_changes[env] = change
    values_of: dict[Slot, dict[str, Any]] = {}
    for (section, key, field), env_values in result.values.items():
        slot, _ = _row_of(section, key, field)
        values_of.setdefault(slot, {}).update(env_values)
    rows = []
    for section, key, field in set(by_cell) | set(values_of):
        values = values_of.get((section, key, field))
        changes = by_cell.get((section, key, field), {})
        first = next(iter(changes.values()), None)
        # A requirement row holds versions (a field's value), not whole components.
        whole = field is None and section != SECTION
        if values is not None:
            base_present = result.baseline in values
            base_value = values.get(result.baseline)
        else:
            base_present = first is not None and before_text(first) != ABSENT
            base_value = first.before if first else None
        cells: dict[str, Cell] = {}
        for env in result.environments:
            found = changes.get(env)
            if env == result.baseline:
                cells[env] = Cell(base_present, base_value, found, whole)
            elif values is not None:
                cells[env] = Cell(env in values, values.get(env), found, whole)
            elif found is not None:
                cells[env] = Cell(after_text(found) != ABSENT, found.after, found, whole)
            else:
                # No change recorded for this environment: it agrees with the baseline.
                cells[env] = Cell(base_present, base_value, None, whole)
        rows.append(MatrixRow(section, key, field, cells))
    rows.sort(
        key=lambda r: (
            -(r.worst if r.worst is not None else -1),
            *cell_key(r.section, r.key, r.field),
        )
    )
    return rows
