"""Probe: environment variables, with secrets replaced by keyed fingerprints.

Section ``env``; key: the variable name; component ``{"value": str, "redacted": bool}``.

- Live: the captured process's environment (``Source.environ``).
- ``--root``: a rootfs has no process, so the variables a login there would get from
  ``/etc/environment`` (pam_env) are recorded; none when that file is absent.
- ``--image``: the image config's ``Env``, what a container of it starts with.

``--env-allow`` / ``--env-deny`` are case-sensitive ``fnmatch`` globs: with an allow list
only matching names are kept; a name matching a deny pattern is dropped even if allowed.

Values go through the one redaction policy (:class:`envpack.redact.Redactor`): the whole
value of a secret-looking name (``GITHUB_TOKEN``, ``MYSQL_PWD``) becomes ``hmac-sha256:…``;
any other value keeps its shape with each secret inside it (URL passwords, bare
``user:password@host``, ``password=…``, tokens of a known shape …) fingerprinted.
``ENVPACK_REDACT_KEY`` itself is never recorded, not even as a fingerprint.
"""

from __future__ import annotations

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


def probe(ctx: CaptureContext) -> None:
    """Fill the ``env`` section."""
    source = ctx.source
    if source.is_live or source.kind == "image":  # an image: its config's Env
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
    return redactor.value(name, value)


def _printable(text: str) -> str:
    """Undecodable bytes (kept by Python as surrogates) as ``\\xNN``, so JSON can hold them."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text
