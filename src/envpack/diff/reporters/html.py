"""``--format html``: one self-contained page a person can open from a CI artifact.

A header with the verdict, the drift matrix (changed component by environment, each cell
coloured by the severity of its change, the reason on hover), then every change in a
details table. Inline CSS only: no script, no font, no image, nothing fetched from the
network. Every text from the manifests goes through :func:`~envpack._escape.for_html`:
HTML-escaped (no tag, script, style or attribute can be injected, in text or attributes)
and with control and bidi characters shown as visible escapes.
"""

from __future__ import annotations

from envpack import __version__
from envpack._escape import for_html as _e
from envpack.diff.model import DiffResult, Severity
from envpack.diff.reporters._common import (
    SEVERITIES_DESC,
    after_text,
    before_text,
    encodable,
    matrix_rows,
    sorted_changes,
    verdict_line,
)

__all__ = ["HtmlReporter"]

_VALUE_LIMIT = 60

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em;color:#1b1f24}
h1{font-size:1.4em;margin:0 0 .3em}
h2{font-size:1.15em;margin:1.5em 0 .5em}
.verdict{padding:.6em 1em;border-radius:6px;font-weight:600}
.failed{background:#ffebe9;border:1px solid #cf222e}
.passed{background:#dafbe1;border:1px solid #1a7f37}
table{border-collapse:collapse;margin:.5em 0}
th,td{border:1px solid #d0d7de;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f6f8fa}
code{font:12px/1.3 ui-monospace,SFMono-Regular,Menlo,monospace;overflow-wrap:anywhere}
.legend span{display:inline-block;margin-right:.6em;padding:.1em .5em;border-radius:4px}
.sev-critical{background:#cf222e;color:#fff}
.sev-major{background:#fb8f44;color:#1b1f24}
.sev-minor{background:#f2cc60;color:#1b1f24}
.sev-patch{background:#9ecbff;color:#1b1f24}
.sev-info{background:#eaeef2;color:#1b1f24}
.same{color:#57606a}
.absent{color:#8c959f;font-style:italic}
.baseline{font-weight:600}
""".strip()


def _sev(severity: Severity) -> str:
    return f'<span class="sev-{severity.label}">{severity.label}</span>'


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
            f"<p>Baseline: <strong>{_e(result.baseline)}</strong></p>",
            '<p class="legend">'
            + "".join(
                f'<span class="sev-{s.label}">{s.label}: {verdict.counts.get(s, 0)}</span>'
                for s in SEVERITIES_DESC
            )
            + "</p>",
        ]
        out += self._matrix(result)
        out += self._details(result)
        if result.notes:
            out += ["<h2>Notes</h2>", "<ul>", *(f"<li>{_e(n)}</li>" for n in result.notes), "</ul>"]
        out += ["</body>", "</html>"]
        return encodable("\n".join(out) + "\n")

    @staticmethod
    def _matrix(result: DiffResult) -> list[str]:
        rows = matrix_rows(result)
        out = ["<h2>Drift matrix</h2>"]
        if not rows:
            return [*out, "<p>No drift.</p>"]
        head = "".join(
            f'<th class="baseline">{_e(env)} (baseline)</th>'
            if env == result.baseline
            else f"<th>{_e(env)}</th>"
            for env in result.environments
        )
        out += [
            '<table class="matrix">',
            f"<thead><tr><th>component</th>{head}</tr></thead>",
            "<tbody>",
        ]
        for row in rows:
            cells = []
            for env in result.environments:
                cell = row.cells[env]
                value = cell.text()
                short = cell.text(_VALUE_LIMIT)
                inner = (
                    f"<code>{_e(short)}</code>"
                    if cell.present
                    else '<span class="absent">absent</span>'
                )
                if cell.change is not None:
                    change = cell.change
                    tip = f"{change.severity.label} ({change.kind.value}): {_e(change.reason)}"
                    if value != short:
                        tip += f"\n{_e(value)}"  # the tooltip's own line break, not data's
                    cells.append(
                        f'<td class="sev-{change.severity.label}" title="{tip}">{inner}</td>'
                    )
                else:
                    css = "baseline" if env == result.baseline else "same"
                    tip = value if cell.present else "absent"
                    cells.append(f'<td class="{css}" title="{_e(tip)}">{inner}</td>')
            out.append(f"<tr><th><code>{_e(row.where)}</code></th>{''.join(cells)}</tr>")
        out += ["</tbody>", "</table>"]
        return out

    @staticmethod
    def _details(result: DiffResult) -> list[str]:
        out = ["<h2>Changes</h2>"]
        for drift in result.drifts:
            changes = sorted_changes(drift.changes)
            out.append(f"<h3>{_e(drift.baseline)} → {_e(drift.other)}</h3>")
            if not changes:
                out.append("<p>No drift.</p>")
                continue
            out += [
                '<table class="details">',
                "<thead><tr><th>severity</th><th>component</th><th>kind</th>"
                f"<th>{_e(drift.baseline)}</th><th>{_e(drift.other)}</th><th>reason</th></tr></thead>",
                "<tbody>",
            ]
            for c in changes:
                out.append(
                    f"<tr><td>{_sev(c.severity)}</td><td><code>{_e(c.where)}</code></td>"
                    f"<td>{_e(c.kind.value)}</td><td><code>{_e(before_text(c))}</code></td>"
                    f"<td><code>{_e(after_text(c))}</code></td><td>{_e(c.reason)}</td></tr>"
                )
            out += ["</tbody>", "</table>"]
        return out
