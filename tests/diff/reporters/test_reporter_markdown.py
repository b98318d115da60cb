"""--format markdown: read back with a CommonMark parser (markdown-it, GFM tables)."""

from __future__ import annotations

from markdown_it import MarkdownIt
from reporter_html_check import parse
from reporter_samples import AWKWARD_PIPE, AWKWARD_SCRIPT, no_drift, three_env, two_env

from envpack._escape import for_markdown as text
from envpack._escape import markdown_code as code
from envpack.diff.reporters.markdown import MarkdownReporter

# html=True on purpose: the report must be safe even where raw HTML would be rendered.
_MD = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


def _rendered(markdown: str) -> str:
    html: str = _MD.render(markdown)
    return html


def test_one_table_per_pair_with_every_row_intact() -> None:
    page = parse(_rendered(MarkdownReporter().render(two_env())))
    assert not page.errors
    (table,) = page.tables
    header, *rows = table
    assert [c.text for c in header] == ["severity", "component", "kind", "dev", "prod", "reason"]
    assert len(rows) == 16
    assert all(len(row) == 6 for row in rows)  # no pipe in a value split a row
    cells = {row[1].text: row for row in rows}
    pipe_row = cells[f"config_files//etc/app|x.ini.{AWKWARD_PIPE}"]
    assert pipe_row[3].text == '""'
    assert pipe_row[0].text == "🔵 patch"
    assert cells["env/GREETING.value"][4].text == AWKWARD_SCRIPT  # shown, as text


def test_markup_in_values_is_never_live() -> None:
    page = parse(_rendered(MarkdownReporter().render(two_env())))
    # Only the report's own markup: headings, bold summary, tables, code spans.
    assert {tag for tag, _ in page.tags} <= {
        "h2",
        "h3",
        "p",
        "strong",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "code",
        "ul",
        "li",
    }
    assert all("<script>" not in t for t in page.text_outside_code)


def test_matrix_only_for_three_or_more_environments() -> None:
    assert "### Matrix" not in MarkdownReporter().render(two_env())
    page = parse(_rendered(MarkdownReporter().render(three_env())))
    matrix = page.tables[-1]
    assert [c.text for c in matrix[0]] == ["component", "dev (baseline)", "staging", "prod"]
    rows = {row[0].text: [c.text for c in row[1:]] for row in matrix[1:]}
    assert rows["interpreters/python.version"] == ["3.11.7", "🔵 3.11.9", "🔴 2.7.18"]
    assert rows["python_packages/enum34"] == ["—", "—", "🟡 1.1.10"]
    assert rows["network/dns.servers"] == ['["10.0.0.2"]', '["10.0.0.2"]', "🟡 null"]


def test_summary_first() -> None:
    lines = MarkdownReporter().render(two_env()).splitlines()
    assert lines[0] == "## ❌ envpack diff: dev, prod"
    assert lines[2].startswith("**FAILED: worst drift is critical")
    assert MarkdownReporter().render(no_drift()).splitlines()[0] == "## ✅ envpack diff: dev, prod"


def test_code_and_text_helpers() -> None:
    assert code("a`b") == "``a`b``"
    assert code("`x`") == "`` `x` ``"
    assert code("a|b") == "`a\\|b`"
    assert text("<b>*x*</b> & [l](u)") == "&lt;b&gt;\\*x\\*&lt;/b&gt; &amp; \\[l\\](u)"
    assert text("a\nb") == "a\\\\nb"
    for value in ("a`b", "``", "`x`", "a|b|c"):
        html = _rendered(f"| h |\n|---|\n| {code(value)} |\n")
        assert f"<code>{value}</code>" in html.replace("&quot;", '"')


def test_notes_are_listed() -> None:
    report = MarkdownReporter().render(two_env())
    assert report.endswith(
        "### Notes\n\n- requirements.txt line 3 not checked: -e ./local (an editable install)\n"
    )
    assert "### Notes" not in MarkdownReporter().render(three_env())


def test_long_tables_keep_the_most_severe_rows() -> None:
    report = MarkdownReporter(max_rows=4).render(two_env())
    page = parse(_rendered(report))
    rows = page.tables[0][1:]
    assert [r[0].text for r in rows] == ["🔴 critical"] * 4
    # Worst first, then section order (requirements last), component and field.
    assert [r[1].text for r in rows] == [
        "interpreters/python.implementation",
        "interpreters/python.version",
        "libraries/libssl.so.soname",
        "requirements/flask>=3 in prod",
    ]
    assert "_12 less severe rows not shown; `--format html` or `--format json` has them all._" in (
        report
    )
    matrix = parse(_rendered(MarkdownReporter(max_rows=2).render(three_env()))).tables[-1]
    assert [r[0].text for r in matrix[1:]] == [
        "interpreters/python.version",
        "requirements/urllib3<2",
    ]
