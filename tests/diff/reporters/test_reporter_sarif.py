"""--format sarif: valid against the official SARIF 2.1.0 schema, levels from the threshold."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from reporter_samples import no_drift, three_env, two_env

from envpack import __version__
from envpack.diff.model import DiffResult, Severity
from envpack.diff.reporters.sarif import SarifReporter

SCHEMA = json.loads(
    (Path(__file__).parent / "schemas" / "sarif-schema-2.1.0.json").read_text(encoding="utf-8")
)


def _validate(document: Any) -> None:
    jsonschema.Draft4Validator.check_schema(SCHEMA)
    validator = jsonschema.Draft4Validator(
        SCHEMA, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER
    )
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


@pytest.mark.parametrize("make", [two_env, three_env, no_drift])
def test_valid_against_the_sarif_schema(make: Any) -> None:
    result: DiffResult = make()
    _validate(json.loads(SarifReporter().render(result)))
    paths = {env: f"manifests/{env} file.json" for env in result.environments}
    _validate(json.loads(SarifReporter(paths).render(result)))


def test_the_validator_catches_a_broken_log() -> None:
    # The schema check must be able to fail: a bad level is rejected.
    document = json.loads(SarifReporter().render(two_env()))
    document["runs"][0]["results"][0]["level"] = "fatal"
    with pytest.raises(AssertionError):
        _validate(document)


def test_driver_rules_and_results() -> None:
    document = json.loads(SarifReporter().render(two_env()))
    assert document["version"] == "2.1.0"
    (run,) = document["runs"]
    driver = run["tool"]["driver"]
    assert (driver["name"], driver["version"]) == ("envpack", __version__)
    rule_ids = [r["id"] for r in driver["rules"]]
    assert len(rule_ids) == len(set(rule_ids))
    assert "interpreters/downgraded" in rule_ids
    assert "requirements/unsatisfied" in rule_ids
    results = run["results"]
    assert len(results) == 16
    for result in results:
        assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
    python = next(
        r
        for r in results
        if r["properties"]["key"] == "python" and r["properties"]["field"] == "version"
    )
    assert python["level"] == "error"
    assert python["message"]["text"] == (
        "Python major version differs: 3 → 2 (code for Python 3 will not run)"
    )
    assert python["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == (
        "prod::interpreters/python.version"
    )
    assert "physicalLocation" not in python["locations"][0]
    assert python["properties"]["before"] == "3.11.7"
    levels = sorted(r["level"] for r in results)
    # threshold major: 8 at/above → error; 3 minor → warning; 2 patch + 3 info → note.
    assert levels == ["error"] * 8 + ["note"] * 5 + ["warning"] * 3
    suppressed = {r["properties"]["key"]: r["suppressions"] for r in results if "suppressions" in r}
    assert suppressed == {
        "os": [
            {
                "kind": "external",
                "status": "accepted",
                "justification": "hostname differs (expected: one per environment)",
            }
        ],
        "six": [
            {
                "kind": "external",
                "status": "accepted",
                "justification": "six downgraded: minor release (accepted)",
            }
        ],
    }
    (note,) = run["invocations"][0]["toolExecutionNotifications"]
    assert note["message"]["text"].startswith("requirements.txt line 3 not checked")
    assert run["invocations"][0]["exitCode"] == 1


def test_levels_follow_the_threshold() -> None:
    results = json.loads(SarifReporter().render(two_env(threshold=Severity.CRITICAL)))["runs"][0][
        "results"
    ]
    assert sorted(r["level"] for r in results).count("error") == 5


def test_manifest_paths_become_artifact_locations() -> None:
    sarif = SarifReporter({"prod": "ci/prod manifest.json", "dev": "/abs/dev.json"})
    results = json.loads(sarif.render(three_env()))["runs"][0]["results"]
    uris = {
        r["properties"]["environment"]: r["locations"][0]
        .get("physicalLocation", {})
        .get("artifactLocation", {})
        .get("uri")
        for r in results
    }
    assert uris == {"prod": "ci/prod%20manifest.json", "staging": None}


def test_fingerprints_are_stable_and_distinct() -> None:
    first = json.loads(SarifReporter().render(three_env()))["runs"][0]["results"]
    again = json.loads(SarifReporter().render(three_env()))["runs"][0]["results"]
    prints = [r["partialFingerprints"]["envpackDrift/v1"] for r in first]
    assert prints == [r["partialFingerprints"]["envpackDrift/v1"] for r in again]
    assert len(set(prints)) == len(prints)
