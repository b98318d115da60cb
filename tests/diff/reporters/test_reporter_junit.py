"""--format junit: read back with junitparser, the JUnit library CI plugins are built on."""

from __future__ import annotations

from pathlib import Path

from junitparser import Failure, JUnitXml
from reporter_samples import AWKWARD_SCRIPT, no_drift, three_env, two_env

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
    # 15 changes + one passing case per manifest section without change
    # (system_packages, binaries, app).
    assert suite.tests == 18
    assert suite.failures == 7  # 4 critical + 3 major: at or above the major threshold
    assert suite.errors == 0
    cases = list(suite)
    assert len(cases) == 18
    failed = [c for c in cases if c.result and isinstance(c.result[0], Failure)]
    assert sorted(f.result[0].type for f in failed) == ["critical"] * 4 + ["major"] * 3
    by_name = {(c.classname, c.name): c for c in cases}
    python = by_name[("interpreters", "python.version")]
    assert python.result[0].message.startswith("critical: Python major version differs")
    assert "dev: 3.11.7\nprod: 2.7.18" in python.result[0].text
    greeting = by_name[("env", "GREETING.value")]
    assert greeting.is_passed
    assert AWKWARD_SCRIPT in greeting.system_out
    assert by_name[("app", "no drift")].is_passed
    assert ("os", "no drift") not in by_name  # os has a change (the expected hostname)


def test_threshold_moves_failures(tmp_path: Path) -> None:
    xml = _read(tmp_path, JunitReporter().render(two_env(threshold=Severity.INFO)))
    (suite,) = list(xml)
    assert (suite.tests, suite.failures) == (18, 15)


def test_one_suite_per_pair(tmp_path: Path) -> None:
    xml = _read(tmp_path, JunitReporter().render(three_env()))
    suites = {s.name: s for s in xml}
    assert set(suites) == {"dev → staging", "dev → prod"}
    assert (suites["dev → staging"].tests, suites["dev → staging"].failures) == (3 + 7, 0)
    assert (suites["dev → prod"].tests, suites["dev → prod"].failures) == (5 + 6, 1)
    assert sum(s.tests for s in suites.values()) == 21
    root = JUnitXml.fromstring(JunitReporter().render(three_env()).encode("utf-8"))
    assert (root.tests, root.failures) == (21, 1)  # the <testsuites> totals agree


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
