"""The one plug point every report format implements."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from envpack.diff.model import DiffResult

__all__ = ["Reporter"]


@runtime_checkable
class Reporter(Protocol):
    """Renders a :class:`DiffResult` into the text of one report format.

    ``render`` is pure: the same result gives the same bytes (reports are compared
    byte-for-byte in tests and diffed by users between runs). Writing the text to a file or
    stdout is the CLI's job.
    """

    id: str
    """The ``--format`` value that selects this reporter."""

    def render(self, result: DiffResult, *, color: bool = False) -> str:
        """The whole report. ``color`` only matters to formats meant for a terminal."""
        ...
