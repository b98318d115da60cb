"""Which names say "secret": variable names, nested config keys and file names.

A name is split into segments (on ``_ . - : /``, spaces and quotes); it is secret when any
segment *contains* one of the secret words, the way the README's globs read (``*KEY*``
matches ``PRIVKEY``, ``*AUTH*`` matches ``X_AUTHORIZATION``). Every segment of a nested
key counts: ``auth.pass``, ``credentials.db.value`` and ``Smtp.Pass`` are all secret.

Matching by substring hides a few names that hold no secret; the short lists below keep
the common ones in clear, because hiding ``PWD`` or ``XDG_SESSION_TYPE`` would hide useful
facts and reveal nothing. Hiding too much is the safe way to be wrong, so the lists stay
short and exact.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["SECRET_WORDS", "is_secret_file", "is_secret_name"]

SECRET_WORDS = (
    "TOKEN", "SECRET", "PASS", "PWD", "KEY", "AUTH", "JWT", "SESSION", "BEARER", "CRED",
    "PRIVATE", "COOKIE", "SIGNATURE", "SALT", "DSN",
)  # fmt: skip
"""A segment holding one of these (``PASS`` covers ``PASSWORD``, ``PASSWD``, ``PASSPHRASE``;
``CRED`` covers ``CREDENTIALS``; ``KEY`` covers ``APIKEY``, ``PRIVKEY``) is secret."""

# Whole names (any case) that contain a secret word but hold no secret.
_NOT_SECRET_NAMES = frozenset(
    {
        "PWD", "OLDPWD", "SSH_AUTH_SOCK", "XAUTHORITY", "GPG_AGENT_INFO",
        "XDG_SESSION_ID", "XDG_SESSION_TYPE", "XDG_SESSION_CLASS", "XDG_SESSION_DESKTOP",
        "DESKTOP_SESSION",
    }
)  # fmt: skip
# Segments that contain a secret word by accident (BYPASS holds PASS, KEYBOARD holds KEY).
_NOT_SECRET_SEGMENTS = frozenset(
    {
        "KEYBOARD", "KEYMAP", "KEYMAPS", "AUTHOR", "AUTHORS", "BYPASS", "PASSTHROUGH",
        "PASSTHRU", "PASSIVE", "PASSENGER", "COMPASS", "TOKENIZER", "TOKENIZERS",
    }
)  # fmt: skip
_NESTING = re.compile(r"[.:/]+")
_SEGMENTS = re.compile(r"[_\-\s\"'\[\]@]+")

# File names that say the whole file is a secret: only a keyed fingerprint is recorded.
_SECRET_FILE = re.compile(
    r"""(?ix)
    ^(?:
        id_(?:rsa|dsa|ecdsa|ed25519)(?:[-_].*)?      # ssh private keys (not .pub)
      | .*\.(?:key|p12|pfx|jks|keystore|kdbx|ppk)  # not .gpg/.asc: apt's public keyrings
      | .*(?:secret|passw|pwd|token(?!iz)|apikey|api_key|privkey|private|credential).*
      | \.?(?:pgpass|htpasswd|shadow|gshadow|master\.key)
    )$
    """
)
# Files whose name matches the rule above but that are public databases, not secrets.
_NOT_SECRET_FILES = frozenset({"passwd", "passwd-", "group", "gshadow-"})


@lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """Whether a variable name or (nested) config key looks like it holds a secret.

    >>> is_secret_name("GITHUB_TOKEN"), is_secret_name("Smtp.Pass"), is_secret_name("PATH")
    (True, True, False)
    """
    upper = name.upper()
    if upper in _NOT_SECRET_NAMES:
        return False
    # Each part of a nested key is a name of its own ("env.PWD" is PWD); then its words.
    for part in _NESTING.split(upper):
        if part in _NOT_SECRET_NAMES:
            continue
        for segment in _SEGMENTS.split(part):
            if segment not in _NOT_SECRET_SEGMENTS and any(w in segment for w in SECRET_WORDS):
                return True
    return False


def is_secret_file(path: str) -> bool:
    """Whether a file's *name* says it is a secret (``db_password``, ``id_ed25519``,
    ``server.key``, ``cert.p12``): such a file keeps only its keyed fingerprint.

    A ``*.pem`` file is judged by its content instead (a CA bundle is public; a private
    key block makes it secret), and ``/etc/passwd`` is a user list, not a password.
    """
    name = path.rsplit("/", 1)[-1]
    if name in _NOT_SECRET_FILES or name.endswith(".pub"):
        return False
    return _SECRET_FILE.match(name) is not None
