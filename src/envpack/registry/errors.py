"""The registry client's errors: one line each, secrets masked before they are raised."""

from __future__ import annotations

from envpack.errors import PackError

__all__ = ["AuthError", "RegistryError", "TransientError"]


class RegistryError(PackError):
    """A push or pull failed for a reason retrying will not fix (refused, not found,
    a digest mismatch, a malformed answer)."""


class AuthError(RegistryError):
    """The registry or its token server refused the credentials (or none were given)."""


class TransientError(RegistryError):
    """A failure worth retrying: connection reset, 429 or a 5xx. Raised to the caller
    only once the retries are spent."""
