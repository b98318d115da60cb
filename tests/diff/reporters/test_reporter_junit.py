"""--format junit: read back with junitparser, the JUnit library CI plugins are built on."""

from __future__ import annotations

from pathlib import Path

from junitparser import Failure, JUnitXml
from reporter_samples import AWKWARD_SCRIPT, no_drift, three_env, two_env, verdict_for

from envpack.diff.model import Severity
from envpack.diff.reporters.junit import JunitReporter
from envpack.manifest import SECTIONS


def _read(tmp_path: Path, text: str) -> JUnitXml:
    path = tmp_path / "report.xml"
    path.write_text(text, encoding="utf-8")
    return JUnitXml.fromfile(str(path))


def test_two_environments(tmp_path: Path) -> None:
    xml = _read(tmp_path, JunitReporter().render(two_env()))
    (suite,) = list(xml)
    assert suite.name == "dev → prod"
    # 16 changes + one passing case per manifest section without change
    # (system_packages, binaries).
    assert suite.tests == 18
    assert suite.failures == 8  # 5 critical + 3 major: at or above the major threshold
    assert suite.errors == 0
    cases = list(suite)
    assert len(cases) == 18
    failed = [c for c in cases if c.result and isinstance(c.result[0], Failure)]
    # Worst first: the failures lead, criticals before majors.
    assert [f.result[0].type for f in cases[:8]] == ["critical"] * 5 + ["major"] * 3
    assert len(failed) == 8
    by_name = {(c.classname, c.name): c for c in cases}
    python = by_name[("interpreters", "python.version")]
    assert python.result[0].message.startswith("critical: Python major version differs")
    assert "dev: 3.11.7\nprod: 2.7.18" in python.result[0].text
    greeting = by_name[("env", "GREETING.value")]
    assert greeting.is_passed
    assert AWKWARD_SCRIPT in greeting.system_out
    assert by_name[("binaries", "no drift")].is_passed
    assert ("app", "no drift") not in by_name  # no such section
    assert ("os", "no drift") not in by_name  # os has a change (the expected hostname)


def test_threshold_moves_failures(tmp_path: Path) -> None:
    xml = _read(tmp_path, JunitReporter().render(two_env(threshold=Severity.INFO)))
    (suite,) = list(xml)
    assert (suite.tests, suite.failures) == (18, 16)


def test_one_suite_per_pair(tmp_path: Path) -> None:
    xml = _read(tmp_path, JunitReporter().render(three_env()))
    suites = {s.name: s for s in xml}
    assert set(suites) == {"dev → staging", "dev → prod"}
    # requirements is no manifest section: its rows add a case, not a section.
    assert (suites["dev → staging"].tests, suites["dev → staging"].failures) == (4 + 6, 1)
    assert (suites["dev → prod"].tests, suites["dev → prod"].failures) == (6 + 5, 2)
    assert sum(s.tests for s in suites.values()) == 21
    root = JUnitXml.fromstring(JunitReporter().render(three_env()).encode("utf-8"))
    assert (root.tests, root.failures) == (21, 3)  # the <testsuites> totals agree


def test_clean_diff_passes_every_section(tmp_path: Path) -> None:
    xml = _read(tmp_path, JunitReporter().render(no_drift()))
    (suite,) = list(xml)
    assert (suite.tests, suite.failures) == (len(SECTIONS), 0)
    assert all(case.is_passed for case in suite)


def test_control_characters_cannot_break_the_xml(tmp_path: Path) -> None:
    result = two_env()
    change = result.drifts[0].changes[0]
    result.drifts[0].changes.append(
        type(change)(
            "env",
            "BELL\x07",
            "value",
            "a\x1bb",
            "\x00",
            change.kind,
            Severity.CRITICAL,
            "reason with \x0c form feed",
        )
    )
    xml = _read(tmp_path, JunitReporter().render(result))
    (suite,) = list(xml)
    assert suite.tests == 19


def test_fail_on_none_fails_no_testcase(tmp_path: Path) -> None:
    result = two_env()
    result.verdict = verdict_for(result.drifts, None)
    xml = _read(tmp_path, JunitReporter().render(result))
    (suite,) = list(xml)
    assert (suite.tests, suite.failures) == (18, 0)
    assert not result.verdict.failed and result.verdict.exit_code == 0
