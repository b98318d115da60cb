"""Every report format stays valid and inert whatever text the manifests hold.

Each text field a report shows (environment names, sections, keys, fields, values,
reasons, notes, manifest paths) is filled with a hostile string from the corpus
(fixtures/hostile-text) or an arbitrary one (hypothesis); each format is then read back by
its real reader: a terminal's view of the table, markdown-it and GitHub's cmark-gfm for the
pull-request comment, the Actions runner's command syntax, ElementTree and junitparser for
JUnit, a strict JSON parser (no NaN) and the SARIF schema, html.parser for the page.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from typing import Any

import cmarkgfm
import jsonschema
import pytest
from cmarkgfm.cmark import Options
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from junitparser import JUnitXml
from markdown_it import MarkdownIt
from reporter_html_check import parse
from test_reporter_sarif import SCHEMA

import hostile_text
from envpack.diff.model import Change, ChangeKind, DiffResult, Drift, Severity, Verdict
from envpack.diff.reporters import REPORTER_IDS, get_reporter
from envpack.diff.reporters.table import TableReporter

_SGR = re.compile(r"\x1b\[[0-9;]*m")  # rich's own colours, the only escapes allowed
_COMMAND = re.compile(r"^::(error|warning|notice) [^:]*::[^\r\n]*$")
_SARIF = jsonschema.Draft4Validator(
    SCHEMA, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER
)
_MD = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


def hostile_result(text: str, other: str = "prod") -> DiffResult:
    """Two environments whose every text field holds ``text`` (changes of each kind)."""
    base = f"dev{text}"
    env = f"{other}{text}"
    changes = [
        Change("env", text, "value", text, f"x{text}", ChangeKind.CHANGED, Severity.MAJOR, text),
        Change(text, f"k{text}", text, [text, float("nan")], {text: 1e308 * 10}, ChangeKind.CHANGED,
               Severity.MINOR, f"reason {text}"),
        Change("python_packages", f"p{text}", None, {"version": text}, None, ChangeKind.REMOVED,
               Severity.CRITICAL, f"{text} removed", "accepted"),
        Change("config_files", f"/etc/{text}.ini", None, None, {"path": text}, ChangeKind.ADDED,
               Severity.INFO, text),
    ]  # fmt: skip
    drifts = [Drift(base, env, changes)]
    counts = Counter(c.severity for c in changes)
    verdict = Verdict(Severity.MAJOR, max(counts), {s: counts.get(s, 0) for s in Severity})
    values: dict[tuple[str, str, str | None], dict[str, Any]] = {
        ("env", text, "value"): {base: text, env: f"x{text}"}
    }
    return DiffResult([base, env], base, drifts, verdict, values, [f"note {text}"])


def three_way(text: str) -> DiffResult:
    result = hostile_result(text)
    third = f"qa{text}"
    result.environments.append(third)
    result.drifts.append(Drift(result.baseline, third, list(result.drifts[0].changes)))
    return result


def _no_nan(name: str) -> Any:
    raise AssertionError(f"{name} is not JSON")


def check_table(report: str, colour: bool) -> None:
    if colour:
        report = _SGR.sub("", report)
    lines = report.split("\n")
    assert all(line.isprintable() for line in lines), [ln for ln in lines if not ln.isprintable()]
    assert lines[-2].startswith(("FAILED:", "PASSED:")) and lines[-1] == ""


def check_markdown(report: str, rows: int | None) -> None:
    tokens = _MD.parse(report)
    kinds = {t.type for t in tokens} | {c.type for t in tokens for c in t.children or []}
    assert not kinds & {"link_open", "image", "html_inline", "html_block", "fence", "hr"}
    assert not kinds & {"code_block", "blockquote_open", "ordered_list_open", "em_open"}
    headings = [t.tag for t in tokens if t.type == "heading_open"]
    assert headings in (["h2", "h3", "h3"], ["h2", "h3", "h3", "h3", "h3"])  # ours only
    if rows is not None:
        assert [t.type for t in tokens].count("tr_open") == rows
    html = cmarkgfm.markdown_to_html_with_extensions(
        report, options=Options.CMARK_OPT_UNSAFE, extensions=["table", "autolink", "tagfilter"]
    )
    page = parse(html)
    assert {tag for tag, _ in page.tags} <= {
        "h2", "h3", "p", "strong", "table", "thead", "tbody", "tr", "th", "td", "code", "ul",
        "li", "em",
    }  # fmt: skip
    for table in page.tables:
        assert len({len(row) for row in table}) == 1, "a row gained or lost a cell"
    outside = " ".join(page.text_outside_code)
    assert not re.search(r"@[A-Za-z0-9]", outside), "an @mention would ping"
    assert not re.search(r"#[0-9]", outside), "an issue reference would link"


def check_github(report: str, annotations: int) -> None:
    lines = report.split("\n")
    assert lines[-1] == ""
    *commands, verdict = lines[:-1]
    assert verdict.startswith(("FAILED:", "PASSED:"))
    assert len(commands) == annotations
    for line in commands:
        assert _COMMAND.match(line), line
        assert line.isprintable(), line


def check_junit(report: str, failures: int) -> None:
    suites = ET.fromstring(report.encode("utf-8"))  # noqa: S314 (our own output)
    assert suites.get("failures") == str(failures)
    parsed = JUnitXml.fromstring(report.encode("utf-8"))
    assert sum(suite.failures for suite in parsed) == failures


def check_json(report: str) -> Any:
    return json.loads(report, parse_constant=_no_nan)


def check_html(report: str) -> None:
    page = parse(report)
    assert not page.errors
    tags = {tag for tag, _ in page.tags}
    assert "script" not in tags and "img" not in tags and "a" not in tags
    assert [tag for tag, _ in page.tags].count("style") == 1  # ours, in the head
    assert all(line.isprintable() for line in report.split("\n"))  # no bidi, no control


def check_all(result: DiffResult, paths: dict[str, str] | None = None) -> None:
    changes = sum(len(d.changes) for d in result.drifts)
    rows_md = 1 + changes if len(result.drifts) == 1 else None  # the header, a row each
    for format_id in REPORTER_IDS:
        reporter = get_reporter(format_id, manifest_paths=paths)
        report = reporter.render(result)
        report.encode("utf-8")  # every format is valid UTF-8 text
        if format_id == "table":
            check_table(report, colour=False)
            check_table(reporter.render(result, color=True), colour=True)
        elif format_id == "markdown":
            check_markdown(report, rows_md)
        elif format_id == "github":
            check_github(report, changes + len(result.notes))
        elif format_id == "junit":
            failing = sum(
                result.verdict.fails(c.severity) for d in result.drifts for c in d.changes
            )
            check_junit(report, failing)
        elif format_id in {"json", "sarif"}:
            document = check_json(report)
            if format_id == "sarif":
                # Every string is whole Unicode (I-JSON): no lone surrogate survives.
                json.dumps(document, ensure_ascii=False).encode("utf-8")
                errors = [f"{list(e.path)}: {e.message}" for e in _SARIF.iter_errors(document)]
                assert not errors, errors
        elif format_id == "html":
            check_html(report)


@pytest.mark.parametrize("text", hostile_text.ALL)
def test_hostile_text_in_every_field_of_every_format(text: str) -> None:
    result = hostile_result(text)
    check_all(result, {env: f"manifests/{env}.json" for env in result.environments})
    check_all(three_way(text))


@pytest.mark.parametrize("text", ["[bold red]boom[/]", "[link=https://evil.example]x[/link]"])
def test_rich_markup_in_data_prints_literally(text: str) -> None:
    report = TableReporter(width=400).render(hostile_result(text), color=True)
    assert f"note {text}" not in report  # notes are not in the table; the rest is:
    assert f"reason {text}" in _SGR.sub("", report)
    assert "\x1b]8;" not in report  # no OSC 8 hyperlink made from [link=…]


def test_json_keeps_hostile_values_exact() -> None:
    text = hostile_text.TERMINAL[0]
    document = check_json(get_reporter("json").render(hostile_result(text)))
    by_section = {c["section"]: c for c in document["drifts"][0]["changes"]}
    change = by_section["env"]
    assert (change["key"], change["before"], change["reason"]) == (text, text, text)
    odd = by_section[text]
    assert odd["before"] == [text, None] and odd["after"] == {text: None}  # NaN, inf: null


@given(st.text(max_size=40))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_arbitrary_text_keeps_every_format_valid(text: str) -> None:
    check_all(hostile_result(text), {"x": text})
