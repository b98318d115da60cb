"""Golden reports from real captures: a CPython 3.11 venv (dev) against a 2.7 one (prod).

The real ``envpack capture`` and ``envpack diff --format X -o FILE`` run as child processes.
What differs from run to run is normalised: virtualenv folders (pytest's temporary
paths) and the pyenv root in the manifests before the diff, then envpack's version and
fingerprints in the reports. Everything else is compared byte for byte.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest
from junitparser import JUnitXml
from reporter_golden import EXTENSION, Golden, redact
from reporter_html_check import parse

from envpack.diff.reporters import REPORTER_IDS
from realenv import pyenv_python, run_envpack

SARIF_SCHEMA = Path(__file__).parent / "schemas" / "sarif-schema-2.1.0.json"
# The capture sections this comparison is about; the host-wide ones are the same for
# both venvs (one machine) and would only slow the test down.
ONLY = ("--only", "interpreters", "--only", "python_packages")


def _capture(python: Path, label: str, out: Path, env: dict[str, str]) -> None:
    proc = run_envpack(
        "capture", "--python", str(python), "--label", label, *ONLY, "-q", "-o", str(out),
        env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def _normalise(manifest: Path, venvs: dict[str, Path], basetemp: Path) -> None:
    """Replace run-specific folders with stable names, keeping the manifest valid JSON.

    Values are normalised before the diff, not after, because reports cut long values
    at a fixed length: a path whose length changes from run to run would be cut elsewhere.
    """
    text = manifest.read_text(encoding="utf-8")
    replacements = {str(folder): f"/venvs/{name}" for name, folder in venvs.items()}
    # The session's folder of wheels and venvs, e.g. in the direct_url of the wheels.
    replacements[str(basetemp)] = "/pytest-tmp"
    root = pyenv_python("3.11")
    if root is not None:
        # <root>/versions/3.11.x/bin/python → <root>
        replacements[str(root.parents[3])] = "/opt/pyenv"
    for old in sorted(replacements, key=len, reverse=True):
        text = text.replace(old, replacements[old])
    json.loads(text)
    manifest.write_text(text, encoding="utf-8")


# Between the two: dev's requests with prod's urllib3, on a newer interpreter minor.
STAGING_WHEELS = ("requests-2.31.0", "urllib3-1.26.18", "six-1.16.0", "certifi-2023.7.22")

Capture = Callable[[dict[str, Path]], list[str]]


@pytest.fixture
def capture_all(tmp_path: Path, real_env_base: Path, clean_env: dict[str, str]) -> Capture:
    def run(pythons: dict[str, Path]) -> list[str]:
        venvs = {name: python.parent.parent for name, python in pythons.items()}
        names = []
        for name, python in pythons.items():
            manifest = tmp_path / f"{name}.json"
            _capture(python, name, manifest, clean_env)
            names.append(manifest.name)
        for name in names:
            _normalise(tmp_path / name, venvs, real_env_base)
        return names

    return run


def _diff(
    tmp_path: Path, manifests: list[str], format_id: str, env: dict[str, str]
) -> tuple[int, str]:
    out = tmp_path / f"report.{EXTENSION[format_id]}"
    # Relative manifest names (cwd = the folder holding them): reports that name the
    # manifest files (SARIF, GitHub) stay the same from run to run.
    proc = run_envpack(
        "diff", *manifests, "--format", format_id, "-o", str(out), env=env, cwd=str(tmp_path)
    )
    assert proc.returncode in (0, 1), proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.returncode, out.read_text(encoding="utf-8")


def _check_real_content(format_id: str, report: str) -> None:
    """What must hold whatever the engine's exact wording: 3 vs 2.7 is critical, and
    requests 2.31.0 vs 2.27.1 is reported."""
    if format_id == "json":
        doc = json.loads(report)
        assert doc["verdict"]["failed"] is True
        assert doc["verdict"]["worst"] == "critical"
        changes = [c for d in doc["drifts"] for c in d["changes"]]
        assert any(c["section"] == "interpreters" and c["severity"] == "critical" for c in changes)
        assert any(
            c["section"] == "python_packages" and c["key"] == "requests"
            and c["before"] == "2.31.0" and c["after"] == "2.27.1"
            for c in changes
        )  # fmt: skip
    elif format_id == "sarif":
        validator = jsonschema.Draft4Validator(json.loads(SARIF_SCHEMA.read_text("utf-8")))
        errors = list(validator.iter_errors(json.loads(report)))
        assert not errors, errors[0].message
    elif format_id == "junit":
        xml = JUnitXml.fromstring(report.encode("utf-8"))
        assert xml.failures >= 1
    elif format_id == "html":
        assert not parse(report).errors
    elif format_id == "github":
        head = r"^::error title=envpack%3A critical drift in prod,file=prod\.json::"
        assert re.search(head, report, re.M)
    else:
        assert "2.27.1" in report


@pytest.mark.slow
@pytest.mark.parametrize("format_id", REPORTER_IDS)
def test_real_dev_vs_prod(
    format_id: str,
    dev_venv: Path,
    prod_venv: Path,
    capture_all: Capture,
    tmp_path: Path,
    clean_env: dict[str, str],
    pytestconfig: pytest.Config,
) -> None:
    manifests = capture_all({"dev": dev_venv, "prod": prod_venv})
    code, report = _diff(tmp_path, manifests, format_id, clean_env)
    assert code == 1  # Python 3 on dev, 2.7 on prod: the gate must fail
    _check_real_content(format_id, report)
    Golden.of(pytestconfig).check(
        f"real_dev_prod.{format_id}.{EXTENSION[format_id]}", redact(report)
    )


@pytest.mark.slow
@pytest.mark.parametrize("format_id", ["json", "markdown", "html"])
def test_real_three_way_matrix(
    format_id: str,
    dev_venv: Path,
    prod_venv: Path,
    venv_factory: Callable[[str, tuple[str, ...]], Path],
    capture_all: Capture,
    tmp_path: Path,
    clean_env: dict[str, str],
    pytestconfig: pytest.Config,
) -> None:
    staging = venv_factory("3.12", STAGING_WHEELS)
    manifests = capture_all({"dev": dev_venv, "staging": staging, "prod": prod_venv})
    code, report = _diff(tmp_path, manifests, format_id, clean_env)
    assert code == 1
    _check_real_content(format_id, report)
    Golden.of(pytestconfig).check(
        f"real_three_way.{format_id}.{EXTENSION[format_id]}", redact(report)
    )
