"""The one error hierarchy of envpack.

Library code raises these with a message a user can act on; only ``envpack.cli`` turns
them into a printed line and an exit code.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "CaptureError",
    "DiffError",
    "EnvpackError",
    "ManifestError",
    "PackError",
    "UsageError",
    "choices_text",
]


def choices_text(choices: Sequence[str]) -> str:
    """``a, b or c``: an option's choices in plain words, for an error or a help line."""
    items = list(choices)
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} or {items[-1]}"


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
