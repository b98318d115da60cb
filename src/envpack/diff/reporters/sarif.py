"""``--format sarif``: SARIF 2.1.0, for code-scanning tools.

One run, tool ``envpack``; one rule per (section, kind) that occurs, e.g.
``python_packages/downgraded``. Each change is one result:

- ``level``: ``error`` at or above the fail-on threshold, ``warning`` for a major or minor
  change below it, ``note`` otherwise;
- ``message.text``: the change's reason;
- ``logicalLocations``: the environment pair and ``section/key[.field]``;
- ``physicalLocation``: the other environment's manifest file, when the CLI knows it
  (code-scanning services only show results that have one);
- ``properties``: severity, kind, both environments and both values, for tools that
  read more than the message;
- ``suppressions``: one ``external``/``accepted`` entry when the policy expected the
  change or an ``--accepted`` file listed it.

The result's notes become the invocation's ``toolExecutionNotifications``. Messages, which
viewers display, are one printable line with no embedded link
(:func:`~envpack._escape.for_sarif_text`); ``properties`` keep the manifests' values exact,
but for a lone surrogate (an undecodable file name), written as visible ``\\udcXX`` text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from envpack import __version__
from envpack._escape import for_sarif_text
from envpack._jsontext import indented_json
from envpack.diff.model import Change, DiffResult, Drift
from envpack.diff.reporters._common import level, section_rank, sorted_changes

__all__ = ["SARIF_SCHEMA_URI", "SarifReporter"]

SARIF_SCHEMA_URI = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)


_PHRASE = {
    "added": "is present only in the compared environment",
    "removed": "is missing from the compared environment",
    "changed": "differs from the baseline environment",
    "upgraded": "is newer than in the baseline environment",
    "downgraded": "is older than in the baseline environment",
    "unsatisfied": "does not meet a requirement the application declares",
}


def _rule_id(change: Change) -> str:
    return f"{change.section}/{change.kind.value}"


def _rule_name(section: str, kind: str) -> str:
    # SARIF asks for a PascalCase, human-readable rule name.
    return "".join(part.capitalize() for part in f"{section}_{kind}".split("_"))


def _fingerprint(drift: Drift, change: Change) -> str:
    identity = "\0".join((drift.baseline, drift.other, change.where, change.kind.value))
    return hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _uri(path: str) -> str:
    """A URI reference for a manifest path: relative stays relative (to the checkout)."""
    quoted = quote(path, errors="surrogateescape")
    return "file://" + quoted if path.startswith("/") else quoted


class SarifReporter:
    id = "sarif"

    def __init__(self, manifest_paths: Mapping[str, str] | None = None) -> None:
        self.manifest_paths = dict(manifest_paths or {})
        """Environment name → the manifest file it came from, as given on the command line."""

    def render(self, result: DiffResult, *, color: bool = False) -> str:
        # strict: code-scanning services parse with strict Unicode; no lone surrogate.
        return indented_json(self.document(result), sort_keys=False, strict=True)

    def document(self, result: DiffResult) -> dict[str, Any]:
        threshold = result.verdict.threshold
        pairs = [
            (drift, change) for drift in result.drifts for change in sorted_changes(drift.changes)
        ]
        rule_keys = sorted(
            {(c.section, c.kind.value) for _, c in pairs}, key=lambda t: (section_rank(t[0]), t[1])
        )
        rule_index = {f"{s}/{k}": i for i, (s, k) in enumerate(rule_keys)}
        rules = [
            {
                "id": f"{section}/{kind}",
                "name": _rule_name(section, kind),
                "shortDescription": {"text": f"{section}: {kind}"},
                "fullDescription": {
                    "text": f"A {section} component or field {_PHRASE.get(kind, 'differs')}."
                },
                "properties": {"tags": ["drift", section, kind]},
            }
            for section, kind in rule_keys
        ]
        results = []
        for drift, change in pairs:
            location: dict[str, Any] = {
                "logicalLocations": [
                    {
                        "name": change.label,
                        "fullyQualifiedName": f"{drift.other}::{change.where}",
                        "kind": "object",
                    }
                ]
            }
            path = self.manifest_paths.get(drift.other)
            if path:
                location["physicalLocation"] = {"artifactLocation": {"uri": _uri(path)}}
            entry: dict[str, Any] = {}
            if change.disposition:
                # Expected by policy or accepted earlier: a suppressed result, so code
                # scanning shows it as dismissed rather than open.
                entry["suppressions"] = [
                    {
                        "kind": "external",
                        "status": "accepted",
                        "justification": for_sarif_text(change.reason),
                    }
                ]
            rule_id = _rule_id(change)
            results.append(
                {
                    "ruleId": rule_id,
                    "ruleIndex": rule_index[rule_id],
                    "level": level(change.severity, threshold),
                    "message": {"text": for_sarif_text(change.reason)},
                    "locations": [location],
                    "partialFingerprints": {"envpackDrift/v1": _fingerprint(drift, change)},
                    "properties": {
                        "severity": change.severity.label,
                        "kind": change.kind.value,
                        "section": change.section,
                        "key": change.key,
                        "field": change.field,
                        "baseline": drift.baseline,
                        "environment": drift.other,
                        "before": change.before,
                        "after": change.after,
                        "disposition": change.disposition,
                    },
                    **entry,
                }
            )
        verdict = result.verdict
        return {
            "$schema": SARIF_SCHEMA_URI,
            "version": "2.1.0",
            "runs": [
                {
                    "tool": {
                        "driver": {
                            "name": "envpack",
                            "version": __version__,
                            "semanticVersion": __version__,
                            "rules": rules,
                        }
                    },
                    "invocations": [
                        {
                            "executionSuccessful": True,
                            "exitCode": verdict.exit_code,
                            "toolExecutionNotifications": [
                                {"level": "note", "message": {"text": for_sarif_text(note)}}
                                for note in result.notes
                            ],
                        }
                    ],
                    "results": results,
                    "properties": {
                        "environments": list(result.environments),
                        "baseline": result.baseline,
                        "threshold": verdict.threshold_label,
                        "worst": verdict.worst.label if verdict.worst is not None else None,
                    },
                }
            ],
        }
