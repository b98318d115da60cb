"""``--format html``: one self-contained page a person can open from a CI artifact.

A header with the verdict and the counts, then the drift matrix: one row per changed
component, one column per environment (baseline first), each cell coloured by the
severity of its change from the baseline, and the reasons in the last column. Rows go
worst first, in one folding group per severity: the worst group present (the critical
rows, when there are any) is open, the others are folded under a line that counts them,
so a report of thousands of rows opens on what fails the gate.

Values wrap only at word and path boundaries (``<wbr>`` after ``/ . - _ = : , ;``), never
mid-word; an object value (the kernel, an address) is shown as its fields, one per
line; a missing one reads "— absent" in the cell's own colour.

Inline CSS only: no script, no font, no image, nothing fetched from the network. Every
text from the manifests goes through :func:`~envpack._escape.for_html`: HTML-escaped (no
tag, script, style or attribute can be injected, in text or attributes) and with control
and bidi characters shown as visible escapes.
"""

from __future__ import annotations

import re
from typing import Any

from envpack import __version__
from envpack._escape import for_html as _e
from envpack.diff.model import DiffResult, Severity
from envpack.diff.reporters._common import (
    SEVERITIES_DESC,
    Cell,
    MatrixRow,
    compact,
    component,
    encodable,
    matrix_rows,
    verdict_line,
)

__all__ = ["HtmlReporter"]

_VALUE_LIMIT = 60

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1em 1.5em;color:#1b1f24}
h1{font-size:1.3em;margin:0 0 .3em}
.verdict{padding:.5em 1em;border-radius:6px;font-weight:600;margin:.4em 0}
.failed{background:#ffebe9;border:1px solid #cf222e}
.passed{background:#dafbe1;border:1px solid #1a7f37}
.legend span{display:inline-block;margin-right:.6em;padding:.1em .5em;border-radius:4px}
details{margin:.6em 0}
summary{cursor:pointer;font-weight:600;padding:.2em 0}
.scroll{overflow-x:auto}
table{border-collapse:collapse;margin:.3em 0}
th,td{border:1px solid #d0d7de;padding:.3em .6em;text-align:left;vertical-align:top;
word-break:normal;overflow-wrap:normal}
thead th{background:#f6f8fa}
tbody th{font-weight:normal}
code{font:12px/1.3 ui-monospace,SFMono-Regular,Menlo,monospace}
.sev-critical{background:#cf222e;color:#fff}
.sev-major{background:#fb8f44;color:#1b1f24}
.sev-minor{background:#f2cc60;color:#1b1f24}
.sev-patch{background:#9ecbff;color:#1b1f24}
.sev-info{background:#eaeef2;color:#1b1f24}
.same{color:#424a53}
.absent{font-style:italic}
.baseline{font-weight:600}
.fields{margin:0;display:grid;grid-template-columns:auto auto;gap:0 .5em}
.fields dt{font-weight:600}
.fields dd{margin:0}
.reasons{margin:0;padding-left:1.1em}
""".strip()

# After these, a line may break: path, dotted-key and version separators.
_PIECES = re.compile(r"[^/.\-_=:,;]*[/.\-_=:,;]+|[^/.\-_=:,;]+")


def _code(text: str) -> str:
    """``text`` escaped in a ``<code>``, with a ``<wbr>`` after each separator: the only
    places besides blanks where it may wrap (each piece is escaped on its own, so no
    ``<wbr>`` lands inside a character reference)."""
    pieces = _PIECES.findall(text)
    return f"<code>{'<wbr>'.join(_e(p) for p in pieces)}</code>"


def _value(value: Any, whole: bool) -> str:
    """A cell's value: a string as itself; an object as its fields; a list one item a
    line; a whole component by the field that names it (:meth:`Cell.text`)."""
    if isinstance(value, dict) and not whole and value:
        fields = "".join(
            f"<dt>{_code(str(k))}</dt><dd>{_code(compact(v, _VALUE_LIMIT))}</dd>"
            for k, v in sorted(value.items())
        )
        return f'<dl class="fields">{fields}</dl>'
    if isinstance(value, list) and value:
        return "<br>".join(_code(compact(item, _VALUE_LIMIT)) for item in value)
    return _code(Cell(True, value, None, whole).text(_VALUE_LIMIT))


def _cell(cell: Cell) -> str:
    if not cell.present:
        return '<span class="absent">— absent</span>'
    if isinstance(cell.value, dict) and cell.whole:
        shown = cell.text()
        if shown.startswith("{"):  # no field names it: show every field
            return _value(cell.value, whole=False)
    return _value(cell.value, cell.whole)


class HtmlReporter:
    id = "html"

    def render(self, result: DiffResult, *, color: bool = False) -> str:
        verdict = result.verdict
        status = "failed" if verdict.failed else "passed"
        title = f"envpack diff: {', '.join(result.environments)}"
        out = [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f'<meta name="generator" content="envpack {_e(__version__)}">',
            # No network, no script: the page must work as a downloaded artifact.
            '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
            "style-src 'unsafe-inline'\">",
            f"<title>{_e(title)}</title>",
            f"<style>\n{_CSS}\n</style>",
            "</head>",
            "<body>",
            f"<h1>{_e(title)}</h1>",
            f'<p class="verdict {status}">{_e(verdict_line(result))}</p>',
            f"<p>Baseline: <strong>{_e(result.baseline)}</strong> "
            '<span class="legend">'
            + "".join(
                f'<span class="sev-{s.label}">{s.label}: {verdict.counts.get(s, 0)}</span>'
                for s in SEVERITIES_DESC
            )
            + "</span></p>",
        ]
        out += self._matrix(result)
        if result.notes:
            out += ["<h2>Notes</h2>", "<ul>", *(f"<li>{_e(n)}</li>" for n in result.notes), "</ul>"]
        out += ["</body>", "</html>"]
        return encodable("\n".join(out) + "\n")

    def _matrix(self, result: DiffResult) -> list[str]:
        rows = matrix_rows(result)
        if not rows:
            return ["<p>No drift.</p>"]
        head = "".join(
            f'<th class="baseline">{_e(env)} (baseline)</th>'
            if env == result.baseline
            else f"<th>{_e(env)}</th>"
            for env in result.environments
        )
        groups: dict[Severity | None, list[MatrixRow]] = {}
        for row in rows:  # already worst first
            groups.setdefault(row.worst, []).append(row)
        out = []
        for index, (severity, group) in enumerate(groups.items()):
            label = severity.label if severity is not None else "no change"
            count = f"{len(group)} row{'s' if len(group) != 1 else ''}"
            fails = severity is not None and result.verdict.fails(severity)
            note = " (fails the gate)" if fails else ""
            # The worst group opens; the rest fold under their count.
            out += [
                f'<details class="group group-{label}"{" open" if index == 0 else ""}>',
                f'<summary><span class="sev-{label}">{label}</span> {count}{note}</summary>',
                '<div class="scroll"><table class="matrix">',
                f"<thead><tr><th>component</th>{head}<th>reason</th></tr></thead>",
                "<tbody>",
                *(self._row(row, result) for row in group),
                "</tbody>",
                "</table></div>",
                "</details>",
            ]
        return out

    @staticmethod
    def _row(row: MatrixRow, result: DiffResult) -> str:
        cells = []
        reasons = []
        for env in result.environments:
            cell = row.cells[env]
            inner = _cell(cell)
            if cell.change is not None:
                change = cell.change
                tip = f"{change.severity.label} ({change.kind.value}): {change.reason}"
                cells.append(
                    f'<td class="sev-{change.severity.label}" title="{_e(tip)}">{inner}</td>'
                )
                many = len(result.environments) > 2
                reasons.append(f"{env}: {change.reason}" if many else change.reason)
            else:
                css = "baseline" if env == result.baseline else "same"
                cells.append(f'<td class="{css}">{inner}</td>')
        if len(reasons) == 1:
            why = _e(reasons[0])
        else:
            why = '<ul class="reasons">' + "".join(f"<li>{_e(r)}</li>" for r in reasons) + "</ul>"
        css = f"row-{row.worst.label}" if row.worst is not None else "row"
        return (
            f'<tr class="{css}"><th>{_code(component(row))}</th>{"".join(cells)}<td>{why}</td></tr>'
        )
