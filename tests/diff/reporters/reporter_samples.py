"""Hand-built DiffResults for the reporter tests: every severity and kind, awkward values.

The reporters only render; these results stand in for the engine's output so each format
can be checked on values the real captures rarely hold (markup, line breaks, pipes, the
characters GitHub commands must escape, None, unicode).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from envpack.diff.model import Change, ChangeKind, DiffResult, Drift, Severity, Verdict

K = ChangeKind
S = Severity

AWKWARD_SCRIPT = "<script>alert('x&y')</script>"
AWKWARD_LINES = "line1\nline2\r\nline3"
AWKWARD_GITHUB = "50%, a:b,c::d"
AWKWARD_PIPE = "a|b `tick` *star* _under_"
UNICODE = "héllo wörld ✓ 日本"
FINGERPRINT = "hmac-sha256:0123456789abcdef0123456789abcdef"


def verdict_for(drifts: list[Drift], threshold: Severity | None) -> Verdict:
    counts = Counter(c.severity for d in drifts for c in d.changes)
    worst = max(counts, default=None)
    return Verdict(threshold=threshold, worst=worst, counts={s: counts.get(s, 0) for s in S})


def two_env_changes() -> list[Change]:
    """dev → prod: every kind and every severity at least once."""
    return [
        Change(
            "env",
            "GREETING",
            "value",
            UNICODE,
            AWKWARD_SCRIPT,
            K.CHANGED,
            S.INFO,
            "environment variable GREETING changed",
        ),
        Change(
            "env",
            "NOTE",
            "value",
            AWKWARD_GITHUB,
            AWKWARD_LINES,
            K.CHANGED,
            S.MINOR,
            "environment variable NOTE changed\nacross two lines, 100% sure: yes",
        ),
        Change(
            "env",
            "API_TOKEN",
            "value",
            FINGERPRINT,
            None,
            K.REMOVED,
            S.MAJOR,
            "secret API_TOKEN is not set in prod",
        ),
        Change(
            "interpreters",
            "python",
            "version",
            "3.11.7",
            "2.7.18",
            K.DOWNGRADED,
            S.CRITICAL,
            "Python major version differs: 3 → 2 (code for Python 3 will not run)",
        ),
        Change(
            "interpreters",
            "python",
            "implementation",
            "cpython",
            "pypy",
            K.CHANGED,
            S.CRITICAL,
            "interpreter implementation differs: cpython → pypy",
        ),
        Change(
            "python_packages",
            "requests",
            "version",
            "2.31.0",
            "2.27.1",
            K.DOWNGRADED,
            S.MAJOR,
            "requests downgraded across a minor version: 2.31.0 → 2.27.1",
        ),
        Change(
            "python_packages",
            "certifi",
            "version",
            "2023.7.22",
            "2023.7.23",
            K.UPGRADED,
            S.PATCH,
            "certifi upgraded: patch release",
        ),
        Change(
            "python_packages",
            "attrs",
            None,
            {"version": "23.1.0", "files": 42},
            None,
            K.REMOVED,
            S.MAJOR,
            "attrs is installed in dev but not in prod",
        ),
        Change(
            "python_packages",
            "enum34",
            None,
            None,
            {"version": "1.1.10"},
            K.ADDED,
            S.MINOR,
            "enum34 is installed in prod only",
        ),
        Change(
            "libraries",
            "libssl.so",
            "soname",
            "libssl.so.3",
            "libssl.so.1.1",
            K.CHANGED,
            S.CRITICAL,
            "ABI break: libssl.so.3 → libssl.so.1.1",
        ),
        Change(
            "config_files",
            "/etc/app|x.ini",
            AWKWARD_PIPE,
            "",
            None,
            K.CHANGED,
            S.PATCH,
            "config key changed to null",
        ),
        Change(
            "network",
            "dns",
            "servers",
            ["10.0.0.2", "10.0.0.3"],
            ["1.1.1.1"],
            K.CHANGED,
            S.MINOR,
            "DNS servers differ",
        ),
        # As the engine makes them: field = the environment missing the requirement,
        # before/after = the versions the baseline and prod have (None: not installed).
        Change(
            "requirements",
            "requests>=2.31",
            "prod",
            "2.31.0",
            "2.27.1",
            K.UNSATISFIED,
            S.CRITICAL,
            "prod: requests 2.27.1 does not satisfy requests>=2.31",
        ),
        Change(
            "requirements",
            "flask>=3",
            "prod",
            "3.0.0",
            None,
            K.UNSATISFIED,
            S.CRITICAL,
            "prod: flask is not installed (required: flask>=3)",
        ),
        # Lowered to info by the policy: an expected difference and an accepted one.
        Change(
            "os",
            "os",
            "hostname",
            "dev-box",
            "prod-1",
            K.CHANGED,
            S.INFO,
            "hostname differs (expected: one per environment)",
            "expected",
        ),
        Change(
            "python_packages",
            "six",
            "version",
            "1.16.0",
            "1.15.0",
            K.DOWNGRADED,
            S.INFO,
            "six downgraded: minor release (accepted)",
            "accepted",
        ),
    ]


def _uninstalled(change: Change) -> bool:
    return change.section == "requirements" and change.after is None


def two_env(threshold: Severity = S.MAJOR) -> DiffResult:
    drifts = [Drift("dev", "prod", two_env_changes())]
    values = {
        (c.section, c.key, c.field): {
            **({"dev": c.before} if c.kind is not K.ADDED else {}),
            # (a requirement's package that is not installed has no value, as in the engine)
            **({"prod": c.after} if c.kind is not K.REMOVED and not _uninstalled(c) else {}),
        }
        for c in drifts[0].changes
    }
    notes = ["requirements.txt line 3 not checked: -e ./local (an editable install)"]
    return DiffResult(["dev", "prod"], "dev", drifts, verdict_for(drifts, threshold), values, notes)


def three_env(threshold: Severity = S.CRITICAL) -> DiffResult:
    """dev (baseline), staging, prod: staging agrees with dev on some rows, not others."""
    staging = [
        Change(
            "interpreters",
            "python",
            "version",
            "3.11.7",
            "3.11.9",
            K.UPGRADED,
            S.PATCH,
            "Python patch release differs: 3.11.7 → 3.11.9",
        ),
        Change(
            "python_packages",
            "requests",
            "version",
            "2.31.0",
            "2.32.0",
            K.UPGRADED,
            S.MINOR,
            "requests upgraded: minor release",
        ),
        Change(
            "env",
            "GREETING",
            "value",
            UNICODE,
            None,
            K.REMOVED,
            S.INFO,
            "environment variable GREETING is not set in staging",
        ),
    ]
    prod = [
        Change(
            "interpreters",
            "python",
            "version",
            "3.11.7",
            "2.7.18",
            K.DOWNGRADED,
            S.CRITICAL,
            "Python major version differs: 3 → 2 (code for Python 3 will not run)",
        ),
        Change(
            "python_packages",
            "requests",
            "version",
            "2.31.0",
            "2.27.1",
            K.DOWNGRADED,
            S.MAJOR,
            "requests downgraded across a minor version: 2.31.0 → 2.27.1",
        ),
        Change(
            "python_packages",
            "enum34",
            None,
            None,
            {"version": "1.1.10"},
            K.ADDED,
            S.MINOR,
            "enum34 is installed in prod only",
        ),
        Change(
            "env",
            "GREETING",
            "value",
            UNICODE,
            AWKWARD_SCRIPT,
            K.CHANGED,
            S.INFO,
            "environment variable GREETING changed",
        ),
        Change(
            "network",
            "dns",
            "servers",
            ["10.0.0.2"],
            None,
            K.CHANGED,
            S.MINOR,
            "DNS servers differ",
        ),
    ]
    # urllib3<2: dev (the baseline) misses it, staging meets it, prod does not have it.
    # The baseline's own miss goes with the first drift, as the engine does.
    staging.append(
        Change(
            "requirements",
            "urllib3<2",
            "dev",
            "2.0.7",
            "1.26.18",
            K.UNSATISFIED,
            S.CRITICAL,
            "dev: urllib3 2.0.7 does not satisfy urllib3<2",
        )
    )
    prod.append(
        Change(
            "requirements",
            "urllib3<2",
            "prod",
            "2.0.7",
            None,
            K.UNSATISFIED,
            S.CRITICAL,
            "prod: urllib3 is not installed (required: urllib3<2)",
        )
    )
    drifts = [Drift("dev", "staging", staging), Drift("dev", "prod", prod)]
    values: dict[tuple[str, str, str | None], dict[str, Any]] = {
        ("interpreters", "python", "version"): {
            "dev": "3.11.7",
            "staging": "3.11.9",
            "prod": "2.7.18",
        },
        ("python_packages", "requests", "version"): {
            "dev": "2.31.0",
            "staging": "2.32.0",
            "prod": "2.27.1",
        },
        ("python_packages", "enum34", None): {"prod": {"version": "1.1.10"}},
        ("env", "GREETING", "value"): {"dev": UNICODE, "prod": AWKWARD_SCRIPT},
        ("network", "dns", "servers"): {"dev": ["10.0.0.2"], "staging": ["10.0.0.2"], "prod": None},
        ("requirements", "urllib3<2", "dev"): {"dev": "2.0.7", "staging": "1.26.18"},
        ("requirements", "urllib3<2", "prod"): {"dev": "2.0.7", "staging": "1.26.18"},
    }
    return DiffResult(
        ["dev", "staging", "prod"], "dev", drifts, verdict_for(drifts, threshold), values
    )


def no_drift() -> DiffResult:
    drifts = [Drift("dev", "prod", [])]
    return DiffResult(["dev", "prod"], "dev", drifts, verdict_for(drifts, S.MAJOR), {})


SAMPLES = {"two_env": two_env, "three_env": three_env, "no_drift": no_drift}
