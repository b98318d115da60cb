"""``--format table`` (the default): a terminal report grouped by section.

Two environments: one table per section, rows coloured by severity. Three or more: a
matrix per section, each changed component across every environment (baseline first),
each cell coloured by the severity of its change from the baseline. The summary line
comes last so it is what a CI log shows at the bottom.

Every text from the manifests (keys, labels, reasons, values, environment names) goes in
as a rich ``Text`` — never parsed as markup — after :func:`~envpack._escape.for_terminal`,
so it cannot move the cursor, recolour the terminal, set its title, reorder a line with
bidi controls or break a row.
"""

from __future__ import annotations

import io
from itertools import groupby

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from envpack._escape import for_terminal as shown
from envpack.diff.model import DiffResult, Severity
from envpack.diff.reporters._common import (
    MatrixRow,
    after_text,
    before_text,
    encodable,
    matrix_rows,
    sorted_changes,
    verdict_line,
)

__all__ = ["SEVERITY_STYLE", "TableReporter"]

SEVERITY_STYLE: dict[Severity, str] = {
    Severity.CRITICAL: "bold red",
    Severity.MAJOR: "red",
    Severity.MINOR: "yellow",
    Severity.PATCH: "cyan",
    Severity.INFO: "dim",
}

_VALUE_LIMIT = 60


class TableReporter:
    id = "table"

    def __init__(self, width: int = 120) -> None:
        # A fixed width by default so the same result always gives the same text; the CLI
        # may pass the terminal's width.
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
            changes = sorted_changes(drift.changes)
            head = Text(f"{shown(drift.baseline)} → {shown(drift.other)}", style="bold")
            worst = drift.worst
            if worst is not None:
                head.append(f"  {len(changes)} change{'s' if len(changes) != 1 else ''}, worst ")
                head.append(worst.label, style=SEVERITY_STYLE[worst])
            else:
                head.append("  no drift")
            console.print(head)
            for section, group in groupby(changes, key=lambda c: c.section):
                table = _section_table(section)
                # Ratios share the width out: long keys and values fold inside their own
                # column instead of squeezing the reason into a sliver.
                table.add_column("severity", no_wrap=True)
                table.add_column("component", overflow="fold", ratio=3)
                table.add_column("kind", no_wrap=True)
                table.add_column(Text(shown(drift.baseline)), overflow="fold", ratio=2)
                table.add_column(Text(shown(drift.other)), overflow="fold", ratio=2)
                table.add_column("reason", ratio=4)
                for change in group:
                    style = SEVERITY_STYLE[change.severity]
                    table.add_row(
                        Text(change.severity.label, style=style),
                        Text(shown(change.label)),
                        Text(change.kind.value),
                        Text(before_text(change, _VALUE_LIMIT)),
                        Text(after_text(change, _VALUE_LIMIT), style=style),
                        Text(shown(change.reason)),
                    )
                console.print(table)
            console.print()

    def _matrix(self, console: Console, result: DiffResult) -> None:
        rows = matrix_rows(result)
        head = Text(f"baseline {shown(result.baseline)}; ", style="bold")
        head.append(f"{len(rows)} changed component{'s' if len(rows) != 1 else ''} across ")
        head.append(f"{len(result.environments)} environments")
        console.print(head)
        for section, group in groupby(rows, key=lambda row: row.section):
            table = _section_table(section)
            table.add_column("worst", no_wrap=True)
            table.add_column("component", overflow="fold", ratio=3)
            for env in result.environments:
                title = f"{shown(env)} (baseline)" if env == result.baseline else shown(env)
                table.add_column(Text(title), overflow="fold", ratio=2)
            for row in group:
                table.add_row(*self._matrix_cells(row, result))
            console.print(table)
        console.print()

    @staticmethod
    def _matrix_cells(row: MatrixRow, result: DiffResult) -> list[Text]:
        worst = row.worst
        cells = [
            Text(worst.label, style=SEVERITY_STYLE[worst]) if worst is not None else Text(""),
            Text(shown(row.label)),
        ]
        for env in result.environments:
            cell = row.cells[env]
            style = SEVERITY_STYLE[cell.change.severity] if cell.change is not None else ""
            cells.append(Text(cell.text(_VALUE_LIMIT), style=style))
        return cells


def _section_table(section: str) -> Table:
    """An empty table titled by its section, in the one style both layouts share."""
    return Table(
        title=shown(section),  # a str: the console parses no markup (markup=False)
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        expand=True,
    )
