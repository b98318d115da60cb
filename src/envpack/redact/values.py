"""Where secrets sit inside a text, whatever name the text is recorded under.

One table of detectors, each a regular expression whose group ``secret`` is the part to
hide (the rest is kept so a reader still sees *what* it was: ``http://bob:{…}@proxy``).
:func:`secret_spans` runs the table over a text and gives the spans to hide, merged.

Why a table of our own rather than a scanning library: detect-secrets (the usual one)
answers "is there a secret on this line", not "which characters", and costs ~250 ms to
import and ~0.7 ms a line — more than a whole warm capture spends on every value — while
reporting most words of a line as "high entropy". The table is measured on the corpus in
``fixtures/secrets`` by ``tests/redact/test_corpus.py`` (recall and false positives).

Every pattern is linear-time on hostile input: no nested quantifiers, every run bounded
by characters the next part cannot start with, and texts past :data:`SCAN_LIMIT` are
hidden whole by the caller instead of scanned.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from envpack.redact.names import is_secret_name

__all__ = ["DETECTORS", "SCAN_LIMIT", "Detector", "secret_spans"]

SCAN_LIMIT = 64 * 1024
"""A longer text is not scanned: the caller hides it whole (cheap, and never in clear)."""

# What a fingerprint looks like once inserted: never hidden a second time.
_ALREADY_HIDDEN = re.compile(r"\{hmac-sha256:[0-9a-f]+\}|\{redacted\}")


@dataclass(frozen=True)
class Detector:
    """One kind of secret: its name (used in tests and figures) and its pattern."""

    name: str
    pattern: re.Pattern[str]
    needs: tuple[str, ...] = ()
    """Substrings one of which must be in the text for the pattern to have a chance
    (a cheap filter: most values hold none of them)."""

    def spans(self, text: str) -> Iterator[tuple[int, int]]:
        if self.needs and not any(needle in text for needle in self.needs):
            return
        for match in self.pattern.finditer(text):
            start, end = match.span("secret")
            if end > start and _keep(match, text):
                yield start, end


def _keep(match: re.Match[str], text: str) -> bool:
    """Extra conditions a pattern alone cannot say."""
    groups = match.groupdict()
    param = groups.get("param")
    if param is not None:  # ?name=value: only when the parameter's name is secret
        return param.lower() in _SECRET_PARAMS or is_secret_name(param)
    if groups.get("aws40") is not None:  # 40 base64 characters: mixed case and digits
        value = groups["aws40"]
        return (
            any(c.isupper() for c in value)
            and any(c.islower() for c in value)
            and any(c.isdigit() for c in value)
        )
    if groups.get("nss") is not None:  # nsswitch.conf's "passwd: files" names databases
        return match["secret"].lower() not in _NSS_SOURCES
    if groups.get("bare_token") is not None:  # https://TOKEN@host: a long random user
        value = groups["bare_token"]
        return any(c.isdigit() for c in value) and any(c.isalpha() for c in value)
    return True


_NSS_SOURCES = frozenset({"files", "compat", "systemd", "sss", "ldap", "nis", "db", "winbind"})
# Query parameters whose name is not secret-looking but whose value is (Azure SAS "sig").
_SECRET_PARAMS = frozenset({"sig", "code", "x-amz-credential", "x-goog-credential"})

# Userinfo passwords run to the LAST "@" before whitespace: real passwords hold unescaped
# "/" and "@", and stopping at the first one would leave the rest in clear. Every run is
# bounded and starts where the previous character cannot continue it: linear time.
# The scheme may be cut off ("https: //u:pw@h" split at its first ":" by a generic
# reader): a "//" that no other "/" or ":" precedes starts a URL too.
_SCHEME = r"(?:(?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]{0,30}:|(?<![/:]))//"
_URL_PASSWORD = _SCHEME + r"[^/\s:@{}]{0,256}:(?P<secret>[^\s{}]{1,512})@"
# scheme://TOKEN@host: no password, the user name is the token (GitHub, GitLab clones).
_URL_TOKEN_USER = _SCHEME + r"(?P<secret>(?P<bare_token>[A-Za-z0-9_\-.~]{20,256}))@"
# A bare user:password@host[:port] (RSYNC_PROXY, a proxy without a scheme); not an image
# reference "registry:5000/app@sha256:…".
_BARE_USERINFO = (
    r"(?<![\w/:{}.%+\-])(?!(?:mailto|sips?|xmpp|tel):)[A-Za-z0-9._%+\-]{1,128}:"
    r"(?P<secret>[^\s{}:@/][^\s{}]{0,255})(?=@(?!sha\d+:)[A-Za-z0-9.\-\[][^\s@]*(?:\s|$))"
)
# ?token=…, &access_token=…, ;Password=…: the parameter's name decides (see _keep).
_QUERY_PARAM = r"[?&;](?P<param>[A-Za-z][A-Za-z0-9_.\-]{0,40})=(?P<secret>[^&#\s;{}\"']+)"
# Authorization: Basic …, Proxy-Authorization: Bearer …, extraheader = Authorization: …
_AUTH_HEADER = (
    r"(?i)\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?"
    r"(?:(?:basic|bearer|token|digest|negotiate|ntlm|aws4-hmac-sha256|apikey)\s+)?"
    r"(?P<secret>[^\s\"'{}][^\"'\r\n{}]*?)(?=\s*(?:[\"'\r\n]|$))"
)
_BEARER = r"(?i)\bbearer\s+(?P<secret>[A-Za-z0-9\-._~+/]{8,}=*)"
# key=value / key: value inside a text (libpq, ADO.NET, CLI flags, JSON). The value stops
# at the ";" that starts the next "Key=" of a connection string, at the closing quote when
# quoted, else at whitespace.
_WORDS = (
    r"(?:password|passwd|passphrase|pwd|pass|secret|token|api[_\-]?key|access[_\-]?key"
    r"|private[_\-]?key|client[_\-]?secret|auth)"
)
_VALUE = (
    r"(?P<secret>'[^']*'|\"[^\"]*\"|\{[^{}\s]*\}"
    r"|(?:(?!;\s*[A-Za-z][\w ]{0,40}=)[^\s\"'])+)"
)
_KEYWORD = (
    r"(?i)(?<![A-Za-z0-9])[\"']?(?:(?P<nss>passwd)|[A-Za-z0-9_\-]{0,40}?" + _WORDS + r")"
    r"[\"']?\s*[=:]\s*" + _VALUE
)
# netrc's "password X" and "machine h login u password X": only the unambiguous words,
# since "pass" or "token" followed by a space is ordinary prose.
# In prose ("the password must be…") the word is not followed by one; so the spaced form
# counts at the start of a line or after netrc's "login NAME".
_KEYWORD_SPACED = (
    r"(?im)(?:^[ \t]*|\blogin[ \t]+[^\s{}]{1,256}[ \t]+)"
    r"(?:password|passwd|passphrase)[ \t]+(?![=:])" + _VALUE
)
_SHAPED = (
    r"(?<![A-Za-z0-9_\-])(?P<secret>"
    r"gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,}"
    r"|glpat-[A-Za-z0-9_\-]{20,}|gl(?:dt|rt|soat|cbt|ptt)-[A-Za-z0-9_\-]{20,}"
    r"|npm_[A-Za-z0-9]{36}"
    r"|(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}"
    r"|xox[baprse]-[A-Za-z0-9\-]{10,}"
    r"|eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*"
    r"|pypi-AgE[A-Za-z0-9_\-]{50,}"
    r"|(?:sk|rk)_live_[A-Za-z0-9]{20,}"
    r"|AIza[0-9A-Za-z_\-]{35}|whsec_[A-Za-z0-9]{24,}"
    r")(?![A-Za-z0-9_\-])"
)
# An AWS secret access key: exactly 40 base64 characters, mixed case and digits (see
# _keep); a git SHA-1 (40 lower-case hex) or a path never qualifies.
_AWS_KEY40 = (
    r"(?<![A-Za-z0-9/+=_\-.])(?P<secret>(?P<aws40>[A-Za-z0-9+][A-Za-z0-9/+]{39}))"
    r"(?![A-Za-z0-9/+=_\-.])"
)
# A PEM private key block, or an unterminated one (to the end of the text).
_PEM_PRIVATE = (
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
    r"(?P<secret>(?:(?!-----END )[\s\S])*)(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----)?"
)

DETECTORS: tuple[Detector, ...] = (
    Detector("pem-private-key", re.compile(_PEM_PRIVATE), ("-----BEGIN",)),
    Detector("url-password", re.compile(_URL_PASSWORD), ("//",)),
    Detector("url-token-user", re.compile(_URL_TOKEN_USER), ("//",)),
    Detector("bare-userinfo", re.compile(_BARE_USERINFO), ("@",)),
    Detector("query-secret", re.compile(_QUERY_PARAM), ("=",)),
    Detector("authorization", re.compile(_AUTH_HEADER), ("uthorization", "UTHORIZATION")),
    Detector("bearer", re.compile(_BEARER), ("earer", "EARER")),
    Detector("keyword", re.compile(_KEYWORD), ("=", ":")),
    Detector("keyword-spaced", re.compile(_KEYWORD_SPACED)),
    Detector("shaped-token", re.compile(_SHAPED)),
    Detector("aws-secret-key", re.compile(_AWS_KEY40)),
)


def secret_spans(text: str) -> list[tuple[int, int]]:
    """The ``(start, end)`` spans of ``text`` to hide, sorted and merged."""
    hidden = [m.span() for m in _ALREADY_HIDDEN.finditer(text)] if "{" in text else []
    found: list[tuple[int, int]] = []
    for detector in DETECTORS:
        for start, end in detector.spans(text):
            if not any(h_start <= start and end <= h_end for h_start, h_end in hidden):
                found.append((start, end))
    found.sort()
    merged: list[tuple[int, int]] = []
    for start, end in found:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged
