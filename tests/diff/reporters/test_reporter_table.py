"""--format table: grouped by section, coloured by severity, one summary line at the end."""

from __future__ import annotations

import re

from reporter_samples import no_drift, three_env, two_env

from envpack.diff.model import Severity
from envpack.diff.reporters.table import TableReporter

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_plain_text_has_no_escape_codes_and_ends_with_the_summary() -> None:
    text = TableReporter().render(two_env())
    assert "\x1b" not in text
    lines = text.splitlines()
    assert lines[0] == "dev → prod  16 changes, worst critical"
    assert lines[-1].startswith("FAILED: worst drift is critical")
    assert all(line == line.rstrip() for line in lines)


def test_rows_go_worst_first_then_section_order() -> None:
    for width in (80, 160):
        lines = TableReporter(width=width).render(two_env()).splitlines()
        # A row starts at the left edge with its severity; wrapped text is indented.
        severities = [
            line.split()[0]
            for line in lines
            if line[:1].strip() and line.split()[0] in {s.label for s in Severity}
        ]
        assert len(severities) == 16
        assert severities == sorted(severities, key=lambda s: -Severity.parse(s))
        criticals = [line.split()[1] for line in lines if line.startswith("critical")]
        assert criticals[0].startswith("interpreters/")  # manifest order within a severity
        assert criticals[-1].startswith("requirements/")  # not a manifest section: last


def test_colour_marks_severity() -> None:
    text = TableReporter().render(two_env(), color=True)
    # critical is bold red (1;31), minor yellow (33), patch cyan (36).
    assert "\x1b[1;31mcritical" in text
    assert "\x1b[33mminor" in text
    assert "\x1b[36mpatch" in text
    assert (
        _ANSI.sub("", text).splitlines()[-1] == TableReporter().render(two_env()).splitlines()[-1]
    )


def test_width_is_respected_and_summary_stays_one_line() -> None:
    text = TableReporter(width=80).render(three_env())
    lines = text.splitlines()
    assert max(len(line) for line in lines[:-1]) <= 80
    assert lines[-1].startswith("FAILED") and lines[-1].endswith("(exit 1)")


def test_no_drift() -> None:
    assert TableReporter().render(no_drift()) == (
        "dev → prod  no drift\n\nPASSED: no drift across 2 environments (fail-on: major)\n"
    )


def test_values_never_break_a_row() -> None:
    text = TableReporter(width=300).render(two_env())
    assert "line1\\nline2\\r\\nline3" in text


def test_three_environments_give_a_matrix_with_the_baseline_first() -> None:
    lines = TableReporter(width=160).render(three_env()).splitlines()
    assert lines[0].startswith("baseline dev; ")
    header = next(line for line in lines if line.startswith("worst"))
    assert header.split()[1:] == ["component", "dev", "(baseline)", "staging", "prod"]
    row = next(line for line in lines if "python.version" in line)
    # The same row the Markdown matrix shows: each environment's own value.
    assert row.split() == ["critical", "interpreters/python.version", "3.11.7", "3.11.9", "2.7.18"]
    # One requirement row: dev (the baseline) misses it, staging meets it, prod lacks it.
    row = next(line for line in lines if "urllib3" in line)
    assert row.split() == ["critical", "requirements/urllib3<2", "2.0.7", "1.26.18", "—"]
    assert not any("→" in line for line in lines[:-1])  # no pairwise blocks


def test_matrix_colours_every_environment_missing_a_requirement() -> None:
    text = TableReporter(width=160).render(three_env(), color=True)
    row = next(line for line in text.splitlines() if "urllib3" in line)
    # critical (bold red) on dev's and prod's cells, nothing on staging's, which meets it.
    assert "\x1b[1;31m2.0.7" in row
    assert "\x1b[1;31m—" in row
    assert "1.26.18" in row and "\x1b[1;31m1.26.18" not in row
