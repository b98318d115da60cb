"""Fuzz targets for what a diff reads: manifests, requirements, policies, accepted drift.

Invariant: a value, or the envpack error the CLI turns into one line and exit 2
(:class:`ManifestError`, :class:`DiffError`, :class:`UsageError`); never another
exception. Bounded: a couple of hundred examples each, a timeout per test.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envpack.diff.policy import load_accepted, load_policy, policy_from_table
from envpack.diff.requirements import load_requirements
from envpack.errors import DiffError, EnvpackError, ManifestError
from envpack.manifest import loads

_FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
_JSON = st.recursive(
    _JSON_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
_MANIFEST_KEYS = st.sampled_from(
    ["schema_version", "meta", "issues", "python_packages", "binaries", "env", "source", "label"]
)
_MANIFESTISH = st.dictionaries(_MANIFEST_KEYS, _JSON | st.just(1) | st.just({}), max_size=6)


def _write(folder: str, name: str, data: bytes) -> Path:
    path = Path(folder) / name
    path.write_bytes(data)
    return path


@pytest.mark.fuzz
@pytest.mark.timeout(60)
@_FUZZ
@given(
    document=_MANIFESTISH,
    cut=st.one_of(st.none(), st.integers(0, 200)),
    noise=st.binary(max_size=20),
)
def test_fuzz_manifest_loader(document: dict[str, Any], cut: int | None, noise: bytes) -> None:
    data = json.dumps(document).encode()
    if cut is not None:
        data = data[:cut] + noise
    try:
        manifest = loads(data, origin="fuzz")
    except ManifestError as err:
        assert "\n" not in str(err)
        return
    assert manifest.schema_version >= 1


_REQUIREMENT_LINES = st.sampled_from(
    [
        "requests>=2.31",
        "urllib3 >=1.21, <3 ; python_version >= '3.8'",
        "-r other.txt",
        "-r self.txt",
        "-c constraints.txt",
        "--index-url https://user:pw@example.invalid/simple",
        "-e ./src",
        "pkg @ https://example.invalid/p.whl",
        "pkg[extra]==1.0 --hash=sha256:00",
        "bad===",
        "\\",
        "# comment",
        "x; python_version >",
        "-x",
    ]
)


@pytest.mark.fuzz
@pytest.mark.timeout(60)
@_FUZZ
@given(
    lines=st.lists(_REQUIREMENT_LINES | st.text(max_size=30), max_size=12),
    pyproject=st.booleans(),
)
def test_fuzz_requirements_reader(lines: list[str], pyproject: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        _write(folder, "other.txt", b"six\n")
        _write(folder, "self.txt", b"-r self.txt\n")
        if pyproject:
            text = "[project]\ndependencies = " + json.dumps(lines) + "\n"
            path = _write(folder, "pyproject.toml", text.encode())
        else:
            path = _write(folder, "requirements.txt", "\n".join(lines).encode("utf-8", "replace"))
        try:
            declared = load_requirements(path)
        except DiffError as err:
            assert "\n" not in str(err)
            return
        assert len(declared.requirements) <= max(len(lines), 1) + 1


_TOML_VALUES = st.recursive(
    st.booleans() | st.integers() | st.text(max_size=12) | st.sampled_from(["major", "info", "*"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
_POLICY_KEYS = st.sampled_from(
    ["fail-on", "ignore", "expected", "severity", "accepted", "section", "key", "environments"]
)


@pytest.mark.fuzz
@pytest.mark.timeout(60)
@_FUZZ
@given(table=st.dictionaries(_POLICY_KEYS | st.text(max_size=6), _TOML_VALUES, max_size=5))
def test_fuzz_policy_table(table: dict[str, Any]) -> None:
    try:
        policy_from_table(table, "fuzz.toml")
    except DiffError as err:
        assert "\n" not in str(err)


@pytest.mark.fuzz
@pytest.mark.timeout(60)
@_FUZZ
@given(text=st.text(max_size=200) | st.just("[policy]\nfail-on = 1" + "0" * 5000))
def test_fuzz_policy_file(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = _write(folder, "envpack.toml", text.encode("utf-8", "surrogatepass"))
        try:
            load_policy(path)
        except EnvpackError as err:
            assert "\n" not in str(err)


@pytest.mark.fuzz
@pytest.mark.timeout(60)
@_FUZZ
@given(document=_JSON | st.fixed_dictionaries({"envpack_accepted": _JSON, "changes": _JSON}))
def test_fuzz_accepted_file(document: Any) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = _write(folder, "accepted.json", json.dumps(document).encode())
        try:
            found = load_accepted(path)
        except DiffError as err:
            assert "\n" not in str(err)
            return
        assert all(isinstance(f, str) for f in found)
