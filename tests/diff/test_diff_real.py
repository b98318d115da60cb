"""The whole gate on REAL captures: a CPython 3.11 virtualenv (dev) vs a 2.7 one (prod)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from realenv import run_envpack


@pytest.fixture(scope="module")
def captures(
    dev_venv: Path, prod_venv: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("captures")
    paths = []
    for label, python in (("dev", dev_venv), ("prod", prod_venv)):
        target = out / f"{label}.json"
        done = run_envpack(
            "capture", "--python", str(python), "--label", label,
            "--only", "interpreters", "--only", "python_packages", "-q", "-o", str(target),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        paths.append(target)
    return paths[0], paths[1]


@pytest.mark.slow
def test_python3_vs_27_is_critical_and_fails(captures: tuple[Path, Path]) -> None:
    dev, prod = captures
    done = run_envpack("diff", str(dev), str(prod), "--format", "json")
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    changes = {c["key"] + "." + str(c["field"]): c for c in report["drifts"][0]["changes"]}
    version = changes["primary.version"]
    assert version["severity"] == "critical"
    assert version["before"].startswith("3.11.") and version["after"] == "2.7.18"
    assert version["reason"] == (
        f"Python {version['before']} → 2.7.18: major version change; "
        "code written for Python 3 will not run"
    )
    assert report["verdict"]["worst"] == "critical"
    # The overlapping packages, graded by version.
    assert changes["requests.version"]["kind"] == "downgraded"
    assert changes["requests.version"]["severity"] == "minor"
    assert changes["urllib3.version"]["severity"] == "major"
    assert changes["attrs.None"]["kind"] == "removed"
    assert changes["enum34.None"]["kind"] == "added"
    assert "six.version" not in changes


@pytest.mark.slow
def test_table_report_names_the_interpreter_change(captures: tuple[Path, Path]) -> None:
    dev, prod = captures
    done = run_envpack("diff", str(dev), str(prod))
    assert done.returncode == 1
    text = " ".join(done.stdout.split())  # the table wraps long reasons over lines
    assert "major version change; code written for Python 3 will not run" in text


@pytest.mark.slow
def test_requirements_against_real_captures(captures: tuple[Path, Path], tmp_path: Path) -> None:
    dev, prod = captures
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        "requests>=2.31\nurllib3>=2; python_version >= '3'\nenum34; python_version < '3.4'\n",
        encoding="utf-8",
    )
    done = run_envpack(
        "diff", str(dev), str(prod), "--requirements", str(requirements), "--format", "json"
    )
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    misses = [c for c in report["drifts"][0]["changes"] if c["section"] == "requirements"]
    # prod is 2.7: the urllib3 line does not apply there, enum34 does and is present.
    assert [(c["reason"], c["severity"]) for c in misses] == [
        ("prod: requests 2.27.1 does not satisfy requests>=2.31", "critical")
    ]
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "app"\nrequires-python = ">=3.9"\ndependencies = []\n',
        encoding="utf-8",
    )
    done = run_envpack(
        "diff", str(dev), str(prod), "--requirements", str(pyproject), "--format", "json"
    )
    reasons = [c["reason"] for c in json.loads(done.stdout)["drifts"][0]["changes"]]
    assert "prod: Python 2.7.18 does not satisfy requires-python >=3.9" in reasons


@pytest.mark.slow
def test_three_way_matrix_on_real_captures(captures: tuple[Path, Path], tmp_path: Path) -> None:
    dev, prod = captures
    staging = tmp_path / "staging.json"
    document = json.loads(dev.read_text(encoding="utf-8"))
    document["meta"]["label"] = "staging"
    staging.write_text(json.dumps(document), encoding="utf-8")
    done = run_envpack("diff", str(dev), str(staging), str(prod), "--format", "json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["environments"] == ["dev", "staging", "prod"]
    assert [d["changes"] == [] for d in report["drifts"]] == [True, False]
    rows = {(r["section"], r["key"], r["field"]): r["values"] for r in report["matrix"]}
    assert rows[("python_packages", "requests", "version")] == {
        "dev": "2.31.0", "staging": "2.31.0", "prod": "2.27.1",
    }  # fmt: skip
    html = run_envpack("diff", str(dev), str(staging), str(prod), "--format", "html")
    assert html.returncode == 1 and "2.27.1" in html.stdout
