"""Section coverage (``meta.coverage``): what one side did not capture is never drift.

Pure tests on hand-built manifests for the rules, and real captures of this machine
(``envpack capture --only`` against a wider capture) for the end-to-end behaviour.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from diff_manifests import dev_sections, make

from envpack.diff.compare import COVERAGE, cell, compare
from envpack.diff.engine import Environment, load_environments, run_diff
from envpack.diff.model import Severity
from envpack.diff.requirements import load_requirements
from envpack.errors import ManifestError
from envpack.manifest import SECTIONS, Manifest, dumps, loads, schema_text


def _with_coverage(manifest: Manifest, **states: str) -> Manifest:
    coverage = dict.fromkeys(SECTIONS, "captured")
    coverage.update(states)
    meta = dataclasses.replace(manifest.meta, coverage=coverage)
    return dataclasses.replace(manifest, meta=meta)


def test_coverage_round_trips_and_older_manifests_count_as_captured() -> None:
    plain = make("dev", dev_sections())
    assert "coverage" not in json.loads(dumps(plain))["meta"]
    assert all(plain.coverage_of(name) == "captured" for name in SECTIONS)
    covered = _with_coverage(plain, network="not_captured", app="not_applicable")
    again = loads(dumps(covered))
    assert again.coverage_of("network") == "not_captured"
    assert again.coverage_of("app") == "not_applicable"
    assert again.coverage_of("env") == "captured"
    meta_only = {k: v for k, v in json.loads(dumps(covered)).items() if k in ("meta", "issues")}
    jsonschema.validate({"schema_version": 1, **meta_only}, json.loads(schema_text()))


@pytest.mark.parametrize(
    ("coverage", "message"),
    [('"all"', "'meta.coverage' is not an object"), ('{"env": "skipped"}', "'skipped'")],
)
def test_damaged_coverage_is_one_clear_error(coverage: str, message: str) -> None:
    text = (
        '{"schema_version": 1, "issues": [], "meta": {"envpack_version": "1", '
        f'"captured_at": "2026-01-01T00:00:00Z", "hostname": "h", "coverage": {coverage}}}}}'
    )
    with pytest.raises(ManifestError, match=message):
        loads(text)


def test_a_section_skipped_on_one_side_is_one_info_row_not_drift() -> None:
    full = _with_coverage(make("full", dev_sections()))
    sections = {k: v for k, v in dev_sections().items() if k in ("python_packages", "app")}
    only = _with_coverage(
        make("only", sections),
        **{n: "not_captured" for n in SECTIONS if n not in ("python_packages", "app")},
    )
    for a, b in ((full, only), (only, full)):
        changes = compare(a, b).changes
        assert {c.severity for c in changes} == {Severity.INFO}
        rows = {c.field: c for c in changes if (c.section, c.key) == ("meta", COVERAGE)}
        skipped = {n for n in SECTIONS if n not in ("python_packages", "app")}
        assert set(rows) == skipped
        assert rows["env"].reason == "env not captured in only; its entries are not compared"
        assert cell(only, "meta", COVERAGE, "env") == "not_captured"
        assert cell(full, "meta", COVERAGE, "env") == "captured"


def test_not_applicable_on_both_sides_with_nothing_to_hide_gives_no_row() -> None:
    sections = {k: v for k, v in dev_sections().items() if k != "app"}
    a = _with_coverage(make("a", sections), app="not_applicable")
    old = make("old", sections)  # no coverage: app counts as captured, and is empty
    assert not compare(a, old).changes
    image = _with_coverage(make("img", sections), network="not_applicable", app="not_applicable")
    rows = [c for c in compare(a, image).changes if c.key == COVERAGE]
    assert [c.reason for c in rows] == [
        "network not applicable to img; its entries are not compared"
    ]


def test_requirements_are_not_checked_where_packages_were_not_captured(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("requests>=2.31\n")
    full = _with_coverage(make("full", dev_sections()))
    only = _with_coverage(make("only", {}), python_packages="not_captured")

    envs = [Environment("full", "full.json", full), Environment("only", "only.json", only)]
    result = run_diff(envs, declared=load_requirements(requirements)).result
    assert not [c for d in result.drifts for c in d.changes if c.section == "requirements"]
    assert "requirements not checked in only: python_packages not captured" in result.notes


def _capture(tmp_path: Path, name: str, *only: str) -> Path:
    out = tmp_path / f"{name}.json"
    flags = [arg for section in only for arg in ("--only", section)]
    subprocess.run(
        [sys.executable, "-m", "envpack", "capture", "-q", "--label", name, "-o", str(out), *flags],
        check=True,
        env={"PATH": "/usr/bin:/bin", "SOURCE_DATE_EPOCH": "1700000000", "LANG": "C.UTF-8"},
    )
    return out


def test_real_only_capture_against_a_wider_one_is_not_drift(tmp_path: Path) -> None:
    """Two real captures of this machine: one of four sections, one of python_packages
    (which takes interpreters with it). Before coverage, the narrow one made every
    system package, OS fact and variable of the wide one "removed" (major, critical)."""
    wide = _capture(tmp_path, "wide", "python_packages", "os", "system_packages", "env")
    narrow = _capture(tmp_path, "narrow", "python_packages")
    document = json.loads(narrow.read_text())
    assert document["meta"]["coverage"]["system_packages"] == "not_captured"
    assert document["meta"]["coverage"]["interpreters"] == "captured"
    assert "app" not in document["meta"]["coverage"]  # no such section (never recorded)
    jsonschema.validate(document, json.loads(schema_text()))
    assert json.loads(wide.read_text())["system_packages"], "this Debian machine has dpkg"

    environments = load_environments([str(wide), str(narrow)])
    result = run_diff(environments, fail_on=Severity.PATCH).result
    changes = result.drifts[0].changes
    assert {c.severity for c in changes} == {Severity.INFO}, [c.reason for c in changes]
    rows = {c.field for c in changes if c.key == COVERAGE}
    assert {"os", "system_packages", "env"} <= rows
    assert not [c for c in changes if c.section in ("os", "system_packages", "env")]
    assert not result.verdict.failed

    shown = subprocess.run(
        [sys.executable, "-m", "envpack", "diff", str(wide), str(narrow), "--fail-on", "patch"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "system_packages not captured in narrow" in " ".join(shown.stdout.split())


def test_sections_both_sides_left_out_alike_give_no_row() -> None:
    sections = {k: v for k, v in dev_sections().items() if k in ("python_packages", "app")}
    skipped = {n: "not_captured" for n in SECTIONS if n not in ("python_packages", "app")}
    a = _with_coverage(make("a", sections), **skipped)
    b = _with_coverage(make("b", sections), **skipped)
    assert compare(a, b).changes == []
