"""Parsers for the files people keep credentials in, chosen by the file's name.

A generic ``key: value`` reading splits ``machine h login u password X`` or
``https://u:pw@host`` at the first ``:`` and hands the redactor keys that mean nothing;
these parsers give keys that name what the value is (``machine.h.password``,
``https://host.password``), so the one redaction policy hides exactly the secret and the
diff still says which host or registry changed. Values are returned in clear: the
config-files probe passes every key through :meth:`envpack.redact.Redactor.flat_keys`.

Formats that the generic parsers already read right are only mapped by name here:
``.pypirc``, AWS's ``credentials`` and ``gitconfig`` are INI (a ``[http "https://u:pw@h"]``
header becomes part of the key, which the policy cleans), Docker's ``config.json`` is
JSON (``auths.<registry>.auth``, ``identitytoken``), ``.env`` is dotenv.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from urllib.parse import urlsplit

from envpack.snapshot.config_parsers import ConfigParseError

__all__ = [
    "SECRET_PARSERS",
    "parse_git_credentials",
    "parse_netrc",
    "parse_npmrc",
    "parse_pgpass",
    "secret_format",
]

_BY_NAME = {
    ".netrc": "netrc",
    "_netrc": "netrc",
    ".git-credentials": "git-credentials",
    ".npmrc": "npmrc",
    "npmrc": "npmrc",
    ".yarnrc": "npmrc",
    ".pgpass": "pgpass",
    ".pypirc": "ini",
    "credentials": "ini",  # ~/.aws/credentials
    ".gitconfig": "ini",
    "gitconfig": "ini",
    ".env": "env",
}
# apt's credentials (apt_auth.conf(5)) are netrc lines.
_APT_AUTH = re.compile(r"^/etc/apt/auth\.conf(?:\.d/[^/]+)?$")
# git's own config files (~/.config/git/config, a repository's .git/config).
_GIT_CONFIG = re.compile(r"(?:^|/)(?:\.git|git)/config$")
_DOCKER_CONFIG = re.compile(r"(?:^|/)\.docker/config\.json$")


def secret_format(path: str) -> str | None:
    """The format of a credentials file by its path, or ``None`` for any other file."""
    name = path.rsplit("/", 1)[-1]
    if name in _BY_NAME:
        return _BY_NAME[name]
    if _APT_AUTH.match(path):
        return "netrc"
    if _GIT_CONFIG.search(path):
        return "ini"
    if _DOCKER_CONFIG.search(path):
        return "json"
    return None


def _words(text: str, what: str) -> list[str]:
    try:
        return shlex.split(text, comments=True, posix=True)
    except ValueError as err:  # an unclosed quote; the message quotes nothing of the file
        raise ConfigParseError(f"invalid {what}: {err}") from err


def parse_netrc(text: str) -> dict[str, str]:
    """``machine HOST login U password P account A`` (and ``default``) as
    ``machine.HOST.login``, ``machine.HOST.password`` …; ``macdef`` bodies are skipped
    (they are commands, up to the next empty line)."""
    out: dict[str, str] = {}
    kept: list[str] = []
    in_macro = False
    for line in text.splitlines():
        if in_macro:
            in_macro = bool(line.strip())
            continue
        if re.match(r"\s*macdef\b", line):
            in_macro = True
            continue
        kept.append(line)
    words = _words("\n".join(kept), ".netrc")
    entry: str | None = None
    index = 0
    while index < len(words):
        word = words[index]
        if word == "default":
            entry, index = "default", index + 1
            continue
        if index + 1 >= len(words):
            raise ConfigParseError("invalid .netrc: a keyword without its value")
        value = words[index + 1]
        if word == "machine":
            entry = f"machine.{value}"
        elif entry is None:
            raise ConfigParseError("invalid .netrc: a field before any machine")
        else:
            out[f"{entry}.{word}"] = value
        index += 2
    return out


def parse_git_credentials(text: str) -> dict[str, str]:
    """One URL a line, ``https://user:password@host[/path]``, as ``URL.username`` and
    ``URL.password`` keyed by the URL without its credentials."""
    out: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            parts = urlsplit(line)
            host = parts.hostname or ""
            port = parts.port
        except ValueError as err:
            raise ConfigParseError(f"invalid .git-credentials line {number}: not a URL") from err
        if not parts.scheme or not host:
            raise ConfigParseError(f"invalid .git-credentials line {number}: not a URL")
        where = f"{parts.scheme}://{host}{f':{port}' if port else ''}{parts.path}"
        out[f"{where}.username"] = parts.username or ""
        out[f"{where}.password"] = parts.password or ""
    return out


def parse_npmrc(text: str) -> dict[str, str]:
    """npm's ini: ``key = value`` split at the first ``=`` (the key itself holds ``:``, as in
    ``//registry.example/:_authToken``), ``#``/``;`` comments, ``[section]`` prefixes."""
    out: dict[str, str] = {}
    section = ""
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            continue
        key, equals, value = line.partition("=")
        if not equals:
            raise ConfigParseError(f"invalid .npmrc line {number}: expected key = value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        name = key.strip()
        out[f"{section}.{name}" if section else name] = value
    return out


def parse_pgpass(text: str) -> dict[str, str]:
    """``host:port:database:user:password`` lines (``\\:`` escapes a colon) as
    ``host:port:database:user.password``."""
    out: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = [f.replace("\\:", ":").replace("\\\\", "\\") for f in re.split(r"(?<!\\):", line)]
        if len(fields) < 5:
            raise ConfigParseError(f"invalid .pgpass line {number}: expected 5 fields")
        out[":".join(fields[:4]) + ".password"] = ":".join(fields[4:])
    return out


SECRET_PARSERS: dict[str, Callable[[str], dict[str, str]]] = {
    "netrc": parse_netrc,
    "git-credentials": parse_git_credentials,
    "npmrc": parse_npmrc,
    "pgpass": parse_pgpass,
}
"""The formats of this module; the others it names (ini, json, env) are the generic ones."""
