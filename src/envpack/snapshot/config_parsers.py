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
import functools
import hashlib
import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.9/3.10 only
    import tomli as tomllib

__all__ = [
    "FORMATS",
    "MAX_DEPTH",
    "MAX_FLAT_CHARS",
    "MAX_KEYS",
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
    "pem_blocks",
]

FORMATS = ("ini", "json", "yaml", "toml", "env", "keyvalue", "pem", "binary", "text")

# How many bytes of a file decide its format when its name does not.
_SNIFF_BYTES = 8192
# A one-line text file (/etc/timezone) is recorded whole when it is at most this long.
_TEXT_VALUE_MAX = 256
# Top-level keys of an INI file that has no [section] header before them (openssl.cnf).
_TOP_SECTION = "\x00top"
# The header starts and ends with a non-blank, so blanks around it match one way only.
_SECTION_HEADER = re.compile(r"\[\s*(?P<header>[^\]\s](?:[^\]]*[^\]\s])?)\s*\]")


MAX_DEPTH = 64
"""Deepest nesting flattened into keys; a deeper file is recorded without keys, with an issue."""
MAX_KEYS = 10_000
"""Most keys kept from one file; past it the file is recorded without keys, with an issue."""
MAX_FLAT_CHARS = 8 * 1024 * 1024
"""Most characters of keys and values from one file (YAML aliases can repeat a big value)."""


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


class ConfigParseError(ValueError):
    """The file is not valid in the format it was read as, or is past a limit above."""


class _Budget:
    """Counts the keys and characters one file yields; raises past :data:`MAX_KEYS` or
    :data:`MAX_FLAT_CHARS`, so a YAML alias bomb stops after a bounded amount of work."""

    def __init__(self) -> None:
        self.keys = 0
        self.chars = 0

    def take(self, key: str, value: str) -> None:
        self.keys += 1
        self.chars += len(key) + len(value)
        if self.keys > MAX_KEYS:
            raise ConfigParseError(f"more than {MAX_KEYS} keys")
        self.check_chars(self.chars)

    @staticmethod
    def check_chars(count: int) -> None:
        if count > MAX_FLAT_CHARS:
            raise ConfigParseError(f"keys and values longer than {MAX_FLAT_CHARS >> 20} MiB")


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
    """Nested dicts and lists as ``a.b.0.c -> "value"``; an empty container keeps its key.

    Raises :class:`ConfigParseError` past :data:`MAX_DEPTH`, :data:`MAX_KEYS` or
    :data:`MAX_FLAT_CHARS` (a YAML alias bomb, a self-referencing YAML list) and for an
    integer too long for Python to spell in decimal.
    """
    out: dict[str, str] = {}
    budget = _Budget()

    def put(path: str, text: str) -> None:
        out[path] = text
        budget.take(path, text)

    def walk(item: Any, path: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise ConfigParseError(f"nested deeper than {MAX_DEPTH} levels")
        budget.check_chars(len(path))
        if isinstance(item, dict):
            if not item and path:
                put(path, "{}")
            for key, sub in item.items():
                walk(sub, f"{path}.{key}" if path else str(key), depth + 1)
        elif isinstance(item, (list, tuple)):
            if not item and path:
                put(path, "[]")
            for index, sub in enumerate(item):
                walk(sub, f"{path}.{index}" if path else str(index), depth + 1)
        else:
            put(path, _scalar(item))

    try:
        walk(value, prefix, 0)
    except ValueError as err:  # str() of an int past 4300 digits (a YAML hex literal, a key)
        if isinstance(err, ConfigParseError):
            raise
        raise ConfigParseError("an integer too long to record") from err
    return out


# -- structured formats --------------------------------------------------------------------


def parse_json(text: str) -> dict[str, str]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigParseError(f"invalid JSON: {err.msg} at line {err.lineno}") from err
    except RecursionError as err:
        raise ConfigParseError(f"invalid JSON: nested deeper than {MAX_DEPTH} levels") from err
    except ValueError as err:  # a number past Python's 4300-digit limit
        raise ConfigParseError("invalid JSON: an integer too long to read") from err
    return flatten(document)


_MAX_YAML_NODES = 3 * MAX_KEYS
"""PyYAML's pure-Python loader takes ~0.1 ms a node (a 4 MB file of 250,000 keys: over a
minute); past this many nodes the file is refused before the rest is even scanned."""


@functools.lru_cache(maxsize=1)
def _bounded_loader() -> type[Any]:
    """``SafeLoader`` (same tags, same types) that stops after :data:`_MAX_YAML_NODES`."""
    import yaml

    class BoundedSafeLoader(yaml.SafeLoader):
        nodes = 0
        depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            self.nodes += 1  # the parser runs lazily, so this bounds the scanning too
            if self.nodes > _MAX_YAML_NODES:
                raise ConfigParseError(f"more than {_MAX_YAML_NODES} YAML nodes")
            # Deeper than flatten() keeps: stop now, not at the recursion limit (~4 s).
            if self.depth > MAX_DEPTH:
                raise ConfigParseError(f"nested deeper than {MAX_DEPTH} levels")
            self.depth += 1
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    return BoundedSafeLoader


def parse_yaml(text: str) -> dict[str, str]:
    """YAML with ``safe_load`` semantics; several documents are keyed by their index."""
    import yaml  # 12 ms to import; most captures have no YAML file

    try:
        documents = [doc for doc in yaml.load_all(text, _bounded_loader()) if doc is not None]
    except ConfigParseError:
        raise
    except RecursionError as err:
        raise ConfigParseError(f"invalid YAML: nested deeper than {MAX_DEPTH} levels") from err
    except ValueError as err:  # an integer past Python's 4300-digit limit
        raise ConfigParseError("invalid YAML: an integer too long to read") from err
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
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigParseError(f"invalid TOML: {err}") from err
    except RecursionError as err:
        raise ConfigParseError(f"invalid TOML: nested deeper than {MAX_DEPTH} levels") from err
    except ValueError as err:  # an integer past Python's 4300-digit limit
        raise ConfigParseError("invalid TOML: an integer too long to read") from err
    return flatten(document)


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
    except AttributeError as err:
        # configparser (3.9-3.13) crashes on an indented line that continues a key given
        # without a value ("a" then " b"): it appends to the value None.
        raise ConfigParseError("invalid INI: a continuation line after a valueless key") from err
    out: dict[str, str] = {}
    budget = _Budget()  # a long [section] name is repeated in each of its keys
    for section in parser.sections():
        items = parser.items(section, raw=True)
        if not items and section != _TOP_SECTION:
            out[section] = "{}"  # an empty section still exists; flatten() does the same
            budget.take(section, "{}")
        for key, value in items:
            name = key if section == _TOP_SECTION else f"{section}.{key}"
            out[name] = "" if value is None else value
            budget.take(name, out[name])
    return out


class _LinearParser(configparser.ConfigParser):
    r"""configparser with line patterns that cannot backtrack.

    Its own option pattern (``(?P<option>.*?)\s*…``) and a lazy section pattern take
    cubic time on a line of spaces: 40 s for one 20,000-character line. Each pattern here
    has one way to match any line. The option keeps its trailing blanks, which
    configparser strips. (With the default delimiters configparser takes ``OPTCRE_NV``
    from the class.)
    """

    OPTCRE_NV = re.compile(r"(?P<option>[^=:]*)(?:(?P<vi>[=:])\s*(?P<value>.*))?$")


def _new_parser() -> configparser.ConfigParser:
    """A reader that changes nothing: no interpolation, no inline comments, key case kept."""
    parser = _LinearParser(
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
_ENV_COMMENT = re.compile(r"(?<=\s)#")
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
            comment = _ENV_COMMENT.search(rest)  # not re.split(r"\s+#"): quadratic on blanks
            value = (rest if comment is None else rest[: comment.start()]).strip()
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

# A quoted string may run to the end of the text unclosed: a pattern that had to find the
# closing quote would rescan the rest of the file from every quote.
_APT_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"?|[{};]|[^\s{};"]+')


def _unquote(word: str) -> str:
    if not word.startswith('"'):
        return word
    return word[1:-1] if len(word) > 1 and word.endswith('"') else word[1:]


def _without_block_comments(text: str) -> str:
    """``/* … */`` removed in one pass (an unclosed one runs to the end of the text)."""
    parts: list[str] = []
    pos = 0
    while (start := text.find("/*", pos)) >= 0:
        parts.append(text[pos:start])
        end = text.find("*/", start + 2)
        if end < 0:
            pos = len(text)
            break
        parts.append(" ")
        pos = end + 2
    parts.append(text[pos:])
    return "".join(parts)


def _without_line_comment(line: str) -> str:
    """The line up to the first ``//`` outside double quotes (an even number follow it)."""
    total = line.count('"')
    seen = 0
    pos = 0
    while (at := line.find("//", pos)) >= 0:
        seen += line.count('"', pos, at)
        if (total - seen) % 2 == 0:
            return line[:at]
        pos = at + 1
    return line


def parse_apt_conf(text: str) -> dict[str, str]:
    """apt.conf syntax: ``A::b "v";`` and ``A { b "v"; };`` as ``A::b -> v``.

    Comments (``//``, ``#`` at line start, ``/* */``) are dropped; ``#include`` and
    ``#clear`` directives are ignored, since they only matter to apt itself.
    """
    text = _without_block_comments(text)
    kept = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            continue
        kept.append(_without_line_comment(line))
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
            pending.append(_unquote(word))
    if scope:
        raise ConfigParseError("invalid apt.conf: unclosed '{'")
    return out


# -- PEM -----------------------------------------------------------------------------------

_PEM_BEGIN = b"-----BEGIN "
_PEM_DASHES = b"-----"
_PEM_LABEL = re.compile(rb"[A-Z0-9 ]+")
_PEM_LABEL_MAX = 64  # RFC 7468 labels are a few words ("ENCRYPTED PRIVATE KEY")
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
    for label, armored in pem_blocks(data):
        if b"PRIVATE KEY" in label:
            private_keys += 1
            continue
        if label not in _CERT_LABELS:
            other.append(label.decode("ascii"))
            continue
        body = b"".join(armored.split())
        try:
            der = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as err:
            raise ConfigParseError("invalid PEM: a certificate block is not base64") from err
        certificates.append(hashlib.sha256(der).hexdigest())
    return PemFacts(sorted(certificates), private_keys, sorted(other))


def pem_blocks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """``(label, body)`` of each ``-----BEGIN L----- … -----END L-----`` block, in order.

    One pass, every search starting where the last one stopped: a bundle of a million
    ``BEGIN`` lines with no ``END`` costs what reading it does. (The regex this replaces
    searched to the end of the file from each ``BEGIN``: 8 s for 100 KB, hours for 4 MB.)
    A body never holds five dashes, so the first ``-----`` after a ``BEGIN`` line is its
    ``END`` line or the sign that the block is broken; a broken block is skipped.
    """
    pos = 0
    while (begin := data.find(_PEM_BEGIN, pos)) >= 0:
        label_at = begin + len(_PEM_BEGIN)
        label_end = data.find(_PEM_DASHES, label_at, label_at + _PEM_LABEL_MAX + 1)
        if label_end < 0:
            pos = label_at
            continue
        label = data[label_at:label_end]
        body_at = label_end + len(_PEM_DASHES)
        end = data.find(_PEM_DASHES, body_at)
        if end < 0:
            return
        pos = end
        if not _PEM_LABEL.fullmatch(label):
            continue
        end_line = b"-----END " + label + _PEM_DASHES
        if data.startswith(end_line, end):
            yield label, data[body_at:end]
            pos = end + len(end_line)


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
_SECTION_LINE = re.compile(rb"^[ \t]*\[[^\]\n]+\][ \t]*$", re.M)
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
        except (UnicodeDecodeError, ValueError, RecursionError):
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
    # The first 256 bytes of a line decide: the pattern backtracks over long runs of blanks.
    if lines and all(_KEYVALUE_LINE.match(line[:256]) for line in lines):
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
