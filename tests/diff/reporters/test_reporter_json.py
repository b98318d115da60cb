"""--format json: the documented machine shape, full values, deterministic order."""

from __future__ import annotations

import json
import random

from reporter_samples import AWKWARD_LINES, AWKWARD_SCRIPT, no_drift, three_env, two_env

from envpack.diff.reporters.json_report import JsonReporter


def test_shape_and_verdict() -> None:
    doc = json.loads(JsonReporter().render(two_env()))
    assert set(doc) == {
        "schema_version",
        "environments",
        "baseline",
        "verdict",
        "drifts",
        "matrix",
        "notes",
    }
    assert doc["schema_version"] == 1
    assert doc["environments"] == ["dev", "prod"]
    assert doc["baseline"] == "dev"
    assert doc["verdict"] == {
        "threshold": "major",
        "worst": "critical",
        "failed": True,
        "exit_code": 1,
        "counts": {"critical": 5, "major": 3, "minor": 3, "patch": 2, "info": 3},
    }
    (drift,) = doc["drifts"]
    assert (drift["baseline"], drift["other"]) == ("dev", "prod")
    assert len(drift["changes"]) == 16
    assert set(drift["changes"][0]) == {
        "section",
        "key",
        "field",
        "before",
        "after",
        "kind",
        "severity",
        "reason",
        "disposition",
    }


def test_values_are_kept_whole_and_typed() -> None:
    changes = json.loads(JsonReporter().render(two_env()))["drifts"][0]["changes"]
    by_where = {(c["section"], c["key"], c["field"]): c for c in changes}
    attrs = by_where[("python_packages", "attrs", None)]
    assert attrs["before"] == {"version": "23.1.0", "files": 42}
    assert attrs["after"] is None
    assert attrs["kind"] == "removed"
    note = by_where[("env", "NOTE", "value")]
    assert note["after"] == AWKWARD_LINES  # no truncation, no escaping beyond JSON's own
    assert by_where[("env", "GREETING", "value")]["after"] == AWKWARD_SCRIPT
    assert by_where[("network", "dns", "servers")]["before"] == ["10.0.0.2", "10.0.0.3"]


def test_order_does_not_depend_on_the_engine_order() -> None:
    result = two_env()
    expected = JsonReporter().render(result)
    random.Random(7).shuffle(result.drifts[0].changes)  # noqa: S311 - a fixed test order
    assert JsonReporter().render(result) == expected
    sections = [c["section"] for c in json.loads(expected)["drifts"][0]["changes"]]
    assert sections[0] == "interpreters"
    assert sections[-1] == "requirements"


def test_matrix_for_three_environments() -> None:
    doc = json.loads(JsonReporter().render(three_env()))
    assert [(d["baseline"], d["other"]) for d in doc["drifts"]] == [
        ("dev", "staging"),
        ("dev", "prod"),
    ]
    matrix = {(m["section"], m["key"], m["field"]): m["values"] for m in doc["matrix"]}
    assert matrix[("interpreters", "python", "version")] == {
        "dev": "3.11.7",
        "staging": "3.11.9",
        "prod": "2.7.18",
    }
    assert matrix[("python_packages", "enum34", None)] == {"prod": {"version": "1.1.10"}}


def test_no_drift() -> None:
    doc = json.loads(JsonReporter().render(no_drift()))
    assert doc["verdict"]["worst"] is None
    assert doc["verdict"]["failed"] is False
    assert doc["verdict"]["exit_code"] == 0
    assert doc["drifts"] == [{"baseline": "dev", "other": "prod", "changes": []}]


def test_dispositions_and_notes() -> None:
    doc = json.loads(JsonReporter().render(two_env()))
    changes = doc["drifts"][0]["changes"]
    dispositions = {(c["key"], c["field"]): c["disposition"] for c in changes if c["disposition"]}
    assert dispositions == {("os", "hostname"): "expected", ("six", "version"): "accepted"}
    assert doc["notes"] == ["requirements.txt line 3 not checked: -e ./local (an editable install)"]
    assert json.loads(JsonReporter().render(three_env()))["notes"] == []
