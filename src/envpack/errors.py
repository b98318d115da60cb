"""The one error hierarchy of envpack.

Library code raises these with a message a user can act on; only ``envpack.cli`` turns
them into a printed line and an exit code.
"""

from __future__ import annotations

__all__ = [
    "CaptureError",
    "DiffError",
    "EnvpackError",
    "ManifestError",
    "PackError",
    "UsageError",
]


class EnvpackError(Exception):
    """Base of every error envpack raises on purpose. ``str(err)`` is one line."""


class UsageError(EnvpackError):
    """The command line asks for something that cannot be done (e.g. a missing path)."""


class ManifestError(EnvpackError):
    """A manifest cannot be read: truncated, not a manifest, or from a newer envpack."""


class CaptureError(EnvpackError):
    """A capture cannot proceed at all (a partial capture records issues instead)."""


class DiffError(EnvpackError):
    """A diff cannot be computed (e.g. an unreadable policy file)."""


class PackError(EnvpackError):
    """An image cannot be built, loaded or pushed."""
