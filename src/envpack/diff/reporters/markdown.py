"""``--format markdown``: a pull-request comment (GitHub-flavoured Markdown).

A summary line, one table per environment pair, and for three or more environments a
matrix (rows = changed component/field, columns = environments). Components and values go
in code spans, every other text from the manifests is escaped (:mod:`envpack._escape`): a
package name, a label or a reason can never break a row, open a link, an image, a heading
or an HTML tag, ping someone with ``@`` or cross-reference an issue.
"""

from __future__ import annotations

from typing import TypeVar

from envpack._escape import for_markdown as text
from envpack._escape import markdown_code as code
from envpack.diff.model import DiffResult, Severity
from envpack.diff.reporters._common import (
    ABSENT,
    SEVERITIES_DESC,
    after_text,
    before_text,
    component,
    encodable,
    matrix_rows,
    verdict_line,
    worst_first,
)

__all__ = ["SEVERITY_MARK", "MarkdownReporter"]

SEVERITY_MARK: dict[Severity, str] = {
    Severity.CRITICAL: "🔴",
    Severity.MAJOR: "🟠",
    Severity.MINOR: "🟡",
    Severity.PATCH: "🔵",
    Severity.INFO: "⚪",
}

_T = TypeVar("_T")
_VALUE_LIMIT = 80


def _value(shown: str) -> str:
    return ABSENT if shown == ABSENT else code(shown)


def _mark(severity: Severity) -> str:
    return f"{SEVERITY_MARK[severity]} {severity.label}"


def _keep_worst(items: list[_T], limit: int) -> list[_T]:
    """The first ``limit`` items: the most severe, since every table is worst first."""
    return items[:limit]


def _omitted(count: int) -> list[str]:
    return [
        f"_{count} less severe row{'s' if count != 1 else ''} not shown; "
        "`--format html` or `--format json` has them all._",
        "",
    ]


class MarkdownReporter:
    id = "markdown"

    def __init__(self, max_rows: int = 150) -> None:
        # GitHub refuses comments over 65,536 characters: past max_rows per table only the
        # most severe rows are kept, with a line saying how many were left out.
        self.max_rows = max_rows

    def render(self, result: DiffResult, *, color: bool = False) -> str:
        verdict = result.verdict
        icon = "❌" if verdict.failed else "✅"
        lines = [
            f"## {icon} envpack diff: {text(', '.join(result.environments))}",
            "",
            f"**{text(verdict_line(result))}**",
            "",
        ]
        if verdict.worst is not None:
            legend = " · ".join(
                f"{SEVERITY_MARK[s]} {verdict.counts.get(s, 0)} {s.label}" for s in SEVERITIES_DESC
            )
            lines += [f"Baseline: {code(result.baseline)} · {legend}", ""]
        for drift in result.drifts:
            changes = worst_first(drift.changes)
            lines.append(f"### {text(drift.baseline)} → {text(drift.other)}")
            lines.append("")
            if not changes:
                lines += ["No drift.", ""]
                continue
            lines.append(
                f"| severity | component | kind | {text(drift.baseline)} | {text(drift.other)} "
                "| reason |"
            )
            lines.append("|---|---|---|---|---|---|")
            shown = _keep_worst(changes, self.max_rows)
            for c in shown:
                before = _value(before_text(c, _VALUE_LIMIT))
                after = _value(after_text(c, _VALUE_LIMIT))
                lines.append(
                    f"| {_mark(c.severity)} | {code(component(c))} | {c.kind.value} "
                    f"| {before} | {after} | {text(c.reason)} |"
                )
            lines.append("")
            if len(shown) < len(changes):
                lines += _omitted(len(changes) - len(shown))
        if len(result.environments) >= 3:
            lines += self._matrix(result)
        if result.notes:
            lines += ["### Notes", "", *(f"- {text(note)}" for note in result.notes), ""]
        return encodable("\n".join(lines).rstrip("\n") + "\n")

    def _matrix(self, result: DiffResult) -> list[str]:
        rows = matrix_rows(result)
        if not rows:
            return []
        header = " | ".join(
            text(env) + (" (baseline)" if env == result.baseline else "")
            for env in result.environments
        )
        lines = [
            "### Matrix",
            "",
            f"| component | {header} |",
            "|---" * (len(result.environments) + 1) + "|",
        ]
        shown = _keep_worst(rows, self.max_rows)
        for row in shown:
            cells = []
            for env in result.environments:
                cell = row.cells[env]
                value = _value(cell.text(_VALUE_LIMIT))
                cells.append(
                    f"{SEVERITY_MARK[cell.change.severity]} {value}" if cell.change else value
                )
            lines.append(f"| {code(component(row))} | " + " | ".join(cells) + " |")
        lines.append("")
        if len(shown) < len(rows):
            lines += _omitted(len(rows) - len(shown))
        return lines
