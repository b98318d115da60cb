"""--format html: one well-formed, self-contained page; every value escaped."""

from __future__ import annotations

import re

from reporter_html_check import Cell, parse
from reporter_samples import AWKWARD_SCRIPT, UNICODE, no_drift, three_env, two_env

from envpack.diff.model import Change, ChangeKind, Severity
from envpack.diff.reporters.html import HtmlReporter


def test_well_formed_and_self_contained() -> None:
    for result in (two_env(), three_env(), no_drift()):
        document = HtmlReporter().render(result)
        page = parse(document)
        assert not page.errors, page.errors
        tags = {tag for tag, _ in page.tags}
        assert not tags & {"script", "link", "img", "iframe", "object", "embed", "base", "a"}
        assert not any("src" in attrs or "href" in attrs for _, attrs in page.tags)
        assert not re.search(r"url\(|@import|https?://", document)
        assert document.startswith("<!DOCTYPE html>")


def test_every_value_is_escaped() -> None:
    document = HtmlReporter().render(two_env())
    assert "<script" not in document
    assert "&lt;script&gt;alert(&#x27;x&amp;y&#x27;)&lt;/<wbr>script&gt;" in document
    page = parse(document)
    cells = [c.text for table in page.tables for row in table for c in row]
    assert AWKWARD_SCRIPT in cells  # what the reader sees is the value itself
    assert UNICODE in cells


def _matrix(document: str) -> dict[str, list[Cell]]:
    """Every matrix row by its component, across the severity groups' tables."""
    page = parse(document)
    assert not page.errors, page.errors
    return {row[0].text: row[1:] for table in page.tables for row in table[1:]}


def test_matrix_cells_are_coloured_and_explain_on_hover() -> None:
    page = parse(HtmlReporter().render(three_env()))
    header = [c.text for c in page.tables[0][0]]
    assert header == ["component", "dev (baseline)", "staging", "prod", "reason"]
    rows = _matrix(HtmlReporter().render(three_env()))
    dev, staging, prod, reason = rows["interpreters/python.version"]
    assert (dev.text, staging.text, prod.text) == ("3.11.7", "3.11.9", "2.7.18")
    assert dev.attrs["class"] == "baseline"
    assert staging.attrs["class"] == "sev-patch"
    assert prod.attrs["class"] == "sev-critical"
    assert prod.attrs["title"] == (
        "critical (downgraded): Python major version differs: 3 → 2 "
        "(code for Python 3 will not run)"
    )
    assert "prod: Python major version differs" in reason.text
    assert rows["network/dns.servers"][1].attrs["class"] == "same"
    assert rows["python_packages/enum34"][0].text == "— absent"


def test_no_details_table_below_the_matrix() -> None:
    # Every change is in the matrix (its reason in the last column): no second table.
    document = HtmlReporter().render(two_env())
    page = parse(document)
    assert all(row[0].tag == "th" for table in page.tables for row in table)
    assert "<h2>Changes</h2>" not in document
    rows = _matrix(document)
    assert len(rows) == 16
    assert rows["env/API_TOKEN.value"][2].text == "secret API_TOKEN is not set in prod"


def test_rows_worst_first_and_only_the_worst_group_open() -> None:
    document = HtmlReporter().render(two_env())
    groups = re.findall(r'<details class="group group-(\w+)"( open)?>', document)
    assert groups == [
        ("critical", " open"),
        ("major", ""),
        ("minor", ""),
        ("patch", ""),
        ("info", ""),
    ]
    assert '<summary><span class="sev-critical">critical</span> 5 rows (fails the gate)' in (
        document
    )
    order = re.findall(r'<tr class="row-(\w+)">', document)
    assert order == sorted(order, key=lambda s: -Severity.parse(s))


def test_requirement_rows_read_as_sentences_and_colour_every_environment() -> None:
    rows = _matrix(HtmlReporter().render(three_env()))
    dev, staging, prod, _ = rows["requirements/urllib3<2"]
    assert (dev.text, staging.text, prod.text) == ("2.0.7", "1.26.18", "— absent")
    assert (dev.attrs["class"], staging.attrs["class"], prod.attrs["class"]) == (
        "sev-critical",
        "same",
        "sev-critical",
    )
    pairs = _matrix(HtmlReporter().render(two_env()))
    flask = pairs["requirements/flask>=3"]
    assert [c.text for c in flask] == [
        "3.0.0",
        "— absent",
        "prod: flask is not installed (required: flask>=3)",
    ]
    assert flask[1].attrs["class"] == "sev-critical"


def test_structured_values_are_fields_not_json() -> None:
    result = two_env()
    kernel = {"release": "6.1.0-18-amd64"}  # what the os probe records
    result.drifts[0].changes.append(
        Change("os", "kernel", None, kernel, None, ChangeKind.REMOVED, Severity.INFO, "gone")
    )
    result.values[("os", "kernel", None)] = {"dev": kernel}
    document = HtmlReporter().render(result)
    rows = _matrix(document)
    dev = rows["os/kernel"][0]
    assert dev.text == "release6.1.0-18-amd64"  # a <dt>/<dd> pair
    assert "{&quot;release" not in document and '{"release' not in dev.text
    assert '<dl class="fields"><dt><code>release</code></dt>' in document


def test_words_never_break_inside() -> None:
    document = HtmlReporter().render(two_env())
    css = document[document.index("<style>") : document.index("</style>")]
    assert "anywhere" not in css and "break-all" not in css
    assert "<code>interpreters/<wbr>python.<wbr>implementation</code>" in document
