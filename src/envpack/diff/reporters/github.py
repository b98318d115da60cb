"""``--format github``: GitHub Actions workflow commands, one annotation per change.

``::error`` at or above the fail-on threshold, ``::warning`` for a major or minor change
below it, ``::notice`` otherwise, worst first; the summary line comes last as plain log
text.
Data and properties are escaped as the Actions runner expects (:mod:`envpack._escape`):
a value holding a line break or ``::`` can never start a command of its own, a property
cannot end early, and no control character (an ANSI colour, a bidi override) reaches the
log, which renders them.
"""

from __future__ import annotations

from collections.abc import Mapping

from envpack._escape import for_github_data, for_github_property
from envpack.diff.model import DiffResult
from envpack.diff.reporters._common import (
    after_text,
    before_text,
    component,
    encodable,
    level,
    verdict_line,
    worst_first,
)

__all__ = ["GithubReporter"]

_COMMAND = {"error": "error", "warning": "warning", "note": "notice"}
_VALUE_LIMIT = 200


class GithubReporter:
    id = "github"

    def __init__(self, manifest_paths: Mapping[str, str] | None = None) -> None:
        self.manifest_paths = dict(manifest_paths or {})
        """Environment name → its manifest file, so annotations can point at it."""

    def render(self, result: DiffResult, *, color: bool = False) -> str:
        threshold = result.verdict.threshold
        lines = []
        for drift in result.drifts:
            for change in worst_first(drift.changes):
                command = _COMMAND[level(change.severity, threshold)]
                props = {"title": f"envpack: {change.severity.label} drift in {drift.other}"}
                path = self.manifest_paths.get(drift.other)
                if path:
                    props["file"] = path
                message = (
                    f"{component(change)} {change.kind.value}: "
                    f"{drift.baseline} {before_text(change, _VALUE_LIMIT)} → "
                    f"{drift.other} {after_text(change, _VALUE_LIMIT)}. {change.reason}"
                )
                rendered = ",".join(f"{k}={for_github_property(v)}" for k, v in props.items())
                lines.append(f"::{command} {rendered}::{for_github_data(message)}")
        lines += [f"::notice title=envpack note::{for_github_data(note)}" for note in result.notes]
        lines.append(verdict_line(result))
        return encodable("\n".join(lines) + "\n")
