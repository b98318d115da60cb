"""The manifest: envpack's one shared model, its canonical JSON and its validation.

A manifest is a JSON object::

    {"schema_version": 1, "meta": {...}, "issues": [...],
     "interpreters": {key: component, ...}, "python_packages": {...}, ...}

Every section is a keyed collection: an object whose keys are the identities the diff
matches on and whose values are JSON objects (components). Canonical JSON (sorted keys,
two-space indent, a final newline) makes two captures of an unchanged environment
byte-identical when the capture time is fixed with ``SOURCE_DATE_EPOCH``.

Loading checks the structure by hand rather than with the JSON Schema: it must stay fast
on manifests of 100,000 packages. The JSON Schema (``envpack schema``) describes the same
format for other tools, and the tests check every manifest envpack writes against it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Union

import orjson

from envpack._inputfile import MANIFEST_LIMIT, read_bounded, read_stdin
from envpack.errors import ManifestError
from envpack.fsnames import escape, has_surrogates

__all__ = [
    "CAPTURED",
    "COVERAGE_STATES",
    "NOT_APPLICABLE",
    "NOT_CAPTURED",
    "SCHEMA_VERSION",
    "SECTIONS",
    "Component",
    "Issue",
    "JSONValue",
    "Manifest",
    "Meta",
    "Section",
    "dumps",
    "load_manifest",
    "loads",
    "schema_text",
]

SCHEMA_VERSION = 1
"""The manifest format this envpack writes, and the newest one it reads."""

SECTIONS: tuple[str, ...] = (
    "interpreters",
    "python_packages",
    "os",
    "system_packages",
    "binaries",
    "libraries",
    "config_files",
    "env",
    "network",
)
"""The keyed sections, in the order reports list them.

There is no ``app`` section: one was reserved in schema 1 but no probe ever filled it (the
application's files reach an image through ``build --app DIR``, not through the manifest).
A manifest holding one still validates and loads; the section is ignored."""

CAPTURED = "captured"
"""The section's probe ran: an empty section then means really empty."""
NOT_CAPTURED = "not_captured"
"""The user skipped the section (``--only``)."""
NOT_APPLICABLE = "not_applicable"
"""The section cannot apply to this kind of source (or no probe records it)."""
COVERAGE_STATES: tuple[str, ...] = (CAPTURED, NOT_CAPTURED, NOT_APPLICABLE)
"""The values of ``meta.coverage``."""

JSONValue = Union[None, bool, int, float, str, list[Any], dict[str, Any]]
Component = dict[str, Any]
"""One entry of a section: a JSON object whose fields the diff compares one by one."""
Section = dict[str, Component]


@dataclass(frozen=True)
class Issue:
    """Something a probe could not read. A partial capture is data, not a crash."""

    probe: str
    """The probe that met the problem (``python_packages``, ``system_packages`` …)."""
    path: str
    """Where: a path inside the source, or an interpreter, or ``""``."""
    reason: str
    """What went wrong, in words a user can act on."""

    def to_json(self) -> dict[str, str]:
        return {"probe": self.probe, "path": self.path, "reason": self.reason}


@dataclass(frozen=True)
class Meta:
    """Who captured what, where and when."""

    envpack_version: str
    captured_at: str
    """ISO 8601 UTC; fixed by ``SOURCE_DATE_EPOCH`` for reproducible captures."""
    source_kind: str
    """``live``, ``root`` or ``image``."""
    source: str
    """A description of the source: a hostname, a folder, an image reference."""
    hostname: str
    label: str | None = None
    """The ``--label`` given to capture (``dev``, ``prod``); reports name environments by it."""
    coverage: dict[str, str] = field(default_factory=dict)
    """Section name → ``captured``, ``not_captured`` or ``not_applicable``. A section not
    listed (and every section of a manifest written before coverage was recorded) counts
    as captured: see :meth:`Manifest.coverage_of`."""

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "envpack_version": self.envpack_version,
            "captured_at": self.captured_at,
            "source": {"kind": self.source_kind, "description": self.source},
            "hostname": self.hostname,
            "label": self.label,
        }
        if self.coverage:
            document["coverage"] = dict(self.coverage)
        return document

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Meta:
        source = data.get("source") or {}
        return cls(
            envpack_version=str(data.get("envpack_version", "")),
            captured_at=str(data.get("captured_at", "")),
            source_kind=str(source.get("kind", "")),
            source=str(source.get("description", "")),
            hostname=str(data.get("hostname", "")),
            label=data.get("label"),
            coverage=dict(data.get("coverage") or {}),
        )


@dataclass
class Manifest:
    """A captured environment."""

    meta: Meta
    sections: dict[str, Section] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    def section(self, name: str) -> Section:
        """The named section; an empty one when it was not captured."""
        return self.sections.get(name, {})

    def coverage_of(self, section: str) -> str:
        """Whether ``section`` was captured: one of :data:`COVERAGE_STATES`.

        A manifest without ``meta.coverage`` (written before envpack recorded it) counts
        every section as captured, as those captures always ran every probe.
        """
        return self.meta.coverage.get(section, CAPTURED)

    @property
    def name(self) -> str:
        """How reports name this environment: its label, else its hostname."""
        return self.meta.label or self.meta.hostname or self.meta.source

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "schema_version": self.schema_version,
            "meta": self.meta.to_json(),
            "issues": [
                issue.to_json()
                for issue in sorted(set(self.issues), key=lambda i: (i.probe, i.path, i.reason))
            ],
        }
        for name in SECTIONS:
            if name in self.sections:
                document[name] = self.sections[name]
        return document


_CANONICAL = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE


def dumps(manifest: Manifest) -> str:
    """Canonical JSON: sorted keys, two-space indent, UTF-8 text, a final newline.

    The bytes are exactly ``json.dumps(sort_keys=True, indent=2, ensure_ascii=False)``
    plus a newline (a test holds both to it); orjson writes them ~20x faster, which is a
    third of a warm capture's time with the standard library's indenting encoder.
    """
    document = manifest.to_json()
    try:
        return orjson.dumps(document, option=_CANONICAL).decode("utf-8")
    except TypeError as err:
        if "surrogates" not in str(err):  # a probe put a non-JSON value in a component: a bug
            raise ValueError(f"manifest holds a value JSON cannot represent: {err}") from err
    # A name with bytes that are not UTF-8 that no probe escaped: record it the same way.
    return orjson.dumps(escape_surrogates(document), option=_CANONICAL).decode("utf-8")


def escape_surrogates(value: Any) -> Any:
    """``value`` with every string holding a lone surrogate in recorded form (fsnames).

    Keys and values alike; everything else is returned as it is (the same objects).
    """
    if isinstance(value, str):
        return escape(value) if has_surrogates(value) else value
    if isinstance(value, dict):
        return {escape_surrogates(k): escape_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [escape_surrogates(item) for item in value]
    return value


def loads(data: bytes | str, *, origin: str = "<manifest>") -> Manifest:
    """Parse and check a manifest; raise :class:`ManifestError` with one clear line.

    Parsing uses the standard library, not orjson: on a 100,000-package manifest its
    memoised keys make the parsed document ~35% smaller, and a diff holds two of them.
    """
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ManifestError(f"{origin}: not an envpack manifest (not UTF-8 text)") from err
    else:
        text = data
    if not text.strip():
        raise ManifestError(f"{origin}: empty file, not an envpack manifest")
    try:
        document = json.loads(text, object_hook=_string_sharer())
    except json.JSONDecodeError as err:
        what = "truncated" if _ends_mid_document(text, err) else "invalid JSON"
        raise ManifestError(
            f"{origin}: {what} (line {err.lineno}, column {err.colno}: {err.msg})"
        ) from err
    except RecursionError as err:
        raise ManifestError(f"{origin}: not an envpack manifest (nested too deeply)") from err
    except ValueError as err:  # an integer past Python's digit limit, say
        raise ManifestError(f"{origin}: invalid JSON ({str(err).splitlines()[0]})") from err
    if _JSON_SURROGATE.search(text) is not None:  # written by something else: no report
        document = escape_surrogates(document)  # may print a lone surrogate
    return _from_document(document, origin)


_JSON_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


# What may follow the decoder's error position when the text is a cut-off JSON document:
# nothing but blanks, an unterminated string, or the start of a literal or of a number.
_CUT_STRING = re.compile(r'"(?:[^"\\\x00-\x1f]|\\.)*\\?')
_CUT_ESCAPE = re.compile(r"u[0-9a-fA-F]{0,4}")  # four: the decoder wants a closing quote
_LITERALS = ("true", "false", "null", "NaN", "Infinity", "-Infinity")  # "-" starts a number too
_CUT_NUMBER_TAIL = re.compile(r"\.|[eE][-+]?")


def _ends_mid_document(text: str, err: json.JSONDecodeError) -> bool:
    """Whether ``text`` is a JSON document cut short rather than a malformed one.

    The decoder stops at the first token it cannot use. Text cut mid-document is a valid
    prefix of JSON, so that token must run to the end of the text: blanks, an unfinished
    string (its escape included), an unfinished literal, or an unfinished number's
    fraction or exponent (``1.``, ``2e-``), which the decoder leaves after the digits.
    """
    tail = text[err.pos :]
    if not tail.strip():
        return True
    if err.msg.startswith("Unterminated string"):  # the tail starts at its opening quote
        return _CUT_STRING.fullmatch(tail) is not None
    if err.msg.startswith("Invalid \\uXXXX escape"):  # the tail starts at the ``u``
        return _CUT_ESCAPE.fullmatch(tail) is not None
    if err.msg == "Expecting value":
        return any(literal.startswith(tail) for literal in _LITERALS)
    if err.msg.startswith("Expecting"):  # a delimiter, where a number's digits stopped
        after_digit = text[err.pos - 1 : err.pos].isdigit()
        return after_digit and _CUT_NUMBER_TAIL.fullmatch(tail) is not None
    return False


def _string_sharer() -> Callable[[dict[str, Any]], dict[str, Any]]:
    """An ``object_hook`` that keeps one object per distinct string value.

    Components repeat the same strings again and again (the interpreter path, the
    site-packages folder, "pip", "dist-info"), and the parser makes a new object for each.
    Sharing them as each object is parsed, not afterwards, means the copies never pile up:
    a 100,000-package manifest peaks at ~2.1x its size instead of ~2.7x, for ~20% more
    parse time. A component's ``name`` equal to its key shares the key's object too.
    """
    seen: dict[str, str] = {}
    share = seen.setdefault

    def hook(obj: dict[str, Any]) -> dict[str, Any]:
        for key, value in obj.items():
            if value.__class__ is str:
                obj[key] = share(value, value)
            elif value.__class__ is dict and value.get("name") == key:
                value["name"] = key  # the section's key: one object for both
        return obj

    return hook


def load_manifest(path: str | Path) -> Manifest:
    """Read a manifest from a file, from standard input when ``path`` is ``-``, or from a
    registry when it is ``registry:HOST/REPO:TAG`` (pushed by ``capture --push``)."""
    if str(path).startswith("registry:"):
        from envpack.registry.artifact import pull_manifest
        from envpack.registry.refs import RegistryRef

        data = pull_manifest(RegistryRef.parse(str(path)), limit=MANIFEST_LIMIT)
        return loads(data, origin=str(path))
    if str(path) == "-":
        data = read_stdin(limit=MANIFEST_LIMIT, what="manifest", error=ManifestError)
        return loads(data, origin="<stdin>")
    data = read_bounded(
        path,
        limit=MANIFEST_LIMIT,
        what="manifest file",
        error=ManifestError,
        missing="no such file",
    )
    return loads(data, origin=str(path))


def _from_document(document: object, origin: str) -> Manifest:
    if not isinstance(document, dict) or "schema_version" not in document:
        raise ManifestError(f"{origin}: not an envpack manifest (no schema_version)")
    version = document["schema_version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ManifestError(f"{origin}: not an envpack manifest (bad schema_version {version!r})")
    if version > SCHEMA_VERSION:
        raise ManifestError(
            f"{origin}: written by a newer envpack (schema {version}); "
            f"this one reads up to {SCHEMA_VERSION}"
        )
    meta = document.get("meta")
    if not isinstance(meta, dict) or not isinstance(meta.get("source", {}), dict):
        raise ManifestError(f"{origin}: not an envpack manifest (no meta object)")
    _check_coverage(meta.get("coverage", {}), origin)
    sections: dict[str, Section] = {}
    for name in SECTIONS:
        if name not in document:
            continue
        section = document[name]
        if not isinstance(section, dict):
            raise ManifestError(f"{origin}: damaged manifest: section {name!r} is not an object")
        for key, component in section.items():
            if not isinstance(component, dict):
                raise ManifestError(f"{origin}: damaged manifest: {name}[{key!r}] is not an object")
        sections[name] = section
    raw_issues = document.get("issues", [])
    if not isinstance(raw_issues, list) or not all(isinstance(i, dict) for i in raw_issues):
        raise ManifestError(f"{origin}: damaged manifest: 'issues' is not a list of objects")
    issues = [
        Issue(str(i.get("probe", "")), str(i.get("path", "")), str(i.get("reason", "")))
        for i in raw_issues
    ]
    return Manifest(
        meta=Meta.from_json(meta), sections=sections, issues=issues, schema_version=version
    )


def _check_coverage(coverage: object, origin: str) -> None:
    if not isinstance(coverage, dict):
        raise ManifestError(f"{origin}: damaged manifest: 'meta.coverage' is not an object")
    for name, state in coverage.items():
        if state not in COVERAGE_STATES:
            raise ManifestError(
                f"{origin}: damaged manifest: meta.coverage[{name!r}] is {state!r}, "
                f"not one of {', '.join(COVERAGE_STATES)}"
            )


def schema_text() -> str:
    """The JSON Schema of manifest v1, as shipped inside the package."""
    return (
        resources.files("envpack")
        .joinpath("schema")
        .joinpath(f"manifest-v{SCHEMA_VERSION}.schema.json")
        .read_text(encoding="utf-8")
    )
