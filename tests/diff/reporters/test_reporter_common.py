"""Shared pieces: compact values, ordering, the matrix and the summary line."""

from __future__ import annotations

from reporter_samples import AWKWARD_LINES, three_env, two_env

from envpack.diff.model import ChangeKind, Severity
from envpack.diff.reporters._common import (
    ABSENT,
    compact,
    level,
    matrix_rows,
    sorted_changes,
    verdict_line,
)


def test_compact_values() -> None:
    assert compact("2.31.0") == "2.31.0"
    assert compact("") == '""'
    assert compact(None) == "null"
    assert compact(3) == "3"
    assert compact(["a", 1, None]) == '["a", 1, null]'
    assert compact({"b": 1, "a": [True]}) == '{"a": [true], "b": 1}'
    assert compact(AWKWARD_LINES) == "line1\\nline2\\r\\nline3"
    assert compact("a\x00b\u2028c") == "a\\x00b\\u2028c"
    assert compact("日本") == "日本"
    assert compact("x" * 10, limit=5) == "xxxx…"
    assert compact({"k": "v\nw"}) == '{"k": "v\\nw"}'


def test_levels_follow_the_threshold() -> None:
    assert level(Severity.CRITICAL, Severity.MAJOR) == "error"
    assert level(Severity.MAJOR, Severity.MAJOR) == "error"
    assert level(Severity.MAJOR, Severity.CRITICAL) == "warning"
    assert level(Severity.MINOR, Severity.CRITICAL) == "warning"
    assert level(Severity.PATCH, Severity.CRITICAL) == "note"
    assert level(Severity.INFO, Severity.INFO) == "error"


def test_changes_sort_by_manifest_section_order_then_key() -> None:
    where = [c.where for c in sorted_changes(reversed(two_env().drifts[0].changes))]
    assert where[0] == "interpreters/python.implementation"
    assert where[-1] == "requirements/requests>=2.31.prod"  # not a manifest section: last
    sections = [w.split("/", 1)[0] for w in where]
    assert sections == sorted(
        sections,
        key=[
            "interpreters",
            "python_packages",
            "os",
            "libraries",
            "config_files",
            "env",
            "network",
            "requirements",
        ].index,
    )


def test_matrix_rows_take_values_and_the_change_per_environment() -> None:
    rows = {row.where: row for row in matrix_rows(three_env())}
    python = rows["interpreters/python.version"]
    assert [python.cells[e].text() for e in ("dev", "staging", "prod")] == [
        "3.11.7",
        "3.11.9",
        "2.7.18",
    ]
    assert python.cells["dev"].change is None
    staging, prod = python.cells["staging"].change, python.cells["prod"].change
    assert staging is not None and staging.severity is Severity.PATCH
    assert prod is not None and prod.kind is ChangeKind.DOWNGRADED
    assert python.worst is Severity.CRITICAL
    dns = rows["network/dns.servers"]
    assert dns.cells["staging"].change is None  # staging agrees with the baseline
    assert dns.cells["staging"].text() == '["10.0.0.2"]'
    assert dns.cells["prod"].text() == "null"  # present, and null
    enum34 = rows["python_packages/enum34"]
    assert enum34.cells["dev"].text() == ABSENT
    assert not enum34.cells["staging"].present


def test_matrix_falls_back_to_before_and_after_without_values() -> None:
    result = two_env()
    result.values.clear()
    rows = {row.where: row for row in matrix_rows(result)}
    assert rows["python_packages/requests.version"].cells["dev"].text() == "2.31.0"
    assert rows["python_packages/requests.version"].cells["prod"].text() == "2.27.1"
    assert not rows["python_packages/enum34"].cells["dev"].present
    assert not rows["python_packages/attrs"].cells["prod"].present


def test_matrix_honours_a_baseline_that_is_not_first() -> None:
    result = three_env()
    result.values.clear()
    result.environments = ["staging", "dev", "prod"]
    rows = {row.where: row for row in matrix_rows(result)}
    row = rows["interpreters/python.version"]
    assert [row.cells[e].text() for e in ("staging", "dev", "prod")] == [
        "3.11.9",
        "3.11.7",
        "2.7.18",
    ]


def test_verdict_line() -> None:
    assert verdict_line(two_env()) == (
        "FAILED: worst drift is critical, at or above fail-on major; 5 critical, 3 major, "
        "3 minor, 2 patch, 3 info across 2 environments (exit 1)"
    )
    passed = two_env(threshold=Severity.CRITICAL)
    passed.drifts[0].changes[:] = [
        c for c in passed.drifts[0].changes if c.severity < Severity.CRITICAL
    ]
    from reporter_samples import verdict_for

    passed.verdict = verdict_for(passed.drifts, Severity.CRITICAL)
    assert verdict_line(passed).startswith("PASSED: worst drift is major, below fail-on critical;")
    assert verdict_line(passed).endswith("(exit 0)")
