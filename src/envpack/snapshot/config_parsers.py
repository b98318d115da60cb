"""One parse function per config file format, each giving flat ``key -> string`` pairs.

Flat keys let a diff say *which* key changed: ``global.index-url`` in an INI file,
``database.replicas.0.host`` in YAML. Values are strings (``true``, ``3``, ``null`` for JSON
scalars) so that every format compares the same way. Redaction is not done here: the probe
owns the redactor and applies it to the flat keys these functions return.

Every parser raises :class:`ConfigParseError` with a one-line reason on malformed input.
"""

from __future__ import annotations

import base64
import binascii
import configparser
import datetime as _dt
import hashlib
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.9/3.10 only
    import tomli as tomllib

__all__ = [
    "FORMATS",
    "PARSERS",
    "ConfigParseError",
    "PemFacts",
    "detect_format",
    "flatten",
    "parse_apt_conf",
    "parse_env",
    "parse_ini",
    "parse_json",
    "parse_keyvalue",
    "parse_pem",
    "parse_text",
    "parse_toml",
    "parse_yaml",
]

FORMATS = ("ini", "json", "yaml", "toml", "env", "keyvalue", "pem", "binary", "text")

# How many bytes of a file decide its format when its name does not.
_SNIFF_BYTES = 8192
# A one-line text file (/etc/timezone) is recorded whole when it is at most this long.
_TEXT_VALUE_MAX = 256
# Top-level keys of an INI file that has no [section] header before them (openssl.cnf).
_TOP_SECTION = "\x00top"
_SECTION_HEADER = re.compile(r"\[\s*(?P<header>[^\]]+?)\s*\]")


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


class ConfigParseError(ValueError):
    """The file is not valid in the format it was read as."""


# -- flattening ----------------------------------------------------------------------------


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (_dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    # JSON spelling for bool/None/numbers so that YAML, TOML and JSON agree ("true", "null").
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return str(value)


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """Nested dicts and lists as ``a.b.0.c -> "value"``; an empty container keeps its key."""
    out: dict[str, str] = {}

    def walk(item: Any, path: str) -> None:
        if isinstance(item, dict):
            if not item and path:
                out[path] = "{}"
            for key, sub in item.items():
                walk(sub, f"{path}.{key}" if path else str(key))
        elif isinstance(item, (list, tuple)):
            if not item and path:
                out[path] = "[]"
            for index, sub in enumerate(item):
                walk(sub, f"{path}.{index}" if path else str(index))
        else:
            out[path] = _scalar(item)

    walk(value, prefix)
    return out


# -- structured formats --------------------------------------------------------------------


def parse_json(text: str) -> dict[str, str]:
    try:
        return flatten(json.loads(text))
    except json.JSONDecodeError as err:
        raise ConfigParseError(f"invalid JSON: {err.msg} at line {err.lineno}") from err


def parse_yaml(text: str) -> dict[str, str]:
    """YAML with ``safe_load`` semantics; several documents are keyed by their index."""
    import yaml  # 12 ms to import; most captures have no YAML file

    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        problem = getattr(err, "problem", None) or type(err).__name__
        # PyYAML quotes the offending text ("found undefined alias 'x'"): drop the quotes'
        # content, which may be a secret, and keep the kind of problem.
        problem = _QUOTED.sub("…", problem)
        raise ConfigParseError(f"invalid YAML: {problem}{line}") from err
    if len(documents) == 1:
        return flatten(documents[0])
    return flatten(documents)


def parse_toml(text: str) -> dict[str, str]:
    try:
        return flatten(tomllib.loads(text))
    except tomllib.TOMLDecodeError as err:
        raise ConfigParseError(f"invalid TOML: {err}") from err


def parse_ini(text: str) -> dict[str, str]:
    """INI/cfg as ``section.key``. No interpolation: ``%(x)s`` and ``$var`` stay as written.

    Keys before the first ``[section]`` (openssl.cnf does this) are recorded bare. A key
    given twice keeps the last value, as most INI readers do.
    """
    parser = _new_parser()
    try:
        try:
            parser.read_string(text)
        except configparser.MissingSectionHeaderError:
            parser = _new_parser()
            parser.read_string(f"[{_TOP_SECTION}]\n{text}")
    except configparser.ParsingError as err:
        # The line itself is never quoted: it may hold a secret, and issues travel.
        lineno = err.errors[0][0]
        raise ConfigParseError(f"invalid INI: line {lineno}: not a [section] or key line") from err
    except configparser.Error as err:
        raise ConfigParseError(f"invalid INI: {type(err).__name__}") from err
    out: dict[str, str] = {}
    for section in parser.sections():
        items = parser.items(section, raw=True)
        if not items and section != _TOP_SECTION:
            out[section] = "{}"  # an empty section still exists; flatten() does the same
        for key, value in items:
            name = key if section == _TOP_SECTION else f"{section}.{key}"
            out[name] = "" if value is None else value
    return out


def _new_parser() -> configparser.ConfigParser:
    """A reader that changes nothing: no interpolation, no inline comments, key case kept."""
    parser = configparser.ConfigParser(
        interpolation=None,
        strict=False,
        allow_no_value=True,
        delimiters=("=", ":"),
        comment_prefixes=("#", ";"),
        inline_comment_prefixes=None,
        default_section="\x00default",  # no section inherits from another
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep key case
    parser.SECTCRE = _SECTION_HEADER  # "[ CA_default ]" in openssl.cnf is "CA_default"
    return parser


# -- line formats --------------------------------------------------------------------------

_ENV_LINE = re.compile(r"^(?:export\s+)?(?P<key>[A-Za-z_][A-Za-z0-9_.\-]*)\s*=\s*(?P<rest>.*)$")
_DOUBLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


def parse_env(text: str) -> dict[str, str]:
    """A dotenv file: ``KEY=value``, ``export KEY="value"``, quotes and ``#`` comments.

    Single quotes are literal; double quotes understand ``\\n``, ``\\"`` and ``\\\\`` and
    may span lines; an unquoted value ends at `` #``. A later key overrides an earlier one.
    """
    out: dict[str, str] = {}
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index].strip()
        index += 1
        if not line or line.startswith("#"):
            continue
        match = _ENV_LINE.match(line)
        if match is None:
            raise ConfigParseError(f"invalid .env line {index}: expected KEY=value")
        rest = match["rest"]
        if rest.startswith('"'):
            value, index = _double_quoted(rest[1:], lines, index)
        elif rest.startswith("'"):
            end = rest.find("'", 1)
            if end < 0:
                raise ConfigParseError(f"invalid .env line {index}: unterminated ' quote")
            value = rest[1:end]
        else:
            value = re.split(r"\s+#", rest, maxsplit=1)[0].strip()
        out[match["key"]] = value
    return out


def _double_quoted(rest: str, lines: list[str], index: int) -> tuple[str, int]:
    start = index
    chars: list[str] = []
    text = rest
    while True:
        position = 0
        while position < len(text):
            char = text[position]
            if char == "\\" and position + 1 < len(text):
                nxt = text[position + 1]
                chars.append(_DOUBLE_ESCAPES.get(nxt, "\\" + nxt))
                position += 2
                continue
            if char == '"':
                return "".join(chars), index
            chars.append(char)
            position += 1
        if index >= len(lines):
            raise ConfigParseError(f'invalid .env line {start}: unterminated " quote')
        chars.append("\n")
        text = lines[index]
        index += 1


def parse_keyvalue(text: str) -> dict[str, str]:
    """Lines of ``key=value``, ``key: value`` or ``key value`` with ``#`` comments.

    This covers resolv.conf, hosts (``ip -> names``), nsswitch.conf and gai.conf. A key
    given on several lines keeps every value, in file order, joined with ``", "``.
    """
    values: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.match(r"^(?P<key>[^\s=:]+)\s*(?:[=:]\s*|\s+|$)(?P<value>.*)$", line)
        if match is None:  # a line starting with "=" or ":"; keep it whole, it is data
            key, value = line, ""
        else:
            key, value = match["key"], " ".join(match["value"].split())
        values.setdefault(key, []).append(value)
    return {key: ", ".join(found) for key, found in values.items()}


def parse_text(text: str) -> dict[str, str]:
    """A one-line text file (``/etc/timezone``) as ``value``; longer text: no keys."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) == 1 and len(lines[0]) <= _TEXT_VALUE_MAX:
        return {"value": lines[0]}
    return {}


# -- apt.conf ------------------------------------------------------------------------------

_APT_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{};]|[^\s{};"]+')


def parse_apt_conf(text: str) -> dict[str, str]:
    """apt.conf syntax: ``A::b "v";`` and ``A { b "v"; };`` as ``A::b -> v``.

    Comments (``//``, ``#`` at line start, ``/* */``) are dropped; ``#include`` and
    ``#clear`` directives are ignored, since they only matter to apt itself.
    """
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    kept = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            continue
        kept.append(re.sub(r'//(?=(?:[^"]*"[^"]*")*[^"]*$).*', "", line))
    tokens = _APT_TOKEN.findall("\n".join(kept))
    out: dict[str, str] = {}
    scope: list[str] = []
    pending: list[str] = []
    for word in tokens:
        if word == "{":
            scope.append("::".join(pending) if pending else "")
            pending = []
        elif word == "}":
            if not scope:
                raise ConfigParseError("invalid apt.conf: unbalanced '}'")
            scope.pop()
            pending = []
        elif word == ";":
            if len(pending) >= 2:
                name = "::".join([s for s in scope if s] + [pending[0]])
                out[name] = pending[-1]
            pending = []
        else:
            pending.append(word[1:-1] if word.startswith('"') else word)
    if scope:
        raise ConfigParseError("invalid apt.conf: unclosed '{'")
    return out


# -- PEM -----------------------------------------------------------------------------------

_PEM_BLOCK = re.compile(
    rb"-----BEGIN (?P<label>[A-Z0-9 ]+)-----\s*(?P<body>.*?)-----END (?P=label)-----", re.S
)
_CERT_LABELS = (b"CERTIFICATE", b"TRUSTED CERTIFICATE", b"X509 CERTIFICATE")


@dataclass(frozen=True)
class PemFacts:
    """What a PEM file holds, without a crypto library."""

    certificates: list[str] = field(default_factory=list)
    """SHA-256 of each certificate's DER bytes (the usual certificate fingerprint), sorted."""
    private_keys: int = 0
    """How many private key blocks; their content is never recorded."""
    other: list[str] = field(default_factory=list)
    """Labels of any other blocks (``PUBLIC KEY``, ``X509 CRL`` …), sorted."""


def parse_pem(data: bytes) -> PemFacts:
    """Count and fingerprint the blocks of a PEM file (CA bundle, certificate chain)."""
    certificates: list[str] = []
    other: list[str] = []
    private_keys = 0
    for match in _PEM_BLOCK.finditer(data):
        label = match["label"]
        if b"PRIVATE KEY" in label:
            private_keys += 1
            continue
        if label not in _CERT_LABELS:
            other.append(label.decode("ascii"))
            continue
        body = b"".join(match["body"].split())
        try:
            der = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as err:
            raise ConfigParseError("invalid PEM: a certificate block is not base64") from err
        certificates.append(hashlib.sha256(der).hexdigest())
    return PemFacts(sorted(certificates), private_keys, sorted(other))


# -- choosing a format ---------------------------------------------------------------------

_BY_SUFFIX = {
    ".ini": "ini",
    ".cfg": "ini",
    ".cnf": "ini",
    ".json": "json",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".toml": "toml",
    ".env": "env",
    ".pem": "pem",
    ".crt": "pem",
}
_BY_NAME = {
    "pip.conf": "ini",
    "pip.ini": "ini",
    ".env": "env",
    "hosts": "keyvalue",
    "resolv.conf": "keyvalue",
    "nsswitch.conf": "keyvalue",
    "gai.conf": "keyvalue",
    "host.conf": "keyvalue",
    "timezone": "text",
    "hostname": "text",
    "localtime": "binary",
    "ca-bundle.crt": "pem",
    "cert.pem": "pem",
}
_SECTION_LINE = re.compile(rb"^\s*\[[^\]\n]+\]\s*$", re.M)
_KEYVALUE_LINE = re.compile(rb"^\s*[A-Za-z0-9_.\-:]+\s*[=:\s]\s*\S", re.M)


def detect_format(path: str, head: bytes) -> str:
    """The format of a file, from its name first and its first bytes otherwise."""
    name = path.rsplit("/", 1)[-1]
    if name in _BY_NAME:
        return _BY_NAME[name]
    if name.startswith(".env") or name.endswith(".env"):
        return "env"
    dot = name.rfind(".")
    if dot > 0 and name[dot:].lower() in _BY_SUFFIX:
        return _BY_SUFFIX[name[dot:].lower()]
    return _sniff(head[:_SNIFF_BYTES])


def _sniff(head: bytes) -> str:
    if b"\x00" in head:
        return "binary"
    stripped = head.lstrip()
    if stripped.startswith(b"-----BEGIN "):
        return "pem"
    if stripped[:1] in (b"{", b"["):
        try:
            json.loads(head.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            pass
        else:
            return "json"
    if _SECTION_LINE.search(head):
        return "ini"
    lines = [
        line for line in head.splitlines() if line.strip() and line.lstrip()[:1] not in (b"#", b";")
    ]
    if lines and re.match(rb"^\s*export\s+\w+=", lines[0]):
        return "env"
    if lines and all(_KEYVALUE_LINE.match(line) for line in lines):
        return "keyvalue"
    return "text"


Parser = Callable[[str], dict[str, str]]

PARSERS: dict[str, Parser] = {
    "ini": parse_ini,
    "json": parse_json,
    "yaml": parse_yaml,
    "toml": parse_toml,
    "env": parse_env,
    "keyvalue": parse_keyvalue,
    "text": parse_text,
}
"""The text formats; ``pem`` and ``binary`` are handled on bytes by the probe."""
