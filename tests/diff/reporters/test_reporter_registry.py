"""The registry: every agreed format id, one clear error for anything else."""

from __future__ import annotations

import pytest
from reporter_samples import no_drift, three_env, two_env

from envpack.diff.reporters import REPORTER_IDS, Reporter, get_reporter
from envpack.diff.reporters.table import TableReporter
from envpack.errors import UsageError


def test_ids_are_the_agreed_ones() -> None:
    assert REPORTER_IDS == ("table", "json", "markdown", "junit", "sarif", "github", "html")


@pytest.mark.parametrize("format_id", REPORTER_IDS)
def test_each_id_gives_a_reporter_of_that_id(format_id: str) -> None:
    reporter = get_reporter(format_id)
    assert isinstance(reporter, Reporter)
    assert reporter.id == format_id


def test_unknown_format_is_a_usage_error_naming_the_choices() -> None:
    with pytest.raises(UsageError) as info:
        get_reporter("yaml")
    assert str(info.value) == (
        "unknown format 'yaml'; choose from table, json, markdown, junit, sarif, github or html"
    )
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("format_id", REPORTER_IDS)
def test_reports_end_with_one_newline_and_encode_as_utf8(format_id: str) -> None:
    for result in (two_env(), three_env(), no_drift()):
        text = get_reporter(format_id).render(result)
        assert text.endswith("\n")
        assert not text.endswith("\n\n")
        text.encode("utf-8")


@pytest.mark.parametrize("format_id", REPORTER_IDS)
def test_fingerprints_pass_through_and_nothing_else_of_a_secret(format_id: str) -> None:
    # The engine hands secrets over as fingerprints; a reporter shows exactly that string.
    # (The table folds long cells: give it room so the fingerprint stays on one line.)
    reporter = TableReporter(width=300) if format_id == "table" else get_reporter(format_id)
    text = reporter.render(two_env())
    if format_id == "html":  # what the reader sees: <wbr> marks where a line may break
        text = text.replace("<wbr>", "")
    assert "hmac-sha256:0123456789abcdef0123456789abcdef" in text


@pytest.mark.parametrize("format_id", REPORTER_IDS)
def test_lone_surrogates_from_undecodable_names_still_encode(format_id: str) -> None:
    result = two_env()
    change = result.drifts[0].changes[0]
    bad = type(change)(
        "config_files",
        "/etc/caf\udce9.conf",
        "key",
        "a\udcff",
        "b",
        change.kind,
        change.severity,
        "undecodable name",
    )
    result.drifts[0].changes.append(bad)
    result.values[("config_files", "/etc/caf\udce9.conf", "key")] = {"dev": "a\udcff", "prod": "b"}
    get_reporter(format_id).render(result).encode("utf-8")
