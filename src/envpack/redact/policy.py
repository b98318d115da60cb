"""The redaction policy: what every probe records in place of a value that may be secret.

One object, :class:`Redactor`, answers for every place a captured string lands — env
values, config keys and their values, proxies, URLs, issue reasons — so a secret hidden
in one section cannot appear in clear in another:

- a value under a secret-looking name (:func:`~envpack.redact.names.is_secret_name`, any
  segment of a nested key) is replaced whole by its fingerprint;
- any other text keeps its shape, each secret found inside it by the detectors of
  :mod:`envpack.redact.values` replaced by ``{hmac-sha256:…}``;
- a text too long to scan is replaced whole.

:func:`mask` does the same without a key (``{redacted}``) for error messages, which are
printed once and never compared.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from envpack.redact.names import is_secret_name
from envpack.redact.values import SCAN_LIMIT, secret_spans

__all__ = ["FINGERPRINT_PREFIX", "Redactor", "mask"]

FINGERPRINT_PREFIX = "hmac-sha256:"
# 128 bits of the HMAC: plenty to tell secrets apart, short enough to read in a report.
_FINGERPRINT_HEX_CHARS = 32
# A flat key "env.1.value" whose sibling "env.1.name" is DB_PASSWORD (Kubernetes, Helm):
# the value is secret because of the name beside it.
_VALUE_FIELDS = frozenset({"value", "val"})
_NAME_FIELDS = ("name", "key")
# A redacted value that is only a reference (a path, a $variable) reveals nothing by the
# file's plain hash, so it does not make the file secret: openssl.cnf's private_key = path.
_REFERENCE = ("/", "$", "~", "./", "../")


def _replace(
    text: str, spans: list[tuple[int, int]], hide: str | None, redactor: Redactor | None
) -> str:
    parts: list[str] = []
    last = 0
    for start, end in spans:
        parts.append(text[last:start])
        shown = hide if redactor is None else redactor.fingerprint(text[start:end])
        parts.append(f"{{{shown}}}")
        last = end
    parts.append(text[last:])
    return "".join(parts)


def mask(text: str) -> str:
    """``text`` with every secret the detectors find replaced by ``{redacted}`` (no key
    needed: for one-off messages such as the CLI's error line)."""
    if len(text) > SCAN_LIMIT:
        return "{redacted}"
    spans = secret_spans(text)
    return _replace(text, spans, "redacted", None) if spans else text


class Redactor:
    """Replaces secrets by keyed fingerprints, the same way for every probe."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def fingerprint(self, value: str | bytes) -> str:
        """``hmac-sha256:<hex>`` for ``value``; equal values give equal fingerprints."""
        data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
        digest = hmac.new(self._key, data, hashlib.sha256).hexdigest()
        return FINGERPRINT_PREFIX + digest[:_FINGERPRINT_HEX_CHARS]

    def text(self, text: str) -> str:
        """``text`` with every secret found inside it replaced by ``{hmac-sha256:…}``."""
        if len(text) > SCAN_LIMIT:
            return f"{{{self.fingerprint(text)}}}"
        spans = secret_spans(text)
        return _replace(text, spans, None, self) if spans else text

    def redact_urls(self, text: str) -> str:
        """Kept for callers that only meant URLs: the whole policy applies (:meth:`text`)."""
        return self.text(text)

    def value(self, name: str, value: str) -> tuple[str, bool]:
        """The value to record under ``name`` and whether anything was hidden.

        A secret-looking name hides the whole value; any other value keeps its shape with
        each secret inside it hidden.
        """
        if is_secret_name(name):
            return self.fingerprint(value), True
        cleaned = self.text(value)
        return cleaned, cleaned != value

    def flat_keys(
        self, parsed: Mapping[str, str], *, names_count: bool = True
    ) -> tuple[dict[str, str], bool]:
        """Flattened config keys with secrets hidden, and whether the file holds a secret.

        The key itself is cleaned too (a gitconfig ``[http "https://u:pw@host"]`` header
        is part of the key). ``names_count=False`` is for files whose key names are
        keywords, never secrets (nsswitch.conf's ``passwd:`` names a database); their
        values are still scanned.
        """
        out: dict[str, str] = {}
        secret = False
        for key in sorted(parsed):
            value = str(parsed[key])
            shown_key = self.text(key)
            if names_count and (is_secret_name(key) or _named_secret(key, parsed)):
                out[shown_key] = self.fingerprint(value)
                secret = secret or (value != "" and not value.startswith(_REFERENCE))
            else:
                cleaned = self._after(key, value)
                out[shown_key] = cleaned
                secret = secret or cleaned != value
            secret = secret or shown_key != key
        return out, secret

    def _after(self, key: str, value: str) -> str:
        """``value`` cleaned as it reads after its key: a reader that split ``login with
        password X`` into ``login`` and ``with password X`` must not hide the context."""
        if len(value) > SCAN_LIMIT:
            return self.text(value)
        offset = len(key) + 1
        spans = [
            (max(start - offset, 0), end - offset)
            for start, end in secret_spans(f"{key} {value}")
            if end > offset
        ]
        return _replace(value, spans, None, self) if spans else value


def _named_secret(key: str, parsed: Mapping[str, str]) -> bool:
    """``env.1.value`` whose sibling ``env.1.name`` is ``DB_PASSWORD`` (Kubernetes style)."""
    prefix, _, last = key.rpartition(".")
    if last not in _VALUE_FIELDS:
        return False
    for field in _NAME_FIELDS:
        name = parsed.get(f"{prefix}.{field}" if prefix else field)
        if isinstance(name, str) and is_secret_name(name):
            return True
    return False


def holds_secrets(config_file: Mapping[str, Any]) -> bool:
    """Whether a captured config file component holds secrets: a secret-named file (kept only
    as a fingerprint), a PEM private key, or a key whose value was fingerprinted. The build
    packs such files only with ``--include-secrets``, and verify expects them left out."""
    if config_file.get("fingerprint") or config_file.get("private_keys"):
        return True
    keys = config_file.get("keys") or {}
    return isinstance(keys, dict) and any(
        isinstance(v, str) and v.startswith(FINGERPRINT_PREFIX) for v in keys.values()
    )
