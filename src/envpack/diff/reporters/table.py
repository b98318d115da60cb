"""``--format table`` (the default): a terminal report, worst change first.

Two environments: one table per drift, rows ordered by severity (worst first), then
section, component and field, coloured by severity. Three or more: one matrix, each
changed component across every environment (baseline first), each cell coloured by the
severity of its change from the baseline, worst row first. The summary line comes last so
it is what a CI log shows at the bottom.

The width is the caller's (the CLI passes the terminal's, or ``COLUMNS``); cells wrap at
word and path boundaries (:mod:`._wrap`), never mid-word. Below 140 columns a change is
two lines (component and values; the reason under them) instead of six columns, so 80
columns stay readable.

Every text from the manifests (keys, labels, reasons, values, environment names) goes in
as a rich ``Text`` — never parsed as markup — after :func:`~envpack._escape.for_terminal`,
so it cannot move the cursor, recolour the terminal, set its title, reorder a line with
bidi controls or break a row.
"""

from __future__ import annotations

import io

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from envpack._escape import for_terminal as shown
from envpack.diff.model import Change, DiffResult, Drift, Severity
from envpack.diff.reporters._common import (
    MatrixRow,
    after_text,
    before_text,
    component,
    encodable,
    matrix_rows,
    verdict_line,
    worst_first,
)
from envpack.diff.reporters._wrap import Wrapped

__all__ = ["SEVERITY_STYLE", "TableReporter"]

SEVERITY_STYLE: dict[Severity, str] = {
    Severity.CRITICAL: "bold red",
    Severity.MAJOR: "red",
    Severity.MINOR: "yellow",
    Severity.PATCH: "cyan",
    Severity.INFO: "dim",
}

_VALUE_LIMIT = 60


DEFAULT_WIDTH = 120
"""The width when the caller knows none (a file, a pipe without ``COLUMNS``)."""

WIDE = 140
"""From this width on, a drift is a table of one column per field; below, each change is
two lines (component and values, then the reason), which 80 or 120 columns hold without
squeezing the reason into a sliver."""


class TableReporter:
    id = "table"

    def __init__(self, width: int = DEFAULT_WIDTH) -> None:
        # A fixed width by default so the same result always gives the same text; the CLI
        # passes the terminal's width.
        self.width = width

    def render(self, result: DiffResult, *, color: bool = False) -> str:
        buffer = io.StringIO()
        console = Console(
            file=buffer,
            force_terminal=color,
            color_system="standard" if color else None,
            width=self.width,
            highlight=False,
            emoji=False,
            markup=False,
            legacy_windows=False,
            _environ={},  # ignore COLUMNS/NO_COLOR/TERM of whoever runs us: output is pure
        )
        if len(result.environments) >= 3:
            self._matrix(console, result)
        else:
            self._pairs(console, result)
        verdict = result.verdict
        style = "bold red" if verdict.failed else "bold green"
        # soft_wrap: the summary stays one line, whatever the width, for log scrapers.
        console.print(Text(verdict_line(result), style=style), soft_wrap=True)
        text = buffer.getvalue()
        if not color:
            # Rich pads cells to the column width; plain text needs no trailing blanks.
            text = "\n".join(line.rstrip(" ") for line in text.split("\n"))
        return encodable(text)

    def _pairs(self, console: Console, result: DiffResult) -> None:
        for drift in result.drifts:
            changes = worst_first(drift.changes)
            head = Text(f"{shown(drift.baseline)} → {shown(drift.other)}", style="bold")
            worst = drift.worst
            if worst is not None:
                head.append(f"  {len(changes)} change{'s' if len(changes) != 1 else ''}, worst ")
                head.append(worst.label, style=SEVERITY_STYLE[worst])
            else:
                head.append("  no drift")
            console.print(head)
            if changes:
                wide = self.width >= WIDE
                console.print(_wide(drift, changes, self.width) if wide else _narrow(changes))
            console.print()

    def _matrix(self, console: Console, result: DiffResult) -> None:
        rows = matrix_rows(result)
        head = Text(f"baseline {shown(result.baseline)}; ", style="bold")
        head.append(f"{len(rows)} changed component{'s' if len(rows) != 1 else ''} across ")
        head.append(f"{len(result.environments)} environments")
        console.print(head)
        if rows:
            table = _table()
            table.add_column("worst", no_wrap=True)
            table.add_column("component")
            for env in result.environments:
                title = f"{shown(env)} (baseline)" if env == result.baseline else shown(env)
                table.add_column(Wrapped(title))
            for row in rows:
                table.add_row(*self._matrix_cells(row, result))
            console.print(table)
        console.print()

    @staticmethod
    def _matrix_cells(row: MatrixRow, result: DiffResult) -> list[Text]:
        worst = row.worst
        cells: list[Text] = [
            Text(worst.label, style=SEVERITY_STYLE[worst]) if worst is not None else Text(""),
            Wrapped(shown(component(row))),
        ]
        for env in result.environments:
            cell = row.cells[env]
            style = SEVERITY_STYLE[cell.change.severity] if cell.change is not None else ""
            cells.append(Wrapped(cell.text(_VALUE_LIMIT), style=style))
        return cells


def _wide(drift: Drift, changes: list[Change], width: int) -> Table:
    """One row per change: severity, component, kind, both values, reason."""
    table = _table()
    # Values get at most a fifth of the width each: the reason keeps room to be read.
    values = max(width // 5, 12)
    table.add_column("severity", no_wrap=True)
    table.add_column("component", max_width=max(width // 4, 20))
    table.add_column("kind", no_wrap=True)
    table.add_column(Wrapped(shown(drift.baseline)), max_width=values)
    table.add_column(Wrapped(shown(drift.other)), max_width=values)
    table.add_column("reason")
    for change in changes:
        style = SEVERITY_STYLE[change.severity]
        table.add_row(
            Text(change.severity.label, style=style),
            Wrapped(shown(component(change))),
            Text(change.kind.value),
            Wrapped(before_text(change, _VALUE_LIMIT)),
            Wrapped(after_text(change, _VALUE_LIMIT), style=style),
            Wrapped(shown(change.reason)),
        )
    return table


def _narrow(changes: list[Change]) -> Table:
    """Two lines per change under its severity: ``component  before → after``, then the
    reason."""
    table = _table()
    table.add_column("severity", no_wrap=True)
    table.add_column("change; reason")
    for change in changes:
        style = SEVERITY_STYLE[change.severity]
        text = Wrapped(shown(component(change)), style="bold")
        text.append("  ")
        text.append(before_text(change, _VALUE_LIMIT))
        text.append(" → ")
        text.append(after_text(change, _VALUE_LIMIT), style=style)
        text.append("\n")
        text.append(shown(change.reason))
        table.add_row(Text(change.severity.label, style=style), text)
    return table


def _table() -> Table:
    """An empty table in the one style both layouts share."""
    return Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        # Natural width: columns as wide as their text, up to the terminal's; no padding
        # handed to a value column while the reason wraps.
        expand=False,
    )
