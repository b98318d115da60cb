"""--format html: one well-formed, self-contained page; every value escaped."""

from __future__ import annotations

import re

from reporter_html_check import parse
from reporter_samples import AWKWARD_SCRIPT, UNICODE, no_drift, three_env, two_env

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
    assert "&lt;script&gt;alert(&#x27;x&amp;y&#x27;)&lt;/script&gt;" in document
    page = parse(document)
    cells = [c.text for table in page.tables for row in table for c in row]
    assert AWKWARD_SCRIPT in cells  # what the reader sees is the value itself
    assert UNICODE in cells


def test_matrix_cells_are_coloured_and_explain_on_hover() -> None:
    page = parse(HtmlReporter().render(three_env()))
    matrix = page.tables[0]
    assert [c.text for c in matrix[0]] == ["component", "dev (baseline)", "staging", "prod"]
    rows = {row[0].text: row[1:] for row in matrix[1:]}
    dev, staging, prod = rows["interpreters/python.version"]
    assert (dev.text, staging.text, prod.text) == ("3.11.7", "3.11.9", "2.7.18")
    assert dev.attrs["class"] == "baseline"
    assert staging.attrs["class"] == "sev-patch"
    assert prod.attrs["class"] == "sev-critical"
    assert prod.attrs["title"] == (
        "critical (downgraded): Python major version differs: 3 → 2 "
        "(code for Python 3 will not run)"
    )
    assert rows["network/dns.servers"][1].attrs["class"] == "same"
    assert rows["python_packages/enum34"][0].text == "absent"


def test_details_table_lists_every_change() -> None:
    page = parse(HtmlReporter().render(three_env()))
    staging, prod = page.tables[1:]
    assert len(staging) == 1 + 3
    assert len(prod) == 1 + 5
    assert [c.text for c in prod[0]] == ["severity", "component", "kind", "dev", "prod", "reason"]
