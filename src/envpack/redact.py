"""Keep secrets out of every output: keyed fingerprints instead of values.

A value is replaced by ``hmac-sha256:<hex>``, an HMAC-SHA256 of the value under a key that
never leaves the machine (``ENVPACK_REDACT_KEY``, or a per-user key file created on first
use). Two captures made with the same key give the same fingerprint for the same secret, so
a diff still sees that a secret changed, without anyone seeing the secret. To compare
secrets across machines, give every machine the same ``ENVPACK_REDACT_KEY``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path

from envpack.errors import EnvpackError

__all__ = [
    "FINGERPRINT_PREFIX",
    "Redactor",
    "is_secret_name",
    "load_redaction_key",
]

FINGERPRINT_PREFIX = "hmac-sha256:"
# 128 bits of the HMAC: plenty to tell secrets apart, short enough to read in a report.
_FINGERPRINT_HEX_CHARS = 32

# Words that make a name secret-looking when they form a part of it (parts split on _ . -).
_SECRET_WORDS = (
    "TOKEN", "SECRET", "PASSWORD", "PASSWD", "PASSPHRASE", "CREDENTIAL", "CREDENTIALS",
    "AUTH", "PRIVATE", "COOKIE", "SESSION", "SIGNATURE", "SALT", "PWD", "KEY", "APIKEY",
    "DSN",
)  # fmt: skip
# Names that contain a secret word but hold no secret; redacting them would hide useful facts.
_NOT_SECRET = frozenset({"PWD", "OLDPWD", "SSH_AUTH_SOCK", "XAUTHORITY", "GPG_AGENT_INFO"})
# The long words also mark a secret when glued to another word ("APITOKEN", "DBPASSWORD").
_GLUED_WORDS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "APIKEY")
_NAME_PARTS = re.compile(r"[_.\-\s]+")
# scheme://user:password@host — the password is the part to hide. It runs to the LAST "@"
# before whitespace: real passwords hold unescaped "/" and "@", and stopping at the first
# one would leave the rest in clear. Hiding a bit too much is the safe way to be wrong.
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]*):(?P<pw>\S+)@")

_KEY_ENV = "ENVPACK_REDACT_KEY"


def is_secret_name(name: str) -> bool:
    """Whether a variable or config key name looks like it holds a secret.

    >>> is_secret_name("GITHUB_TOKEN"), is_secret_name("db.password"), is_secret_name("PATH")
    (True, True, False)
    """
    upper = name.upper()
    if upper in _NOT_SECRET:
        return False
    parts = [part for part in _NAME_PARTS.split(upper) if part]
    if any(part in _SECRET_WORDS for part in parts):
        return True
    return any(word in part for part in parts for word in _GLUED_WORDS)


def _default_key_file() -> Path:
    from platformdirs import user_config_path

    return user_config_path("envpack") / "redact.key"


def load_redaction_key(
    environ: Mapping[str, str] | None = None, key_file: Path | None = None
) -> bytes:
    """The HMAC key: ``ENVPACK_REDACT_KEY`` if set, else the per-user key file.

    The key file is created on first use (0600, 32 random bytes) in a way that is safe when
    two captures start at once: the first writer wins and everyone reads its key.
    """
    env = os.environ if environ is None else environ
    from_env = env.get(_KEY_ENV)
    if from_env:
        return from_env.encode("utf-8")
    path = key_file or _default_key_file()
    try:
        return path.read_bytes().strip() or _create_key_file(path)
    except FileNotFoundError:
        return _create_key_file(path)
    except OSError as err:
        raise EnvpackError(
            f"cannot read the redaction key {path}: {err.strerror}; set {_KEY_ENV}"
        ) from err


def _create_key_file(path: Path) -> bytes:
    key = secrets.token_hex(32).encode("ascii")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as stream:
            stream.write(key)
        try:
            # link() fails if another process created the key first; then use theirs.
            os.link(tmp, path)
        except FileExistsError:
            key = path.read_bytes().strip()
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
    except OSError as err:
        raise EnvpackError(
            f"cannot create the redaction key {path}: {err.strerror}; set {_KEY_ENV}"
        ) from err
    return key


class Redactor:
    """Replaces secrets by keyed fingerprints."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def fingerprint(self, value: str | bytes) -> str:
        """``hmac-sha256:<hex>`` for ``value``; equal values give equal fingerprints."""
        data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
        digest = hmac.new(self._key, data, hashlib.sha256).hexdigest()
        return FINGERPRINT_PREFIX + digest[:_FINGERPRINT_HEX_CHARS]

    def redact_urls(self, text: str) -> str:
        """Replace the password of every ``scheme://user:password@`` in ``text``."""

        def hide(match: re.Match[str]) -> str:
            return f"{match['head']}:{{{self.fingerprint(match['pw'])}}}@"

        return _URL_PASSWORD.sub(hide, text)

    def value(self, name: str, value: str) -> tuple[str, bool]:
        """The value to record for ``name`` and whether it was redacted.

        A secret-looking name hides the whole value; any other value still has passwords
        inside URLs hidden.
        """
        if is_secret_name(name):
            return self.fingerprint(value), True
        cleaned = self.redact_urls(value)
        return cleaned, cleaned != value
