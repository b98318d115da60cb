"""Keep secrets out of every output: keyed fingerprints instead of values.

A value is replaced by ``hmac-sha256:<hex>``, an HMAC-SHA256 of the value under a key that
never leaves the machine (``ENVPACK_REDACT_KEY``, or a per-user key file created on first
use). Two captures made with the same key give the same fingerprint for the same secret, so
a diff still sees that a secret changed, without anyone seeing the secret. To compare
secrets across machines, give every machine the same ``ENVPACK_REDACT_KEY``.

The package is the one policy every probe uses: :mod:`.names` (which names and file names
say "secret"), :mod:`.values` (where secrets sit inside a text), :mod:`.policy` (what is
recorded instead) and :mod:`.keyfile` (the key and its file's permissions).
"""

from __future__ import annotations

from envpack.redact.keyfile import KEY_ENV, RedactionKeyError, load_redaction_key
from envpack.redact.names import is_secret_file, is_secret_name
from envpack.redact.policy import FINGERPRINT_PREFIX, Redactor, holds_secrets, mask
from envpack.redact.values import secret_spans

__all__ = [
    "FINGERPRINT_PREFIX",
    "KEY_ENV",
    "RedactionKeyError",
    "Redactor",
    "holds_secrets",
    "is_secret_file",
    "is_secret_name",
    "load_redaction_key",
    "mask",
    "secret_spans",
]
