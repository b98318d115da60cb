"""Policy (ignore, expected, severity overrides, fail-on), --accept/--accepted, the engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from diff_manifests import dev_sections, make

from envpack.diff.engine import Environment, name_environments, run_diff
from envpack.diff.model import Severity
from envpack.diff.policy import Policy, load_policy, policy_from_table
from envpack.errors import DiffError, UsageError
from envpack.manifest import Manifest


def prod() -> dict[str, Any]:
    s = dev_sections()
    s["python_packages"]["requests"]["version"] = "1.0.0"  # major
    s["python_packages"]["six"]["version"] = "1.17.0"  # minor
    s["network"]["hostname"]["hostname"] = "prod-host"  # minor
    s["env"]["PATH"]["value"] = "/bin"  # minor
    return s


def envs(*manifests: Manifest) -> Any:
    return name_environments([f"{m.name}.json" for m in manifests], list(manifests))


def where_severity(policy: Policy, *manifests: Manifest) -> dict[str, str]:
    result = run_diff(envs(*manifests), policy=policy).result
    return {c.where: c.severity.label for d in result.drifts for c in d.changes}


def test_default_policy() -> None:
    found = where_severity(Policy(), make("dev", dev_sections()), make("prod", prod()))
    assert found == {
        "python_packages/requests.version": "major",
        "python_packages/six.version": "minor",
        "network/hostname.hostname": "minor",
        "env/PATH.value": "minor",
    }


def test_ignore_expected_and_overrides() -> None:
    policy = policy_from_table(
        {
            "ignore": ["env/PATH"],
            "severity": {"python_packages/six.version": "critical", "python_packages/*": "info"},
            "expected": [{"section": "network", "key": "hostname", "reason": "own name"}],
        },
        "envpack.toml",
    )
    result = run_diff(envs(make("dev", dev_sections()), make("prod", prod())), policy=policy).result
    (drift,) = result.drifts
    found = {c.where: c for c in drift.changes}
    assert set(found) == {
        "python_packages/requests.version",
        "python_packages/six.version",
        "network/hostname.hostname",
    }
    assert found["python_packages/six.version"].severity is Severity.CRITICAL  # first match
    assert found["python_packages/requests.version"].severity is Severity.INFO
    # The reason says that the policy, not the default, decided the severity, and from what.
    six = found["python_packages/six.version"].reason
    assert six.endswith("(policy python_packages/six.version: minor → critical)"), six
    requests = found["python_packages/requests.version"].reason
    assert requests.endswith("(policy python_packages/*: major → info)"), requests
    hostname = found["network/hostname.hostname"]
    assert (hostname.severity, hostname.disposition) == (Severity.INFO, "expected")
    assert hostname.reason.endswith("(expected: own name)")


def test_expected_only_for_named_environments() -> None:
    policy = policy_from_table(
        {"expected": [{"section": "network", "environments": ["stag*"]}]}, "envpack.toml"
    )
    staging, production = make("staging", prod()), make("prod", prod())
    result = run_diff(envs(make("dev", dev_sections()), staging, production), policy=policy).result
    by_env = {
        d.other: {c.where: c.severity for c in d.changes if c.section == "network"}
        for d in result.drifts
    }
    assert by_env == {
        "staging": {"network/hostname.hostname": Severity.INFO},
        "prod": {"network/hostname.hostname": Severity.MINOR},
    }


def test_fail_on_policy_and_command_line() -> None:
    environments = envs(make("dev", dev_sections()), make("prod", prod()))
    assert run_diff(environments).result.verdict.exit_code == 1  # major ≥ major
    strict = policy_from_table({"fail-on": "critical"}, "envpack.toml")
    assert run_diff(environments, policy=strict).result.verdict.exit_code == 0
    outcome = run_diff(environments, policy=strict, fail_on=Severity.MINOR)
    assert outcome.result.verdict.threshold is Severity.MINOR
    assert outcome.result.verdict.exit_code == 1


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"fail_on": "major"}, "unknown [policy] key 'fail_on'"),
        ({"fail-on": "huge"}, "unknown severity 'huge'"),
        ({"ignore": [1]}, "ignore must be a list of strings"),
        ({"severity": {"x/*": "loud"}}, "unknown severity 'loud'"),
        ({"expected": [{"sektion": "x"}]}, "unknown key 'sektion'"),
        ({"expected": ["x"]}, "must be a table"),
    ],
)
def test_bad_policy_is_one_clear_error(table: dict[str, Any], message: str) -> None:
    with pytest.raises(DiffError) as info:
        policy_from_table(table, "envpack.toml")
    assert message in str(info.value)
    assert str(info.value).startswith("envpack.toml")


def test_policy_from_envpack_toml_and_pyproject(tmp_path: Path) -> None:
    (tmp_path / "envpack.toml").write_text(
        '[policy]\nfail-on = "minor"\naccepted = "acc.json"\n', encoding="utf-8"
    )
    policy = load_policy(tmp_path / "envpack.toml")
    assert policy.fail_on is Severity.MINOR
    assert policy.accepted == tmp_path / "acc.json"
    (tmp_path / "pyproject.toml").write_text(
        '[tool.envpack.policy]\nignore = ["env/*"]\n', encoding="utf-8"
    )
    assert load_policy(tmp_path / "pyproject.toml").ignore == ("env/*",)
    assert load_policy(search_from=tmp_path).fail_on is Severity.MINOR  # envpack.toml first
    (tmp_path / "bad.toml").write_text("[policy\n", encoding="utf-8")
    with pytest.raises(DiffError, match="invalid TOML"):
        load_policy(tmp_path / "bad.toml")


def test_accept_then_only_new_drift_fails(tmp_path: Path) -> None:
    environments = envs(make("dev", dev_sections()), make("prod", prod()))
    outcome = run_diff(environments, accept=True)
    assert outcome.accepted_file is not None
    assert outcome.result.verdict.exit_code == 0
    assert {c.disposition for d in outcome.result.drifts for c in d.changes} == {"accepted"}
    accepted = tmp_path / "accepted.json"
    accepted.write_bytes(outcome.accepted_file)
    document = json.loads(accepted.read_text())
    assert document["envpack_accepted"] == 1
    assert len(document["changes"]) == 4
    # Same drift again: all accepted, exit 0.
    assert run_diff(environments, accepted=accepted).result.verdict.exit_code == 0
    # New drift: only it counts.
    newer = prod()
    newer["python_packages"]["attrs"]["version"] = "1.0.0"
    result = run_diff(
        envs(make("dev", dev_sections()), make("prod", newer)), accepted=accepted
    ).result
    live = [c.where for d in result.drifts for c in d.changes if c.disposition is None]
    assert live == ["python_packages/attrs.version"]
    assert result.verdict.exit_code == 1
    # A change of the same thing to another value is new drift too.
    other = prod()
    other["python_packages"]["requests"]["version"] = "0.9.0"
    result = run_diff(
        envs(make("dev", dev_sections()), make("prod", other)), accepted=accepted
    ).result
    assert [c.where for d in result.drifts for c in d.changes if c.disposition is None] == [
        "python_packages/requests.version"
    ]


def test_accepting_drift_in_undecodable_file_names(tmp_path: Path) -> None:
    # A file name that is not UTF-8 reaches the manifest as lone surrogates; the accept
    # file must still be written (it raised UnicodeEncodeError) and read back.
    base, other = dev_sections(), dev_sections()
    base["config_files"] = {"/etc/caf\udce9.conf": {"sha256": "a"}}
    other["config_files"] = {"/etc/caf\udce9.conf": {"sha256": "b"}}
    environments = envs(make("dev", base), make("prod", other))
    outcome = run_diff(environments, accept=True)
    assert outcome.accepted_file is not None
    accepted = tmp_path / "accepted.json"
    accepted.write_bytes(outcome.accepted_file)
    assert "caf\\udce9" in accepted.read_text(encoding="utf-8")
    assert run_diff(environments, accepted=accepted).result.verdict.exit_code == 0


def test_accepted_file_errors(tmp_path: Path) -> None:
    environments = envs(make("dev", dev_sections()), make("prod", prod()))
    with pytest.raises(DiffError, match="no such accepted-drift file"):
        run_diff(environments, accepted=tmp_path / "missing.json")
    (tmp_path / "x.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(DiffError, match="not an accepted-drift file"):
        run_diff(environments, accepted=tmp_path / "x.json")


def test_matrix_values_and_baseline_choice() -> None:
    staging = dev_sections()
    staging["python_packages"]["requests"]["version"] = "2.30.0"
    environments = envs(make("dev", dev_sections()), make("staging", staging), make("prod", prod()))
    result = run_diff(environments, baseline="prod").result
    assert result.baseline == "prod"
    assert [(d.baseline, d.other) for d in result.drifts] == [("prod", "dev"), ("prod", "staging")]
    assert result.values[("python_packages", "requests", "version")] == {
        "dev": "2.31.0",
        "staging": "2.30.0",
        "prod": "1.0.0",
    }
    assert run_diff(environments, baseline="staging.json").result.baseline == "staging"
    with pytest.raises(UsageError, match="choose from dev, staging, prod"):
        run_diff(environments, baseline="qa")


def test_same_names_are_told_apart() -> None:
    named = name_environments(["a/x.json", "b/y.json"], [make("dev", {}), make("dev", {})])
    assert [e.name for e in named] == ["dev (x.json)", "dev (y.json)"]


def test_requirements_in_the_matrix(tmp_path: Path) -> None:
    from envpack.diff.requirements import load_requirements

    path = tmp_path / "requirements.txt"
    path.write_text("requests>=2.31\n", encoding="utf-8")
    environments = envs(make("dev", dev_sections()), make("prod", prod()))
    result = run_diff(environments, declared=load_requirements(path)).result
    (change,) = [c for c in result.drifts[0].changes if c.section == "requirements"]
    assert change.reason == "prod: requests 1.0.0 does not satisfy requests>=2.31"
    assert (change.before, change.after) == ("2.31.0", "1.0.0")
    assert result.values[("requirements", "requests>=2.31", "prod")] == {
        "dev": "2.31.0",
        "prod": "1.0.0",
    }


def test_requires_python_and_a_package_named_python_are_told_apart(tmp_path: Path) -> None:
    from envpack.diff.requirements import load_requirements

    # A package called "python" and requires-python once shared the key "python>=…",
    # and the matrix showed the interpreter's version for both.
    path = tmp_path / "pyproject.toml"
    path.write_text(
        '[project]\nname = "app"\nrequires-python = ">=3.12"\ndependencies = ["python>=3"]\n',
        encoding="utf-8",
    )
    dev, other = dev_sections(), prod()
    other["python_packages"]["python"] = {"name": "python", "version": "2.7.18", "location": "/a"}
    # The second one named apart from its manifest, as two manifests of one label are.
    environments = [
        Environment("dev", "dev.json", make("dev", dev)),
        Environment("staging", "prod.json", make("prod", other)),
    ]
    result = run_diff(environments, declared=load_requirements(path)).result
    values = {
        key: row for (section, key, _), row in result.values.items() if section == "requirements"
    }
    assert values["requires-python>=3.12"] == {"dev": "3.11.7", "staging": "3.11.7"}
    assert values["python>=3"] == {"staging": "2.7.18"}
    reasons = sorted(
        c.reason for d in result.drifts for c in d.changes if c.section == "requirements"
    )
    assert "staging: python 2.7.18 does not satisfy python>=3" in reasons
    assert "staging: Python 3.11.7 does not satisfy requires-python >=3.12" in reasons
