"""Manifest model: canonical JSON, round trip, and one clear error for every bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

from envpack.errors import ManifestError
from envpack.manifest import (
    SCHEMA_VERSION,
    Issue,
    Manifest,
    Meta,
    dumps,
    load_manifest,
    loads,
    schema_text,
)
from envpack.redact import Redactor
from envpack.snapshot.capture import capture
from envpack.snapshot.context import CaptureOptions
from envpack.snapshot.source import Source


def _manifest() -> Manifest:
    meta = Meta("0.1.0", "2024-01-01T00:00:00Z", "live", "box", "box", label="dev")
    return Manifest(
        meta=meta,
        sections={
            "python_packages": {"requests": {"name": "requests", "version": "2.31.0"}},
            "env": {"LANG": {"value": "C.UTF-8", "redacted": False}},
        },
        issues=[Issue("os", "/etc/b", "unreadable"), Issue("os", "/etc/a", "unreadable")],
    )


def test_dumps_is_canonical_and_round_trips() -> None:
    text = dumps(_manifest())
    assert text.endswith("}\n")
    document = json.loads(text)
    assert list(document) == sorted(document)
    assert [i["path"] for i in document["issues"]] == ["/etc/a", "/etc/b"]
    again = loads(text)
    assert dumps(again) == text
    assert again.name == "dev"
    assert again.section("binaries") == {}


def test_schema_is_valid_and_describes_a_real_capture() -> None:
    schema = json.loads(schema_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    live = capture(
        Source.live(),
        CaptureOptions(only=frozenset({"os", "system_packages", "env"})),
        Redactor(b"test-key"),
    )
    jsonschema.validate(json.loads(dumps(live)), schema)
    assert live.sections["system_packages"], "this Debian machine has a dpkg database"


def test_schema_rejects_a_component_of_the_wrong_shape() -> None:
    schema = json.loads(schema_text())
    document = json.loads(dumps(_manifest()))
    document["env"]["LANG"] = {"value": 42}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, schema)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty file"),
        (b"\xff\xfe\x00", "not UTF-8"),
        (b'{"schema_version": 1, "meta": {', "truncated"),
        (b"{nope}", "invalid JSON"),
        (b"[1, 2, 3]", "not an envpack manifest"),
        (b'{"name": "package.json"}', "not an envpack manifest"),
        (b'{"schema_version": "1", "meta": {}}', "bad schema_version"),
        (b'{"schema_version": 1}', "no meta object"),
        (b'{"schema_version": 1, "meta": {}, "env": []}', "section 'env' is not an object"),
        (b'{"schema_version": 1, "meta": {}, "env": {"A": 1}}', "env['A'] is not an object"),
        (b'{"schema_version": 1, "meta": {}, "issues": {}}', "'issues' is not a list"),
        pytest.param(b"[" * 100000, "nested too deeply", id="deep-unclosed"),
        pytest.param(b"[" * 100000 + b"]" * 100000, "nested too deeply", id="deep-closed"),
    ],
)
def test_bad_input_gives_one_clear_line(data: bytes, message: str) -> None:
    with pytest.raises(ManifestError, match=re.escape(message)) as caught:
        loads(data, origin="m.json")
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith("m.json: ")


def test_newer_schema_names_both_versions() -> None:
    newer = json.dumps({"schema_version": SCHEMA_VERSION + 1, "meta": {}})
    with pytest.raises(ManifestError) as caught:
        loads(newer, origin="new.json")
    assert str(caught.value) == (
        f"new.json: written by a newer envpack (schema {SCHEMA_VERSION + 1}); "
        f"this one reads up to {SCHEMA_VERSION}"
    )


def _error_of(text: str) -> str:
    with pytest.raises(ManifestError) as caught:
        loads(text, origin="m.json")
    return str(caught.value)


# Every kind of token a cut can land in: numbers with fraction and exponent, negative
# numbers, literals, escapes (\uXXXX among them), non-ASCII text, nesting, empty objects.
_AWKWARD_DOCUMENT = {
    "schema_version": 1,
    "meta": {"label": 'd\u00e9v "q" \\ \u2028 \U0001f600', "n": None, "empty": {}},
    "env": {"A": {"value": "tab\there", "redacted": False, "size": -12.5e-3, "ok": True}},
    "issues": [{"probe": "os", "path": "/etc/\u00e9", "reason": "x", "count": 1024}],
}


@pytest.mark.parametrize("ensure_ascii", [False, True])
def test_every_cut_of_a_document_is_reported_as_truncated(ensure_ascii: bool) -> None:
    # CI once met a cut inside a literal that the old end-of-text rule called invalid JSON.
    text = json.dumps(_AWKWARD_DOCUMENT, indent=2, sort_keys=True, ensure_ascii=ensure_ascii)
    for end in range(1, len(text) - 1):
        message = _error_of(text[:end])
        assert "truncated" in message, (end, text[:end][-20:], message)


def test_cuts_of_a_real_capture_are_reported_as_truncated() -> None:
    sections = frozenset({"os", "system_packages", "env", "config_files"})
    live = capture(Source.live(), CaptureOptions(only=sections), Redactor(b"test-key"))
    text = dumps(live)
    for end in range(1, len(text) - 1, max(1, len(text) // 997)):  # ~1,000 spread cuts
        assert "truncated" in _error_of(text[:end]), (end, text[:end][-20:])


@pytest.mark.parametrize(
    "text",
    [
        "{nope}",
        '{"a": tru}',
        '{"a": 1.}',
        '{"a": "x\\q"}',
        '{"a": "\\u12"}',
        '{"a": "line\nbreak"}',
        '{"a": 1} trailing',
        '{"a": [1, 2,]}',
        '{"a": -}',
        "{.",
    ],
)
def test_malformed_complete_text_is_invalid_json_not_truncated(text: str) -> None:
    assert "invalid JSON" in _error_of(text)


def test_missing_and_folder_paths(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no such file"):
        load_manifest(tmp_path / "absent.json")
    with pytest.raises(ManifestError, match="is a folder"):
        load_manifest(tmp_path)


def test_canonical_bytes_equal_the_standard_library_form() -> None:
    manifest = _manifest()
    manifest.sections["env"]["UNICODE"] = {"value": "naïve ☃ \u2028", "redacted": False}
    expected = json.dumps(manifest.to_json(), sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert dumps(manifest) == expected


def test_loading_keeps_one_object_per_repeated_string() -> None:
    # The memory goal of a 100,000-package diff rests on this sharing (bench/bench_diff.py).
    manifest = _manifest()
    manifest.sections["python_packages"]["flask"] = {"name": "flask", "version": "2.31.0"}
    loaded = loads(dumps(manifest))
    packages = loaded.sections["python_packages"]
    assert packages["requests"]["version"] is packages["flask"]["version"]
    key = next(k for k in packages if k == "flask")
    assert packages["flask"]["name"] is key
    assert packages == manifest.sections["python_packages"]
