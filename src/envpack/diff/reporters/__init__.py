"""Report formats of ``envpack diff``: each renders the same :class:`DiffResult`."""

from __future__ import annotations

from collections.abc import Mapping

from envpack.diff.reporters.interface import Reporter
from envpack.errors import UsageError, choices_text

__all__ = ["REPORTER_IDS", "Reporter", "get_reporter"]

REPORTER_IDS: tuple[str, ...] = ("table", "json", "markdown", "junit", "sarif", "github", "html")
"""The ``--format`` choices; ``table`` is the default."""


def get_reporter(
    format_id: str,
    *,
    manifest_paths: Mapping[str, str] | None = None,
    width: int | None = None,
) -> Reporter:
    """The reporter for ``--format format_id``; a :class:`UsageError` for an unknown id.

    ``manifest_paths`` (environment name → manifest file as given on the command line) lets
    the SARIF and GitHub formats point their results at a file; ``width`` (columns) sizes
    the table; the others ignore them.
    """
    # Imported here so `envpack --help` does not pay for rich tables or XML.
    if format_id == "table":
        from envpack.diff.reporters.table import TableReporter

        return TableReporter() if width is None else TableReporter(width)
    if format_id == "json":
        from envpack.diff.reporters.json_report import JsonReporter

        return JsonReporter()
    if format_id == "markdown":
        from envpack.diff.reporters.markdown import MarkdownReporter

        return MarkdownReporter()
    if format_id == "junit":
        from envpack.diff.reporters.junit import JunitReporter

        return JunitReporter()
    if format_id == "sarif":
        from envpack.diff.reporters.sarif import SarifReporter

        return SarifReporter(manifest_paths)
    if format_id == "github":
        from envpack.diff.reporters.github import GithubReporter

        return GithubReporter(manifest_paths)
    if format_id == "html":
        from envpack.diff.reporters.html import HtmlReporter

        return HtmlReporter()
    raise UsageError(f"unknown format {format_id!r}; choose from {choices_text(REPORTER_IDS)}")
