"""``--format json``: the stable machine format of a diff.

Shape (``schema_version`` 1; a new field may be added, an existing one never changes
meaning without a new ``schema_version``)::

    {
      "schema_version": 1,
      "environments": ["dev", "prod"],          # command-line order
      "baseline": "dev",
      "verdict": {
        "threshold": "major",                   # the fail-on severity, or "none"
        "worst": "critical" | null,             # null: no drift at all
        "failed": true,
        "exit_code": 1,
        "counts": {"critical": 1, "major": 0, "minor": 0, "patch": 0, "info": 2}
      },
      "drifts": [                               # one per non-baseline environment, in order
        {"baseline": "dev", "other": "prod",
         "changes": [{"section": "interpreters", "key": "python", "field": "version",
                      "before": "3.11.7", "after": "2.7.18", "kind": "downgraded",
                      "severity": "critical", "reason": "…",
                      "disposition": null}]}     # or "expected" / "accepted": the policy
      ],                                        # lowered it to info
      "notes": ["…"],                           # not drift, but worth knowing
      "matrix": [                               # every changed cell across all environments
        {"section": "interpreters", "key": "python", "field": "version",
         "values": {"dev": "3.11.7", "prod": "2.7.18"}}   # absent environments left out
      ]
    }

``before``/``after``/``values`` hold the manifest's JSON values unchanged (secrets are
already fingerprints). ``field`` is null when a whole component was added or removed.
Changes are sorted by section (manifest order), key, field; object keys are sorted.
"""

from __future__ import annotations

from typing import Any

from envpack._jsontext import indented_json
from envpack.diff.model import DiffResult
from envpack.diff.reporters._common import SEVERITIES_DESC, cell_key, sorted_changes

__all__ = ["JSON_SCHEMA_VERSION", "JsonReporter"]

JSON_SCHEMA_VERSION = 1


class JsonReporter:
    id = "json"

    def render(self, result: DiffResult, *, color: bool = False) -> str:
        return indented_json(self.document(result))

    @staticmethod
    def document(result: DiffResult) -> dict[str, Any]:
        verdict = result.verdict
        return {
            "schema_version": JSON_SCHEMA_VERSION,
            "environments": list(result.environments),
            "baseline": result.baseline,
            "verdict": {
                "threshold": verdict.threshold_label,
                "worst": verdict.worst.label if verdict.worst is not None else None,
                "failed": verdict.failed,
                "exit_code": verdict.exit_code,
                "counts": {s.label: verdict.counts.get(s, 0) for s in SEVERITIES_DESC},
            },
            "drifts": [
                {
                    "baseline": drift.baseline,
                    "other": drift.other,
                    "changes": [
                        {
                            "section": c.section,
                            "key": c.key,
                            "field": c.field,
                            "before": c.before,
                            "after": c.after,
                            "kind": c.kind.value,
                            "severity": c.severity.label,
                            "reason": c.reason,
                            "disposition": c.disposition,
                        }
                        for c in sorted_changes(drift.changes)
                    ],
                }
                for drift in result.drifts
            ],
            "notes": list(result.notes),
            "matrix": [
                {"section": s, "key": k, "field": f, "values": dict(result.values[(s, k, f)])}
                for s, k, f in sorted(result.values, key=lambda t: cell_key(*t))
            ],
        }
