"""The diff's data: changes, their severity, and the verdict. Pure data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Any

from envpack.errors import choices_text

__all__ = [
    "FAIL_ON_NONE",
    "Change",
    "ChangeKind",
    "DiffResult",
    "Drift",
    "Placed",
    "Severity",
    "Verdict",
    "parse_fail_on",
    "place",
]


def place(key: str, field: str | None) -> str:
    """``key``, or ``key.field`` when one field of the component differs."""
    return f"{key}.{field}" if field else key


class Placed:
    """Names for a change's place, for anything with ``section``, ``key`` and ``field``."""

    section: str
    key: str
    field: str | None

    @property
    def label(self) -> str:
        """``key`` or ``key.field``: where in its section, for reports."""
        return place(self.key, self.field)

    @property
    def where(self) -> str:
        """``section/key`` or ``section/key.field``, for reports."""
        return f"{self.section}/{self.label}"


class Severity(IntEnum):
    """How much a change matters, ordered so that ``max()`` finds the worst."""

    INFO = 0
    PATCH = 1
    MINOR = 2
    MAJOR = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        """``"major"`` → ``Severity.MAJOR``; raises ``ValueError`` naming the choices."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            choices = choices_text([s.label for s in reversed(cls)])
            raise ValueError(f"unknown severity {text!r}; choose from {choices}") from None


FAIL_ON_NONE = "none"
"""``--fail-on none``: report every change, never fail the gate."""


def parse_fail_on(text: str) -> Severity | None:
    """A fail-on value: a severity name, or ``none`` (``None``: the gate never fails).

    Raises ``ValueError`` naming the choices in plain words.
    """
    if text.strip().lower() == FAIL_ON_NONE:
        return None
    try:
        return Severity.parse(text)
    except ValueError:
        choices = choices_text([*(s.label for s in reversed(Severity)), FAIL_ON_NONE])
        raise ValueError(f"unknown severity {text!r}; choose from {choices}") from None


class ChangeKind(str, Enum):
    """What happened to a component or field between two environments."""

    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"
    UPGRADED = "upgraded"
    DOWNGRADED = "downgraded"
    UNSATISFIED = "unsatisfied"
    """A declared requirement (``--requirements``) that an environment does not meet."""


@dataclass(frozen=True)
class Change(Placed):
    """One difference between a baseline environment and another one."""

    section: str
    """The manifest section (``python_packages``, ``libraries``, ``requirements`` …)."""
    key: str
    """The component's identity inside the section (``requests``, ``libssl.so``)."""
    field: str | None
    """The field that differs; ``None`` when the whole component was added or removed."""
    before: Any
    """The baseline's value (``None`` when added)."""
    after: Any
    """The other environment's value (``None`` when removed)."""
    kind: ChangeKind
    severity: Severity
    reason: str
    """One line in plain words: why this matters."""
    disposition: str | None = None
    """``None`` normally; ``"expected"`` (a policy ``expected`` entry) or ``"accepted"``
    (listed in an ``--accepted`` file) when the policy lowered it to ``info``."""


@dataclass
class Drift:
    """All changes from the baseline environment to one other environment."""

    baseline: str
    """Name of the reference environment (label, else hostname)."""
    other: str
    changes: list[Change] = field(default_factory=list)

    @property
    def worst(self) -> Severity | None:
        return max((c.severity for c in self.changes), default=None)


@dataclass(frozen=True)
class Verdict:
    """The gate's answer: did any change reach the threshold?"""

    threshold: Severity | None
    """The fail-on severity; ``None`` for ``--fail-on none`` (report, never fail)."""
    worst: Severity | None
    counts: dict[Severity, int]

    @property
    def threshold_label(self) -> str:
        return self.threshold.label if self.threshold is not None else FAIL_ON_NONE

    def fails(self, severity: Severity) -> bool:
        """Does a change of this severity fail the gate?"""
        return self.threshold is not None and severity >= self.threshold

    @property
    def failed(self) -> bool:
        return self.worst is not None and self.fails(self.worst)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


@dataclass
class DiffResult:
    """What every reporter renders: the environments, each drift from the baseline, the verdict.

    Two environments give one drift (a pairwise report); three or more give one drift per
    non-baseline environment, which reporters may show as a matrix.
    """

    environments: list[str]
    """Names of all environments, in command-line order."""
    baseline: str
    drifts: list[Drift]
    verdict: Verdict
    values: dict[tuple[str, str, str | None], dict[str, Any]] = field(default_factory=dict)
    """For the matrix: ``(section, key, field)`` → environment name → value, for each
    changed cell; environments without the component are absent from the inner dict."""
    notes: list[str] = field(default_factory=list)
    """Things the user should know that are not drift (requirement lines not checked)."""
