"""The os, system_packages and env sections of real captures satisfy the shipped JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envpack.manifest import dumps, schema_text
from envpack.redact import Redactor
from envpack.snapshot.capture import capture
from envpack.snapshot.context import CaptureOptions
from envpack.snapshot.source import Source

jsonschema = pytest.importorskip("jsonschema")
ROOTFS = Path(__file__).resolve().parents[2] / "fixtures" / "rootfs"
SECTIONS = frozenset({"os", "system_packages", "env"})


@pytest.mark.parametrize("where", ["live", "alpine-mini", "rpm-mini", "/"])
def test_captures_validate(where: str) -> None:
    if where == "live":
        source = Source.live({"LANG": "C.UTF-8", "TZ": "Europe/Paris", "API_TOKEN": "x"})
    elif where == "/":
        source = Source.rootfs("/")
    else:
        source = Source.rootfs(ROOTFS / where)
    manifest = capture(
        source,
        CaptureOptions(only=SECTIONS),
        Redactor(b"k"),
        environ={"SOURCE_DATE_EPOCH": "0"},
    )
    document = json.loads(dumps(manifest))
    jsonschema.validate(document, json.loads(schema_text()))
    assert set(document) >= SECTIONS


def test_the_schema_rejects_what_the_probes_never_write() -> None:
    schema = json.loads(schema_text())
    defs = schema["$defs"]
    resolver_schema = {"$defs": defs}
    bad = [
        ("system_packages_component", {"name": "x", "version": "1", "manager": "pacman"}),
        ("system_packages_component", {"name": "x", "manager": "dpkg"}),
        ("env_component", {"value": "v"}),
        ("env_component", {"value": "v", "redacted": "no"}),
        ("os_component", {"family": "bionic"}),
        ("os_component", {"machine": "x86_64"}),
    ]
    for name, instance in bad:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(instance, {**resolver_schema, "$ref": f"#/$defs/{name}"})
