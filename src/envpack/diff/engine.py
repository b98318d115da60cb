"""``envpack diff`` without the command line: manifests in, a :class:`DiffResult` out.

Steps: load every manifest (``-`` is standard input, once), name the environments, pick
the baseline, compare it with each other environment (:mod:`.compare`), add the
requirement check (:mod:`.requirements`), apply the policy (:mod:`.policy`), collect the
matrix values of every changed cell and decide the :class:`Verdict`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from envpack._inputfile import MANIFEST_LIMIT, read_bounded
from envpack.diff.compare import MISSING, cell, compare
from envpack.diff.model import Change, DiffResult, Drift, Severity, Verdict
from envpack.diff.policy import Policy, accepted_document, apply_policy, load_accepted
from envpack.diff.requirements import SECTION, Declared, check
from envpack.diff.sources import comparable
from envpack.errors import ManifestError, UsageError
from envpack.manifest import CAPTURED, Manifest, load_manifest, loads

__all__ = [
    "Environment",
    "Outcome",
    "load_environments",
    "name_environments",
    "run_diff",
    "single_run",
]


@dataclass(frozen=True)
class Environment:
    """One manifest and how the command line named it."""

    name: str
    path: str
    manifest: Manifest


@dataclass(frozen=True)
class Outcome:
    """The result, plus the ``--accept`` document when one was asked for."""

    result: DiffResult
    accepted_file: bytes | None = None
    accepted_counts: dict[Severity, int] = dataclasses.field(default_factory=dict)
    """What the ``--accept`` document holds: its changes by severity before acceptance."""


def load_environments(paths: Sequence[str]) -> list[Environment]:
    """Load and name every manifest; a usage error for fewer than two or ``-`` twice."""
    if len(paths) < 2:
        raise UsageError("diff needs at least two manifests (the first is the baseline)")
    if sum(1 for p in paths if p == "-") > 1:
        raise UsageError("standard input ('-') can be given only once")
    pulled = _pull(paths)
    with _collector_paused():
        manifests = [loads(pulled[p], origin=p) if p in pulled else _load(p) for p in paths]
    return name_environments(paths, manifests)


def _pull(paths: Sequence[str]) -> dict[str, bytes]:
    """The ``registry:HOST/REPO:TAG`` arguments, pulled in parallel, by argument."""
    remote = list(dict.fromkeys(p for p in paths if p.startswith("registry:")))
    if not remote:
        return {}
    from envpack.registry.artifact import pull_manifests
    from envpack.registry.refs import RegistryRef

    refs = [RegistryRef.parse(p) for p in remote]
    return dict(zip(remote, pull_manifests(refs, limit=MANIFEST_LIMIT)))


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    # The JSON parser allocates millions of dicts and lists, none of them in a cycle; the
    # cyclic collector would walk every one of them again and again (and the first
    # manifest again while the second loads), doubling the load time for nothing.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextlib.contextmanager
def single_run() -> Iterator[None]:
    """For a process that diffs once and then exits (the CLI): no collector passes at all.

    Inside, the cyclic collector is off; on the way out everything still alive is frozen
    (``gc.freeze``), so neither a later collection nor the one at interpreter exit walks
    the millions of manifest objects. Manifests hold no reference cycles: reference
    counting alone frees them.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def _load(path: str) -> Manifest:
    """:func:`load_manifest`, lighter on memory for the big files a diff reads.

    The raw bytes go as soon as they are decoded, before the JSON parser builds its
    objects: with two 100,000-package manifests that is a third of the peak. Refusals
    (a FIFO, a device, a file past the limit) are :func:`load_manifest`'s.
    """
    if path == "-":
        return load_manifest(path)
    data = read_bounded(
        path,
        limit=MANIFEST_LIMIT,
        what="manifest file",
        error=ManifestError,
        missing="no such file",
    )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return loads(data, origin=path)  # its error message
    del data  # the bytes go before the parser builds its objects
    return loads(text, origin=path)


def name_environments(paths: Sequence[str], manifests: Sequence[Manifest]) -> list[Environment]:
    """Name each environment by label (else hostname); a clash falls back to the file name."""
    names = [m.name or Path(p).name for p, m in zip(paths, manifests)]
    counts = Counter(names)
    out: list[Environment] = []
    used: set[str] = set()
    for path, manifest, name in zip(paths, manifests, names):
        chosen = name
        if counts[name] > 1:
            chosen = f"{name} ({'<stdin>' if path == '-' else Path(path).name})"
        base, number = chosen, 2
        while chosen in used:
            chosen, number = f"{base} #{number}", number + 1
        used.add(chosen)
        out.append(Environment(chosen, path, manifest))
    return out


def _baseline_index(environments: Sequence[Environment], wanted: str | None) -> int:
    if wanted is None:
        return 0
    for index, env in enumerate(environments):
        path = Path(env.path)
        meta = env.manifest.meta
        candidates = {env.name, meta.label or "", meta.hostname, env.path, path.name, path.stem}
        if wanted in candidates:
            return index
    names = ", ".join(e.name for e in environments)
    raise UsageError(f"--baseline {wanted!r} names no environment; choose from {names}")


def _values(
    environments: Sequence[Environment],
    drifts: Sequence[Drift],
    targets: Mapping[str, tuple[str, str]],
) -> dict[tuple[str, str, str | None], dict[str, object]]:
    """Every environment's value of each changed thing (a requirement row: the version
    its check looked at, through ``targets``)."""
    values: dict[tuple[str, str, str | None], dict[str, object]] = {}
    for drift in drifts:
        for change in drift.changes:
            where = (change.section, change.key, change.field)
            if where in values:
                continue
            row: dict[str, object] = {}
            for env in environments:
                if change.section == SECTION:
                    value = _requirement_cell(env.manifest, targets, change.key)
                else:
                    value = cell(env.manifest, change.section, change.key, change.field)
                if value is not MISSING:
                    row[env.name] = value
            values[where] = row
    return values


def _requirement_cell(
    manifest: Manifest, targets: Mapping[str, tuple[str, str]], key: str
) -> object:
    target = targets.get(key)
    return MISSING if target is None else cell(manifest, target[0], target[1], "version")


def _requirement_misses(
    declared: Declared, env: Environment, base: Environment, other: Environment
) -> list[Change]:
    """``env``'s misses as changes of the drift from ``base`` to ``other``."""
    targets = declared.targets
    out = []
    for change in check(declared, env.manifest, name=env.name):
        before = _requirement_cell(base.manifest, targets, change.key)
        after = _requirement_cell(other.manifest, targets, change.key)
        out.append(
            dataclasses.replace(
                change,
                field=env.name,
                before=None if before is MISSING else before,
                after=None if after is MISSING else after,
            )
        )
    return out


def _notes(environments: Sequence[Environment], declared: Declared | None) -> list[str]:
    if declared is None:
        return []
    notes = list(declared.notes)
    if declared.requirements:
        notes.extend(
            f"requirements not checked in {env.name}: python_packages not captured"
            for env in environments
            if env.manifest.coverage_of("python_packages") != CAPTURED
        )
    return notes


def _threshold(fail_on: Severity | Literal["none"] | None, policy: Policy) -> Severity | None:
    """``--fail-on`` wins over the policy's; ``"none"`` (``--fail-on none``) never fails."""
    if fail_on is None:
        return policy.fail_on
    return None if isinstance(fail_on, str) else fail_on


def run_diff(
    environments: Sequence[Environment],
    *,
    baseline: str | None = None,
    policy: Policy | None = None,
    fail_on: Severity | Literal["none"] | None = None,
    declared: Declared | None = None,
    accepted: Path | None = None,
    accept: bool = False,
) -> Outcome:
    """Compare the baseline with every other environment and judge the drift.

    ``accepted`` (or the policy's ``accepted`` key) lowers the listed changes to info.
    ``accept`` returns the accepted-drift document of this run and judges the run as if
    it had been given back, so accepting always ends with exit 0.
    """
    policy = policy or Policy()
    index = _baseline_index(environments, baseline)
    base = environments[index]
    others = [e for i, e in enumerate(environments) if i != index]
    raw: list[Drift] = []
    source_notes: list[str] = []
    for env in others:
        # Facts only one source kind can have (a live host's kernel against an image) say
        # how each side was captured, not how they differ: set aside, with a note.
        a, b, notes = comparable(base.manifest, env.manifest)
        source_notes.extend(notes)
        drift = compare(a, b)
        drift.baseline, drift.other = base.name, env.name
        raw.append(drift)
    if declared is not None and raw:
        # The baseline's own misses go with the first drift: each is reported once.
        raw[0].changes.extend(_requirement_misses(declared, base, base, others[0]))
        for drift, env in zip(raw, others):
            drift.changes.extend(_requirement_misses(declared, env, base, env))
    accepted_path = accepted or policy.accepted
    fingerprints = load_accepted(accepted_path) if accepted_path is not None else frozenset()
    drifts = [apply_policy(policy, d, fingerprints) for d in raw]
    document = None
    accepted_counts: dict[Severity, int] = {}
    if accept:
        document = accepted_document(drifts)
        accepted_counts = dict(Counter(c.severity for d in drifts for c in d.changes))
        drifts = [apply_policy(policy, d, accept_all=True) for d in raw]
    counts = Counter(c.severity for d in drifts for c in d.changes)
    verdict = Verdict(
        threshold=_threshold(fail_on, policy),
        worst=max(counts, default=None),
        counts={s: counts.get(s, 0) for s in Severity},
    )
    result = DiffResult(
        environments=[e.name for e in environments],
        baseline=base.name,
        drifts=drifts,
        verdict=verdict,
        values=_values(environments, drifts, declared.targets if declared is not None else {}),
        notes=[*source_notes, *_notes(environments, declared)],
    )
    return Outcome(result, document, accepted_counts)
