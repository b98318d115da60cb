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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property

from envpack.redact.names import is_secret_name

__all__ = ["DETECTORS", "SCAN_LIMIT", "Detector", "secret_spans"]

SCAN_LIMIT = 64 * 1024
"""A longer text is not scanned: the caller hides it whole (cheap, and never in clear)."""

# What a fingerprint looks like once inserted: never hidden a second time.
_ALREADY_HIDDEN = re.compile(r"\{hmac-sha256:[0-9a-f]+\}|\{redacted\}")


@dataclass(frozen=True)
class Detector:
    """One kind of secret: its name (used in tests and figures), its pattern, and a gate."""

    name: str
    source: str
    """The regular expression, compiled on first use: a capture whose values never open
    a detector's gate does not pay for compiling it."""
    gate: Callable[[str, str], bool]
    """A cheap test, on the text and its lower-case form, that any text holding this
    secret passes: most values (paths, versions) pass none, and no pattern runs."""

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        return re.compile(self.source)

    def spans(self, text: str) -> Iterator[tuple[int, int]]:
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
    word = groups.get("word")
    if word is not None and word.lower() == "passwd":  # nsswitch's "passwd: files" line
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
_URL_PASSWORD = _SCHEME + r"[^/\s:@]{0,256}:(?P<secret>\S{1,512})@"
# scheme://TOKEN@host: no password, the user name is the token (GitHub, GitLab clones).
_URL_TOKEN_USER = _SCHEME + r"(?P<secret>(?P<bare_token>[A-Za-z0-9_\-.~]{20,256}))@"
# A bare user:password@host[:port] (RSYNC_PROXY, a proxy without a scheme); not an image
# reference "registry:5000/app@sha256:…".
_BARE_USERINFO = (
    r"(?<![\w/:{}.%+\-])(?!(?:mailto|sips?|xmpp|tel):)[A-Za-z0-9._%+\-]{1,128}:"
    r"(?P<secret>[^\s:@/]\S{0,255})(?=@(?!sha\d+:)[A-Za-z0-9.\-\[][^\s@]*(?:\s|$))"
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
    r"password|passwd|passphrase|pwd|pass|secret|token|api[_\-]?key|access[_\-]?key"
    r"|private[_\-]?key|client[_\-]?secret|auth"
)
_VALUE = (
    r"(?P<secret>'[^']*'|\"[^\"]*\"|\{[^{}\s]*\}"
    r"|(?:(?!;\s*[A-Za-z][\w ]{0,40}=)[^\s\"'])+)"
)
# Only the end of the key is matched (DB_PASSWORD=, aws_secret_access_key=, _authToken=):
# what comes before the secret word changes nothing, and not matching it keeps the search
# a plain scan for the words.
_KEYWORD = r"(?i)(?P<word>" + _WORDS + r")[\"']?\s*[=:]\s*" + _VALUE
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

_SHAPED_GATE = re.compile(
    r"gh[pousr]_|github_pat_|gl[a-z]{2,4}-|npm_|A[BKS]IA|ACCA|xox|eyJ|pypi-|_live_|AIza|whsec_"
)
_BASE64_40 = re.compile(r"[A-Za-z0-9/+]{40}")


def _has(needle: str, other: str = "") -> Callable[[str, str], bool]:
    if other:
        return lambda _, lower: needle in lower or other in lower
    return lambda _, lower: needle in lower


DETECTORS: tuple[Detector, ...] = (
    Detector("pem-private-key", _PEM_PRIVATE, _has("-----begin")),
    Detector("url-password", _URL_PASSWORD, _has("//")),
    Detector("url-token-user", _URL_TOKEN_USER, _has("//")),
    Detector("bare-userinfo", _BARE_USERINFO, _has("@")),
    Detector("query-secret", _QUERY_PARAM, _has("=")),
    Detector("authorization", _AUTH_HEADER, _has("authorization")),
    Detector("bearer", _BEARER, _has("bearer")),
    Detector("keyword", _KEYWORD, _has("=", ":")),
    Detector("keyword-spaced", _KEYWORD_SPACED, _has("pass")),
    Detector("shaped-token", _SHAPED, lambda t, _: bool(_SHAPED_GATE.search(t))),
    Detector(
        "aws-secret-key",
        _AWS_KEY40,
        lambda t, _: len(t) >= 40 and bool(_BASE64_40.search(t)),
    ),
)


def secret_spans(text: str) -> list[tuple[int, int]]:
    """The ``(start, end)`` spans of ``text`` to hide, sorted and merged."""
    hidden = [m.span() for m in _ALREADY_HIDDEN.finditer(text)] if "{" in text else []
    found: list[tuple[int, int]] = []
    lower = text.lower()
    for detector in (d for d in DETECTORS if d.gate(text, lower)):
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
