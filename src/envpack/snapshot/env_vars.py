"""Probe: environment variables, with secrets replaced by keyed fingerprints.

Section ``env``; key: the variable name; component ``{"value": str, "redacted": bool}``.

- Live: the captured process's environment (``Source.environ``).
- ``--root``: a rootfs has no process, so the variables a login there would get from
  ``/etc/environment`` (pam_env) are recorded; none when that file is absent. An image's
  own ``ENV`` lives in its config, not its rootfs, and is the image source's job.

``--env-allow`` / ``--env-deny`` are case-sensitive ``fnmatch`` globs: with an allow list
only matching names are kept; a name matching a deny pattern is dropped even if allowed.

What is hidden (the value is never written, only ``hmac-sha256:…`` of it):
- the whole value of a secret-looking name (``GITHUB_TOKEN``, ``DB_PASSWORD``);
- the password of every ``scheme://user:password@host`` in any value, and of a bare
  ``user:password@host`` (``RSYNC_PROXY``);
- the word after ``password``/``passwd``/``secret``/``token`` keywords inside a value, as
  in a netrc line (``machine h login u password X``) or a libpq string (``password=X``);
- tokens whose shape alone says what they are (GitHub, GitLab, Slack, AWS access keys).
``ENVPACK_REDACT_KEY`` itself is never recorded, not even as a fingerprint.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from fnmatch import fnmatchcase

from envpack.manifest import Section
from envpack.redact import Redactor
from envpack.snapshot.context import CaptureContext
from envpack.snapshot.shell_vars import parse_shell_assignments
from envpack.snapshot.source import SourceReadError

__all__ = ["ENVIRONMENT_FILE", "env_section", "keep_name", "probe", "redact_value"]

SECTION = "env"
ENVIRONMENT_FILE = "/etc/environment"
_NEVER_RECORDED = frozenset({"ENVPACK_REDACT_KEY"})

# "password X", "password=X", "passwd: X" … inside a value; group "secret" is hidden.
_KEYWORD_SECRET = re.compile(
    r"(?i)(?P<head>\b(?:password|passwd|passphrase|secret|token)(?:\s*[=:]\s*|\s+))"
    # A quoted secret may hold spaces; an unquoted one runs to whitespace, never stopping
    # at a character a password may contain (";", ",", "&").
    r"(?P<secret>'[^']*'|\"[^\"]*\"|\S+)"
)
# "user:password@host" without a scheme (RSYNC_PROXY, some client settings): no "://" for
# Redactor.redact_urls to find. The password runs to the last "@" before whitespace, like
# a URL's; braces are excluded so a fingerprint is never hidden again.
_BARE_USERINFO = re.compile(
    r"(?<![\w/:{}.-])(?!(?:mailto|sips?|xmpp):)(?P<head>[A-Za-z0-9._%+-]+:)"
    r"(?P<secret>[^\s{}]+)(?=@[A-Za-z0-9.\-\[][^\s@]*(?:\s|$))"
)
# Tokens recognisable by their prefix, whatever variable they sit in.
_SHAPED_TOKEN = re.compile(
    r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_\-]{20,}"
    r"|xox[abprs]-[A-Za-z0-9\-]{10,}|(?:AKIA|ASIA)[0-9A-Z]{16})\b"
)


def probe(ctx: CaptureContext) -> None:
    """Fill the ``env`` section."""
    source = ctx.source
    if source.is_live:
        variables: Mapping[str, str] = source.environ
    else:
        try:
            text = source.read_text_or_none(ENVIRONMENT_FILE)
        except SourceReadError as err:
            ctx.issue(SECTION, ENVIRONMENT_FILE, str(err))
            text = None
        variables = parse_shell_assignments(text or "")
    ctx.sections[SECTION] = env_section(
        variables, ctx.redactor, allow=ctx.options.env_allow, deny=ctx.options.env_deny
    )


def keep_name(name: str, allow: tuple[str, ...], deny: tuple[str, ...]) -> bool:
    """Whether ``name`` passes ``--env-allow`` / ``--env-deny`` (deny wins)."""
    if name in _NEVER_RECORDED:
        return False
    if any(fnmatchcase(name, pattern) for pattern in deny):
        return False
    return not allow or any(fnmatchcase(name, pattern) for pattern in allow)


def env_section(
    variables: Mapping[str, str],
    redactor: Redactor,
    *,
    allow: tuple[str, ...] = (),
    deny: tuple[str, ...] = (),
) -> Section:
    """The section for ``variables``, filtered and redacted, sorted by name."""
    section: Section = {}
    for name in sorted(variables):
        if not keep_name(name, allow, deny):
            continue
        value, redacted = redact_value(redactor, name, variables[name])
        section[_printable(name)] = {"value": _printable(value), "redacted": redacted}
    return section


def redact_value(redactor: Redactor, name: str, value: str) -> tuple[str, bool]:
    """The value to record for variable ``name`` and whether anything was hidden."""
    recorded, redacted = redactor.value(name, value)
    if redacted and recorded == redactor.fingerprint(value):
        return recorded, True  # the whole value is hidden: nothing more to look for

    def keyword(match: re.Match[str]) -> str:
        return f"{match['head']}{{{redactor.fingerprint(match['secret'])}}}"

    def shaped(match: re.Match[str]) -> str:
        return f"{{{redactor.fingerprint(match.group(0))}}}"

    cleaned = _KEYWORD_SECRET.sub(keyword, recorded)
    cleaned = _BARE_USERINFO.sub(keyword, cleaned)
    cleaned = _SHAPED_TOKEN.sub(shaped, cleaned)
    return cleaned, redacted or cleaned != recorded


def _printable(text: str) -> str:
    """Undecodable bytes (kept by Python as surrogates) as ``\\xNN``, so JSON can hold them."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text
